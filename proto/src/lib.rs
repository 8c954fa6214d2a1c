//! Wire types for skiff: the etcd v3 client API and skiff's internal raft
//! transport, generated from `.proto` files by prost and tonic at build time.
//!
//! The etcd definitions are skiff's own declarations of the etcd v3.5 wire
//! contract. Package, service, method, message and field names and numbers
//! match upstream exactly, so stock etcd clients (`etcdctl`, the Rust
//! `etcd-client` crate, Kubernetes' apiserver) talk to skiff unmodified. Only
//! the subset skiff serves is declared; the `Auth` service, `Downgrade`, and
//! etcd's raft-internal messages are absent.
//!
//! # Layout
//!
//! - `proto/etcd/kv.proto` generates [`mvccpb`]: `KeyValue` and `Event`, the
//!   storage-level types shared by reads and watches.
//! - `proto/etcd/rpc.proto` generates [`etcdserverpb`]: the `KV`, `Watch`,
//!   `Lease`, `Cluster` and `Maintenance` services, their messages, and a
//!   `*_server` and `*_client` module per service.
//! - `proto/skiff/raft.proto` generates [`raftpb`] (protobuf package
//!   `skiff.raft.v1`): `RaftService`, the member-to-member transport. Raft
//!   requests travel as opaque serialized openraft messages inside
//!   `RaftMessage`; compatibility of that encoding is tracked by the package
//!   version rather than by protobuf fields.
//!
//! The modules must stay siblings at the crate root: generated code in
//! [`etcdserverpb`] refers to storage types as `super::mvccpb::KeyValue`.
//!
//! Generated code is exempt from the workspace's lints (each module carries
//! its own `allow`); hand-written code belongs in other crates.

/// etcd storage types (protobuf package `mvccpb`).
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    rustdoc::all
)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd v3 client services and messages (protobuf package `etcdserverpb`).
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    rustdoc::all
)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// skiff's member-to-member raft transport (protobuf package `skiff.raft.v1`).
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    rustdoc::all
)]
pub mod raftpb {
    tonic::include_proto!("skiff.raft.v1");
}

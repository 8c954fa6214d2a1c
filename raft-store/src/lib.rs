//! skiff's replicated store: etcd v3 semantics over openraft and RocksDB.
//!
//! # Layout
//! - `mvcc`: the revisioned keyspace (pure logic over a `Backend` trait; RocksDB and in-memory).
//! - `raft`: openraft glue: type config, RocksDB log store, state machine, gRPC network.
//! - `watch`: the watch hub (synced/unsynced watchers fed from applied state).
//! - `node`: one store member: opens the data dir, starts raft, serves the ports, forwards
//!   leader-only operations, expires leases.
//! - `handle`: `StoreHandle`, the API the services call.
//! - `server`: the gRPC services (etcd v3 KV, Watch, Lease, Cluster, Maintenance; raft peers).
//! - `admin`: the operator's client (`skiff member`, `skiff snapshot save`) over the etcd API.
//! - `loadgen`: a load generator for the etcd v3 API (`skiff bench store`), to compare with etcd.

// openraft's StorageError and tonic's Status are large by design; they are what the traits we
// implement return, so boxing them would only add conversions.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod error;
pub mod handle;
pub mod handle_types;
pub mod loadgen;
pub mod mvcc;
pub mod node;
pub mod raft;
pub mod server;
pub mod watch;

pub use error::StoreError;
pub use handle::StoreHandle;
pub use node::{Member, NodeConfig};

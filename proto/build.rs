//! Generates the Rust bindings for skiff's protobuf definitions.
//!
//! prost/tonic emit one file per protobuf package into `OUT_DIR`
//! (`mvccpb.rs`, `etcdserverpb.rs`, `skiff.raft.v1.rs`), which `src/lib.rs`
//! pulls in with `tonic::include_proto!`. Both client and server stubs are
//! generated: skiff serves the etcd API and the raft transport, and its
//! members call each other's raft transport as clients. Requires `protoc`
//! on `PATH` (or the `PROTOC` environment variable).

/// Proto files to compile, relative to this crate's root.
const PROTOS: &[&str] = &["proto/etcd/kv.proto", "proto/etcd/rpc.proto", "proto/skiff/raft.proto"];

/// Import root: `rpc.proto` imports `etcd/kv.proto` relative to it.
const INCLUDES: &[&str] = &["proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROTOC");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }

    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(PROTOS, INCLUDES)?;

    Ok(())
}

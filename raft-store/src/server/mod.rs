//! The etcd v3 client API (KV, Watch, Lease, Cluster, Maintenance) as tonic services over
//! `StoreHandle`, so etcdctl and etcd client libraries talk to skiff unmodified.
//!
//! Requests are validated at ingress with etcd's checks and messages; store errors map to
//! etcd's gRPC codes and messages (`status`). Prost types stop at `convert`.
//!
//! # Layout
//! - `convert`: prost <-> domain conversions, response headers.
//! - `status`: etcd's error messages and the `StoreError` -> `Status` mapping.
//! - `kv`, `watch`, `lease`, `cluster`, `maintenance`: one service each (with its validation).

// tonic's `Status` is large, and every handler returns it anyway; boxing it in the pure
// validation helpers would only add conversions.
#![allow(clippy::result_large_err)]

pub mod cluster;
pub mod convert;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod status;
pub mod watch;

use proto::etcdserverpb::cluster_server::ClusterServer;
use proto::etcdserverpb::kv_server::KvServer;
use proto::etcdserverpb::lease_server::LeaseServer;
use proto::etcdserverpb::maintenance_server::MaintenanceServer;
use proto::etcdserverpb::watch_server::WatchServer;
use tonic::service::Routes;
use tonic::transport::server::Router;
use tonic::transport::Server;

use crate::handle::StoreHandle;

/// Largest request message accepted off the wire: etcd's 1.5 MiB request limit plus gRPC
/// overhead, so that requests between the two get etcd's "request is too large" answer.
pub const MAX_DECODING_BYTES: usize = 2 * 1024 * 1024;

/// The five etcd services, ready for `Server::builder().add_routes(..)`.
pub fn etcd_services(handle: StoreHandle) -> Routes {
    Routes::new(KvServer::new(kv::KvService { handle: handle.clone() }).max_decoding_message_size(MAX_DECODING_BYTES))
        .add_service(
            WatchServer::new(watch::WatchService { handle: handle.clone() })
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
        .add_service(
            LeaseServer::new(lease::LeaseService { handle: handle.clone() })
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
        .add_service(
            ClusterServer::new(cluster::ClusterService { handle: handle.clone() })
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
        .add_service(
            MaintenanceServer::new(maintenance::MaintenanceService { handle })
                .max_decoding_message_size(MAX_DECODING_BYTES),
        )
}

/// `builder` with the five etcd services added; add more with `.add_service(..)`.
pub fn add_etcd_services<L: Clone>(mut builder: Server<L>, handle: StoreHandle) -> Router<L> {
    builder.add_routes(etcd_services(handle))
}

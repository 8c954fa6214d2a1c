//! skiff's node agent (our kubelet): runs the pods bound to its node as real containers
//! through youki's libcontainer, with images pulled from OCI registries, a network namespace
//! per pod wired to a node bridge, and status reported to the API.
//!
//! # Layout
//! - `agent`: the `skiff agent` loop: node registration, pod sources, one worker per pod.
//! - `node`: the Node object, its capacity and conditions, the heartbeat Lease.
//! - `pod/`: pod workers (per-container records, restart rules, status, the start steps).
//! - `static_pods`: manifests from a directory, mirrored into the API.
//! - `runtime/`: libcontainer behind a shim process; pod namespaces, overlay roots, cgroups.
//! - `image/`: the content-addressed image store and the OCI registry client.
//! - `spec/`: the OCI runtime spec of a container, from the pod (pure).
//! - `volumes/`: a pod's volumes on the host (emptyDir, hostPath, configMap, secret, projected).
//! - `logs/`: CRI container log files.
//! - `network/`: the pod network (bridge, veths, IPAM, host-gw routes) over netlink;
//!   `node_network` feeds it from the Node objects.
//! - `kube/`: a small API client (kubeconfig, verbs, watches).
//! - `server/`: the HTTPS server the API server calls for `pods/log` (kubelet's `:10250`).

pub mod agent;
pub mod hollow;
pub mod image;
pub mod kube;
pub mod logs;
pub mod network;
pub mod node;
pub mod node_network;
pub mod pod;
pub mod runtime;
pub mod server;
pub mod spec;
pub mod static_pods;
pub mod volumes;

use std::path::PathBuf;

pub use agent::{run, AgentConfig};

/// Why the agent could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Kube(#[from] kube::KubeError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

//! The container runtime: youki's libcontainer driven from a shim process.
//!
//! # Layout
//! - `protocol`: the agent <-> shim wire format (JSON lines over a Unix socket).
//! - `shim`: the single-threaded shim process that calls libcontainer and reaps containers.
//! - `client`: the agent's async side: starts the shim if none runs, calls it, follows exits.
//! - `sandbox`: a pod's network, IPC and UTS namespaces, pinned to files (no pause process).
//! - `rootfs`: a container's overlayfs root over its image's unpacked layers.
//! - `cgroups`: the pod-level cgroups the agent owns (libcontainer removes only the leaves).

pub mod cgroups;
pub mod client;
pub mod protocol;
pub mod rootfs;
pub mod sandbox;
pub mod shim;

use std::path::{Path, PathBuf};

pub use client::RuntimeClient;
pub use protocol::{ContainerInfo, Phase};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: {1}")]
    Os(&'static str, nix::errno::Errno),
    #[error("a shim already serves {socket}")]
    ShimRunning { socket: PathBuf },
    #[error("runtime shim at {socket}: {reason}")]
    Shim { socket: PathBuf, reason: String },
    /// The shim refused or failed the operation (libcontainer's message).
    #[error("{0}")]
    Refused(String),
    /// The shim could not return to its own namespaces after pinning a pod's: it must exit.
    #[error("stranded: {0}")]
    Stranded(String),
}

impl RuntimeError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

//! The container runtime: youki's libcontainer driven from a shim process.
//!
//! # Layout
//! - `protocol`: the agent <-> shim wire format (JSON lines over a Unix socket).
//! - `shim`: the single-threaded shim process that calls libcontainer and reaps containers.
//! - `client`: the agent's async side: starts the shim if none runs, calls it, follows exits.
//! - `exec`: `skiff agent-exec`, the helper that runs one command in a running container.
//! - `exec_client`: the agent's side of an exec: starts the helper, its pipes or terminal.
//! - `sandbox`: a pod's network, IPC and UTS namespaces, pinned to files (no pause process).
//! - `rootfs`: a container's overlayfs root over its image's unpacked layers.
//! - `cgroups`: the pod-level cgroups the agent owns (libcontainer removes only the leaves).

pub mod cgroups;
pub mod client;
pub mod exec;
pub mod exec_client;
pub mod protocol;
pub mod rootfs;
pub mod sandbox;
pub mod shim;

use std::path::{Path, PathBuf};

pub use client::RuntimeClient;
pub use exec_client::{ExecEnd, ExecProcess, ExecRequest};
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

/// The mounts of this process's mount namespace as (mount point, filesystem type), from
/// /proc/self/mountinfo (empty if it cannot be read). Mount points are as the kernel escapes
/// them; ours contain no spaces.
pub(crate) fn mounts() -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some((fields.get(4)?.to_string(), fields.get(sep + 1)?.to_string()))
        })
        .collect()
}

/// Whether `path` is a mount point in this mount namespace.
pub(crate) fn is_mount_point(mounts: &[(String, String)], path: &Path) -> bool {
    let p = path.to_string_lossy();
    mounts.iter().any(|(m, _)| *m == *p)
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

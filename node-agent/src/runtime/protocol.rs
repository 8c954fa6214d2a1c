//! The wire protocol between the agent and its runtime shim: one JSON object per line over a
//! Unix stream socket. A connection sends requests and reads one reply per request; a connection
//! that sent `Subscribe` instead receives a line per container exit until it closes.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the agent asks of the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create a container from an OCI bundle (its init process waits for `Start`); its stdout
    /// and stderr go to `log_path` in the CRI log format.
    Create {
        id: String,
        bundle: PathBuf,
        log_path: PathBuf,
    },
    Start {
        id: String,
    },
    Kill {
        id: String,
        signal: i32,
        all: bool,
    },
    /// Remove the container (its state and leaf cgroups); `force` kills it first.
    Delete {
        id: String,
        force: bool,
    },
    List,
    /// Pin a pod's namespaces to files in `dir` (see `sandbox`).
    Pin {
        dir: PathBuf,
        hostname: String,
        host_network: bool,
    },
    /// Turn this connection into a stream of exit events.
    Subscribe,
}

/// The shim's answer to one request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerInfo>,
}

impl Reply {
    pub fn ok(containers: Vec<ContainerInfo>) -> Reply {
        Reply {
            ok: true,
            error: None,
            containers,
        }
    }

    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(message.into()),
            containers: Vec::new(),
        }
    }
}

/// Where a container is in its life, as the shim saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub pid: i32,
    pub phase: Phase,
    /// The exit code (128 + signal for a killed process); `None` while running, or when the
    /// process exited while no shim was its parent (after a shim crash) so nobody saw its status.
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
}

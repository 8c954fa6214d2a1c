//! Errors of the load generator: setup failures end a run; op failures are counted.

use std::time::Duration;

use thiserror::Error;

/// Why a run could not start or finish its setup.
#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("TLS client configuration: {0}")]
    Tls(String),
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: OpError,
    },
    #[error("creating namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        #[source]
        source: OpError,
    },
    #[error("pre-populating {objects} pods failed: {source}")]
    Populate {
        objects: u64,
        #[source]
        source: OpError,
    },
    #[error("watch setup failed: {0}")]
    WatchSetup(String),
}

/// Why one operation failed. Counted per [`OpError::class`]; the run goes on.
#[derive(Debug, Error)]
pub enum OpError {
    /// The server answered with a non-success status (the `metav1.Status` message, if any).
    #[error("HTTP {code}: {message}")]
    Status { code: u16, message: String },
    /// Connecting, TLS, or the HTTP exchange failed.
    #[error("{0}")]
    Transport(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered, but not what the workload knows must be true (a list missing
    /// pre-populated pods, an object without a resourceVersion).
    #[error("{0}")]
    Check(String),
}

impl OpError {
    /// The bucket errors are counted in: HTTP status code, transport, timeout, or failed check.
    pub fn class(&self) -> String {
        match self {
            OpError::Status { code, .. } => format!("http {code}"),
            OpError::Transport(_) => "transport".into(),
            OpError::Timeout(_) => "timeout".into(),
            OpError::Check(_) => "check".into(),
        }
    }

    /// Whether the connection it happened on should be dropped and dialled again.
    pub fn breaks_connection(&self) -> bool {
        matches!(self, OpError::Transport(_) | OpError::Timeout(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_name_the_status_code() {
        let e = OpError::Status {
            code: 409,
            message: "exists".into(),
        };
        assert_eq!(e.class(), "http 409");
        assert_eq!(e.to_string(), "HTTP 409: exists");
        assert!(!e.breaks_connection());
        assert_eq!(OpError::Transport("reset".into()).class(), "transport");
        assert!(OpError::Timeout(Duration::from_secs(1)).breaks_connection());
    }
}

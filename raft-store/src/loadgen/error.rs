//! Errors of the load generator: setup failures end a run; op failures are counted.

use std::time::Duration;

use thiserror::Error;

/// Why a run could not start or finish its setup.
#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("pre-populating {keys} keys failed: {source}")]
    Populate {
        keys: u64,
        #[source]
        source: Box<OpError>,
    },
    #[error("watch setup failed: {0}")]
    WatchSetup(String),
}

/// Why one operation failed. Counted per [`OpError::class`]; the run goes on.
#[derive(Debug, Error)]
pub enum OpError {
    #[error("{}: {}", .0.code(), .0.message())]
    Grpc(#[from] tonic::Status),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered, but not what the workload knows must be true (a pre-populated key
    /// missing, a list with the wrong number of keys).
    #[error("{0}")]
    Check(String),
}

impl OpError {
    /// The bucket errors are counted in: gRPC code, timeout, or failed check.
    pub fn class(&self) -> String {
        match self {
            OpError::Grpc(s) => format!("grpc {:?}", s.code()),
            OpError::Timeout(_) => "timeout".into(),
            OpError::Check(_) => "check".into(),
        }
    }
}

//! A small Kubernetes API client for the agent: kubeconfig loading, JSON verbs, list+watch.
//!
//! # Layout
//! - `kubeconfig`: the current context's server, CA and credentials.
//! - `client`: requests with fail-over between API servers, typed errors, watch streams.

pub mod client;
pub mod kubeconfig;

pub use client::{KubeClient, WatchEvent};
pub use kubeconfig::Kubeconfig;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    /// No API server answered (each one's error joined).
    #[error("no API server reachable: {0}")]
    Unreachable(String),
    /// The API server answered with a failure `Status`.
    #[error("{method} {path}: {code} {reason}: {message}")]
    Status {
        method: &'static str,
        path: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("decoding the answer to {path}: {reason}")]
    Decode { path: String, reason: String },
}

impl KubeError {
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
}

//! Preparing a pod's volumes on the node: directories and files that the containers'
//! bind mounts point at.
//!
//! [`prepare`] first gathers everything it needs from the API through [`VolumeSource`]
//! (configMaps, secrets, service-account tokens), turning each volume into a plan (a
//! directory, a host path to check, or a file payload), and then carries the plans out on
//! the filesystem in a blocking task. Layout under the pod directory:
//! `volumes/<plugin>/<volume name>` with plugin `empty-dir`, `configmap`, `secret`,
//! `downward-api` or `projected`; hostPath volumes are used in place.
//!
//! Not like kubelet (yet): emptyDir `medium: Memory` and secrets are plain directories on
//! disk, not tmpfs mounts; `sizeLimit` is not enforced; fsGroup ownership is not applied;
//! a payload is rewritten even when unchanged.
//!
//! # Layout
//! - `source`: [`VolumeSource`], the API reads, and [`SourceError`].
//! - `payload`: file payloads of configMap/secret/downwardAPI/projected volumes (pure).
//! - `atomic`: writing a payload Kubernetes-style (timestamped dir + `..data` symlink swap).
//! - `host_path`: hostPath type checks.
//! - `prepare`: [`prepare`] and [`cleanup`].

mod atomic;
mod host_path;
mod payload;
mod prepare;
mod source;

#[cfg(test)]
mod tests;

pub use atomic::{write_payload, DATA_DIR_NAME};
pub use payload::{FileData, Payload};
pub use prepare::{cleanup, prepare};
pub use source::{BoxFuture, SourceError, VolumeSource};

use crate::spec::SpecError;

/// Why a pod's volumes could not be prepared. Each variant names the volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A non-optional configMap does not exist.
    #[error("volume {volume:?}: configmap {name:?} not found")]
    ConfigMapNotFound { volume: String, name: String },
    /// A non-optional secret does not exist.
    #[error("volume {volume:?}: secret {name:?} not found")]
    SecretNotFound { volume: String, name: String },
    /// An `items` entry names a key the object lacks.
    #[error("volume {volume:?}: {kind} {name:?} references non-existent key {key:?}")]
    MissingKey {
        volume: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    /// A hostPath that does not pass its `type` check.
    #[error("volume {volume:?}: hostPath type check failed: {path} {reason}")]
    HostPathType {
        volume: String,
        path: String,
        reason: String,
    },
    /// A volume type this agent does not support.
    #[error("volume {volume:?}: unsupported volume type {kind}")]
    Unsupported { volume: String, kind: &'static str },
    /// A volume name or file path that would leave its directory.
    #[error("volume {volume:?}: invalid path {path:?}")]
    InvalidPath { volume: String, path: String },
    /// The API could not be read.
    #[error("volume {volume:?}: {source}")]
    Source { volume: String, source: SourceError },
    /// A downward-API item that cannot be evaluated.
    #[error("volume {volume:?}: {source}")]
    Field { volume: String, source: Box<SpecError> },
    /// A filesystem operation failed.
    #[error("volume {volume:?}: {op} {path}: {source}")]
    Io {
        volume: String,
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// The blocking task doing the filesystem work died.
    #[error("volume setup task failed: {0}")]
    Task(String),
}

impl VolumeError {
    /// True for errors kubelet reports as `CreateContainerConfigError` (the pod refers to
    /// configuration that does not exist), as opposed to node-side failures.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            VolumeError::ConfigMapNotFound { .. }
                | VolumeError::SecretNotFound { .. }
                | VolumeError::MissingKey { .. }
                | VolumeError::Field { .. }
        )
    }
}

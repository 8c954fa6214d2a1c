//! The node agent's image store: pulls OCI and Docker images from registries
//! (or imports OCI image layouts), keeps their blobs content-addressed on disk
//! and unpacks each layer once into a directory that overlayfs can use as a
//! lower dir.
//!
//! ```text
//! root/blobs/sha256/<hex>   manifests and configs, verified before they appear
//! root/layers/<hex>/        one unpacked layer per diff ID (uncompressed digest),
//!                           shared by every image that has it
//! root/images.json          image name -> manifest digest, replaced atomically
//! root/tmp/                 downloads and half-unpacked layers; emptied on open
//! ```
//!
//! Nothing becomes visible under `blobs/` or `layers/` before its digest has
//! been checked: files and directories are built in `tmp/` and renamed into
//! place, so a crash leaves at worst garbage in `tmp/`.
//!
//! # Layout
//! - `reference`: parsing `busybox`, `host:5000/a/b:tag@sha256:...`.
//! - `manifest`: manifest, index and config documents; platform choice.
//! - `digest`: sha256 helpers and digest validation.
//! - `auth`: `WWW-Authenticate` challenges and bearer tokens.
//! - `registry`: the distribution API client (manifests, blobs, errors).
//! - `unpack`: layer tar to directory, with whiteouts and path safety.
//! - `install`: adding config and layers (shared by pull and import).
//! - `store`: the on-disk store: open, get, list, remove, prune.
//! - `pull`: `ImageStore::pull`.
//! - `layout`: `ImageStore::import_layout` for OCI image layouts.
//! - `sample`: the busybox sample image `skiff up` imports into every agent.

pub mod auth;
pub mod digest;
pub mod install;
pub mod layout;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod sample;
pub mod store;
pub mod unpack;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use reference::Reference;
pub use store::ImageStore;
pub use unpack::UnpackError;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// The registry answered that the repository, tag or digest does not exist.
    #[error("image {reference} not found")]
    NotFound { reference: String },
    #[error("registry {registry} refused access: {reason}")]
    Unauthorized { registry: String, reason: String },
    /// The registry could not be reached or answered with an error. Usually
    /// worth retrying later.
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    #[error("bad manifest for {reference}: {reason}")]
    BadManifest { reference: String, reason: String },
    #[error("image {reference} has no manifest for {wanted} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("OCI layout {dir}: {reason}")]
    Layout { dir: PathBuf, reason: String },
    #[error("layer {layer}: {source}")]
    Unpack {
        layer: String,
        #[source]
        source: UnpackError,
    },
    /// Store metadata on disk is damaged (not a registry problem).
    #[error("image store {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    /// True for errors that a later retry may cure (registry down, busy).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ImageError::Registry { .. } | ImageError::Io { .. })
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// The runtime parts of an image's config that the agent needs to start a
/// container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// Like `"8080/tcp"`, sorted.
    pub exposed_ports: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub stop_signal: Option<String>,
}

/// An image present in the store, ready to be mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub reference: Reference,
    /// Digest of the platform manifest (`sha256:...`); the agent's image ID.
    pub digest: String,
    /// Digest the name resolved to in the registry: the index digest for a
    /// multi-platform image, else equal to `digest`.
    pub repo_digest: String,
    pub config_digest: String,
    pub config: ImageConfig,
    /// Unpacked layer directories, lowest first, absolute paths.
    pub layers: Vec<PathBuf>,
    /// Compressed size as in the manifest (config plus layers).
    pub size: u64,
}

/// One line of `ImageStore::list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub name: String,
    pub digest: String,
    pub size: u64,
    /// RFC 3339.
    pub pulled_at: String,
}

/// Registry credentials (basic auth, or exchanged for a bearer token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    // Passwords must never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a layer is doing, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// Already unpacked in the store; nothing downloaded.
    Cached,
    Downloading,
    Extracting,
    Done,
}

/// A progress report for one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The layer's blob digest.
    pub layer: String,
    pub state: ProgressState,
    pub done: u64,
    pub total: u64,
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How to pull.
#[derive(Clone, Default)]
pub struct PullOptions {
    pub auth: Option<Credentials>,
    /// Registry hosts (`host` or `host:port`) spoken to over plain HTTP.
    /// Loopback registries always are, as in Docker and containerd.
    pub insecure_registries: Vec<String>,
    pub progress: Option<ProgressFn>,
}

impl fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullOptions")
            .field("auth", &self.auth)
            .field("insecure_registries", &self.insecure_registries)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl PullOptions {
    pub(crate) fn report(&self, p: Progress) {
        if let Some(cb) = &self.progress {
            cb(&p);
        }
    }
}

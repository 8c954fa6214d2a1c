//! Pod workers: one per pod, driving it to its desired state and reporting its status.
//!
//! # Layout
//! - `record`: per-container state and the restart/back-off rules (pure).
//! - `status`: the pod's status from those records (pure).
//! - `context`: what workers share, and the IO steps of starting a container.
//! - `probe`: startup, liveness and readiness probes (tallies pure, attempts over TCP/HTTP).
//! - `worker`: the per-pod loop.
//! - `volume_source`: configMaps, secrets and tokens for volumes, read from the API.

pub mod context;
pub mod probe;
pub mod record;
pub mod status;
pub mod volume_source;
pub mod worker;

pub use context::Context;
pub use worker::Worker;

//! A load generator for the Kubernetes API: drives skiff's API servers (or any
//! kube-apiserver) through the full HTTPS stack and reports throughput and latency
//! percentiles (`skiff bench api`).
//!
//! It authenticates with an admin kubeconfig's client certificate, and every client keeps its
//! own keep-alive connection (HTTP/2 when the server offers it), clients spread round-robin
//! over the endpoints. Workloads: `create`, `get`, `list`, `watch` (see [`Workload`]). Every
//! run is bounded in ops and in time. The report has the shape of raft-store's etcd load
//! generator, whose histogram and latency summary it reuses.
//!
//! # Layout
//! Pure, unit-tested parts:
//! - `objects`: names, paths and bodies of the objects written; list pages and their check.
//! - `watch_event`: splitting a watch response into events and parsing them.
//! - `kubeconfig`: the current context's server, CA and client credentials.
//! - `endpoint`: API server URLs, round-robin spread.
//! - `op_kind`, `config`, `error`, `recorder`, `report`: the vocabulary, inputs and outputs.
//!
//! IO at the edge:
//! - `tls`: the rustls client configuration (ring).
//! - `conn`: one HTTPS connection (hyper 1 over tokio-rustls), redialled when it breaks.
//! - `ops`: one API operation each (create, get, paged list, configmap write).
//! - `populate`: creates the pods of the get and list workloads.
//! - `worker`: which operation a client sends for op `n`.
//! - `driver`: client tasks: counter, pacing, timeouts, recording.
//! - `watch`: the watchers of the watch workload.
//! - `runner`: a whole run, from the kubeconfig to the report.
//! - `schedule` (with the pure `sched_objects`): `skiff bench scheduler`, nodes and pods
//!   created through the API, creation-to-bind latency read from a watch.
//!
//! Pacing, run bounds and the watch completeness check are raft-store's
//! (`raft_store::loadgen::{pacing, watch_check}`), shared with `skiff bench store`.

mod config;
mod conn;
mod driver;
mod endpoint;
mod error;
mod kubeconfig;
mod objects;
mod op_kind;
mod ops;
mod populate;
mod recorder;
mod report;
mod runner;
mod sched_core;
mod sched_objects;
mod schedule;
mod tls;
mod watch;
mod watch_event;
mod worker;

pub use config::{Config, Workload, DEFAULT_OBJECTS, DEFAULT_TOTAL, LIST_PAGE};
pub use error::{LoadgenError, OpError};
pub use op_kind::OpKind;
pub use raft_store::loadgen::MAX_DURATION;
pub use report::{KindReport, Report, WatchReport};
pub use runner::run;
pub use sched_core::{run as run_scheduler_core, CoreReport};
pub use sched_objects::Shape;
pub use schedule::{run as run_scheduler, SchedConfig, SchedReport};

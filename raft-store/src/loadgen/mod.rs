//! A load generator for the etcd v3 gRPC API: drives skiff or etcd with the same workloads
//! and reports throughput and latency percentiles (`skiff bench store`).
//!
//! It speaks the API through the generated clients of the `proto` crate, so it measures
//! exactly what any etcd client would see. Workloads: `put`, `range`, `txn-cas`, `list`,
//! `watch`, `mixed` (see [`Workload`]). Every run is bounded in ops and in time.
//!
//! # Layout
//! Pure, unit-tested parts:
//! - `histogram`: log-bucketed latency histogram (HdrHistogram-style, 0.4 % resolution).
//! - `keys`: key spelling, sequential/random key choice, prefix ranges, list paging.
//! - `pacing`: open-loop schedule for a target rate; run bounds.
//! - `mix`: weighted choice for the mixed workload.
//! - `watch_check`: did a watcher see every acknowledged write, in order.
//! - `op_kind`, `config`, `error`, `recorder`, `report`: the vocabulary, inputs and outputs.
//!
//! IO at the edge:
//! - `conn`: gRPC channels spread over the endpoints.
//! - `ops`: one etcd operation each (put, get, txn-cas, paged list, batched put).
//! - `populate`: writes the key space before read workloads.
//! - `worker`: which operation a client sends for op `n`.
//! - `driver`: client tasks: counter, pacing, timeouts, recording.
//! - `watch`: watcher streams for the watch workload.
//! - `runner`: a whole run, from connecting to the report.

mod config;
pub(crate) mod conn;
mod driver;
mod error;
mod histogram;
mod keys;
mod mix;
mod op_kind;
mod ops;
pub mod pacing;
mod populate;
mod recorder;
mod report;
mod runner;
mod watch;
pub mod watch_check;
mod worker;

pub use config::{Config, Workload, DEFAULT_TOTAL, LIST_PAGE};
pub use error::{LoadgenError, OpError};
pub use histogram::Histogram;
pub use mix::Mix;
pub use op_kind::OpKind;
pub use pacing::MAX_DURATION;
pub use recorder::ErrorTally;
pub use report::{KindReport, Latency, MixShare, Report, WatchReport};
pub use runner::run;

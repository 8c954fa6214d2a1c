//! The scheduler: finds a node for every pending pod, as kube-scheduler does, on the Raft leader
//! only (`crate::leader`), every binding fenced by the leader's term.
//!
//! # Layout
//! The decisions are pure code over data (openraft's engine/core split):
//! - `model`: pods and nodes as the plugins read them, and the `Cluster` they are checked against.
//! - `plugins/`: one filter/score plugin per file, Kubernetes' semantics and reason strings.
//! - `framework`: a profile's plugins run over the cluster: filter, score, pick; `FitError` is
//!   the aggregated "0/5 nodes are available: ..." verdict.
//! - `preemption`: which lower-priority pods to evict, on which node, when nothing fits.
//! - `config`: profiles from a KubeSchedulerConfiguration file.
//! - `queue`: active / backoff / unschedulable sub-queues.
//!
//! The IO edge executes them:
//! - `feed`: node and pod informers decoded into scheduler events.
//! - `runner`: the loop (assume, bind in the background, conditions, preemption).
//! - `events`: `Scheduled`, `FailedScheduling`, `Preempted` events, written in batches.

pub mod config;
pub mod events;
pub mod feed;
pub mod framework;
pub mod model;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod runner;

use std::sync::Arc;

use crate::leader::Component;

/// The scheduler as a leader-only component running `profiles` (one per schedulerName).
pub fn component(profiles: Vec<framework::Profile>) -> Component {
    let profiles = Arc::new(profiles);
    Component::new("scheduler", move |t| runner::run(t, profiles.clone()))
}

//! The controller manager: controllers that keep the cluster at its desired state, run on the
//! Raft leader only (`crate::leader`), every write fenced by the leader's term and made through
//! the API server's own pipeline.
//!
//! # Layout
//! Pure reconcilers (objects in, a plan of writes out), Kubernetes' algorithms:
//! - `replicaset`: pods to create, victims to delete, adoption, status.
//! - `deployment`: rolling update and recreate, revisions and history, status and conditions.
//! - `podutil`: readiness, availability, owner references, selectors.
//!
//! The IO edge:
//! - `queue`: client-go's deduplicating, rate-limited work queue.
//! - `runtime`: informers, event routing, the worker executing plans, garbage collection.

pub mod deployment;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod runtime;

use std::sync::Arc;

use crate::api::ApiState;
use crate::leader::Component;

/// The controllers as a leader-only component; they write through `api`'s pipeline.
pub fn component(api: Arc<ApiState>) -> Component {
    Component::new("controllers", move |t| runtime::run(t, api.clone()))
}

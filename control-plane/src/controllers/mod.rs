//! The controller manager: controllers that keep the cluster at its desired state, run on the
//! Raft leader only (`crate::leader`), every write fenced by the leader's term and made through
//! the API server's own pipeline.
//!
//! # Layout
//! Pure reconcilers (objects in, a plan of writes out), Kubernetes' algorithms:
//! - `replicaset`: pods to create, victims to delete, adoption, status.
//! - `deployment`: rolling update and recreate, revisions and history, status and conditions.
//! - `daemonset`: one pod per eligible node, rolling update, status.
//! - `nodelifecycle`: lease-based node health, not-ready/unreachable taints, taint-based eviction.
//! - `nodeipam`: a pod CIDR per node from the cluster CIDR.
//! - `endpoints`, `endpointslice`: a Service's Endpoints and EndpointSlices from its pods.
//! - `podutil`: readiness, availability, owner references, selectors.
//!
//! The IO edge:
//! - `queue`: client-go's deduplicating, rate-limited work queue.
//! - `runtime`: caches, event routing, the worker's loop.
//! - `worker`: writes through the API pipeline, cache catch-up, garbage collection.
//! - `sync_replicaset`, `sync_deployment`, `sync_daemonset`, `sync_node`, `sync_service`: each
//!   reconciler's plan carried out.

pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podutil;
pub mod queue;
pub mod replicaset;
pub mod runtime;
mod sync_daemonset;
mod sync_deployment;
mod sync_node;
mod sync_replicaset;
mod sync_service;
mod worker;

use std::sync::Arc;

use crate::api::ApiState;
use crate::leader::Component;

/// The controllers as a leader-only component; they write through `api`'s pipeline.
pub fn component(api: Arc<ApiState>) -> Component {
    Component::new("controllers", move |t| runtime::run(t, api.clone()))
}

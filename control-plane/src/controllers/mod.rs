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
use std::time::Duration;

use crate::api::ApiState;
use crate::leader::Component;

/// The controller manager's settings, named after kube-controller-manager's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `--node-monitor-grace-period`: how long a node's heartbeat may be missing before the
    /// node is unreachable (40 s).
    pub node_grace: Duration,
    /// `--cluster-cidr`: the range nodes' pod CIDRs come from (10.244.0.0/16).
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`: the prefix length of each node's pod CIDR (24).
    pub node_mask: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_grace: nodelifecycle::DEFAULT_GRACE,
            cluster_cidr: nodeipam::DEFAULT_CLUSTER_CIDR.to_string(),
            node_mask: nodeipam::DEFAULT_NODE_MASK,
        }
    }
}

impl Settings {
    /// Refuses what the controllers could not work with, naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_grace < Duration::from_secs(1) || self.node_grace > Duration::from_secs(3600) {
            return Err(format!(
                "--node-monitor-grace-period {}s: must be 1 to 3600 seconds",
                self.node_grace.as_secs()
            ));
        }
        nodeipam::CidrAllocator::new(&self.cluster_cidr, self.node_mask)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "--cluster-cidr {} / --node-cidr-mask-size {}: {e}",
                    self.cluster_cidr, self.node_mask
                )
            })
    }
}

/// The controllers as a leader-only component; they write through `api`'s pipeline.
pub fn component(api: Arc<ApiState>, settings: Settings) -> Component {
    let settings = Arc::new(settings);
    Component::new("controllers", move |t| runtime::run(t, api.clone(), settings.clone()))
}

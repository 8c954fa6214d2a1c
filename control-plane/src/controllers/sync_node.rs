//! One node's controllers: node IPAM (a `spec.podCIDR` for a node without one) and the node
//! lifecycle (conditions Unknown and `unreachable` taints when its heartbeat lease stops being
//! renewed, taints removed when it comes back, taint-based eviction of its pods).

use std::time::Duration;

use serde_json::{json, Value};

use super::nodeipam::CidrAllocator;
use super::nodelifecycle;
use super::runtime::{text, NODE_LEASE_NAMESPACE};
use super::worker::{Outcome, Worker};
use crate::error::ApiResult;
use crate::registry;

/// Longest wait before a node is looked at again (its heartbeat is time-based).
const RECHECK: Duration = Duration::from_secs(10);

impl Worker {
    pub(super) async fn sync_node(&mut self, name: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let Some(mut node) = self.shared.nodes.get("", name) else {
            // Its CIDR is free again: the allocator is rebuilt from the nodes that remain.
            return Ok(Outcome::Done);
        };
        let nodes_res = registry::nodes();
        let mut spec_change = None;
        if text(&node, "/spec/podCIDR").is_empty() {
            let mut alloc = CidrAllocator::new(&self.settings.cluster_cidr, self.settings.node_mask)
                .map_err(crate::error::ApiError::internal)?;
            let all = self.shared.nodes.all();
            if let Some((_, cidr)) = alloc.plan(&all).into_iter().find(|(n, _)| n == name) {
                let mut new = node.clone();
                new["spec"]["podCIDR"] = json!(cidr);
                new["spec"]["podCIDRs"] = json!([cidr]);
                spec_change = Some(new);
            } else {
                tracing::warn!(node = name, "no pod CIDR left for the node");
            }
        }
        let now = chrono::Utc::now();
        let lease = self.shared.leases.get(NODE_LEASE_NAMESPACE, name);
        let health = nodelifecycle::NodeHealth {
            grace: self.settings.node_grace,
            watching_since: Some(self.started_at),
        };
        let plan = health.evaluate(&node, lease.as_ref(), now);
        if let Some(taints) = plan.taints {
            let mut new = spec_change.take().unwrap_or_else(|| node.clone());
            new["spec"]["taints"] = Value::Array(taints);
            spec_change = Some(new);
        }
        if let Some(new) = spec_change {
            node = self.update(nodes_res, &node, new, None).await?;
        }
        if let Some(status) = plan.status {
            let mut new = node.clone();
            new["status"] = status;
            node = self.update(nodes_res, &node, new, Some("status")).await?;
        }
        // Every lease renewal brings a node here: its pods are found without copying the others.
        let on_node = self.shared.pods.filter(|p| text(p, "/spec/nodeName") == name);
        let (evict, next) = nodelifecycle::evictions(&node, &on_node, now);
        for (ns, pod) in &evict {
            if let Some(p) = self.shared.pods.get(ns, pod) {
                tracing::info!(node = name, namespace = %ns, pod = %pod, "evicting pod: untolerated NoExecute taint");
                self.delete(registry::pods(), &p).await?;
            }
        }
        let stale_in = health
            .stale_at(&node, lease.as_ref())
            .and_then(|t| (t - now).to_std().ok())
            .map(|d| d + Duration::from_secs(1));
        let wait = [next, stale_in, Some(RECHECK)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(RECHECK);
        Ok(Outcome::After(wait))
    }
}

//! NodeResourcesFit: the pod's requests must fit in what the node has left (allocatable minus the
//! requests of the pods already there), for cpu, memory, ephemeral-storage, the pod count and
//! every extended resource the pod asks for. Each shortfall is its own reason ("Insufficient
//! cpu", "Too many pods"), so one node can count towards several in the FitError.
//!
//! All rejections are `Unschedulable` (preemption may free room), as in Kubernetes 1.32; newer
//! releases mark a request larger than the whole node as unresolvable.
//!
//! Scoring (`LeastAllocated` by default, `MostAllocated` for bin packing) uses the non-zero
//! cpu/memory figures ([`PodInfo::non_zero_milli_cpu`]) so that pods without requests still spread,
//! and weights the configured resources: `sum(weight * score(resource)) / sum(weight)`, where a
//! resource the node does not have, or an extended resource the pod does not request, is skipped.

use crate::scheduler::framework::{
    Code, Filter, FitArgs, NodeFilter, Rejection, Score, ScoringStrategy, MAX_NODE_SCORE,
};
use crate::scheduler::model::{is_scalar_resource, Cluster, NodeInfo, PodInfo};

pub const NAME: &str = "NodeResourcesFit";
/// Kubernetes' reason when the node's pod count is exhausted.
pub const TOO_MANY_PODS: &str = "Too many pods";

#[derive(Default)]
pub struct NodeResourcesFit {
    pub args: FitArgs,
}

/// Every resource the pod does not fit on `node`, as Kubernetes' reasons.
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut out = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.pods {
        out.push(TOO_MANY_PODS.to_string());
    }
    let r = &pod.requests;
    let (a, u) = (&node.allocatable, &node.requested);
    for (name, want, alloc, used) in [
        ("cpu", r.milli_cpu, a.milli_cpu, u.milli_cpu),
        ("memory", r.memory, a.memory, u.memory),
        (
            "ephemeral-storage",
            r.ephemeral_storage,
            a.ephemeral_storage,
            u.ephemeral_storage,
        ),
    ] {
        if want > 0 && want > alloc - used {
            out.push(format!("Insufficient {name}"));
        }
    }
    for (name, &want) in &r.scalar {
        let alloc = a.scalar.get(name).copied().unwrap_or(0);
        let used = u.scalar.get(name).copied().unwrap_or(0);
        if want > 0 && want > alloc - used {
            out.push(format!("Insufficient {name}"));
        }
    }
    out
}

/// The pod's request of `resource` for scoring: the non-zero cpu/memory figures unless
/// `use_requested` (BalancedAllocation uses the real requests).
fn pod_request(pod: &PodInfo, resource: &str, use_requested: bool) -> i64 {
    match resource {
        "cpu" if use_requested => pod.requests.milli_cpu,
        "cpu" => pod.non_zero_milli_cpu,
        "memory" if use_requested => pod.requests.memory,
        "memory" => pod.non_zero_memory,
        "ephemeral-storage" => pod.requests.ephemeral_storage,
        other => pod.requests.scalar.get(other).copied().unwrap_or(0),
    }
}

/// `(allocatable, requested including the pod)` of `resource` on `node`; `(0, 0)` means "skip this
/// resource" (`calculateResourceAllocatableRequest`).
pub fn allocatable_and_requested(node: &NodeInfo, pod: &PodInfo, resource: &str, use_requested: bool) -> (i64, i64) {
    let want = pod_request(pod, resource, use_requested);
    if want == 0 && is_scalar_resource(resource) {
        return (0, 0);
    }
    let (cpu, mem) = if use_requested {
        (node.requested.milli_cpu, node.requested.memory)
    } else {
        (node.non_zero_milli_cpu, node.non_zero_memory)
    };
    match resource {
        "cpu" => (node.allocatable.milli_cpu, cpu + want),
        "memory" => (node.allocatable.memory, mem + want),
        "ephemeral-storage" => (
            node.allocatable.ephemeral_storage,
            node.requested.ephemeral_storage + want,
        ),
        other => match node.allocatable.scalar.get(other) {
            Some(&alloc) => (alloc, node.requested.scalar.get(other).copied().unwrap_or(0) + want),
            None => (0, 0),
        },
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        0
    } else {
        (capacity - requested) * MAX_NODE_SCORE / capacity
    }
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        0
    } else {
        requested.min(capacity) * MAX_NODE_SCORE / capacity
    }
}

impl NodeResourcesFit {
    fn node_score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let (mut sum, mut weights) = (0, 0);
        for (resource, weight) in &self.args.resources {
            let (alloc, req) = allocatable_and_requested(node, pod, resource, false);
            if alloc == 0 {
                continue;
            }
            sum += weight
                * match self.args.strategy {
                    ScoringStrategy::LeastAllocated => least_requested(req, alloc),
                    ScoringStrategy::MostAllocated => most_requested(req, alloc),
                };
            weights += weight;
        }
        if weights == 0 {
            0
        } else {
            sum / weights
        }
    }
}

impl Filter for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, _pod: &PodInfo, _cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        Ok(Box::new(NodeResourcesFit::default()))
    }
}

impl NodeFilter for NodeResourcesFit {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Rejection {
                plugin: NAME,
                code: Code::Unschedulable,
                reasons,
            })
        }
    }
}

impl Score for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, pod: &PodInfo, _cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
        nodes.iter().map(|n| self.node_score(pod, n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::{node_json, pod, pod_on};
    use serde_json::json;

    fn node(cpu: i64, mem: i64) -> NodeInfo {
        NodeInfo::from_value(&node_json("n", cpu, mem, json!({}))).unwrap()
    }

    #[test]
    fn every_shortfall_is_a_reason() {
        let mut n = node(1000, 1 << 30);
        n.allocatable.pods = 1;
        n.add_pod(pod_on("old", "n", "600m", "100Mi"));
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {
            "cpu": "500m", "memory": "100Mi", "example.com/gpu": "1"}}}]}}),
        );
        let r = NodeResourcesFit::default().filter(&p, &n).unwrap_err();
        assert_eq!(r.code, Code::Unschedulable);
        assert_eq!(
            r.reasons,
            vec!["Too many pods", "Insufficient cpu", "Insufficient example.com/gpu"]
        );
        n.allocatable.pods = 10;
        n.allocatable.scalar.insert("example.com/gpu".into(), 1);
        n.remove_pod("default", "old");
        assert!(NodeResourcesFit::default().filter(&p, &n).is_ok());
    }

    #[test]
    fn zero_request_pod_fits_a_full_node() {
        let mut n = node(1000, 1 << 30);
        n.add_pod(pod_on("old", "n", "1", "1Gi"));
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
        assert!(NodeResourcesFit::default().filter(&p, &n).is_ok());
    }

    #[test]
    fn least_and_most_allocated_scores() {
        let mut n = node(4000, 8 << 30);
        n.add_pod(pod_on("old", "n", "1", "2Gi"));
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {
            "cpu": "1", "memory": "2Gi"}}}]}}),
        );
        // cpu: (4000-2000)*100/4000 = 50; memory: (8-4)*100/8 = 50.
        assert_eq!(
            NodeResourcesFit::default().score(&p, &Cluster::default(), &[&n]),
            vec![50]
        );
        let most = NodeResourcesFit {
            args: FitArgs {
                strategy: ScoringStrategy::MostAllocated,
                resources: vec![("cpu".into(), 3), ("memory".into(), 1)],
            },
        };
        n.add_pod(pod_on("more", "n", "1", "0"));
        // cpu: 3000/4000 = 75 (weight 3); memory: 4Gi/8Gi = 50 -> (225 + 50) / 4 = 68.
        assert_eq!(most.score(&p, &Cluster::default(), &[&n]), vec![68]);
    }
}

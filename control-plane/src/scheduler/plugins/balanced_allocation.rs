//! NodeResourcesBalancedAllocation: prefers nodes where, after placing the pod, cpu and memory are
//! used in similar proportions, so that one resource is not exhausted while the other idles.
//! Score = `(1 - std) * 100` of the requested/allocatable fractions (each capped at 1); with two
//! resources the standard deviation is `|f1 - f2| / 2`. Uses the real requests, not the non-zero
//! defaults (`useRequested` in Kubernetes).

use crate::scheduler::framework::{Score, MAX_NODE_SCORE};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins::node_resources_fit::allocatable_and_requested;

pub const NAME: &str = "NodeResourcesBalancedAllocation";

/// The resources weighed (BalancedAllocation's default args).
const RESOURCES: [&str; 2] = ["cpu", "memory"];

pub struct BalancedAllocation;

fn balance(fractions: &[f64]) -> i64 {
    let std = match fractions.len() {
        0 | 1 => 0.0,
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions.iter().map(|f| (f - mean) * (f - mean)).sum::<f64>() / n as f64).sqrt()
        }
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

impl Score for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, pod: &PodInfo, _cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
        nodes
            .iter()
            .map(|n| {
                let fractions: Vec<f64> = RESOURCES
                    .iter()
                    .map(|r| allocatable_and_requested(n, pod, r, true))
                    .filter(|(alloc, _)| *alloc != 0)
                    .map(|(alloc, req)| (req as f64 / alloc as f64).min(1.0))
                    .collect();
                balance(&fractions)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::{node_json, pod, pod_on};
    use serde_json::json;

    #[test]
    fn balanced_node_scores_higher() {
        let mut cpu_heavy = NodeInfo::from_value(&node_json("a", 4000, 4 << 30, json!({}))).unwrap();
        cpu_heavy.add_pod(pod_on("x", "a", "3", "0"));
        let even = NodeInfo::from_value(&node_json("b", 4000, 4 << 30, json!({}))).unwrap();
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {
            "cpu": "1", "memory": "1Gi"}}}]}}),
        );
        // a: cpu 4/4 = 1, memory 1/4 -> std 0.375 -> 62; b: 1/4 and 1/4 -> 100.
        assert_eq!(
            BalancedAllocation.score(&p, &Cluster::default(), &[&cpu_heavy, &even]),
            vec![62, 100]
        );
        assert_eq!(balance(&[0.0, 0.5, 1.0]), 59);
    }
}

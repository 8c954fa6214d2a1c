//! ImageLocality: prefers nodes that already have the pod's images, so it starts sooner. Each
//! present image counts its size scaled by the share of nodes that have it (an image everywhere
//! says nothing about this node, and it keeps pods from piling onto the one node that has a rare
//! image). The sum is clamped to [23MB, 1000MB × containers] and mapped linearly onto 0..=100,
//! so tiny images do not matter (kube-scheduler's `calculatePriority`).

use crate::scheduler::framework::{Score, MAX_NODE_SCORE};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};

pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

fn priority(sum: i64, containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * containers as i64;
    if max <= MIN_THRESHOLD {
        return 0;
    }
    let sum = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

impl Score for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, pod: &PodInfo, cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
        let total = cluster.node_count().max(1) as f64;
        nodes
            .iter()
            .map(|n| {
                let sum: i64 = pod
                    .images
                    .iter()
                    .filter_map(|img| {
                        let size = n.image_sizes.get(img)?;
                        let spread = cluster.image_node_count(img) as f64 / total;
                        Some((*size as f64 * spread) as i64)
                    })
                    .sum();
                priority(sum, pod.images.len())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::pod;
    use serde_json::json;

    #[test]
    fn big_common_images_win_small_ones_do_not_count() {
        let mut c = Cluster::default();
        let img = |names: &[&str], size: i64| json!({"names": names, "sizeBytes": size});
        c.upsert_node(&json!({"metadata": {"name": "a"}, "status": {"images": [img(&["big:1"], 500 * MB), img(&["tiny:1"], MB)]}}))
            .unwrap();
        c.upsert_node(&json!({"metadata": {"name": "b"}, "status": {"images": [img(&["big:1"], 500 * MB)]}}))
            .unwrap();
        c.upsert_node(&json!({"metadata": {"name": "c"}, "status": {"images": [img(&["tiny:1"], MB)]}}))
            .unwrap();
        c.upsert_node(&json!({"metadata": {"name": "d"}})).unwrap();
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "x", "image": "big:1"}]}}));
        let nodes: Vec<&NodeInfo> = c.nodes().iter().collect();
        // big on 2 of 4 nodes: 250MB -> 100 * (250-23) / (1000-23) = 23.
        assert_eq!(ImageLocality.score(&p, &c, &nodes), vec![23, 23, 0, 0]);
        let tiny = pod(json!({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "x", "image": "tiny:1"}]}}));
        assert_eq!(ImageLocality.score(&tiny, &c, &nodes), vec![0, 0, 0, 0]);
        c.upsert_node(&json!({"metadata": {"name": "b"}, "status": {"images": [img(&["big:1"], 500 * MB)]}}))
            .unwrap();
        assert_eq!(
            c.image_node_count("big:1"),
            2,
            "an update does not count the node twice"
        );
        c.remove_node("b");
        assert_eq!(c.image_node_count("big:1"), 1);
    }
}

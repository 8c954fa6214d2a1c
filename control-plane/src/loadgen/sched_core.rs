//! `skiff bench scheduler --core`: the scheduler's decisions alone, in process, no IO. Builds a
//! `Cluster` of `nodes` nodes (the same Node and Pod objects as the full-stack run), then
//! schedules `pods` pods one after another through `framework::schedule`, assuming each on its
//! node as the runner does, and reports decisions per second and the p50/p99 of one decision.
//! It bounds what the scheduling loop can do; the full-stack run shows what the cluster does.

use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::sched_objects::{self as so, percentile, Shape};
use crate::scheduler::framework::{self, Profile};
use crate::scheduler::model::{Cluster, PodInfo};

#[derive(Debug, Default, Serialize)]
pub struct CoreReport {
    pub shape: String,
    pub nodes: u64,
    pub pods: u64,
    pub scheduled: u64,
    pub unschedulable: u64,
    pub secs: f64,
    pub pods_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl CoreReport {
    pub fn table(&self) -> String {
        format!(
            "scheduler core ({}): {} nodes, {} pods: {} scheduled, {} unschedulable in {:.2} s\n  {:.0} decisions/s; one decision p50 {:.1} us, p99 {:.1} us, max {:.1} us\n",
            self.shape,
            self.nodes,
            self.pods,
            self.scheduled,
            self.unschedulable,
            self.secs,
            self.pods_per_sec,
            self.p50_us,
            self.p99_us,
            self.max_us
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Runs the decisions; an error only when the generated objects do not decode.
pub fn run(shape: Shape, nodes: u64, pods: u64) -> Result<CoreReport, String> {
    let profile = Profile::default();
    let mut cluster = Cluster::default();
    for i in 0..nodes {
        cluster.upsert_node(&so::node(shape, "core", i))?;
    }
    let infos: Vec<PodInfo> = (0..pods)
        .map(|i| {
            let mut p = so::pod(shape, "bench", i);
            p["metadata"]["uid"] = serde_json::json!(format!("uid-{i}"));
            PodInfo::from_value(&p)
        })
        .collect::<Result<_, _>>()?;
    let mut rng = StdRng::seed_from_u64(1);
    let mut next_start = 0;
    let mut times = Vec::with_capacity(infos.len());
    let mut report = CoreReport {
        shape: shape.to_string(),
        nodes,
        pods,
        ..CoreReport::default()
    };
    let start = Instant::now();
    for mut pod in infos {
        let t = Instant::now();
        let decided = framework::schedule(&profile, &pod, &cluster, &mut next_start, &mut rng);
        if let Ok(node) = &decided {
            pod.node_name = node.clone();
            cluster.add_pod(Arc::new(pod));
        }
        times.push(t.elapsed().as_nanos() as u64);
        match decided {
            Ok(_) => report.scheduled += 1,
            Err(_) => report.unschedulable += 1,
        }
    }
    report.secs = start.elapsed().as_secs_f64();
    report.pods_per_sec = pods as f64 / report.secs.max(1e-9);
    times.sort_unstable();
    let us = |p: f64| percentile(&times, p) as f64 / 1000.0;
    report.p50_us = us(50.0);
    report.p99_us = us(99.0);
    report.max_us = us(100.0);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pod_finds_a_node_when_there_is_room() {
        let r = run(Shape::Spread, 20, 200).expect("run");
        assert_eq!(r.scheduled, 200);
        assert_eq!(r.unschedulable, 0);
        let r = run(Shape::Taints, 20, 100).expect("run");
        assert_eq!(r.scheduled, 100);
    }

    #[test]
    fn a_full_cluster_leaves_pods_unschedulable() {
        // 2 nodes x 110 pods: the rest cannot fit.
        let r = run(Shape::Basic, 2, 250).expect("run");
        assert_eq!(r.scheduled, 220);
        assert_eq!(r.unschedulable, 30);
    }
}

//! The scheduling cycle of one pod, as kube-scheduler's framework runs it
//! (`pkg/scheduler/schedule_one.go`): PreFilter, Filter over the nodes starting where the previous
//! cycle stopped, Score, NormalizeScore, weights, then a random pick among the best.
//!
//! Pure: a [`Profile`], a pod and a [`Cluster`] in, a node name or a [`FitError`] out. Binding,
//! events and the queue belong to the runtime.
//!
//! Why round-robin and early stop: on a large cluster kube-scheduler only looks for
//! `percentageOfNodesToScore` feasible nodes (adaptive: `max(5, 50 - nodes/125)` %, at least 100)
//! and resumes the next cycle at the node after the last one it examined, so that every node gets
//! its turn. [`schedule`] does the same with `next_start`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rand::Rng;

use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins;

/// kube-scheduler's `MaxNodeScore`.
pub const MAX_NODE_SCORE: i64 = 100;
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// How NodeResourcesFit scores a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoringStrategy {
    /// Prefer emptier nodes (spreading).
    LeastAllocated,
    /// Prefer fuller nodes (bin packing).
    MostAllocated,
}

/// `NodeResourcesFitArgs.scoringStrategy`.
#[derive(Clone, Debug, PartialEq)]
pub struct FitArgs {
    pub strategy: ScoringStrategy,
    /// Resource names with their weights.
    pub resources: Vec<(String, i64)>,
}

impl Default for FitArgs {
    fn default() -> Self {
        FitArgs {
            strategy: ScoringStrategy::LeastAllocated,
            resources: vec![("cpu".into(), 1), ("memory".into(), 1)],
        }
    }
}

/// A scheduling profile: which plugins run and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub scheduler_name: String,
    /// Filter plugin names, in the order they run.
    pub filters: Vec<String>,
    /// Score plugin names with their weights.
    pub scores: Vec<(String, i64)>,
    pub fit: FitArgs,
    /// `InterPodAffinityArgs.hardPodAffinityWeight`.
    pub hard_pod_affinity_weight: i64,
    /// Whether DefaultPreemption (PostFilter) is enabled.
    pub preemption: bool,
    /// `None` = Kubernetes' adaptive percentage.
    pub percentage_of_nodes_to_score: Option<u32>,
}

impl Default for Profile {
    /// Kubernetes 1.32's default profile.
    fn default() -> Self {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Profile {
            scheduler_name: "default-scheduler".into(),
            filters: names(&[
                plugins::node_unschedulable::NAME,
                plugins::node_name::NAME,
                plugins::taint_toleration::NAME,
                plugins::node_affinity::NAME,
                plugins::node_ports::NAME,
                plugins::node_resources_fit::NAME,
                plugins::pod_topology_spread::NAME,
                plugins::inter_pod_affinity::NAME,
            ]),
            scores: plugins::DEFAULT_SCORE_WEIGHTS
                .iter()
                .map(|(n, w)| (n.to_string(), *w))
                .collect(),
            fit: FitArgs::default(),
            hard_pod_affinity_weight: 1,
            preemption: true,
            percentage_of_nodes_to_score: None,
        }
    }
}

/// A filter's verdict code, as Kubernetes' `framework.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Removing pods (preemption) might make the node fit.
    Unschedulable,
    /// Preemption cannot help on this node.
    UnschedulableAndUnresolvable,
}

/// Why a node was rejected: reason strings as a user reads them, not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub plugin: &'static str,
    pub code: Code,
    pub reasons: Vec<String>,
}

impl Rejection {
    pub fn new(plugin: &'static str, code: Code, reason: impl Into<String>) -> Self {
        Rejection {
            plugin,
            code,
            reasons: vec![reason.into()],
        }
    }

    pub fn resolvable(&self) -> bool {
        self.code == Code::Unschedulable
    }
}

/// A filter plugin; [`Filter::pre_filter`] does the cluster-wide work once per pod.
pub trait Filter {
    fn name(&self) -> &'static str;
    /// PreFilter. `Err` rejects the pod on every node (its reasons become the FitError message).
    fn pre_filter(&self, pod: &PodInfo, cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection>;
}

/// A filter ready for one pod, with whatever its PreFilter computed.
pub trait NodeFilter {
    /// Whether `pod` fits `node`.
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection>;
    /// PreFilterExtensions.AddPod: `added` now runs on `node` (preemption's what-if).
    fn add_pod(&mut self, _pod: &PodInfo, _added: &PodInfo, _node: &NodeInfo) {}
    /// PreFilterExtensions.RemovePod: `removed` no longer runs on `node`.
    fn remove_pod(&mut self, _pod: &PodInfo, _removed: &PodInfo, _node: &NodeInfo) {}
}

/// A score plugin: PreScore, Score and NormalizeScore in one call.
pub trait Score {
    fn name(&self) -> &'static str;
    /// Normalized scores (0..=100) for `nodes`, in the same order.
    fn score(&self, pod: &PodInfo, cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64>;
}

/// No node fits: the counts a user reads in the FailedScheduling event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Node name to why it was rejected.
    pub node_failures: BTreeMap<String, Rejection>,
    /// Set when a PreFilter rejected the pod outright.
    pub pre_filter_msg: Option<String>,
    /// What preemption had to say, appended to the message (e.g. "preemption: ...").
    pub post_filter_msg: Option<String>,
}

impl FitError {
    /// Whether preemption could help on some node.
    pub fn any_resolvable(&self) -> bool {
        self.pre_filter_msg.is_none() && self.node_failures.values().any(Rejection::resolvable)
    }

    /// How many nodes preemption might help on, and how many it cannot (nodes never examined
    /// count as unresolvable), for "preemption: 0/N nodes are available: ..." messages.
    pub fn preemption_counts(&self) -> (usize, usize) {
        let resolvable = if self.pre_filter_msg.is_some() {
            0
        } else {
            self.node_failures.values().filter(|r| r.resolvable()).count()
        };
        (resolvable, self.num_all_nodes.saturating_sub(resolvable))
    }
}

impl fmt::Display for FitError {
    /// Kubernetes' `FitError.Error()`: `0/N nodes are available: <count> <reason>, ....`, the
    /// "count reason" strings sorted as strings.
    /// With no nodes at all it is kube-scheduler's `ErrNoNodesAvailable` text instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_all_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if let Some(msg) = &self.pre_filter_msg {
            write!(f, " {msg}.")?;
        } else {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for r in self.node_failures.values() {
                for reason in &r.reasons {
                    *counts.entry(reason).or_insert(0) += 1;
                }
            }
            let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
            parts.sort();
            if !parts.is_empty() {
                write!(f, " {}.", parts.join(", "))?;
            }
        }
        if let Some(msg) = &self.post_filter_msg {
            write!(f, " {msg}.")?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

/// kube-scheduler's `numFeasibleNodesToFind`.
pub fn num_feasible_nodes_to_find(percentage: Option<u32>, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let percentage = match percentage {
        Some(p) if p > 0 => (p as usize).min(100),
        _ => 50usize
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND),
    };
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The profile's filters, pre-filtered for one pod.
pub struct Filters {
    pub filters: Vec<Box<dyn NodeFilter>>,
}

impl Filters {
    /// Runs every enabled plugin's PreFilter.
    pub fn prepare(profile: &Profile, pod: &PodInfo, cluster: &Cluster) -> Result<Filters, Rejection> {
        let mut filters = Vec::new();
        for name in &profile.filters {
            if let Some(plugin) = plugins::filter_plugin(name, profile) {
                filters.push(plugin.pre_filter(pod, cluster)?);
            }
        }
        Ok(Filters { filters })
    }

    /// The filters in order; the first rejection wins, as `RunFilterPlugins`.
    pub fn run(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        self.filters.iter().try_for_each(|f| f.filter(pod, node))
    }

    /// `RunFilterPluginsWithNominatedPods`: if pods of at least this pod's priority are nominated
    /// to `node`, the pod must fit both with them counted there and without them.
    pub fn run_nominated(&mut self, pod: &PodInfo, node: &NodeInfo, cluster: &Cluster) -> Result<(), Rejection> {
        let nominated: Vec<&Arc<PodInfo>> = cluster
            .nominated_pods(&node.name)
            .iter()
            .filter(|p| p.priority >= pod.priority && !(p.namespace == pod.namespace && p.name == pod.name))
            .collect();
        if nominated.is_empty() {
            return self.run(pod, node);
        }
        let mut with = node.clone();
        for p in &nominated {
            with.add_pod(Arc::clone(p));
            self.add_pod(pod, p, node);
        }
        let result = self.run(pod, &with);
        for p in &nominated {
            self.remove_pod(pod, p, node);
        }
        result?;
        self.run(pod, node)
    }

    pub fn add_pod(&mut self, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        for f in &mut self.filters {
            f.add_pod(pod, added, node);
        }
    }

    pub fn remove_pod(&mut self, pod: &PodInfo, removed: &PodInfo, node: &NodeInfo) {
        for f in &mut self.filters {
            f.remove_pod(pod, removed, node);
        }
    }
}

/// Chooses a node for `pod`, or says why none fits.
pub fn schedule(
    profile: &Profile,
    pod: &PodInfo,
    cluster: &Cluster,
    next_start: &mut usize,
    rng: &mut impl Rng,
) -> Result<String, FitError> {
    let all = cluster.nodes();
    let mut fit_error = FitError {
        num_all_nodes: all.len(),
        ..FitError::default()
    };
    if all.is_empty() {
        return Err(fit_error);
    }
    let mut filters = match Filters::prepare(profile, pod, cluster) {
        Ok(f) => f,
        Err(rejection) => {
            fit_error.pre_filter_msg = Some(rejection.reasons.join(", "));
            for n in all {
                fit_error.node_failures.insert(n.name.clone(), rejection.clone());
            }
            return Err(fit_error);
        }
    };

    // A pod nominated by an earlier preemption tries its node first (evaluateNominatedNode).
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    if let Some(node) = Some(&pod.nominated_node_name)
        .filter(|n| !n.is_empty())
        .and_then(|n| cluster.node(n))
    {
        if filters.run_nominated(pod, node, cluster).is_ok() {
            feasible.push(node);
        }
    }
    if feasible.is_empty() {
        let want = num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, all.len());
        let start = *next_start % all.len();
        let mut processed = 0;
        for i in 0..all.len() {
            if feasible.len() >= want {
                break;
            }
            let node = &all[(start + i) % all.len()];
            processed += 1;
            match filters.run_nominated(pod, node, cluster) {
                Ok(()) => feasible.push(node),
                Err(r) => {
                    fit_error.node_failures.insert(node.name.clone(), r);
                }
            }
        }
        *next_start = (start + processed) % all.len();
    }
    match feasible.len() {
        0 => Err(fit_error),
        1 => Ok(feasible[0].name.clone()),
        _ => {
            let totals = score_nodes(profile, pod, cluster, &feasible);
            Ok(select_host(&feasible, &totals, rng).to_string())
        }
    }
}

/// Weighted sums of every score plugin's normalized scores.
pub fn score_nodes(profile: &Profile, pod: &PodInfo, cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut totals = vec![0i64; nodes.len()];
    for (name, weight) in &profile.scores {
        if let Some(plugin) = plugins::score_plugin(name, profile) {
            for (t, s) in totals.iter_mut().zip(plugin.score(pod, cluster, nodes)) {
                *t += s * weight;
            }
        }
    }
    totals
}

/// The highest total wins; ties are broken uniformly at random by reservoir sampling.
fn select_host<'a>(nodes: &[&'a NodeInfo], totals: &[i64], rng: &mut impl Rng) -> &'a str {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &score) in totals.iter().enumerate() {
        if score > totals[best] {
            best = i;
            ties = 1;
        } else if score == totals[best] {
            ties += 1;
            if rng.gen_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    &nodes[best].name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::{node_json, pod, pod_on};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn cluster(nodes: &[serde_json::Value]) -> Cluster {
        let mut c = Cluster::default();
        for n in nodes {
            c.upsert_node(n).unwrap();
        }
        c
    }

    fn run(c: &Cluster, p: &PodInfo) -> Result<String, FitError> {
        schedule(&Profile::default(), p, c, &mut 0, &mut StdRng::seed_from_u64(7))
    }

    fn cpu_pod(cpu: &str) -> std::sync::Arc<PodInfo> {
        pod(json!({"metadata": {"name": "new"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}))
    }

    #[test]
    fn adaptive_percentage_matches_kubernetes() {
        assert_eq!(num_feasible_nodes_to_find(None, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(None, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(None, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(None, 200), 100);
        assert_eq!(num_feasible_nodes_to_find(Some(100), 5000), 5000);
        assert_eq!(num_feasible_nodes_to_find(Some(1), 5000), 100);
    }

    #[test]
    fn fit_error_wording_is_kubernetes() {
        let mut e = FitError {
            num_all_nodes: 5,
            ..FitError::default()
        };
        for (i, reason) in ["Insufficient cpu", "Insufficient cpu"].iter().enumerate() {
            e.node_failures.insert(
                format!("a{i}"),
                Rejection::new("NodeResourcesFit", Code::Unschedulable, *reason),
            );
        }
        for i in 0..3 {
            let r = Rejection::new(
                "TaintToleration",
                Code::UnschedulableAndUnresolvable,
                "node(s) had untolerated taint {dedicated: gpu}",
            );
            e.node_failures.insert(format!("b{i}"), r);
        }
        assert_eq!(
            e.to_string(),
            "0/5 nodes are available: 2 Insufficient cpu, 3 node(s) had untolerated taint {dedicated: gpu}."
        );
        assert!(e.any_resolvable());
        assert_eq!(e.preemption_counts(), (2, 3));
        e.post_filter_msg = Some("preemption: not eligible".into());
        assert!(e.to_string().ends_with("gpu}. preemption: not eligible."));
    }

    #[test]
    fn empty_cluster_has_kubernetes_wording() {
        let err = run(&Cluster::default(), &cpu_pod("1")).unwrap_err();
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn least_allocated_picks_emptier_node() {
        let mut c = cluster(&[
            node_json("busy", 4000, 8 << 30, json!({})),
            node_json("idle", 4000, 8 << 30, json!({})),
        ]);
        c.add_pod(pod_on("x", "busy", "3", "4Gi"));
        assert_eq!(run(&c, &cpu_pod("500m")).unwrap(), "idle");
        let mut most = Profile::default();
        most.fit.strategy = ScoringStrategy::MostAllocated;
        let chosen = schedule(&most, &cpu_pod("500m"), &c, &mut 0, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(chosen, "busy");
    }

    #[test]
    fn reports_every_node_when_nothing_fits() {
        let mut c = cluster(&[
            node_json("a", 1000, 1 << 30, json!({})),
            json!({"metadata": {"name": "t"}, "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
                   "status": {"allocatable": {"cpu": "8", "memory": "8Gi", "pods": "110"}}}),
        ]);
        c.add_pod(pod_on("x", "a", "800m", "1Mi"));
        let err = run(&c, &cpu_pod("500m")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}."
        );
    }

    #[test]
    fn node_name_pins_the_pod() {
        let c = cluster(&[
            node_json("a", 1000, 1 << 30, json!({})),
            node_json("b", 1000, 1 << 30, json!({})),
        ]);
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"nodeName": "b", "containers": [{"name": "c"}]}}));
        assert_eq!(run(&c, &p).unwrap(), "b");
    }

    #[test]
    fn round_robin_advances_and_ties_are_random() {
        let nodes: Vec<_> = (0..150)
            .map(|i| node_json(&format!("n{i}"), 1000, 1 << 30, json!({})))
            .collect();
        let c = cluster(&nodes);
        let mut next = 0;
        let mut rng = StdRng::seed_from_u64(3);
        let p = cpu_pod("100m");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            seen.insert(schedule(&Profile::default(), &p, &c, &mut next, &mut rng).unwrap());
        }
        // 150 nodes: 100 feasible ones are enough, so each cycle starts 100 nodes further on.
        assert_eq!(next, 20 * 100 % 150);
        assert!(seen.len() > 5, "ties spread: {seen:?}");
        let profile = Profile {
            percentage_of_nodes_to_score: Some(10),
            ..Profile::default()
        };
        let nodes: Vec<_> = (0..1000)
            .map(|i| node_json(&format!("n{i}"), 1000, 1 << 30, json!({})))
            .collect();
        let big = cluster(&nodes);
        next = 0;
        schedule(&profile, &p, &big, &mut next, &mut rng).unwrap();
        assert_eq!(next, 100, "stops after 100 feasible nodes");
    }

    #[test]
    fn taints_affinity_and_spread_steer_the_choice() {
        let mut c = cluster(&[
            node_json("a", 4000, 8 << 30, json!({"zone": "a", "disk": "hdd"})),
            node_json("b", 4000, 8 << 30, json!({"zone": "b", "disk": "ssd"})),
            json!({"metadata": {"name": "soft", "labels": {"zone": "c", "disk": "ssd"}},
                   "spec": {"taints": [{"key": "spot", "effect": "PreferNoSchedule"}]},
                   "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        ]);
        let ssd = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "preference": {"matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}}),
        );
        assert_eq!(
            run(&c, &ssd).unwrap(),
            "b",
            "ssd preferred, the tainted ssd node scores lower"
        );
        for (i, zone) in ["a", "b"].iter().enumerate() {
            c.add_pod(pod(
                json!({"metadata": {"name": format!("w{i}"), "namespace": "default", "labels": {"app": "w"}},
                                 "spec": {"nodeName": zone, "containers": [{"name": "c"}]}}),
            ));
        }
        let spread = pod(
            json!({"metadata": {"name": "w", "namespace": "default", "labels": {"app": "w"}},
            "spec": {"containers": [{"name": "c"}], "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "w"}}}]}}),
        );
        assert_eq!(run(&c, &spread).unwrap(), "soft", "only the empty zone keeps the skew");
    }

    #[test]
    fn pre_filter_rejection_is_the_whole_message() {
        struct Refuse;
        impl Filter for Refuse {
            fn name(&self) -> &'static str {
                "Refuse"
            }
            fn pre_filter(&self, _: &PodInfo, _: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
                Err(Rejection::new("Refuse", Code::UnschedulableAndUnresolvable, "no way"))
            }
        }
        let c = cluster(&[node_json("a", 1000, 1 << 30, json!({}))]);
        let p = cpu_pod("1");
        let rejection = match Refuse.pre_filter(&p, &c) {
            Err(r) => r,
            Ok(_) => panic!("Refuse accepted"),
        };
        let e = FitError {
            num_all_nodes: 1,
            pre_filter_msg: Some(rejection.reasons.join(", ")),
            ..FitError::default()
        };
        assert_eq!(e.to_string(), "0/1 nodes are available: no way.");
        assert!(!e.any_resolvable());
        assert_eq!(e.preemption_counts(), (0, 1));
    }

    #[test]
    fn nominated_pods_keep_their_room() {
        let mut c = cluster(&[node_json("a", 1000, 1 << 30, json!({}))]);
        c.add_pod(pod(json!({"metadata": {"name": "preemptor", "namespace": "default"},
            "spec": {"priority": 10, "containers": [{"name": "c", "resources": {"requests": {"cpu": "800m"}}}]},
            "status": {"nominatedNodeName": "a"}})));
        assert_eq!(c.nominated_pods("a").len(), 1);
        let low = |priority: i32| {
            pod(json!({"metadata": {"name": "other", "namespace": "default"},
                "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]}}))
        };
        let err = run(&c, &low(5)).unwrap_err();
        assert_eq!(err.to_string(), "0/1 nodes are available: 1 Insufficient cpu.");
        assert_eq!(
            run(&c, &low(20)).unwrap(),
            "a",
            "higher priority ignores the nomination"
        );
        c.remove_pod("default", "preemptor");
        assert!(c.nominated_pods("a").is_empty());
        assert_eq!(run(&c, &low(5)).unwrap(), "a");
    }

    #[test]
    fn nominated_node_is_tried_first() {
        let c = cluster(&[
            node_json("a", 4000, 1 << 30, json!({})),
            node_json("b", 1000, 1 << 30, json!({})),
        ]);
        let mut p = (*cpu_pod("500m")).clone();
        p.nominated_node_name = "b".into();
        assert_eq!(run(&c, &p).unwrap(), "b");
    }
}

#[cfg(test)]
mod scale_tests {
    use super::*;
    use crate::scheduler::model::tests::{node_json, pod, pod_on};
    use crate::scheduler::preemption::preempt;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    /// 5,000 nodes and 10,000 pods: updates and a few full cycles stay cheap (this runs in the
    /// unoptimized test build, so it is a smoke test for accidental quadratic work).
    #[test]
    fn five_thousand_nodes() {
        let start = std::time::Instant::now();
        let mut c = Cluster::default();
        for i in 0..5000 {
            let labels = json!({"zone": format!("z{}", i % 10), "kubernetes.io/hostname": format!("n{i}")});
            c.upsert_node(&node_json(&format!("n{i}"), 4000, 16 << 30, labels))
                .unwrap();
        }
        for i in 0..10_000 {
            c.add_pod(pod_on(&format!("p{i}"), &format!("n{}", i % 5000), "1800m", "1Gi"));
        }
        let spread = pod(
            json!({"metadata": {"name": "new", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"priority": 100, "containers": [{"name": "c", "resources": {"requests": {"cpu": "300m"}}}],
                     "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                                                    "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
        );
        let mut rng = StdRng::seed_from_u64(5);
        let mut next = 0;
        for _ in 0..3 {
            assert!(schedule(&Profile::default(), &spread, &c, &mut next, &mut rng).is_ok());
        }
        // Nothing fits: every node is examined, then preemption searches its candidates.
        let big = pod(json!({"metadata": {"name": "big", "namespace": "default"},
            "spec": {"priority": 100, "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]}}));
        let fit = schedule(&Profile::default(), &big, &c, &mut next, &mut rng).unwrap_err();
        assert_eq!(fit.to_string(), "0/5000 nodes are available: 5000 Insufficient cpu.");
        let cand = preempt(&Profile::default(), &big, &c, &fit).unwrap();
        assert_eq!(cand.victims.len(), 1);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }
}

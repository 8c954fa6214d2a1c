//! DefaultPreemption (PostFilter) without PodDisruptionBudgets: when no node fits, find a node
//! where evicting lower-priority pods would let the pod in, evicting as few and as unimportant
//! pods as possible.
//!
//! As kube-scheduler (`pkg/scheduler/framework/preemption`, `plugins/defaultpreemption`):
//! - a pod with `preemptionPolicy: Never` never preempts; a pod whose nominated node still has
//!   lower-priority pods terminating waits for them instead of preempting again.
//! - only nodes whose rejection was `Unschedulable` are tried; `UnschedulableAndUnresolvable`
//!   (taints, affinity, node name...) cannot be fixed by evicting pods.
//! - on each node: remove every lower-priority pod, check the pod fits (filters re-run on a copy
//!   of that node, with the PreFilter state adjusted incrementally rather than recomputed for the
//!   whole cluster), then give pods back highest priority first while it still fits; the pods not
//!   given back are the victims.
//! - at most `max(10% of nodes, 100)` candidates are evaluated, then one is picked by: lowest
//!   highest-victim priority, smallest sum of victim priorities, fewest victims, latest start of
//!   the highest-priority victims, then the first. A candidate needing no victims wins outright.
//!
//! Deviation: Kubernetes starts the candidate search at a random node; this pure core starts at
//! the first node so that its answer is reproducible.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::scheduler::framework::{Filters, FitError, Profile};
use crate::scheduler::model::Cluster;
use crate::scheduler::model::{NodeInfo, PodInfo};

const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// A node where the pod fits once `victims` are evicted (highest priority first).
#[derive(Clone, Debug)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Start time for ordering; a pod not started yet counts as the newest (Kubernetes uses "now").
fn start(p: &PodInfo) -> &str {
    if p.start_time.is_empty() {
        "~"
    } else {
        &p.start_time
    }
}

/// `MoreImportantPod` as an ordering: higher priority first, then the one started earlier.
fn importance(a: &Arc<PodInfo>, b: &Arc<PodInfo>) -> Ordering {
    b.priority.cmp(&a.priority).then_with(|| start(a).cmp(start(b)))
}

/// Whether the pod may preempt at all (`PodEligibleToPreemptOthers`).
fn eligible(profile: &Profile, pod: &PodInfo, cluster: &Cluster, fit: &FitError) -> bool {
    if !profile.preemption || pod.preemption_policy == "Never" {
        return false;
    }
    if let Some(node) = cluster.node(&pod.nominated_node_name) {
        let unresolvable = fit.node_failures.get(&node.name).is_some_and(|r| !r.resolvable());
        if !unresolvable && node.pods.iter().any(|p| p.terminating && p.priority < pod.priority) {
            return false;
        }
    }
    true
}

/// `SelectVictimsOnNode`: the victims needed on `node`, or `None` if evicting cannot help.
fn select_victims(
    filters: &mut Filters,
    pod: &PodInfo,
    node: &NodeInfo,
    cluster: &Cluster,
) -> Option<Vec<Arc<PodInfo>>> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return None;
    }
    let mut copy = node.clone();
    for v in &potential {
        copy.remove_pod(&v.namespace, &v.name);
        filters.remove_pod(pod, v, node);
    }
    let mut victims = Vec::new();
    if filters.run_nominated(pod, &copy, cluster).is_ok() {
        potential.sort_by(importance);
        for v in potential {
            copy.add_pod(v.clone());
            filters.add_pod(pod, &v, node);
            if filters.run_nominated(pod, &copy, cluster).is_err() {
                copy.remove_pod(&v.namespace, &v.name);
                filters.remove_pod(pod, &v, node);
                victims.push(v);
            }
        }
        // Restore the shared PreFilter state for the next node.
        for v in &victims {
            filters.add_pod(pod, v, node);
        }
        Some(victims)
    } else {
        for v in &potential {
            filters.add_pod(pod, v, node);
        }
        None
    }
}

/// `pickOneNodeForPreemption` without PDBs.
fn pick(mut candidates: Vec<Candidate>) -> Option<Candidate> {
    if let Some(i) = candidates.iter().position(|c| c.victims.is_empty()) {
        return Some(candidates.swap_remove(i));
    }
    let offset = i64::from(i32::MAX) + 1;
    let highest = |c: &Candidate| c.victims.first().map_or(i32::MIN, |v| v.priority);
    let criteria: [&dyn Fn(&Candidate) -> i64; 3] = [
        &|c| i64::from(highest(c)),
        &|c| c.victims.iter().map(|v| i64::from(v.priority) + offset).sum(),
        &|c| c.victims.len() as i64,
    ];
    for key in criteria {
        let best = candidates.iter().map(key).min()?;
        candidates.retain(|c| key(c) == best);
        if candidates.len() == 1 {
            return candidates.pop();
        }
    }
    // Latest start among each node's earliest-started highest-priority victims.
    let earliest = |c: &Candidate| -> String {
        let top = highest(c);
        c.victims
            .iter()
            .filter(|v| v.priority == top)
            .map(|v| start(v).to_string())
            .min()
            .unwrap_or_default()
    };
    let mut best = 0;
    for i in 1..candidates.len() {
        if earliest(&candidates[i]) > earliest(&candidates[best]) {
            best = i;
        }
    }
    Some(candidates.swap_remove(best))
}

/// Finds the node and victims for preempting on behalf of `pod`, given why it did not fit.
pub fn preempt(profile: &Profile, pod: &PodInfo, cluster: &Cluster, fit: &FitError) -> Option<Candidate> {
    if !eligible(profile, pod, cluster, fit) || fit.pre_filter_msg.is_some() {
        return None;
    }
    let potential: Vec<&NodeInfo> = cluster
        .nodes()
        .iter()
        .filter(|n| fit.node_failures.get(&n.name).is_some_and(|r| r.resolvable()))
        .collect();
    if potential.is_empty() {
        return None;
    }
    let wanted = (potential.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(potential.len());
    let mut filters = Filters::prepare(profile, pod, cluster).ok()?;
    let mut candidates = Vec::new();
    for node in potential {
        if let Some(victims) = select_victims(&mut filters, pod, node, cluster) {
            candidates.push(Candidate {
                node: node.name.clone(),
                victims,
            });
            if candidates.len() >= wanted {
                break;
            }
        }
    }
    pick(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::framework::schedule;
    use crate::scheduler::model::tests::{node_json, pod};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::{json, Value};

    fn prio_pod(name: &str, node: &str, cpu: &str, priority: i32, start: &str) -> Arc<PodInfo> {
        let mut v = json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {"nodeName": node, "priority": priority,
                     "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"startTime": start}});
        if node.is_empty() {
            v["spec"].as_object_mut().unwrap().remove("nodeName");
        }
        pod(v)
    }

    fn cluster(nodes: &[(&str, Value)]) -> Cluster {
        let mut c = Cluster::default();
        for (name, labels) in nodes {
            c.upsert_node(&node_json(name, 1000, 1 << 30, labels.clone())).unwrap();
        }
        c
    }

    fn fit_error(c: &Cluster, p: &PodInfo) -> FitError {
        schedule(&Profile::default(), p, c, &mut 0, &mut StdRng::seed_from_u64(1)).unwrap_err()
    }

    #[test]
    fn evicts_the_lowest_priority_victims_and_reprieves_the_rest() {
        let mut c = cluster(&[("a", json!({})), ("b", json!({}))]);
        c.add_pod(prio_pod("a-low", "a", "400m", 1, "2024-01-01T00:00:00Z"));
        c.add_pod(prio_pod("a-mid", "a", "400m", 5, "2024-01-01T00:00:00Z"));
        c.add_pod(prio_pod("b-mid1", "b", "500m", 5, "2024-01-01T00:00:00Z"));
        c.add_pod(prio_pod("b-mid2", "b", "500m", 5, "2024-01-01T00:00:00Z"));
        let p = prio_pod("new", "", "500m", 10, "");
        let fit = fit_error(&c, &p);
        let cand = preempt(&Profile::default(), &p, &c, &fit).unwrap();
        assert_eq!(cand.node, "a");
        let names: Vec<&str> = cand.victims.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["a-low"], "a-mid is reprieved");
    }

    #[test]
    fn prefers_fewer_victims_then_newer_ones() {
        let mut c = cluster(&[("a", json!({})), ("b", json!({})), ("d", json!({}))]);
        c.add_pod(prio_pod("a1", "a", "300m", 1, "2024-01-01T00:00:00Z"));
        c.add_pod(prio_pod("a2", "a", "300m", 1, "2024-01-01T00:00:00Z"));
        c.add_pod(prio_pod("a3", "a", "300m", 1, "2024-01-01T00:00:00Z"));
        c.add_pod(prio_pod("b1", "b", "900m", 1, "2024-01-01T00:00:00Z"));
        c.add_pod(prio_pod("d1", "d", "900m", 1, "2024-06-01T00:00:00Z"));
        let p = prio_pod("new", "", "800m", 10, "");
        let cand = preempt(&Profile::default(), &p, &c, &fit_error(&c, &p)).unwrap();
        assert_eq!(
            (cand.node.as_str(), cand.victims.len()),
            ("d", 1),
            "one victim, started latest"
        );
    }

    #[test]
    fn lower_highest_victim_priority_wins() {
        let mut c = cluster(&[("a", json!({})), ("b", json!({}))]);
        c.add_pod(prio_pod("a1", "a", "900m", 7, ""));
        c.add_pod(prio_pod("b1", "b", "500m", 3, ""));
        c.add_pod(prio_pod("b2", "b", "500m", 3, ""));
        let p = prio_pod("new", "", "800m", 10, "");
        let cand = preempt(&Profile::default(), &p, &c, &fit_error(&c, &p)).unwrap();
        assert_eq!((cand.node.as_str(), cand.victims.len()), ("b", 2));
    }

    #[test]
    fn no_preemption_when_unresolvable_or_never_or_nothing_lower() {
        let mut c = cluster(&[("a", json!({}))]);
        c.add_pod(prio_pod("a1", "a", "900m", 20, ""));
        let p = prio_pod("new", "", "800m", 10, "");
        assert!(
            preempt(&Profile::default(), &p, &c, &fit_error(&c, &p)).is_none(),
            "victim outranks"
        );
        let mut never = (*prio_pod("new", "", "800m", 30, "")).clone();
        never.preemption_policy = "Never".into();
        assert!(preempt(&Profile::default(), &never, &c, &fit_error(&c, &never)).is_none());
        let picky = pod(
            json!({"metadata": {"name": "picky"}, "spec": {"priority": 30, "nodeSelector": {"gpu": "yes"},
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "800m"}}}]}}),
        );
        let fit = fit_error(&c, &picky);
        assert!(!fit.any_resolvable());
        assert!(preempt(&Profile::default(), &picky, &c, &fit).is_none());
    }

    #[test]
    fn anti_affinity_victim_is_found_through_prefilter_state() {
        let mut c = cluster(&[("a", json!({"kubernetes.io/hostname": "a"}))]);
        c.add_pod(prio_pod("blocker", "a", "100m", 1, ""));
        let p = pod(
            json!({"metadata": {"name": "new", "namespace": "default"}, "spec": {"priority": 10,
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "blocker"}}, "topologyKey": "kubernetes.io/hostname"}]}},
            "containers": [{"name": "c"}]}}),
        );
        let fit = fit_error(&c, &p);
        let cand = preempt(&Profile::default(), &p, &c, &fit).unwrap();
        assert_eq!(cand.victims[0].name, "blocker");
    }
}

//! PodTopologySpread: keeps matching pods evenly spread over topology domains (zones, hosts).
//!
//! Filter (`whenUnsatisfiable: DoNotSchedule`): placing the pod in the node's domain must keep
//! `matching pods in that domain + (1 if the pod matches itself) - minimum over domains <= maxSkew`.
//! Domains are the values of `topologyKey` on the nodes that count: nodes with every constraint's
//! key, that match the pod's node affinity/selector (`nodeAffinityPolicy: Honor`, the default) and,
//! if `nodeTaintsPolicy: Honor` (default Ignore), whose taints the pod tolerates. A node without
//! the key is rejected outright (unresolvable). With `minDomains` and fewer domains than that, the
//! minimum is taken as 0, so pods cannot all pile into the few domains that exist.
//!
//! Score (`ScheduleAnyway`): fewer matching pods in the node's domains is better; each constraint
//! counts `matching * ln(domains + 2) + maxSkew - 1`, and the result is reversed so the emptiest
//! node gets 100 (kube-scheduler's scoring). Kubernetes' cluster-wide default constraints (derived
//! from the Services/ReplicaSets selecting the pod) are not applied: this core sees no Services.
//!
//! Only pods in the incoming pod's namespace and not being deleted are counted.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use crate::scheduler::framework::{Code, Filter, NodeFilter, Rejection, Score, MAX_NODE_SCORE};
use crate::scheduler::model::{label_key, Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins::{node_affinity, parse, taint_toleration};
use crate::selector::LabelSelector;

pub const NAME: &str = "PodTopologySpread";
/// Kubernetes' `ErrReasonConstraintsNotMatch`.
pub const ERR_REASON: &str = "node(s) didn't match pod topology spread constraints";
/// Kubernetes' `ErrReasonNodeLabelNotMatch`.
pub const ERR_REASON_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";
const HOSTNAME: &str = "kubernetes.io/hostname";

/// One `topologySpreadConstraints` entry, with `matchLabelKeys` merged into the selector.
#[derive(Clone, Debug, PartialEq)]
pub struct SpreadConstraint {
    pub max_skew: i64,
    pub topology_key: String,
    /// `whenUnsatisfiable: DoNotSchedule` (a filter) rather than `ScheduleAnyway` (a score).
    pub hard: bool,
    pub selector: LabelSelector,
    pub min_domains: Option<i64>,
    pub node_affinity_policy_honor: bool,
    pub node_taints_policy_honor: bool,
}

impl SpreadConstraint {
    /// `MatchNodeInclusionPolicies`: whether `node` counts for this constraint.
    fn includes(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        (!self.node_affinity_policy_honor || node_affinity::matches_required(pod, node))
            && (!self.node_taints_policy_honor
                || taint_toleration::untolerated(&node.taints, &pod.tolerations).is_none())
    }

    fn counts(&self, pod: &PodInfo, other: &PodInfo) -> bool {
        other.namespace == pod.namespace && !other.terminating && self.selector.matches(&other.labels)
    }

    /// For the common `matchLabels: {app: x}`, the key of the nodes' label index that answers
    /// `count_on` without a scan of the node's pods. Computed once per pod, used per node.
    fn index_key(&self, pod: &PodInfo) -> Option<String> {
        self.selector
            .single_equality()
            .map(|(k, v)| label_key(&pod.namespace, k, v))
    }

    fn count_on(&self, pod: &PodInfo, node: &NodeInfo, key: Option<&str>) -> i64 {
        match key {
            Some(k) => node.label_counts.get(k).copied().unwrap_or(0) as i64,
            None => node.pods.iter().filter(|p| self.counts(pod, p)).count() as i64,
        }
    }
}

/// Parses `spec.topologySpreadConstraints`; `labels` are the pod's (for `matchLabelKeys`).
pub fn parse(v: Option<&Value>, labels: &Map<String, Value>) -> Result<Vec<SpreadConstraint>, String> {
    let base = "spec.topologySpreadConstraints";
    parse::list(v, base)?
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = format!("{base}[{i}]");
            let int = |key: &str| -> Result<Option<i64>, String> {
                match c.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(n) => n
                        .as_i64()
                        .map(Some)
                        .ok_or_else(|| format!("{f}.{key}: must be an integer")),
                }
            };
            let mut selector_json = c.get("labelSelector").cloned().unwrap_or(Value::Null);
            if let Value::Object(sel) = &mut selector_json {
                for key in parse::strings(c.get("matchLabelKeys"), &format!("{f}.matchLabelKeys"))? {
                    if let Some(value) = labels.get(&key) {
                        let expr = json!({"key": key, "operator": "In", "values": [value]});
                        match sel.entry("matchExpressions").or_insert_with(|| json!([])) {
                            Value::Array(a) => a.push(expr),
                            other => *other = json!([expr]),
                        }
                    }
                }
            }
            let selector = LabelSelector::from_label_selector_json(&selector_json)
                .map_err(|e| format!("{f}.labelSelector: {e}"))?;
            Ok(SpreadConstraint {
                max_skew: int("maxSkew")?.unwrap_or(1),
                topology_key: parse::str_field(c, "topologyKey", &f)?,
                hard: parse::str_field(c, "whenUnsatisfiable", &f)? != "ScheduleAnyway",
                selector,
                min_domains: int("minDomains")?,
                node_affinity_policy_honor: parse::str_field(c, "nodeAffinityPolicy", &f)? != "Ignore",
                node_taints_policy_honor: parse::str_field(c, "nodeTaintsPolicy", &f)? == "Honor",
            })
        })
        .collect()
}

fn has_all_keys(node: &NodeInfo, constraints: &[SpreadConstraint]) -> bool {
    constraints.iter().all(|c| node.label(&c.topology_key).is_some())
}

pub struct PodTopologySpread;

/// Per hard constraint: matching pods per domain, and a multiset of those counts for the minimum.
struct Domains {
    counts: HashMap<String, i64>,
    histogram: BTreeMap<i64, usize>,
}

impl Domains {
    fn set(&mut self, domain: &str, delta: i64) {
        let Some(count) = self.counts.get_mut(domain) else {
            self.counts.insert(domain.to_string(), delta);
            *self.histogram.entry(delta).or_insert(0) += 1;
            return;
        };
        if let Some(n) = self.histogram.get_mut(count) {
            *n -= 1;
            if *n == 0 {
                self.histogram.remove(count);
            }
        }
        *count += delta;
        *self.histogram.entry(*count).or_insert(0) += 1;
    }
}

struct SpreadFilter {
    constraints: Vec<SpreadConstraint>,
    domains: Vec<Domains>,
}

impl SpreadFilter {
    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if !has_all_keys(node, &self.constraints) {
            return;
        }
        for (c, d) in self.constraints.iter().zip(self.domains.iter_mut()) {
            if c.includes(pod, node) && c.counts(pod, other) {
                if let Some(v) = node.label(&c.topology_key) {
                    d.set(v, delta);
                }
            }
        }
    }
}

impl Filter for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        let constraints: Vec<SpreadConstraint> = pod
            .topology_spread_constraints
            .iter()
            .filter(|c| c.hard)
            .cloned()
            .collect();
        let mut domains: Vec<Domains> = constraints
            .iter()
            .map(|_| Domains {
                counts: HashMap::new(),
                histogram: BTreeMap::new(),
            })
            .collect();
        if !constraints.is_empty() {
            // Sum per domain first (cheap), then build each histogram once per domain.
            let keys: Vec<Option<String>> = constraints.iter().map(|c| c.index_key(pod)).collect();
            let mut sums: Vec<HashMap<&str, i64>> = vec![HashMap::new(); constraints.len()];
            for node in cluster.nodes().iter().filter(|n| has_all_keys(n, &constraints)) {
                for ((c, sum), key) in constraints.iter().zip(sums.iter_mut()).zip(&keys) {
                    if let (true, Some(v)) = (c.includes(pod, node), node.label(&c.topology_key)) {
                        *sum.entry(v).or_insert(0) += c.count_on(pod, node, key.as_deref());
                    }
                }
            }
            for (sum, d) in sums.into_iter().zip(domains.iter_mut()) {
                for (v, n) in sum {
                    d.set(v, n);
                }
            }
        }
        Ok(Box::new(SpreadFilter { constraints, domains }))
    }
}

impl NodeFilter for SpreadFilter {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        for (c, d) in self.constraints.iter().zip(&self.domains) {
            let Some(value) = node.label(&c.topology_key) else {
                return Err(Rejection::new(
                    NAME,
                    Code::UnschedulableAndUnresolvable,
                    ERR_REASON_LABEL,
                ));
            };
            let min = match (c.min_domains, d.histogram.keys().next()) {
                (Some(m), _) if (d.counts.len() as i64) < m => 0,
                (_, Some(&min)) => min,
                (_, None) => i64::from(i32::MAX),
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let here = d.counts.get(value).copied().unwrap_or(0);
            if here + self_match - min > c.max_skew {
                return Err(Rejection::new(NAME, Code::Unschedulable, ERR_REASON));
            }
        }
        Ok(())
    }

    fn add_pod(&mut self, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        self.update(pod, added, node, 1);
    }

    fn remove_pod(&mut self, pod: &PodInfo, removed: &PodInfo, node: &NodeInfo) {
        self.update(pod, removed, node, -1);
    }
}

impl Score for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, pod: &PodInfo, cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
        let constraints: Vec<&SpreadConstraint> = pod.topology_spread_constraints.iter().filter(|c| !c.hard).collect();
        if constraints.is_empty() {
            return vec![0; nodes.len()];
        }
        let owned: Vec<SpreadConstraint> = constraints.iter().map(|c| (*c).clone()).collect();
        let ignored: Vec<bool> = nodes.iter().map(|n| !has_all_keys(n, &owned)).collect();
        let considered = ignored.iter().filter(|i| !**i).count();
        // Domain counts for non-hostname keys, over the domains of the candidate nodes.
        let mut counts: Vec<HashMap<&str, i64>> = constraints
            .iter()
            .map(|c| {
                if c.topology_key == HOSTNAME {
                    return HashMap::new();
                }
                nodes
                    .iter()
                    .zip(&ignored)
                    .filter(|(_, ig)| !**ig)
                    .filter_map(|(n, _)| n.label(&c.topology_key).map(|v| (v, 0)))
                    .collect()
            })
            .collect();
        let keys: Vec<Option<String>> = constraints.iter().map(|c| c.index_key(pod)).collect();
        for node in cluster.nodes().iter().filter(|n| has_all_keys(n, &owned)) {
            for ((c, counts), key) in constraints.iter().zip(counts.iter_mut()).zip(&keys) {
                if c.topology_key == HOSTNAME || !c.includes(pod, node) {
                    continue;
                }
                if let Some(count) = node.label(&c.topology_key).and_then(|v| counts.get_mut(v)) {
                    *count += c.count_on(pod, node, key.as_deref());
                }
            }
        }
        let weights: Vec<f64> = constraints
            .iter()
            .zip(&counts)
            .map(|(c, m)| {
                let size = if c.topology_key == HOSTNAME {
                    considered
                } else {
                    m.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let raw: Vec<Option<i64>> = nodes
            .iter()
            .zip(&ignored)
            .map(|(n, ig)| {
                if *ig {
                    return None;
                }
                let mut score = 0.0;
                for (((c, m), w), key) in constraints.iter().zip(&counts).zip(&weights).zip(&keys) {
                    if let Some(v) = n.label(&c.topology_key) {
                        let cnt = if c.topology_key == HOSTNAME {
                            c.count_on(pod, n, key.as_deref())
                        } else {
                            m.get(v).copied().unwrap_or(0)
                        };
                        score += cnt as f64 * w + (c.max_skew - 1) as f64;
                    }
                }
                Some(score.round() as i64)
            })
            .collect();
        let min = raw.iter().flatten().copied().min().unwrap_or(0);
        let max = raw.iter().flatten().copied().max().unwrap_or(0);
        raw.iter()
            .map(|s| match s {
                None => 0,
                Some(_) if max == 0 => MAX_NODE_SCORE,
                Some(s) => MAX_NODE_SCORE * (max + min - s) / max,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::{node_json, pod};
    use std::sync::Arc;

    fn zoned_cluster(pods_per_zone: &[(&str, usize)]) -> Cluster {
        let mut c = Cluster::default();
        for (zone, n) in pods_per_zone {
            let name = format!("node-{zone}");
            c.upsert_node(&node_json(
                &name,
                64000,
                64 << 30,
                json!({"zone": zone, HOSTNAME: name}),
            ))
            .unwrap();
            for i in 0..*n {
                c.add_pod(pod(json!({"metadata": {"name": format!("{zone}-{i}"), "namespace": "default", "labels": {"app": "web"}},
                                     "spec": {"nodeName": name}})));
            }
        }
        c
    }

    fn spread_pod(when: &str, extra: Value) -> Arc<PodInfo> {
        let mut c = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": when,
                           "labelSelector": {"matchLabels": {"app": "web"}}});
        if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
            c.extend(extra);
        }
        pod(
            json!({"metadata": {"name": "new", "namespace": "default", "labels": {"app": "web"}},
                   "spec": {"topologySpreadConstraints": [c]}}),
        )
    }

    fn filter(c: &Cluster, p: &PodInfo, node: &str) -> Result<(), Rejection> {
        let f = PodTopologySpread.pre_filter(p, c).unwrap();
        f.filter(p, c.node(node).unwrap())
    }

    #[test]
    fn max_skew_keeps_zones_even() {
        let c = zoned_cluster(&[("a", 2), ("b", 1)]);
        let p = spread_pod("DoNotSchedule", json!({}));
        let r = filter(&c, &p, "node-a").unwrap_err();
        assert_eq!((r.code, r.reasons[0].as_str()), (Code::Unschedulable, ERR_REASON));
        assert!(filter(&c, &p, "node-b").is_ok());
    }

    #[test]
    fn min_domains_treats_missing_domains_as_empty() {
        let c = zoned_cluster(&[("a", 1), ("b", 1)]);
        assert!(filter(&c, &spread_pod("DoNotSchedule", json!({})), "node-a").is_ok());
        let p = spread_pod("DoNotSchedule", json!({"minDomains": 3}));
        assert!(
            filter(&c, &p, "node-a").is_err(),
            "global minimum is 0 with 2 < 3 domains"
        );
    }

    #[test]
    fn node_without_key_is_unresolvable_and_removal_updates_counts() {
        let mut c = zoned_cluster(&[("a", 2), ("b", 1)]);
        c.upsert_node(&node_json("bare", 1000, 1 << 30, json!({}))).unwrap();
        let p = spread_pod("DoNotSchedule", json!({}));
        let r = filter(&c, &p, "bare").unwrap_err();
        assert_eq!(
            (r.code, r.reasons[0].as_str()),
            (Code::UnschedulableAndUnresolvable, ERR_REASON_LABEL)
        );
        let mut f = PodTopologySpread.pre_filter(&p, &c).unwrap();
        let node_a = c.node("node-a").unwrap();
        let victim = node_a.pods[0].clone();
        assert!(f.filter(&p, node_a).is_err());
        f.remove_pod(&p, &victim, node_a);
        assert!(f.filter(&p, node_a).is_ok());
        f.add_pod(&p, &victim, node_a);
        assert!(f.filter(&p, node_a).is_err());
    }

    #[test]
    fn schedule_anyway_scores_emptier_zone_higher() {
        let c = zoned_cluster(&[("a", 3), ("b", 0), ("c", 1)]);
        let p = spread_pod("ScheduleAnyway", json!({}));
        let nodes: Vec<&NodeInfo> = c.nodes().iter().collect();
        let scores = PodTopologySpread.score(&p, &c, &nodes);
        assert_eq!(scores[1], 100);
        assert!(scores[0] < scores[2] && scores[2] < scores[1], "{scores:?}");
        let f = PodTopologySpread.pre_filter(&p, &c).unwrap();
        assert!(
            f.filter(&p, c.node("node-a").unwrap()).is_ok(),
            "soft constraints never filter"
        );
    }

    #[test]
    fn match_label_keys_narrow_the_selector() {
        let p = pod(
            json!({"metadata": {"name": "p", "labels": {"app": "web", "rev": "2"}}, "spec": {
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["rev"]}]}}),
        );
        let sel = &p.topology_spread_constraints[0].selector;
        let mut old = Map::new();
        old.insert("app".into(), json!("web"));
        old.insert("rev".into(), json!("1"));
        assert!(!sel.matches(&old));
        assert!(sel.matches(&p.labels));
    }
}

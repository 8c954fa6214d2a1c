//! InterPodAffinity: pods that want (affinity) or refuse (anti-affinity) to share a topology
//! domain with other pods.
//!
//! Filter, as kube-scheduler:
//! - every required affinity term needs, in the node's domain for its `topologyKey`, a pod that
//!   matches all the terms; except that when no pod in the cluster matches and the pod matches its
//!   own terms, it may go anywhere with the keys (otherwise the first pod of a group that wants
//!   to be together could never start). Unresolvable: preemption never helps affinity.
//! - no pod matching a required anti-affinity term may be in the node's domain.
//! - no existing pod's required anti-affinity term may match the incoming pod within its domain
//!   (symmetry: existing pods are protected too).
//!
//! A term's namespaces default to its pod's namespace; `namespaceSelector` is evaluated against
//! the namespace labels the runtime gives [`Cluster::upsert_namespace`] (`{}` means all).
//!
//! Score: preferred terms of the incoming pod (weight per matching existing pod, negative for
//! anti-affinity), plus the existing pods' required affinity (× `hardPodAffinityWeight`) and
//! preferred (anti-)affinity terms that match the incoming pod, summed per topology domain and
//! min-max normalized.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::scheduler::framework::{Code, Filter, NodeFilter, Rejection, Score, MAX_NODE_SCORE};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins::parse;
use crate::selector::LabelSelector;

pub const NAME: &str = "InterPodAffinity";
/// Kubernetes' `ErrReasonAffinityRulesNotMatch`.
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// Kubernetes' `ErrReasonAntiAffinityRulesNotMatch`.
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Kubernetes' `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const ERR_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// One `PodAffinityTerm`.
#[derive(Clone, Debug, PartialEq)]
pub struct AffinityTerm {
    pub namespaces: Vec<String>,
    /// `None`: only `namespaces`; `{}` matches every namespace.
    pub namespace_selector: Option<LabelSelector>,
    pub selector: LabelSelector,
    pub topology_key: String,
}

impl AffinityTerm {
    /// Whether `pod` (whose namespace has `ns_labels`) is selected by this term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Map<String, Value>>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| s.is_empty() || ns_labels.is_some_and(|l| s.matches(l)));
        ns_ok && self.selector.matches(&pod.labels)
    }

    /// Turns a non-empty namespaceSelector into the names of the namespaces it selects now, as
    /// kube-scheduler does for the incoming pod's terms.
    fn resolved(&self, cluster: &Cluster) -> AffinityTerm {
        let mut term = self.clone();
        if let Some(sel) = self.namespace_selector.as_ref().filter(|s| !s.is_empty()) {
            term.namespaces.extend(
                cluster
                    .namespaces()
                    .filter(|(_, l)| sel.matches(l))
                    .map(|(n, _)| n.clone()),
            );
            term.namespace_selector = None;
        }
        term
    }
}

/// A preferred term with its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedAffinityTerm {
    pub weight: i64,
    pub term: AffinityTerm,
}

/// The four term lists of `spec.affinity.podAffinity` / `podAntiAffinity`.
#[derive(Default)]
pub struct ParsedPodAffinity {
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
}

fn parse_term(v: &Value, namespace: &str, f: &str) -> Result<AffinityTerm, String> {
    let selector = |key: &str| {
        LabelSelector::from_label_selector_json(v.get(key).unwrap_or(&Value::Null))
            .map_err(|e| format!("{f}.{key}: {e}"))
    };
    let mut namespaces = parse::strings(v.get("namespaces"), &format!("{f}.namespaces"))?;
    let namespace_selector = match v.get("namespaceSelector") {
        None | Some(Value::Null) => None,
        Some(_) => Some(selector("namespaceSelector")?),
    };
    if namespaces.is_empty() && namespace_selector.is_none() {
        namespaces.push(namespace.to_string());
    }
    Ok(AffinityTerm {
        namespaces,
        namespace_selector,
        selector: selector("labelSelector")?,
        topology_key: parse::str_field(v, "topologyKey", f)?,
    })
}

/// Parses the pod (anti-)affinity of `spec.affinity` for a pod in `namespace`.
pub fn parse(affinity: &Value, namespace: &str) -> Result<ParsedPodAffinity, String> {
    let mut out = ParsedPodAffinity::default();
    for (kind, anti) in [("podAffinity", false), ("podAntiAffinity", true)] {
        let Some(a) = affinity.get(kind).filter(|v| !v.is_null()) else {
            continue;
        };
        let f = format!("spec.affinity.{kind}.requiredDuringSchedulingIgnoredDuringExecution");
        let required = parse::list(a.get("requiredDuringSchedulingIgnoredDuringExecution"), &f)?
            .iter()
            .enumerate()
            .map(|(i, t)| parse_term(t, namespace, &format!("{f}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let f = format!("spec.affinity.{kind}.preferredDuringSchedulingIgnoredDuringExecution");
        let preferred = parse::list(a.get("preferredDuringSchedulingIgnoredDuringExecution"), &f)?
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let f = format!("{f}[{i}]");
                Ok(WeightedAffinityTerm {
                    weight: t.get("weight").and_then(Value::as_i64).unwrap_or(0),
                    term: parse_term(
                        t.get("podAffinityTerm").unwrap_or(&Value::Null),
                        namespace,
                        &format!("{f}.podAffinityTerm"),
                    )?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if anti {
            (out.required_anti_affinity, out.preferred_anti_affinity) = (required, preferred);
        } else {
            (out.required_affinity, out.preferred_affinity) = (required, preferred);
        }
    }
    Ok(out)
}

type Pair = (String, String);

fn bump(counts: &mut HashMap<Pair, i64>, key: &str, node: &NodeInfo, delta: i64) {
    if let Some(v) = node.label(key) {
        let pair = (key.to_string(), v.to_string());
        let n = counts.entry(pair.clone()).or_insert(0);
        *n += delta;
        if *n == 0 {
            counts.remove(&pair);
        }
    }
}

#[derive(Default)]
pub struct InterPodAffinity {
    pub hard_pod_affinity_weight: i64,
}

struct AffinityFilter {
    affinity: Vec<AffinityTerm>,
    anti: Vec<AffinityTerm>,
    /// The incoming pod's namespace labels, for existing pods' namespaceSelectors.
    ns_labels: Option<Map<String, Value>>,
    existing_anti: HashMap<Pair, i64>,
    affinity_counts: HashMap<Pair, i64>,
    anti_counts: HashMap<Pair, i64>,
}

impl AffinityFilter {
    /// `updateWithPod`: account for `other` running (`delta` 1) or not (-1) on `node`.
    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        for t in &other.required_anti_affinity_terms {
            if t.matches(pod, self.ns_labels.as_ref()) {
                bump(&mut self.existing_anti, &t.topology_key, node, delta);
            }
        }
        if !self.affinity.is_empty() && self.affinity.iter().all(|t| t.matches(other, None)) {
            for t in &self.affinity {
                bump(&mut self.affinity_counts, &t.topology_key, node, delta);
            }
        }
        for t in &self.anti {
            if t.matches(other, None) {
                bump(&mut self.anti_counts, &t.topology_key, node, delta);
            }
        }
    }
}

impl Filter for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, pod: &PodInfo, cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        let mut f = AffinityFilter {
            affinity: pod
                .required_affinity_terms
                .iter()
                .map(|t| t.resolved(cluster))
                .collect(),
            anti: pod
                .required_anti_affinity_terms
                .iter()
                .map(|t| t.resolved(cluster))
                .collect(),
            ns_labels: cluster.namespace_labels(&pod.namespace).cloned(),
            existing_anti: HashMap::new(),
            affinity_counts: HashMap::new(),
            anti_counts: HashMap::new(),
        };
        let own_terms = !(f.affinity.is_empty() && f.anti.is_empty());
        for node in cluster.nodes() {
            if !own_terms && node.pods_with_affinity == 0 {
                continue;
            }
            for other in &node.pods {
                if own_terms || !other.required_anti_affinity_terms.is_empty() {
                    f.update(pod, other, node, 1);
                }
            }
        }
        Ok(Box::new(f))
    }
}

impl NodeFilter for AffinityFilter {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        let mut pods_exist = true;
        for t in &self.affinity {
            let Some(v) = node.label(&t.topology_key) else {
                return Err(Rejection::new(NAME, Code::UnschedulableAndUnresolvable, ERR_AFFINITY));
            };
            if self
                .affinity_counts
                .get(&(t.topology_key.clone(), v.to_string()))
                .copied()
                .unwrap_or(0)
                <= 0
            {
                pods_exist = false;
            }
        }
        // The first pod of a group with affinity to itself: nothing matches anywhere yet.
        let first_of_group = self.affinity_counts.is_empty() && self.affinity.iter().all(|t| t.matches(pod, None));
        if !pods_exist && !first_of_group {
            return Err(Rejection::new(NAME, Code::UnschedulableAndUnresolvable, ERR_AFFINITY));
        }
        for t in &self.anti {
            if let Some(v) = node.label(&t.topology_key) {
                if self
                    .anti_counts
                    .get(&(t.topology_key.clone(), v.to_string()))
                    .copied()
                    .unwrap_or(0)
                    > 0
                {
                    return Err(Rejection::new(NAME, Code::Unschedulable, ERR_ANTI_AFFINITY));
                }
            }
        }
        if !self.existing_anti.is_empty() {
            for (k, v) in &node.labels {
                let Some(v) = v.as_str() else { continue };
                if self
                    .existing_anti
                    .get(&(k.clone(), v.to_string()))
                    .copied()
                    .unwrap_or(0)
                    > 0
                {
                    return Err(Rejection::new(NAME, Code::Unschedulable, ERR_EXISTING_ANTI_AFFINITY));
                }
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

/// Topology key -> value -> score.
type TopologyScore = HashMap<String, HashMap<String, i64>>;

fn add_score(scores: &mut TopologyScore, key: &str, node: &NodeInfo, weight: i64) {
    if let Some(v) = node.label(key) {
        *scores
            .entry(key.to_string())
            .or_default()
            .entry(v.to_string())
            .or_insert(0) += weight;
    }
}

impl InterPodAffinity {
    /// `processExistingPod`.
    fn process(
        &self,
        pod: &PodInfo,
        prefs: &[(i64, AffinityTerm)],
        other: &PodInfo,
        node: &NodeInfo,
        ns: Option<&Map<String, Value>>,
        s: &mut TopologyScore,
    ) {
        if node.labels.is_empty() {
            return;
        }
        for (w, t) in prefs {
            if t.matches(other, None) {
                add_score(s, &t.topology_key, node, *w);
            }
        }
        if self.hard_pod_affinity_weight > 0 {
            for t in &other.required_affinity_terms {
                if t.matches(pod, ns) {
                    add_score(s, &t.topology_key, node, self.hard_pod_affinity_weight);
                }
            }
        }
        for (terms, sign) in [
            (&other.preferred_affinity_terms, 1),
            (&other.preferred_anti_affinity_terms, -1),
        ] {
            for wt in terms {
                if wt.term.matches(pod, ns) {
                    add_score(s, &wt.term.topology_key, node, sign * wt.weight);
                }
            }
        }
    }
}

impl Score for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, pod: &PodInfo, cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
        // The incoming pod's preferred terms, anti-affinity as negative weights.
        let prefs: Vec<(i64, AffinityTerm)> = pod
            .preferred_affinity_terms
            .iter()
            .map(|w| (w.weight, w.term.resolved(cluster)))
            .chain(
                pod.preferred_anti_affinity_terms
                    .iter()
                    .map(|w| (-w.weight, w.term.resolved(cluster))),
            )
            .collect();
        let ns = cluster.namespace_labels(&pod.namespace);
        let mut topo = TopologyScore::new();
        for node in cluster.nodes() {
            if prefs.is_empty() && node.pods_with_affinity == 0 {
                continue;
            }
            for other in node.pods.iter().filter(|p| !prefs.is_empty() || p.has_pod_affinity()) {
                self.process(pod, &prefs, other, node, ns, &mut topo);
            }
        }
        if topo.is_empty() {
            return vec![0; nodes.len()];
        }
        let raw: Vec<i64> = nodes
            .iter()
            .map(|n| {
                topo.iter()
                    .filter_map(|(k, values)| n.label(k).and_then(|v| values.get(v)))
                    .sum()
            })
            .collect();
        let (min, max) = (
            raw.iter().copied().min().unwrap_or(0),
            raw.iter().copied().max().unwrap_or(0),
        );
        raw.iter()
            .map(|s| {
                if max > min {
                    (MAX_NODE_SCORE as f64 * ((s - min) as f64 / (max - min) as f64)) as i64
                } else {
                    0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::{node_json, pod};
    use serde_json::json;
    use std::sync::Arc;

    fn cluster() -> Cluster {
        let mut c = Cluster::default();
        for (name, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
            c.upsert_node(&node_json(
                name,
                4000,
                4 << 30,
                json!({"zone": zone, "kubernetes.io/hostname": name}),
            ))
            .unwrap();
        }
        c
    }

    fn labeled(name: &str, node: &str, app: &str, affinity: Value) -> Arc<PodInfo> {
        pod(
            json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
                   "spec": {"nodeName": node, "affinity": affinity}}),
        )
    }

    fn term(app: &str, key: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    fn check(c: &Cluster, p: &PodInfo, node: &str) -> Result<(), Rejection> {
        InterPodAffinity::default()
            .pre_filter(p, c)
            .unwrap()
            .filter(p, c.node(node).unwrap())
    }

    #[test]
    fn affinity_follows_the_zone_of_matching_pods() {
        let mut c = cluster();
        c.add_pod(labeled("db", "a1", "db", json!({})));
        let p = labeled(
            "web",
            "",
            "web",
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
        );
        assert!(check(&c, &p, "a2").is_ok(), "same zone, other host");
        let r = check(&c, &p, "b1").unwrap_err();
        assert_eq!(
            (r.code, r.reasons[0].as_str()),
            (Code::UnschedulableAndUnresolvable, ERR_AFFINITY)
        );
    }

    #[test]
    fn first_pod_of_a_self_affine_group_may_go_anywhere() {
        let c = cluster();
        let p = labeled(
            "web",
            "",
            "web",
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
        );
        assert!(check(&c, &p, "b1").is_ok());
        let other = labeled(
            "web",
            "",
            "web",
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
        );
        assert!(check(&c, &other, "b1").is_err(), "does not match its own terms");
    }

    #[test]
    fn anti_affinity_both_ways() {
        let mut c = cluster();
        c.add_pod(labeled("web-0", "a1", "web", json!({})));
        let p = labeled(
            "web-1",
            "",
            "web",
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "kubernetes.io/hostname")]}}),
        );
        let r = check(&c, &p, "a1").unwrap_err();
        assert_eq!(
            (r.code, r.reasons[0].as_str()),
            (Code::Unschedulable, ERR_ANTI_AFFINITY)
        );
        assert!(check(&c, &p, "a2").is_ok());
        // An existing pod's anti-affinity protects it from a plain pod.
        c.add_pod(labeled(
            "lonely",
            "b1",
            "lonely",
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
        ));
        let plain = labeled("web-2", "", "web", json!({}));
        let r = check(&c, &plain, "b1").unwrap_err();
        assert_eq!(r.reasons[0], ERR_EXISTING_ANTI_AFFINITY);
        let mut f = InterPodAffinity::default().pre_filter(&plain, &c).unwrap();
        let b1 = c.node("b1").unwrap();
        f.remove_pod(&plain, &b1.pods[0].clone(), b1);
        assert!(f.filter(&plain, b1).is_ok(), "removing the victim lifts the rule");
    }

    #[test]
    fn namespaces_default_to_the_pods_own() {
        let mut c = cluster();
        c.add_pod(pod(json!({"metadata": {"name": "db", "namespace": "other", "labels": {"app": "db"}}, "spec": {"nodeName": "a1"}})));
        let p = labeled(
            "web",
            "",
            "web",
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db", "zone")]}}),
        );
        assert!(
            check(&c, &p, "b1").is_err(),
            "db in another namespace does not count; web does not match itself"
        );
        let mut all = term("db", "zone");
        all["namespaceSelector"] = json!({});
        let p = labeled(
            "web",
            "",
            "web",
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [all]}}),
        );
        assert!(check(&c, &p, "a2").is_ok());
        assert!(check(&c, &p, "b1").is_err());
    }

    #[test]
    fn existing_pods_required_affinity_attracts_by_hard_weight() {
        let mut c = cluster();
        c.add_pod(labeled(
            "cache",
            "b1",
            "cache",
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web", "zone")]}}),
        ));
        let p = labeled("web", "", "web", json!({}));
        let nodes: Vec<&NodeInfo> = ["a1", "b1"].iter().map(|n| c.node(n).unwrap()).collect();
        assert_eq!(
            InterPodAffinity {
                hard_pod_affinity_weight: 1
            }
            .score(&p, &c, &nodes),
            vec![0, 100]
        );
        assert_eq!(
            InterPodAffinity {
                hard_pod_affinity_weight: 0
            }
            .score(&p, &c, &nodes),
            vec![0, 0]
        );
    }

    #[test]
    fn preferred_terms_score_domains() {
        let mut c = cluster();
        c.add_pod(labeled("db", "b1", "db", json!({})));
        c.add_pod(labeled("noisy", "a1", "noisy", json!({})));
        let p = labeled(
            "web",
            "",
            "web",
            json!({
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": term("db", "zone")}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": term("noisy", "kubernetes.io/hostname")}]}}),
        );
        let nodes: Vec<&NodeInfo> = ["a1", "a2", "b1"].iter().map(|n| c.node(n).unwrap()).collect();
        let ipa = InterPodAffinity {
            hard_pod_affinity_weight: 1,
        };
        // a1: -5, a2: 0, b1: 10 -> min-max normalized.
        assert_eq!(ipa.score(&p, &c, &nodes), vec![0, 33, 100]);
    }
}

//! NodeAffinity: `spec.nodeSelector` (every label must match) AND the required node affinity
//! (`nodeSelectorTerms`, ORed; within a term every expression and field ANDed) decide where a pod
//! may go; the preferred terms add their weights to the score.
//!
//! As in `component-helpers/scheduling/corev1/nodeaffinity`: a term with no requirements matches
//! nothing; `NotIn` and `DoesNotExist` match nodes without the label; `Gt`/`Lt` compare integers
//! and fail on anything unparsable; `matchFields` supports `metadata.name` only. A requirement
//! Kubernetes would refuse to parse (unknown operator, wrong value count) makes its term match
//! nothing rather than failing the pod, like the lazy-error selector does.

use serde_json::{Map, Value};

use crate::scheduler::framework::{Code, Filter, NodeFilter, Rejection, Score};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins::{default_normalize, parse};

pub const NAME: &str = "NodeAffinity";
/// Kubernetes' `ErrReasonPod`.
pub const ERR_REASON: &str = "node(s) didn't match Pod's node affinity/selector";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    /// Anything Kubernetes would not parse: never matches.
    Invalid,
}

/// One `NodeSelectorRequirement`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        let int = |s: &str| s.parse::<i64>().ok();
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Gt | Operator::Lt => {
                let (Some(have), [want]) = (value.and_then(int), self.values.as_slice()) else {
                    return false;
                };
                let Some(want) = int(want) else {
                    return false;
                };
                if self.operator == Operator::Gt {
                    have > want
                } else {
                    have < want
                }
            }
            Operator::Invalid => false,
        }
    }
}

/// One `NodeSelectorTerm`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<Requirement>,
    pub match_fields: Vec<Requirement>,
}

impl NodeSelectorTerm {
    /// Whether `node` satisfies every requirement of a non-empty term.
    pub fn matches(&self, node_name: &str, labels: &Map<String, Value>) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions
            .iter()
            .all(|r| r.matches(labels.get(&r.key).and_then(Value::as_str)))
            && self.match_fields.iter().all(|r| {
                r.key == "metadata.name"
                    && matches!(r.operator, Operator::In | Operator::NotIn)
                    && r.matches(Some(node_name))
            })
    }

    fn parse(v: &Value, field: &str) -> Result<NodeSelectorTerm, String> {
        let reqs = |key: &str| -> Result<Vec<Requirement>, String> {
            let f = format!("{field}.{key}");
            parse::list(v.get(key), &f)?
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let f = format!("{f}[{i}]");
                    let values = parse::strings(r.get("values"), &format!("{f}.values"))?;
                    let operator = match (parse::str_field(r, "operator", &f)?.as_str(), values.len()) {
                        ("In", n) if n > 0 => Operator::In,
                        ("NotIn", n) if n > 0 => Operator::NotIn,
                        ("Exists", 0) => Operator::Exists,
                        ("DoesNotExist", 0) => Operator::DoesNotExist,
                        ("Gt", 1) => Operator::Gt,
                        ("Lt", 1) => Operator::Lt,
                        _ => Operator::Invalid,
                    };
                    Ok(Requirement {
                        key: parse::str_field(r, "key", &f)?,
                        operator,
                        values,
                    })
                })
                .collect()
        };
        Ok(NodeSelectorTerm {
            match_expressions: reqs("matchExpressions")?,
            match_fields: reqs("matchFields")?,
        })
    }
}

/// Parses `spec.affinity.nodeAffinity`: the required terms (`None` when there is no required
/// node affinity) and the weighted preferred terms.
#[allow(clippy::type_complexity)]
pub fn parse(affinity: &Value) -> Result<(Option<Vec<NodeSelectorTerm>>, Vec<(i64, NodeSelectorTerm)>), String> {
    let base = "spec.affinity.nodeAffinity";
    let Some(na) = affinity.get("nodeAffinity").filter(|v| !v.is_null()) else {
        return Ok((None, Vec::new()));
    };
    let required = match na.get("requiredDuringSchedulingIgnoredDuringExecution") {
        None | Some(Value::Null) => None,
        Some(sel) => {
            let f = format!("{base}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
            let terms = parse::list(sel.get("nodeSelectorTerms"), &f)?;
            Some(
                terms
                    .iter()
                    .enumerate()
                    .map(|(i, t)| NodeSelectorTerm::parse(t, &format!("{f}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
    };
    let f = format!("{base}.preferredDuringSchedulingIgnoredDuringExecution");
    let mut preferred = Vec::new();
    for (i, p) in parse::list(na.get("preferredDuringSchedulingIgnoredDuringExecution"), &f)?
        .iter()
        .enumerate()
    {
        let weight = p.get("weight").and_then(Value::as_i64).unwrap_or(0);
        if weight != 0 {
            let term = NodeSelectorTerm::parse(
                p.get("preference").unwrap_or(&Value::Null),
                &format!("{f}[{i}].preference"),
            )?;
            preferred.push((weight, term));
        }
    }
    Ok((required, preferred))
}

/// Whether `node` satisfies the pod's nodeSelector and required node affinity
/// (`GetRequiredNodeAffinity(pod).Match(node)`).
pub fn matches_required(pod: &PodInfo, node: &NodeInfo) -> bool {
    pod.node_selector.iter().all(|(k, v)| node.label(k) == Some(v.as_str()))
        && pod
            .required_node_affinity
            .as_ref()
            .is_none_or(|terms| terms.iter().any(|t| t.matches(&node.name, &node.labels)))
}

pub struct NodeAffinity;

impl Filter for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, _pod: &PodInfo, _cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        Ok(Box::new(NodeAffinity))
    }
}

impl NodeFilter for NodeAffinity {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        if matches_required(pod, node) {
            Ok(())
        } else {
            Err(Rejection::new(NAME, Code::UnschedulableAndUnresolvable, ERR_REASON))
        }
    }
}

impl Score for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The sum of the weights of the preferred terms a node matches, scaled by the best node.
    fn score(&self, pod: &PodInfo, _cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| {
                pod.preferred_node_affinity
                    .iter()
                    .filter(|(_, t)| t.matches(&n.name, &n.labels))
                    .map(|(w, _)| w)
                    .sum()
            })
            .collect();
        default_normalize(&mut scores, false);
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::{node_json, pod};
    use serde_json::json;

    fn node(name: &str, labels: Value) -> NodeInfo {
        NodeInfo::from_value(&node_json(name, 1000, 1 << 30, labels)).unwrap()
    }

    fn pod_with(spec: Value) -> std::sync::Arc<PodInfo> {
        pod(json!({"metadata": {"name": "p"}, "spec": spec}))
    }

    #[test]
    fn node_selector_and_required_terms() {
        let p = pod_with(json!({"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                                      {"key": "cores", "operator": "Gt", "values": ["4"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]}]}}}}));
        let ok = node("n", json!({"disk": "ssd", "zone": "a", "cores": "8"}));
        assert!(NodeAffinity.filter(&p, &ok).is_ok());
        let few_cores = node("n", json!({"disk": "ssd", "zone": "a", "cores": "4"}));
        let r = NodeAffinity.filter(&p, &few_cores).unwrap_err();
        assert_eq!(r.reasons, vec![ERR_REASON.to_string()]);
        assert!(
            NodeAffinity
                .filter(&p, &node("special", json!({"disk": "ssd"})))
                .is_ok(),
            "second term by name"
        );
        assert!(
            NodeAffinity.filter(&p, &node("special", json!({}))).is_err(),
            "nodeSelector still applies"
        );
    }

    #[test]
    fn not_in_and_does_not_exist_match_missing_labels() {
        let p = pod_with(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["c"]},
                                      {"key": "gpu", "operator": "DoesNotExist"}]}]}}}}));
        assert!(NodeAffinity.filter(&p, &node("n", json!({}))).is_ok());
        assert!(NodeAffinity.filter(&p, &node("n", json!({"zone": "c"}))).is_err());
        assert!(NodeAffinity.filter(&p, &node("n", json!({"gpu": "1"}))).is_err());
        let empty_term = pod_with(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}));
        assert!(NodeAffinity.filter(&empty_term, &node("n", json!({}))).is_err());
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let p = pod_with(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}}),
        );
        let (a, b, c) = (
            node("a", json!({"zone": "a"})),
            node("b", json!({"zone": "a", "disk": "x"})),
            node("c", json!({})),
        );
        assert_eq!(
            NodeAffinity.score(&p, &Cluster::default(), &[&a, &b, &c]),
            vec![25, 100, 0]
        );
    }
}

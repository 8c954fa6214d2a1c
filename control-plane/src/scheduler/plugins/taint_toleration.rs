//! TaintToleration: a node's `NoSchedule` and `NoExecute` taints keep out every pod that does not
//! tolerate them; `PreferNoSchedule` taints only lower the node's score.
//!
//! This is also how node readiness reaches the scheduler: the node lifecycle controller taints a
//! NotReady or unreachable node with `node.kubernetes.io/not-ready` / `unreachable`
//! (`NoSchedule`, then `NoExecute`), so no separate readiness check exists.
//!
//! Matching follows `Toleration.ToleratesTaint`: an empty toleration effect matches every effect,
//! an empty key with `Exists` matches every taint, `Equal` (or no operator) compares values.

use serde_json::Value;

use crate::scheduler::framework::{Code, Filter, NodeFilter, Rejection, Score};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins::{default_normalize, parse};

pub const NAME: &str = "TaintToleration";

/// A node taint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// A pod toleration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    /// `Exists`, `Equal`, or `""` (meaning `Equal`).
    pub operator: String,
    pub value: String,
    /// `""` matches every effect.
    pub effect: String,
}

impl Toleration {
    /// Kubernetes' `ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator.as_str() {
            "" | "Equal" => self.value == taint.value,
            "Exists" => true,
            _ => false,
        }
    }
}

/// `spec.taints` of a node.
pub fn parse_taints(v: Option<&Value>) -> Result<Vec<Taint>, String> {
    parse::list(v, "spec.taints")?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let f = format!("spec.taints[{i}]");
            Ok(Taint {
                key: parse::str_field(t, "key", &f)?,
                value: parse::str_field(t, "value", &f)?,
                effect: parse::str_field(t, "effect", &f)?,
            })
        })
        .collect()
}

/// `spec.tolerations` of a pod.
pub fn parse_tolerations(v: Option<&Value>) -> Result<Vec<Toleration>, String> {
    parse::list(v, "spec.tolerations")?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let f = format!("spec.tolerations[{i}]");
            Ok(Toleration {
                key: parse::str_field(t, "key", &f)?,
                operator: parse::str_field(t, "operator", &f)?,
                value: parse::str_field(t, "value", &f)?,
                effect: parse::str_field(t, "effect", &f)?,
            })
        })
        .collect()
}

/// The first `NoSchedule`/`NoExecute` taint of `taints` that `tolerations` do not tolerate.
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations.iter().any(|tol| tol.tolerates(t)))
}

pub struct TaintToleration;

impl Filter for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, _pod: &PodInfo, _cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        Ok(Box::new(TaintToleration))
    }
}

impl NodeFilter for TaintToleration {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        match untolerated(&node.taints, &pod.tolerations) {
            None => Ok(()),
            Some(t) => Err(Rejection::new(
                NAME,
                Code::UnschedulableAndUnresolvable,
                format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value),
            )),
        }
    }
}

impl Score for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Counts the `PreferNoSchedule` taints the pod does not tolerate; fewer is better.
    fn score(&self, pod: &PodInfo, _cluster: &Cluster, nodes: &[&NodeInfo]) -> Vec<i64> {
        let prefer: Vec<&Toleration> = pod
            .tolerations
            .iter()
            .filter(|t| t.effect.is_empty() || t.effect == "PreferNoSchedule")
            .collect();
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| {
                n.taints
                    .iter()
                    .filter(|t| t.effect == "PreferNoSchedule" && !prefer.iter().any(|tol| tol.tolerates(t)))
                    .count() as i64
            })
            .collect();
        default_normalize(&mut scores, true);
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::pod;
    use serde_json::json;

    fn node(taints: Value) -> NodeInfo {
        NodeInfo::from_value(&json!({"metadata": {"name": "n"}, "spec": {"taints": taints}})).unwrap()
    }

    fn pod_tolerating(tolerations: Value) -> std::sync::Arc<PodInfo> {
        pod(json!({"metadata": {"name": "p"}, "spec": {"tolerations": tolerations}}))
    }

    #[test]
    fn untolerated_taint_is_named() {
        let n = node(json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]));
        let r = TaintToleration.filter(&pod_tolerating(json!([])), &n).unwrap_err();
        assert_eq!(
            r.reasons,
            vec!["node(s) had untolerated taint {dedicated: gpu}".to_string()]
        );
        assert_eq!(r.code, Code::UnschedulableAndUnresolvable);
        let eq = pod_tolerating(json!([{"key": "dedicated", "operator": "Equal", "value": "gpu"}]));
        assert!(TaintToleration.filter(&eq, &n).is_ok());
        let wrong = pod_tolerating(json!([{"key": "dedicated", "value": "cpu"}]));
        assert!(TaintToleration.filter(&wrong, &n).is_err());
        let all = pod_tolerating(json!([{"operator": "Exists"}]));
        assert!(TaintToleration.filter(&all, &n).is_ok());
        let other_effect = pod_tolerating(json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]));
        assert!(TaintToleration.filter(&other_effect, &n).is_err());
    }

    #[test]
    fn not_ready_taint_blocks_and_prefer_only_scores() {
        let n = node(json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]));
        assert!(TaintToleration.filter(&pod_tolerating(json!([])), &n).is_err());
        let soft =
            node(json!([{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "PreferNoSchedule"}]));
        assert!(TaintToleration.filter(&pod_tolerating(json!([])), &soft).is_ok());
        let clean = node(json!([]));
        let p = pod_tolerating(json!([{"key": "a", "operator": "Exists"}]));
        let scores = TaintToleration.score(&p, &Cluster::default(), &[&soft, &clean]);
        assert_eq!(scores, vec![0, 100]);
    }
}

//! The in-tree plugins, one module each, with Kubernetes' names and semantics
//! (`pkg/scheduler/framework/plugins/`).
//!
//! # Layout
//! - filters: [`node_unschedulable`], [`node_name`], [`taint_toleration`], [`node_affinity`],
//!   [`node_ports`], [`node_resources_fit`], [`pod_topology_spread`], [`inter_pod_affinity`].
//! - scores: [`taint_toleration`], [`node_affinity`], [`node_resources_fit`],
//!   [`balanced_allocation`], [`pod_topology_spread`], [`inter_pod_affinity`], [`image_locality`].
//!
//! Node readiness has no plugin: the node lifecycle controller expresses NotReady and Unreachable
//! as `node.kubernetes.io/not-ready` / `unreachable` taints, which [`taint_toleration`] handles.
//!
//! Plugins are cheap values built from the [`Profile`] for each cycle, so a profile stays plain
//! data (names and weights) that config parsing and tests can compare.

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use crate::scheduler::framework::{Filter, Profile, Score};

/// Kubernetes 1.32's default score plugins and weights, in its order.
pub const DEFAULT_SCORE_WEIGHTS: &[(&str, i64)] = &[
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_resources_fit::NAME, 1),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (balanced_allocation::NAME, 1),
    (image_locality::NAME, 1),
];

/// `DefaultPreemption`, the PostFilter plugin (see `preemption.rs`).
pub const DEFAULT_PREEMPTION: &str = "DefaultPreemption";

/// Kubernetes' default multi-point plugins in order, with their score weight (0 = not a scorer).
/// Names that skiff accepts in a configuration but implements elsewhere or not at all (queue sort,
/// binding, volumes, gates) are listed so that configurations written for kube-scheduler load.
pub const DEFAULT_MULTI_POINT: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    (node_unschedulable::NAME, 0),
    (node_name::NAME, 0),
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_ports::NAME, 0),
    (node_resources_fit::NAME, 1),
    ("VolumeRestrictions", 0),
    ("NodeVolumeLimits", 0),
    ("VolumeBinding", 0),
    ("VolumeZone", 0),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (DEFAULT_PREEMPTION, 0),
    (balanced_allocation::NAME, 1),
    (image_locality::NAME, 1),
    ("DefaultBinder", 0),
];

/// In-tree names that are valid in a configuration but are not filter or score plugins here.
const OTHER_KNOWN: &[&str] = &[
    "DynamicResources",
    "EBSLimits",
    "GCEPDLimits",
    "AzureDiskLimits",
    "CinderLimits",
];

/// Whether `name` is a plugin kube-scheduler knows.
pub fn is_known(name: &str) -> bool {
    DEFAULT_MULTI_POINT.iter().any(|(n, _)| *n == name) || OTHER_KNOWN.contains(&name)
}

/// Whether `name` implements Filter.
pub fn is_filter(name: &str) -> bool {
    filter_plugin(name, &Profile::default()).is_some()
}

/// Whether `name` implements Score.
pub fn is_score(name: &str) -> bool {
    score_plugin(name, &Profile::default()).is_some()
}

/// The filter plugin called `name`, configured from `profile`.
pub fn filter_plugin(name: &str, _profile: &Profile) -> Option<Box<dyn Filter>> {
    Some(match name {
        node_unschedulable::NAME => Box::new(node_unschedulable::NodeUnschedulable),
        node_name::NAME => Box::new(node_name::NodeName),
        taint_toleration::NAME => Box::new(taint_toleration::TaintToleration),
        node_affinity::NAME => Box::new(node_affinity::NodeAffinity),
        node_ports::NAME => Box::new(node_ports::NodePorts),
        node_resources_fit::NAME => Box::new(node_resources_fit::NodeResourcesFit::default()),
        pod_topology_spread::NAME => Box::new(pod_topology_spread::PodTopologySpread),
        inter_pod_affinity::NAME => Box::new(inter_pod_affinity::InterPodAffinity::default()),
        _ => return None,
    })
}

/// The score plugin called `name`, configured from `profile`.
pub fn score_plugin(name: &str, profile: &Profile) -> Option<Box<dyn Score>> {
    Some(match name {
        taint_toleration::NAME => Box::new(taint_toleration::TaintToleration),
        node_affinity::NAME => Box::new(node_affinity::NodeAffinity),
        node_resources_fit::NAME => Box::new(node_resources_fit::NodeResourcesFit {
            args: profile.fit.clone(),
        }),
        balanced_allocation::NAME => Box::new(balanced_allocation::BalancedAllocation),
        pod_topology_spread::NAME => Box::new(pod_topology_spread::PodTopologySpread),
        inter_pod_affinity::NAME => Box::new(inter_pod_affinity::InterPodAffinity {
            hard_pod_affinity_weight: profile.hard_pod_affinity_weight,
        }),
        image_locality::NAME => Box::new(image_locality::ImageLocality),
        _ => return None,
    })
}

/// Kubernetes' `DefaultNormalizeScore`: scales to 0..=100 by the maximum, optionally reversed.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    for s in scores.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => crate::scheduler::framework::MAX_NODE_SCORE,
            (0, false) => *s,
            _ => {
                let v = crate::scheduler::framework::MAX_NODE_SCORE * *s / max;
                if reverse {
                    crate::scheduler::framework::MAX_NODE_SCORE - v
                } else {
                    v
                }
            }
        };
    }
}

/// Small parsing helpers shared by the plugins' pod-spec parsers.
pub(crate) mod parse {
    use serde_json::Value;

    /// A string field, `""` if absent; an error if present but not a string.
    pub fn str_field(v: &Value, key: &str, field: &str) -> Result<String, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{field}.{key}: must be a string, got {other}")),
        }
    }

    /// A list field, empty if absent; an error if present but not a list.
    pub fn list<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a [Value], String> {
        match v {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(format!("{field}: must be a list, got {other}")),
        }
    }

    /// A list of strings.
    pub fn strings(v: Option<&Value>, field: &str) -> Result<Vec<String>, String> {
        list(v, field)?
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{field}[{i}]: must be a string"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_scales_and_reverses() {
        let mut s = vec![0, 2, 4];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 2, 4];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
    }

    #[test]
    fn registry_knows_extension_points() {
        assert!(is_filter("NodePorts") && !is_score("NodePorts"));
        assert!(is_score("ImageLocality") && !is_filter("ImageLocality"));
        assert!(is_known("VolumeBinding") && !is_known("Foo"));
    }
}

//! The objects of the scheduler benchmark, in the manner of Kubernetes' scheduler_perf: Node
//! objects with capacity but no agent behind them, and pods of one of a few shapes. Pure.

use std::fmt;
use std::str::FromStr;

use hyper::body::Bytes;
use serde_json::{json, Value};

/// Zones the nodes are spread over (`topology.kubernetes.io/zone`).
pub const ZONES: u64 = 10;
/// Label of the benchmark's pods.
pub const APP: &str = "skiff-sched-bench";

/// What the pods ask of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Requests only (scheduler_perf's SchedulingBasic).
    Basic,
    /// A tenth of the nodes carry a NoSchedule taint the pods do not tolerate, another tenth a
    /// PreferNoSchedule one.
    Taints,
    /// Required node affinity to half the zones, preferred affinity to one of them.
    Affinity,
    /// Topology spread over zones (maxSkew 1, DoNotSchedule).
    Spread,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Basic => "basic",
            Shape::Taints => "taints",
            Shape::Affinity => "affinity",
            Shape::Spread => "spread",
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "basic" => Ok(Shape::Basic),
            "taints" => Ok(Shape::Taints),
            "affinity" => Ok(Shape::Affinity),
            "spread" => Ok(Shape::Spread),
            other => Err(format!("unknown shape {other:?}: basic, taints, affinity or spread")),
        }
    }
}

pub fn node_name(run: &str, i: u64) -> String {
    format!("sb-{run}-n{i}")
}

pub fn pod_name(i: u64) -> String {
    format!("sb-p{i}")
}

fn zone(i: u64) -> String {
    format!("zone-{}", i % ZONES)
}

/// Node `i`: scheduler_perf's default node (4 cpu, 32Gi, 110 pods), labelled and, for the
/// taints shape, tainted.
pub fn node(shape: Shape, run: &str, i: u64) -> Value {
    let name = node_name(run, i);
    let mut taints = Vec::new();
    if shape == Shape::Taints {
        match i % 10 {
            0 => taints.push(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})),
            1 => taints.push(json!({"key": "flaky", "value": "yes", "effect": "PreferNoSchedule"})),
            _ => {}
        }
    }
    let resources = json!({"cpu": "4", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": zone(i),
            "skiff.dev/bench-run": run,
        }},
        "spec": {"taints": taints},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

/// Pod `i` of the run, in namespace `ns`.
pub fn pod(shape: Shape, ns: &str, i: u64) -> Value {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "busybox:1.36",
                        "resources": {"requests": {"cpu": "10m", "memory": "50Mi"}}}],
        "automountServiceAccountToken": false,
    });
    match shape {
        Shape::Basic | Shape::Taints => {}
        Shape::Affinity => {
            let zones: Vec<String> = (0..ZONES / 2).map(zone).collect();
            spec["affinity"] = json!({"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": zones}]}
                ]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 10, "preference": {"matchExpressions": [
                        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone(i)]}
                    ]}}
                ],
            }});
        }
        Shape::Spread => {
            spec["topologySpreadConstraints"] = json!([{
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": APP}},
            }]);
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(i), "namespace": ns, "labels": {"app": APP}},
        "spec": spec,
    })
}

pub fn body(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// The node a watch event's pod is bound to, with the pod's name: None until bound.
pub fn binding_of(event: &[u8]) -> Result<Option<(String, String)>, String> {
    let v: Value = serde_json::from_slice(event).map_err(|e| format!("bad watch event: {e}"))?;
    if v["type"] == "ERROR" {
        return Err(format!("watch ERROR event: {}", v["object"]["message"]));
    }
    let o = &v["object"];
    let node = o.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    Ok((!node.is_empty() && !name.is_empty()).then(|| (name.to_string(), node.to_string())))
}

/// p-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_print() {
        for s in ["basic", "taints", "affinity", "spread"] {
            assert_eq!(s.parse::<Shape>().map(|x| x.to_string()), Ok(s.to_string()));
        }
        assert!("other".parse::<Shape>().is_err());
    }

    #[test]
    fn taints_mark_a_tenth_of_the_nodes() {
        let tainted = (0..100)
            .filter(|&i| node(Shape::Taints, "r", i)["spec"]["taints"][0]["effect"] == "NoSchedule")
            .count();
        assert_eq!(tainted, 10);
        assert!(node(Shape::Basic, "r", 0)["spec"]["taints"]
            .as_array()
            .is_some_and(Vec::is_empty));
    }

    #[test]
    fn pods_carry_their_shape() {
        assert!(pod(Shape::Affinity, "ns", 3)["spec"]["affinity"]["nodeAffinity"].is_object());
        assert_eq!(
            pod(Shape::Spread, "ns", 3)["spec"]["topologySpreadConstraints"][0]["maxSkew"],
            1
        );
        assert!(pod(Shape::Basic, "ns", 3)["spec"].get("affinity").is_none());
    }

    #[test]
    fn only_bound_pods_count() {
        let unbound = br#"{"type":"ADDED","object":{"metadata":{"name":"p"},"spec":{}}}"#;
        assert_eq!(binding_of(unbound), Ok(None));
        let bound = br#"{"type":"MODIFIED","object":{"metadata":{"name":"p"},"spec":{"nodeName":"n"}}}"#;
        assert_eq!(binding_of(bound), Ok(Some(("p".into(), "n".into()))));
        assert!(binding_of(br#"{"type":"ERROR","object":{"message":"gone"}}"#).is_err());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}

//! Small, pure helpers the workload controllers share: reading pods (active, ready, available),
//! owner references, timestamps, and the claim decision of Kubernetes' `ControllerRefManager`.
//!
//! Objects are `serde_json::Value`s in the Kubernetes JSON shape, as the API server stores them.
//! Nothing here trusts the shape: a field of the wrong type reads as absent, so a malformed object
//! can make a controller do less, never panic.
//!
//! The semantics follow kubernetes/kubernetes `pkg/api/v1/pod` (`IsPodReady`, `IsPodAvailable`),
//! `pkg/controller/controller_utils.go` (`IsPodActive`) and `pkg/controller/controller_ref_manager.go`
//! (`ClaimObject`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::selector::LabelSelector;

/// The label a Deployment adds to its ReplicaSets and their pods so sibling ReplicaSets never select
/// each other's pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Parses an RFC 3339 timestamp field (`metadata.creationTimestamp`, a condition's
/// `lastTransitionTime`); anything else is `None`.
pub fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Renders a time the way Kubernetes serializes `metav1.Time`: seconds precision, `Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `metadata.name`, or `""`.
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

/// `metadata.uid`, or `""`.
pub fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("")
}

/// `metadata.namespace`, or `""`.
pub fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("")
}

/// `metadata.creationTimestamp`, parsed.
pub fn creation_timestamp(obj: &Value) -> Option<DateTime<Utc>> {
    parse_time(obj.pointer("/metadata/creationTimestamp"))
}

/// Whether `metadata.deletionTimestamp` is set (the object is being deleted).
pub fn is_being_deleted(obj: &Value) -> bool {
    !matches!(obj.pointer("/metadata/deletionTimestamp"), None | Some(Value::Null))
}

/// `metadata.labels` (empty when absent or malformed).
pub fn labels_of(obj: &Value) -> Map<String, Value> {
    match obj.pointer("/metadata/labels") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

/// An integer field, accepting the float rendering some clients send (`3.0`).
pub fn int_at(obj: &Value, pointer: &str) -> Option<i64> {
    let v = obj.pointer(pointer)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// `status.phase`, or `""`.
pub fn pod_phase(pod: &Value) -> &str {
    pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")
}

/// `spec.nodeName`, or `""` for an unscheduled pod.
pub fn pod_node_name(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("")
}

/// A pod that still counts toward its controller's replicas: not Succeeded or Failed, and not
/// being deleted (Kubernetes' `IsPodActive`).
pub fn is_pod_active(pod: &Value) -> bool {
    let phase = pod_phase(pod);
    phase != "Succeeded" && phase != "Failed" && !is_being_deleted(pod)
}

/// The pod's `Ready` condition, if it reports one.
fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Value) -> bool {
    ready_condition(pod)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some("True")
}

/// When a ready pod became ready (`lastTransitionTime` of its `Ready` condition); `None` for a pod
/// that is not ready or does not say.
pub fn pod_ready_time(pod: &Value) -> Option<DateTime<Utc>> {
    if !is_pod_ready(pod) {
        return None;
    }
    parse_time(ready_condition(pod)?.get("lastTransitionTime"))
}

/// Ready, and ready for more than `min_ready_seconds` (Kubernetes' `IsPodAvailable`: with
/// `minReadySeconds` 0 every ready pod is available; otherwise a pod without a transition time
/// is not).
pub fn is_pod_available(pod: &Value, min_ready_seconds: i64, now: DateTime<Utc>) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match pod_ready_time(pod) {
        Some(since) => since + chrono::Duration::seconds(min_ready_seconds) < now,
        None => false,
    }
}

/// When a ready but not yet available pod will become available, so a controller can requeue
/// itself for that moment instead of polling.
pub fn pod_available_at(pod: &Value, min_ready_seconds: i64) -> Option<DateTime<Utc>> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pod_ready_time(pod).map(|since| since + chrono::Duration::seconds(min_ready_seconds))
}

/// The highest `restartCount` of the pod's containers (init containers included), used to prefer
/// crash-looping pods as scale-down victims.
pub fn max_container_restarts(pod: &Value) -> i64 {
    ["/status/containerStatuses", "/status/initContainerStatuses"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .filter_map(|s| int_at(s, "/restartCount"))
        .max()
        .unwrap_or(0)
}

/// The owner reference with `controller: true`, as `(kind, name, uid)`.
pub fn controller_of(obj: &Value) -> Option<(String, String, String)> {
    let refs = obj.pointer("/metadata/ownerReferences")?.as_array()?;
    refs.iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (field("kind"), field("name"), field("uid"))
        })
}

/// The uid of the object's controller, if it has one.
pub fn controller_uid(obj: &Value) -> Option<String> {
    controller_of(obj).map(|(_, _, uid)| uid)
}

/// An owner reference making `owner` the controller of the object that carries it; blocking owner
/// deletion so foreground deletion of the owner waits for its dependents.
pub fn owner_reference(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Parses a workload's `spec.selector`. apps/v1 requires a non-empty selector, so a missing, empty
/// or invalid one yields `None`: a workload must never select every pod of its namespace.
pub fn workload_selector(selector: &Value) -> Option<LabelSelector> {
    let parsed = LabelSelector::from_label_selector_json(selector).ok()?;
    if parsed.is_empty() || parsed.is_nothing() {
        return None;
    }
    Some(parsed)
}

/// Whether a `metav1.LabelSelector` selects a label map (`metadata.labels`). An empty or missing
/// selector matches nothing; see [`workload_selector`].
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let Some(sel) = workload_selector(selector) else {
        return false;
    };
    match labels {
        Value::Object(m) => sel.matches(m),
        _ => sel.matches(&Map::new()),
    }
}

/// What a controller should do about one candidate dependent (Kubernetes' `ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours already, and still selected.
    Owned,
    /// An orphan we select: patch our controller reference onto it, then it is ours.
    Adopt,
    /// Ours but no longer selected: remove our controller reference.
    Release,
    /// Someone else's, or not ours to take.
    Ignore,
}

/// Decides whether `owner` (selecting with `selector`) owns, adopts, releases or ignores `obj`.
/// A controller being deleted neither adopts nor releases; an object being deleted is not adopted;
/// objects of other namespaces are never adopted.
pub fn claim(owner: &Value, selector: Option<&LabelSelector>, obj: &Value) -> Claim {
    let matches = selector.is_some_and(|s| s.matches(&labels_of(obj)));
    let owner_deleting = is_being_deleted(owner);
    match controller_uid(obj) {
        Some(uid) if uid != uid_of(owner) => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !matches || is_being_deleted(obj) => Claim::Ignore,
        None if namespace_of(owner) != namespace_of(obj) => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// Strips what JSON adds but Kubernetes' semantic equality ignores (nulls, empty maps and lists),
/// so two objects that decode to the same Go struct compare equal.
pub fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let out: Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(a) => {
            let out: Vec<Value> = a.iter().map(|v| normalize(v).unwrap_or(Value::Null)).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        other => Some(other.clone()),
    }
}

/// Semantic equality of two JSON objects (see [`normalize`]).
pub fn semantically_equal(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(Some(&json!(s))).unwrap_or_default()
    }

    fn pod(phase: &str, ready: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}},
                           "status": {"phase": phase}});
        if let Some(since) = ready {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": since}]);
        }
        p
    }

    #[test]
    fn activity_readiness_and_availability() {
        let now = t("2024-01-01T00:01:00Z");
        assert!(is_pod_active(&pod("Running", None)));
        assert!(!is_pod_active(&pod("Failed", None)));
        assert!(!is_pod_active(&pod("Succeeded", None)));
        let mut deleting = pod("Running", None);
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(!is_pod_active(&deleting));

        let ready = pod("Running", Some("2024-01-01T00:00:30Z"));
        assert!(is_pod_ready(&ready));
        assert!(!is_pod_ready(&pod("Running", None)));
        assert!(is_pod_available(&ready, 0, now));
        assert!(is_pod_available(&ready, 29, now));
        assert!(
            !is_pod_available(&ready, 30, now),
            "exactly minReadySeconds is not yet available"
        );
        assert!(!is_pod_available(&pod("Running", None), 0, now));
        assert_eq!(pod_available_at(&ready, 30), Some(t("2024-01-01T00:01:00Z")));
    }

    #[test]
    fn owner_references_and_selectors() {
        let rs = json!({"metadata": {"name": "web", "uid": "u1", "namespace": "ns"}});
        let oref = owner_reference(&rs, "apps/v1", "ReplicaSet");
        let mut p = pod("Running", None);
        p["metadata"]["ownerReferences"] = json!([{"kind": "X", "name": "n", "uid": "u0"}, oref]);
        assert_eq!(
            controller_of(&p),
            Some(("ReplicaSet".into(), "web".into(), "u1".into()))
        );

        let sel = json!({"matchLabels": {"app": "x"}});
        assert!(selector_matches(&sel, &json!({"app": "x", "b": "c"})));
        assert!(!selector_matches(&sel, &json!({"app": "y"})));
        assert!(
            !selector_matches(&json!({}), &json!({"app": "x"})),
            "empty selects nothing"
        );
        assert!(!selector_matches(&Value::Null, &json!({"app": "x"})));
    }

    #[test]
    fn claim_decisions() {
        let rs = json!({"metadata": {"name": "web", "uid": "u1", "namespace": "ns"}});
        let sel = workload_selector(&json!({"matchLabels": {"app": "x"}}));
        let orphan = pod("Running", None);
        assert_eq!(claim(&rs, sel.as_ref(), &orphan), Claim::Adopt);
        let mut ours = orphan.clone();
        ours["metadata"]["ownerReferences"] = json!([owner_reference(&rs, "apps/v1", "ReplicaSet")]);
        assert_eq!(claim(&rs, sel.as_ref(), &ours), Claim::Owned);
        ours["metadata"]["labels"] = json!({"app": "other"});
        assert_eq!(claim(&rs, sel.as_ref(), &ours), Claim::Release);
        let mut theirs = orphan.clone();
        theirs["metadata"]["ownerReferences"] = json!([{"kind": "ReplicaSet", "uid": "u2", "controller": true}]);
        assert_eq!(claim(&rs, sel.as_ref(), &theirs), Claim::Ignore);
        let mut deleting_rs = rs.clone();
        deleting_rs["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(claim(&deleting_rs, sel.as_ref(), &orphan), Claim::Ignore);
        assert_eq!(claim(&deleting_rs, sel.as_ref(), &ours), Claim::Ignore);
    }

    #[test]
    fn semantic_equality_ignores_empties() {
        let a = json!({"metadata": {"labels": {"a": "b"}, "creationTimestamp": null}, "spec": {"volumes": []}});
        let b = json!({"metadata": {"labels": {"a": "b"}}, "spec": {}});
        assert!(semantically_equal(&a, &b));
        assert!(!semantically_equal(&a, &json!({"metadata": {"labels": {"a": "c"}}})));
    }
}

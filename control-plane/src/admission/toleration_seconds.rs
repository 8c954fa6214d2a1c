//! DefaultTolerationSeconds admission.
//!
//! Kubernetes' plugin (plugin/pkg/admission/defaulttolerationseconds) gives
//! every pod a bounded toleration of the `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` NoExecute taints (300 s by default), so a
//! pod is evicted five minutes after its node goes dark instead of instantly.
//! A pod that already tolerates a taint keeps its own choice. "Already
//! tolerates" is deliberately loose upstream: a toleration counts when its key
//! is that taint's key *or empty*, and its effect is NoExecute *or empty*; the
//! operator and value are not looked at.
//!
//! skiff differences: the 300 s defaults are constants (Kubernetes exposes
//! `--default-not-ready-toleration-seconds` /
//! `--default-unreachable-toleration-seconds`; use [`apply_with`] to vary
//! them). The caller decides when to run it: upstream runs it on pod create
//! and update, never on subresources.

use serde_json::{json, Map, Value};

pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Adds the two default tolerations with 300 s each where missing.
pub fn apply(pod: &mut Value) {
    apply_with(pod, DEFAULT_TOLERATION_SECONDS, DEFAULT_TOLERATION_SECONDS);
}

/// As [`apply`], with explicit durations for not-ready and unreachable.
pub fn apply_with(pod: &mut Value, not_ready_seconds: i64, unreachable_seconds: i64) {
    let Some(pod) = pod.as_object_mut() else {
        return;
    };
    let spec = pod.entry("spec").or_insert_with(|| Value::Object(Map::new()));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let (mut not_ready, mut unreachable) = (false, false);
    if let Some(list) = spec.get("tolerations").and_then(Value::as_array) {
        for t in list {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            if effect != "NoExecute" && !effect.is_empty() {
                continue;
            }
            not_ready |= key == NOT_READY_TAINT || key.is_empty();
            unreachable |= key == UNREACHABLE_TAINT || key.is_empty();
        }
    }
    if not_ready && unreachable {
        return;
    }
    let slot = spec.entry("tolerations").or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        // `tolerations: null` (or garbage that validation will reject anyway).
        *slot = Value::Array(Vec::new());
    }
    let Some(list) = slot.as_array_mut() else {
        return;
    };
    if !not_ready {
        list.push(toleration(NOT_READY_TAINT, not_ready_seconds));
    }
    if !unreachable {
        list.push(toleration(UNREACHABLE_TAINT, unreachable_seconds));
    }
}

fn toleration(key: &str, seconds: i64) -> Value {
    json!({
        "key": key,
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tolerations(pod: &Value) -> Vec<Value> {
        pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn adds_both_defaults_to_a_bare_pod() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        apply(&mut pod);
        assert_eq!(
            tolerations(&pod),
            vec![
                json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                       "effect": "NoExecute", "tolerationSeconds": 300}),
                json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                       "effect": "NoExecute", "tolerationSeconds": 300}),
            ]
        );
    }

    #[test]
    fn keeps_existing_tolerations_and_only_adds_the_missing_one() {
        let own = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 60});
        let other = json!({"key": "dedicated", "operator": "Equal", "value": "gpu",
                           "effect": "NoSchedule"});
        let mut pod = json!({"spec": {"tolerations": [other.clone(), own.clone()]}});
        apply(&mut pod);
        let got = tolerations(&pod);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], other);
        assert_eq!(got[1], own);
        assert_eq!(got[2]["key"], "node.kubernetes.io/unreachable");
        assert_eq!(got[2]["tolerationSeconds"], 300);
    }

    #[test]
    fn empty_key_or_effect_counts_as_tolerating() {
        // Tolerates everything: nothing is added.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        apply(&mut pod);
        assert_eq!(tolerations(&pod).len(), 1);

        // Empty key with NoExecute covers both taints.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists", "effect": "NoExecute"}]}});
        apply(&mut pod);
        assert_eq!(tolerations(&pod).len(), 1);

        // Matching key with no effect covers that taint; operator is not checked.
        let mut pod = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Equal", "value": "x"}]}});
        apply(&mut pod);
        let got = tolerations(&pod);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["key"], "node.kubernetes.io/not-ready");
    }

    #[test]
    fn other_effects_do_not_count() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "PreferNoSchedule"}]}});
        apply(&mut pod);
        assert_eq!(tolerations(&pod).len(), 4);
    }

    #[test]
    fn idempotent_and_tolerant_of_odd_shapes() {
        let mut pod = json!({"spec": {"tolerations": null}});
        apply(&mut pod);
        apply(&mut pod);
        assert_eq!(tolerations(&pod).len(), 2);

        let mut pod = json!({});
        apply_with(&mut pod, 10, 20);
        assert_eq!(tolerations(&pod)[0]["tolerationSeconds"], 10);
        assert_eq!(tolerations(&pod)[1]["tolerationSeconds"], 20);

        let mut not_a_pod = json!("x");
        apply(&mut not_a_pod);
        assert_eq!(not_a_pod, json!("x"));
    }
}

//! A pod's binding to a node, shared by `POST pods/<name>/binding` and the scheduler: set once
//! (`spec.nodeName` of a bound pod never changes), never for a pod being deleted, and the
//! `PodScheduled` condition turns True with it, as Kubernetes' binding storage does.

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry;
use crate::storage::{Storage, Stored};

/// Sets `condition` (by type) in `pod.status.conditions`, keeping lastTransitionTime when the
/// status does not change. True when anything changed.
pub fn set_condition(pod: &mut Value, mut condition: Value, now: &str) -> bool {
    let kind = condition["type"].clone();
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(conds) = pod["status"]["conditions"].as_array_mut() else {
        return false;
    };
    match conds.iter_mut().find(|c| c["type"] == kind) {
        Some(old) => {
            let same_status = old["status"] == condition["status"];
            if same_status && old["reason"] == condition["reason"] && old["message"] == condition["message"] {
                return false;
            }
            condition["lastTransitionTime"] = if same_status {
                old["lastTransitionTime"].clone()
            } else {
                json!(now)
            };
            *old = condition;
        }
        None => {
            condition["lastTransitionTime"] = json!(now);
            conds.push(condition);
        }
    }
    true
}

/// The pod bound to `node`, or why it cannot be.
pub fn bound(pod: &Value, node: &str, now: &str) -> ApiResult<Value> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if let Some(existing) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::conflict(
            "",
            "pods",
            name,
            &format!("pod {name} is already assigned to node \"{existing}\""),
        ));
    }
    if meta::is_deleting(pod) {
        return Err(ApiError::conflict(
            "",
            "pods",
            name,
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    let mut obj = pod.clone();
    obj["spec"]["nodeName"] = json!(node);
    set_condition(
        &mut obj,
        json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null}),
        now,
    );
    Ok(obj)
}

/// Binds the pod `current` holds (as read at `current.rv`) to `node`. When the pod changed since,
/// it is read again and bound if it still may be; a pod bound meanwhile is a 409.
pub async fn bind(storage: &Storage, ns: &str, name: &str, node: &str, current: Stored) -> ApiResult<Stored> {
    let pods = registry::pods();
    let mut current = current;
    for attempt in 0..2 {
        let obj = bound(&current.obj, node, &meta::now())?;
        match storage.update(pods, Some(ns), name, &obj, current.rv).await {
            Err(e) if e.code == 409 && attempt == 0 => {
                current = storage.must_get(pods, Some(ns), name).await?;
            }
            other => return other,
        }
    }
    Err(ApiError::stale("", "pods", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_sets_the_node_and_the_scheduled_condition() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": "t0"}
        ]}});
        let b = bound(&pod, "n1", "t1").unwrap();
        assert_eq!(b["spec"]["nodeName"], "n1");
        let c = &b["status"]["conditions"][0];
        assert_eq!(c["status"], "True");
        assert_eq!(c["lastTransitionTime"], "t1");
        assert!(c.get("reason").is_none());
    }

    #[test]
    fn a_bound_or_deleting_pod_cannot_be_bound() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"nodeName": "n1"}});
        let e = bound(&pod, "n2", "t").unwrap_err();
        assert_eq!(e.code, 409);
        assert!(e.status()["message"]
            .as_str()
            .unwrap()
            .contains("already assigned to node \"n1\""));
        let pod = json!({"metadata": {"name": "web", "deletionTimestamp": "t"}, "spec": {}});
        assert_eq!(bound(&pod, "n2", "t").unwrap_err().code, 409);
    }

    #[test]
    fn an_unchanged_condition_keeps_its_transition_time() {
        let mut pod = json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "a", "lastTransitionTime": "t0"}
        ]}});
        let c = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "a"});
        assert!(!set_condition(&mut pod, c, "t1"));
        let c = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "b"});
        assert!(set_condition(&mut pod, c, "t1"));
        assert_eq!(pod["status"]["conditions"][0]["lastTransitionTime"], "t0");
        assert_eq!(pod["status"]["conditions"][0]["message"], "b");
    }
}

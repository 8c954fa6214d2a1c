//! The pod printer: READY, STATUS and RESTARTS as kube-apiserver 1.32 computes them from the
//! container statuses, including restartable ("sidecar") init containers.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, condition_true, int, list, name, since, text, time};

pub(super) fn row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// The READY, STATUS and RESTARTS logic of kube-apiserver's pod printer.
pub(super) fn cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = list(pod, "/spec/initContainers");
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let total = list(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;
    let phase = text(pod, "/status/phase");
    let mut reason = match text(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let conditions = list(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let init_statuses = list(pod, "/status/initContainerStatuses");
    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += int(c, "/restartCount");
        let finished = time(c, "/lastState/terminated/finishedAt");
        last_restart = last_restart.max(finished);
        let sidecar = restartable(text(c, "/name"));
        if sidecar {
            sidecar_restarts += int(c, "/restartCount");
            last_sidecar_restart = last_sidecar_restart.max(finished);
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = text(c, "/state/waiting/reason");
        if terminated.is_some() && int(c, "/state/terminated/exitCode") == 0 {
            continue;
        } else if sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        } else if terminated.is_some() {
            reason = match text(c, "/state/terminated/reason") {
                "" if int(c, "/state/terminated/signal") != 0 => {
                    format!("Init:Signal:{}", int(c, "/state/terminated/signal"))
                }
                "" => format!("Init:ExitCode:{}", int(c, "/state/terminated/exitCode")),
                r => format!("Init:{r}"),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in list(pod, "/status/containerStatuses").iter().rev() {
            restarts += int(c, "/restartCount");
            last_restart = last_restart.max(time(c, "/lastState/terminated/finishedAt"));
            let waiting_reason = text(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            let terminated_reason = text(c, "/state/terminated/reason");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated.is_some() && !terminated_reason.is_empty() {
                reason = terminated_reason.to_string();
            } else if terminated.is_some() {
                let signal = int(c, "/state/terminated/signal");
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{}", int(c, "/state/terminated/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true) && c.pointer("/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        if text(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    let pod_ip = list(pod, "/status/podIPs")
        .first()
        .map(|p| text(p, "/ip"))
        .unwrap_or("");
    let gates = list(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                let kind = text(g, "/conditionType");
                conditions
                    .iter()
                    .find(|c| text(c, "/type") == kind)
                    .is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(pod),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(pod, now),
        json!(or_none(pod_ip)),
        json!(or_none(text(pod, "/spec/nodeName"))),
        json!(or_none(text(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::table;
    use super::super::test_util::*;
    use serde_json::{json, Value};

    #[test]
    fn pod_row() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2025-01-10T11:59:55Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.0.0.5"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-10T11:57:00Z"}}}
                ]
            }
        });
        let t = table("", "pods", &[pod], json!({"resourceVersion": "7"}), "Metadata", now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(
            column_names(&t),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        let c = cells(&t);
        assert_eq!(c[0], "web");
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "2 (3m ago)");
        assert_eq!(c[4], "5s");
        assert_eq!(c[5], "10.0.0.5");
        assert_eq!(c[6], "n1");
        assert_eq!(c[7], "<none>");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "web");
    }

    #[test]
    fn pod_status_variants() {
        let status = |pod: Value| cells(&table("", "pods", &[pod], json!({}), "None", now()))[2].clone();
        assert_eq!(
            status(json!({"metadata": {"name": "p"}, "status": {"phase": "Pending"}})),
            "Pending"
        );
        let init = json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}});
        assert_eq!(status(init), "Init:0/1");
        let done = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded",
                   "containerStatuses": [
                       {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                   ]}});
        let t = table("", "pods", &[done], json!({}), "None", now());
        assert_eq!(cells(&t)[2], "Completed");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
        assert!(t["rows"][0].get("object").is_none());
        let mut deleting = json!({"metadata": {"name": "p", "deletionTimestamp": "2025-01-10T11:00:00Z"},
            "status": {"phase": "Running"}});
        assert_eq!(status(deleting.clone()), "Terminating");
        deleting["status"]["reason"] = json!("NodeLost");
        assert_eq!(status(deleting), "Unknown");
    }
}

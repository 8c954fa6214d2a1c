//! The DaemonSet reconcile, step by step: eligibility, per-node sync, rolling updates, status.

use super::*;
use crate::controllers::podutil::parse_time;

fn t(s: &str) -> DateTime<Utc> {
    parse_time(Some(&json!(s))).unwrap_or_default()
}

fn now() -> DateTime<Utc> {
    t("2024-01-01T01:00:00Z")
}

fn ds(strategy: Value) -> Value {
    json!({
        "metadata": {"name": "agent", "namespace": "ns", "uid": "ds-uid", "generation": 3},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "agent:1"}]},
            },
            "updateStrategy": strategy,
        },
    })
}

fn node(name: &str, labels: Value, taints: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
}

/// A ready, available daemon pod of `d` on `node` carrying revision `hash`.
fn pod(d: &Value, name: &str, node: &str, hash: &str, created: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created,
                     "labels": {"app": "agent", CONTROLLER_REVISION_HASH_LABEL: hash},
                     "ownerReferences": [owner_reference(d, "apps/v1", "DaemonSet")]},
        "spec": {"nodeName": node},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
    })
}

fn hash_of(d: &Value) -> String {
    pod_template_hash(d.pointer("/spec/template").unwrap_or(&Value::Null), None)
}

fn target(p: &Value) -> String {
    target_node_name(p).unwrap_or_default()
}

fn status_int(plan: &Plan, key: &str) -> i64 {
    plan.status.get(key).and_then(Value::as_i64).unwrap_or(-1)
}

#[test]
fn one_pod_per_eligible_node() {
    let mut d = ds(Value::Null);
    d["spec"]["template"]["spec"]["nodeSelector"] = json!({"role": "worker"});
    d["spec"]["template"]["spec"]["tolerations"] = json!([
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]);
    let nodes = vec![
        node("w1", json!({"role": "worker"}), json!([])),
        node(
            "w2",
            json!({"role": "worker"}),
            json!([{"key": "gpu", "effect": "NoSchedule"}]),
        ),
        node(
            "w3",
            json!({"role": "worker"}),
            json!([{"key": "dedicated", "effect": "NoSchedule"}]),
        ),
        node(
            "w4",
            json!({"role": "worker"}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
        ),
        node("m1", json!({"role": "control"}), json!([])),
    ];
    let plan = reconcile(&d, &nodes, &[], now());
    let targets: Vec<String> = plan.create.iter().map(target).collect();
    assert_eq!(
        targets,
        vec!["w1", "w2", "w4"],
        "w3 untolerated taint, m1 wrong selector"
    );
    assert!(plan.delete.is_empty());

    let p = &plan.create[0];
    assert_eq!(p["metadata"]["generateName"], "agent-");
    assert_eq!(p["metadata"]["namespace"], "ns");
    assert_eq!(p["metadata"]["labels"]["app"], "agent");
    assert_eq!(
        p["metadata"]["labels"][CONTROLLER_REVISION_HASH_LABEL],
        json!(hash_of(&d))
    );
    assert_eq!(p["metadata"]["labels"][TEMPLATE_GENERATION_LABEL], "3");
    assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "ds-uid");
    assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    assert!(p["spec"].get("nodeName").is_none(), "the scheduler binds");
    assert_eq!(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
        json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w1"]}]}]})
    );
    let tols = p["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
    let not_ready: Vec<&Value> = tols
        .iter()
        .filter(|t| t["key"] == "node.kubernetes.io/not-ready")
        .collect();
    assert_eq!(not_ready.len(), 1, "the user's identical toleration is replaced");
    assert!(not_ready[0].get("tolerationSeconds").is_none());
    for key in [
        "unreachable",
        "disk-pressure",
        "memory-pressure",
        "pid-pressure",
        "unschedulable",
    ] {
        assert!(
            tols.iter().any(|t| t["key"] == format!("node.kubernetes.io/{key}")),
            "{key}"
        );
    }
    assert!(!tols
        .iter()
        .any(|t| t["key"] == "node.kubernetes.io/network-unavailable"));
    assert!(tols.iter().any(|t| t["key"] == "gpu"));

    assert_eq!(status_int(&plan, "desiredNumberScheduled"), 3);
    assert_eq!(status_int(&plan, "currentNumberScheduled"), 0);
    assert_eq!(status_int(&plan, "numberUnavailable"), 3);
    assert_eq!(status_int(&plan, "observedGeneration"), 3);
    assert!(plan.status_changed);
}

#[test]
fn host_network_pods_tolerate_network_unavailable_and_affinity_is_replaced() {
    let mut d = ds(Value::Null);
    d["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    d["spec"]["template"]["spec"]["affinity"] = json!({"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}],
    }});
    let nodes = vec![
        node(
            "a1",
            json!({"zone": "a"}),
            json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
        ),
        node("b1", json!({"zone": "b"}), json!([])),
    ];
    let plan = reconcile(&d, &nodes, &[], now());
    assert_eq!(plan.create.len(), 1);
    let p = &plan.create[0];
    assert_eq!(target(p), "a1");
    let na = &p["spec"]["affinity"]["nodeAffinity"];
    assert!(
        na["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
            .get("matchExpressions")
            .is_none()
    );
    assert_eq!(na["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 1);
}

#[test]
fn deletes_extras_misplaced_failed_and_orphaned_pods() {
    let d = ds(Value::Null);
    let h = hash_of(&d);
    let nodes = vec![
        node("n1", json!({}), json!([])),
        node("n2", json!({}), json!([])),
        node("n3", json!({}), json!([{"key": "evict", "effect": "NoExecute"}])),
        node("n4", json!({}), json!([{"key": "soft", "effect": "NoSchedule"}])),
    ];
    let mut failed = pod(&d, "failed", "n2", &h, "2024-01-01T00:00:00Z");
    failed["status"]["phase"] = json!("Failed");
    let mut other = pod(&d, "not-ours", "n1", &h, "2024-01-01T00:00:00Z");
    other["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
    let pods = vec![
        pod(&d, "newer", "n1", &h, "2024-01-01T00:00:10Z"),
        pod(&d, "oldest", "n1", &h, "2024-01-01T00:00:00Z"),
        failed,
        pod(&d, "on-n3", "n3", &h, "2024-01-01T00:00:00Z"),
        pod(&d, "on-n4", "n4", &h, "2024-01-01T00:00:00Z"),
        pod(&d, "on-gone", "gone", &h, "2024-01-01T00:00:00Z"),
        other,
    ];
    let plan = reconcile(&d, &nodes, &pods, now());
    let mut deleted = plan.delete.clone();
    deleted.sort();
    assert_eq!(deleted, vec!["failed", "newer", "on-gone", "on-n3"]);
    assert!(
        plan.create.is_empty(),
        "n2's replacement waits for the failed pod to go"
    );

    // Status: n1, n2 desired (n4 keeps its pod but should not run one: misscheduled with n3).
    assert_eq!(status_int(&plan, "desiredNumberScheduled"), 2);
    assert_eq!(status_int(&plan, "currentNumberScheduled"), 2);
    assert_eq!(status_int(&plan, "numberMisscheduled"), 2);
    assert_eq!(
        status_int(&plan, "numberReady"),
        2,
        "the failed pod still reports its Ready condition"
    );

    // Once the failed pod is gone, n2 gets a new one.
    let rest: Vec<Value> = pods.into_iter().filter(|p| name_of(p) != "failed").collect();
    let plan = reconcile(&d, &nodes, &rest, now());
    assert_eq!(plan.create.iter().map(target).collect::<Vec<_>>(), vec!["n2"]);
}

#[test]
fn terminating_pod_blocks_a_replacement() {
    let d = ds(Value::Null);
    let mut p = pod(&d, "going", "n1", &hash_of(&d), "2024-01-01T00:00:00Z");
    p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:59:00Z");
    let plan = reconcile(&d, &[node("n1", json!({}), json!([]))], &[p], now());
    assert!(plan.create.is_empty() && plan.delete.is_empty());
}

#[test]
fn rolling_update_respects_max_unavailable() {
    let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}));
    let nodes: Vec<Value> = (1..=5).map(|i| node(&format!("n{i}"), json!({}), json!([]))).collect();
    let mut pods: Vec<Value> = (1..=5)
        .map(|i| {
            pod(
                &d,
                &format!("old{i}"),
                &format!("n{i}"),
                "old-hash",
                "2024-01-01T00:00:00Z",
            )
        })
        .collect();
    let plan = reconcile(&d, &nodes, &pods, now());
    assert_eq!(plan.delete, vec!["old1", "old2"]);
    assert!(plan.create.is_empty());
    assert_eq!(status_int(&plan, "updatedNumberScheduled"), 0);
    assert_eq!(status_int(&plan, "numberAvailable"), 5);

    // old1 gone, old2 terminating; n1 gets its new pod from the per-node sync, no more deletions.
    pods.remove(0);
    pods[0]["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:59:00Z");
    let plan = reconcile(&d, &nodes, &pods, now());
    assert_eq!(plan.create.iter().map(target).collect::<Vec<_>>(), vec!["n1"]);
    assert!(plan.delete.is_empty());

    // n1 has a new pod not yet ready, n2's old pod is still terminating: both count as
    // unavailable, so nothing else may go.
    let mut fresh = pod(&d, "new1", "n1", &hash_of(&d), "2024-01-01T00:59:30Z");
    fresh["status"]["conditions"][0]["status"] = json!("False");
    pods.push(fresh.clone());
    let plan = reconcile(&d, &nodes, &pods, now());
    assert!(plan.delete.is_empty() && plan.create.is_empty(), "{plan:?}");
    assert_eq!(status_int(&plan, "updatedNumberScheduled"), 1);
    assert_eq!(status_int(&plan, "numberReady"), 4);

    // new1 ready and n2 replaced: one unavailable (new2), so one more old pod may go.
    pods.retain(|p| name_of(p) != "old2" && name_of(p) != "new1");
    pods.push(pod(&d, "new1", "n1", &hash_of(&d), "2024-01-01T00:59:30Z"));
    let mut new2 = pod(&d, "new2", "n2", &hash_of(&d), "2024-01-01T00:59:30Z");
    new2["status"]["conditions"] = json!([]);
    pods.push(new2);
    let plan = reconcile(&d, &nodes, &pods, now());
    assert_eq!(plan.delete, vec!["old3"]);
}

#[test]
fn unavailable_old_pods_are_replaced_regardless_and_on_delete_never() {
    let d = ds(Value::Null);
    let nodes: Vec<Value> = (1..=3).map(|i| node(&format!("n{i}"), json!({}), json!([]))).collect();
    let mut pods: Vec<Value> = (1..=3)
        .map(|i| {
            pod(
                &d,
                &format!("old{i}"),
                &format!("n{i}"),
                "old-hash",
                "2024-01-01T00:00:00Z",
            )
        })
        .collect();
    for p in pods.iter_mut().take(2) {
        p["status"]["conditions"][0]["status"] = json!("False");
    }
    let plan = reconcile(&d, &nodes, &pods, now());
    // Broken old pods are replaced without using the budget (as in Kubernetes, they do not count as
    // unavailable either), so the healthy one takes the single unavailability allowed.
    assert_eq!(plan.delete, vec!["old1", "old2", "old3"]);
    let mut two_healthy = pods.clone();
    two_healthy[1]["status"]["conditions"][0]["status"] = json!("True");
    assert_eq!(reconcile(&d, &nodes, &two_healthy, now()).delete, vec!["old1", "old2"]);

    let on_delete = ds(json!({"type": "OnDelete"}));
    let plan = reconcile(&on_delete, &nodes, &pods, now());
    assert!(plan.delete.is_empty() && plan.create.is_empty());
}

#[test]
fn percentage_max_unavailable_rounds_up() {
    let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "30%"}}));
    let nodes: Vec<Value> = (1..=5).map(|i| node(&format!("n{i}"), json!({}), json!([]))).collect();
    let pods: Vec<Value> = (1..=5)
        .map(|i| {
            pod(
                &d,
                &format!("old{i}"),
                &format!("n{i}"),
                "old-hash",
                "2024-01-01T00:00:00Z",
            )
        })
        .collect();
    assert_eq!(
        reconcile(&d, &nodes, &pods, now()).delete.len(),
        2,
        "30% of 5 = 1.5 -> 2"
    );
}

#[test]
fn surge_creates_new_pods_before_deleting_old_ones() {
    let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}));
    let h = hash_of(&d);
    let nodes: Vec<Value> = (1..=2).map(|i| node(&format!("n{i}"), json!({}), json!([]))).collect();
    let mut pods: Vec<Value> = (1..=2)
        .map(|i| {
            pod(
                &d,
                &format!("old{i}"),
                &format!("n{i}"),
                "old-hash",
                "2024-01-01T00:00:00Z",
            )
        })
        .collect();
    let plan = reconcile(&d, &nodes, &pods, now());
    assert!(plan.delete.is_empty());
    assert_eq!(plan.create.iter().map(target).collect::<Vec<_>>(), vec!["n1"]);

    // The surge pod is not ready yet: both stay, nothing more happens.
    let mut new1 = pod(&d, "new1", "n1", &h, "2024-01-01T00:59:00Z");
    new1["status"]["conditions"] = json!([]);
    pods.push(new1);
    let plan = reconcile(&d, &nodes, &pods, now());
    assert!(plan.delete.is_empty() && plan.create.is_empty(), "{plan:?}");

    // Ready and available: the old one on n1 goes.
    pods.pop();
    pods.push(pod(&d, "new1", "n1", &h, "2024-01-01T00:59:00Z"));
    let plan = reconcile(&d, &nodes, &pods, now());
    assert_eq!(plan.delete, vec!["old1"]);
}

#[test]
fn status_counts_and_min_ready_requeue() {
    let mut d = ds(Value::Null);
    d["spec"]["minReadySeconds"] = json!(60);
    d["status"] = json!({"observedGeneration": 2, "collisionCount": 0});
    // collisionCount 0 changes the hash input, as in Kubernetes.
    let h = pod_template_hash(d.pointer("/spec/template").unwrap_or(&Value::Null), Some(0));
    let nodes: Vec<Value> = (1..=3).map(|i| node(&format!("n{i}"), json!({}), json!([]))).collect();
    let mut recent = pod(&d, "p2", "n2", &h, "2024-01-01T00:00:00Z");
    recent["status"]["conditions"][0]["lastTransitionTime"] = json!("2024-01-01T00:59:30Z");
    let pods = vec![pod(&d, "p1", "n1", &h, "2024-01-01T00:00:00Z"), recent];
    let plan = reconcile(&d, &nodes, &pods, now());
    assert_eq!(plan.create.len(), 1);
    assert_eq!(status_int(&plan, "desiredNumberScheduled"), 3);
    assert_eq!(status_int(&plan, "currentNumberScheduled"), 2);
    assert_eq!(status_int(&plan, "numberReady"), 2);
    assert_eq!(status_int(&plan, "numberAvailable"), 1);
    assert_eq!(status_int(&plan, "numberUnavailable"), 2);
    assert_eq!(status_int(&plan, "updatedNumberScheduled"), 2);
    assert_eq!(status_int(&plan, "numberMisscheduled"), 0);
    assert_eq!(status_int(&plan, "observedGeneration"), 3);
    assert_eq!(status_int(&plan, "collisionCount"), 0, "kept");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(31)));

    // Feeding the status back: unchanged.
    let mut again = d.clone();
    again["status"] = plan.status.clone();
    assert!(!reconcile(&again, &nodes, &pods, now()).status_changed);
}

#[test]
fn deleting_or_selectorless_daemonset_does_nothing() {
    let nodes = vec![node("n1", json!({}), json!([]))];
    let mut d = ds(Value::Null);
    d["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let plan = reconcile(&d, &nodes, &[], now());
    assert!(plan.create.is_empty() && !plan.status_changed);
    let mut d = ds(Value::Null);
    d["spec"]["selector"] = json!({});
    assert!(reconcile(&d, &nodes, &[], now()).create.is_empty());
}

#[test]
fn unscheduled_pods_count_for_their_target_node() {
    let d = ds(Value::Null);
    let nodes = vec![node("n1", json!({}), json!([]))];
    let first = reconcile(&d, &nodes, &[], now());
    let mut created = first.create[0].clone();
    created["metadata"]["name"] = json!("agent-x");
    created["metadata"]["creationTimestamp"] = json!("2024-01-01T00:59:00Z");
    let plan = reconcile(&d, &nodes, &[created], now());
    assert!(plan.create.is_empty(), "the pending pod already serves n1");
    assert_eq!(status_int(&plan, "currentNumberScheduled"), 1);
}

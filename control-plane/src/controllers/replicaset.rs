//! The decision half of the ReplicaSet controller: given a ReplicaSet and the pods of its namespace,
//! which pods to create, delete, adopt and release, and what the new `.status` is.
//!
//! Pure so the subtle parts (claiming, victim ranking, status counting) are tested without a
//! cluster; the runtime (informers, expectations, the API calls) executes the returned [`Plan`].
//! The algorithm is kubernetes/kubernetes `pkg/controller/replicaset/replica_set.go`
//! (`syncReplicaSet`, `manageReplicas`, `getPodsToDelete`) and `replica_set_utils.go`
//! (`calculateStatus`), with the victim order of `controller.ActivePodsWithRanks` (the
//! `PodDeletionCost` and `LogarithmicScaleDown` features on, as they are by default).
//!
//! Differences from Kubernetes, on purpose:
//! - creations are capped at the caller's `burst` per reconcile; Kubernetes' slow start (batches of
//!   1, 2, 4, ... up to 500) is the caller's to drive by passing a growing `burst` and requeueing.
//!   Deletions are capped at [`BURST_REPLICAS`] as in Kubernetes.
//! - the `ReplicaFailure` condition depends on the outcome of executing the plan, which this module
//!   never sees: [`reconcile`] keeps existing conditions and [`with_replica_failure`] lets the
//!   runtime set or clear it afterwards.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::podutil::{
    claim, controller_uid, creation_timestamp, format_time, int_at, is_being_deleted, is_pod_active, is_pod_available,
    is_pod_ready, labels_of, max_container_restarts, name_of, namespace_of, normalize, owner_reference,
    pod_available_at, pod_node_name, pod_phase, pod_ready_time, uid_of, workload_selector, Claim,
};

/// Kubernetes' `BurstReplicas`: the most pods one sync creates or deletes.
pub const BURST_REPLICAS: usize = 500;

/// The annotation a user sets to steer which pods a scale-down removes first (lower cost first).
pub const POD_DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// What one reconcile of a ReplicaSet decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Pod objects to POST (with `generateName`, labels, owner reference, spec).
    pub create: Vec<Value>,
    /// Names of pods to delete, in deletion order.
    pub delete: Vec<String>,
    /// Orphan pods to patch with our controller reference.
    pub adopt: Vec<String>,
    /// Owned pods whose labels no longer match: remove our owner reference.
    pub release: Vec<String>,
    /// The new `.status`.
    pub status: Value,
    /// Whether `status` differs from the ReplicaSet's current status.
    pub status_changed: bool,
    /// When to look again because a ready pod will have been ready for `minReadySeconds` by then.
    pub requeue_after: Option<Duration>,
}

/// `spec.replicas`, defaulting to 1 as apps/v1 does.
pub fn desired_replicas(rs: &Value) -> i64 {
    int_at(rs, "/spec/replicas").unwrap_or(1).max(0)
}

/// Reconciles `rs` against `pods` (all pods of its namespace), creating at most `burst` pods.
/// Victim ranking counts only this ReplicaSet's pods per node; see [`reconcile_with_siblings`].
pub fn reconcile(rs: &Value, pods: &[Value], now: DateTime<Utc>, burst: usize) -> Plan {
    reconcile_with_siblings(rs, &[], pods, now, burst)
}

/// [`reconcile`], with the ReplicaSets of the namespace so that, like Kubernetes'
/// `getIndirectlyRelatedPods`, the "doubled up on a node" rank also counts pods of sibling
/// ReplicaSets (those with the same controller, e.g. the old and new ReplicaSets of a Deployment).
pub fn reconcile_with_siblings(
    rs: &Value,
    replica_sets: &[Value],
    pods: &[Value],
    now: DateTime<Utc>,
    burst: usize,
) -> Plan {
    // Kubernetes refuses to sync a ReplicaSet whose selector does not parse; apps/v1 validation
    // also refuses an empty one. Either way: touch nothing, report nothing new.
    let Some(selector) = workload_selector(rs.pointer("/spec/selector").unwrap_or(&Value::Null)) else {
        return Plan {
            status: rs.get("status").cloned().unwrap_or_else(|| json!({})),
            ..Plan::default()
        };
    };
    let ns = namespace_of(rs);
    let mut plan = Plan::default();
    let mut ours: Vec<&Value> = Vec::new();
    for pod in pods.iter().filter(|p| namespace_of(p) == ns && is_pod_active(p)) {
        match claim(rs, Some(&selector), pod) {
            Claim::Owned => ours.push(pod),
            Claim::Adopt => {
                plan.adopt.push(name_of(pod).to_string());
                ours.push(pod);
            }
            Claim::Release => plan.release.push(name_of(pod).to_string()),
            Claim::Ignore => {}
        }
    }

    // A ReplicaSet being deleted is not managed, only reported on.
    if !is_being_deleted(rs) {
        let want = desired_replicas(rs);
        let have = ours.len() as i64;
        if have < want {
            let missing = usize::try_from(want - have).unwrap_or(0).min(burst);
            plan.create = (0..missing).map(|_| pod_from_template(rs)).collect();
        } else if have > want {
            let excess = usize::try_from(have - want).unwrap_or(0).min(BURST_REPLICAS);
            let related = related_pods(rs, replica_sets, pods, &ours);
            plan.delete = pods_to_delete(&ours, &related, excess, now)
                .into_iter()
                .map(|p| name_of(p).to_string())
                .collect();
        }
    }

    let min_ready = int_at(rs, "/spec/minReadySeconds").unwrap_or(0);
    plan.status = calculate_status(rs, &ours, min_ready, now);
    plan.status_changed = status_key(rs.get("status").unwrap_or(&Value::Null)) != status_key(&plan.status);
    plan.requeue_after = ours
        .iter()
        .filter(|p| !is_pod_available(p, min_ready, now))
        .filter_map(|p| pod_available_at(p, min_ready))
        .min()
        .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO) + Duration::from_secs(1));
    plan
}

/// A pod for `rs`: its template's labels, annotations, finalizers and spec, a generated name
/// prefixed by the ReplicaSet's, and the ReplicaSet as controller.
pub fn pod_from_template(rs: &Value) -> Value {
    let template = rs.pointer("/spec/template").unwrap_or(&Value::Null);
    let mut meta = Map::new();
    meta.insert("generateName".into(), json!(format!("{}-", name_of(rs))));
    meta.insert("namespace".into(), json!(namespace_of(rs)));
    for key in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{key}")).and_then(normalize) {
            meta.insert(key.into(), v);
        }
    }
    meta.insert(
        "ownerReferences".into(),
        json!([owner_reference(rs, "apps/v1", "ReplicaSet")]),
    );
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Sets (`Some((reason, message))`) or clears (`None`) the `ReplicaFailure` condition on a status
/// from [`Plan::status`], once the runtime knows whether creating or deleting pods failed.
/// Kubernetes' reasons are `FailedCreate` and `FailedDelete`.
pub fn with_replica_failure(mut status: Value, failure: Option<(&str, &str)>, now: DateTime<Utc>) -> Value {
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let existing = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some("ReplicaFailure"));
    match (failure, existing) {
        (Some(_), Some(_)) => {} // Kubernetes keeps the first failure's condition.
        (Some((reason, message)), None) => conditions.push(json!({
            "type": "ReplicaFailure",
            "status": "True",
            "lastTransitionTime": format_time(now),
            "reason": reason,
            "message": message,
        })),
        (None, Some(i)) => {
            conditions.remove(i);
        }
        (None, None) => {}
    }
    if let Value::Object(m) = &mut status {
        if conditions.is_empty() {
            m.remove("conditions");
        } else {
            m.insert("conditions".into(), Value::Array(conditions));
        }
    }
    status
}

/// Kubernetes' `calculateStatus`: counts over the pods the ReplicaSet owns, keeping the rest of the
/// current status (conditions). Zero counts other than `replicas` are omitted, as Go's `omitempty`
/// renders them.
fn calculate_status(rs: &Value, ours: &[&Value], min_ready: i64, now: DateTime<Utc>) -> Value {
    let template_labels = match rs.pointer("/spec/template/metadata/labels") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let fully_labeled = ours
        .iter()
        .filter(|p| {
            let labels = labels_of(p);
            template_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let ready = ours.iter().filter(|p| is_pod_ready(p)).count();
    let available = ours.iter().filter(|p| is_pod_available(p, min_ready, now)).count();

    let mut status = match rs.get("status") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    status.insert("replicas".into(), json!(ours.len()));
    let counts = [
        ("fullyLabeledReplicas", fully_labeled as i64),
        ("readyReplicas", ready as i64),
        ("availableReplicas", available as i64),
        ("observedGeneration", int_at(rs, "/metadata/generation").unwrap_or(0)),
    ];
    for (key, n) in counts {
        if n == 0 {
            status.remove(key);
        } else {
            status.insert(key.into(), json!(n));
        }
    }
    Value::Object(status)
}

/// A status reduced to what matters for "did it change": counts with absent read as 0, conditions
/// keyed by type.
fn status_key(status: &Value) -> (Vec<i64>, BTreeMap<String, Option<Value>>) {
    let counts = [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ]
    .iter()
    .map(|k| int_at(status, &format!("/{k}")).unwrap_or(0))
    .collect();
    let conditions = status
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let ty = c.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                    (ty, normalize(c))
                })
                .collect()
        })
        .unwrap_or_default();
    (counts, conditions)
}

/// Active pods controlled by this ReplicaSet or a sibling (same controller), plus the orphans it is
/// adopting: the population whose per-node count ranks doubled-up pods first.
fn related_pods<'a>(rs: &Value, replica_sets: &[Value], pods: &'a [Value], ours: &[&'a Value]) -> Vec<&'a Value> {
    let mut uids: BTreeSet<String> = BTreeSet::new();
    uids.insert(uid_of(rs).to_string());
    if let Some(owner) = controller_uid(rs) {
        for sibling in replica_sets {
            if controller_uid(sibling).as_deref() == Some(owner.as_str()) && namespace_of(sibling) == namespace_of(rs) {
                uids.insert(uid_of(sibling).to_string());
            }
        }
    }
    let mut related: Vec<&Value> = pods
        .iter()
        .filter(|p| namespace_of(p) == namespace_of(rs) && is_pod_active(p))
        .filter(|p| controller_uid(p).is_some_and(|u| uids.contains(&u)))
        .collect();
    for pod in ours {
        if controller_uid(pod).is_none() {
            related.push(pod);
        }
    }
    related
}

/// Kubernetes' `getPodsToDelete`: the first `count` of `ours` in `ActivePodsWithRanks` order.
fn pods_to_delete<'a>(ours: &[&'a Value], related: &[&Value], count: usize, now: DateTime<Utc>) -> Vec<&'a Value> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pod in related {
        *per_node.entry(pod_node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(VictimKey, &Value)> = ours
        .iter()
        .map(|p| {
            (
                victim_key(p, per_node.get(pod_node_name(p)).copied().unwrap_or(0), now),
                *p,
            )
        })
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    ranked.into_iter().take(count).map(|(_, p)| p).collect()
}

fn phase_ordinal(pod: &Value) -> u8 {
    match pod_phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

fn deletion_cost(pod: &Value) -> i64 {
    pod.pointer(&format!(
        "/metadata/annotations/{}",
        POD_DELETION_COST_ANNOTATION.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .and_then(|s| s.parse::<i32>().ok())
    .map_or(0, i64::from)
}

/// `LogarithmicScaleDown`: times are compared by the power of two of their age, so pods of similar
/// age count as equally old ("newer first": a missing time first, then the youngest bucket).
fn age_bucket(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    let nanos = (now - t?).num_nanoseconds().unwrap_or(i64::MAX);
    Some(if nanos > 0 { (nanos as f64).log2() as i64 } else { -1 })
}

/// `ActivePodsWithRanks`' criteria as one sort key, the pod to delete first smallest: unassigned
/// before assigned; Pending, Unknown, then Running; not ready before ready; lower deletion cost;
/// more pods on the same node; ready for less time (by age bucket); more restarts; newer (by age
/// bucket); then uid, which spreads deletions among pods of similar age randomly. Kubernetes
/// compares pairs, and its comparison is not a total order (two pods ready at the same instant
/// fall through to the next criterion, two ready at different instants of one bucket are decided
/// by uid at once); Rust's sort refuses such an order (it panicked the controllers scaling 2000
/// pods down), so here an equal bucket always falls through.
type VictimKey<'a> = (
    bool,
    u8,
    bool,
    i64,
    Reverse<usize>,
    Option<i64>,
    Reverse<i64>,
    Option<i64>,
    &'a str,
);

fn victim_key(pod: &Value, on_same_node: usize, now: DateTime<Utc>) -> VictimKey<'_> {
    let ready = is_pod_ready(pod);
    (
        !pod_node_name(pod).is_empty(),
        phase_ordinal(pod),
        ready,
        deletion_cost(pod),
        Reverse(on_same_node),
        if ready {
            age_bucket(pod_ready_time(pod), now)
        } else {
            None
        },
        Reverse(max_container_restarts(pod)),
        age_bucket(creation_timestamp(pod), now),
        uid_of(pod),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::podutil::parse_time;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(Some(&json!(s))).expect("test time")
    }

    fn now() -> DateTime<Utc> {
        t("2024-01-01T12:00:00Z")
    }

    fn rs(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 3,
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"},
                                               "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        })
    }

    /// A pod owned by the test ReplicaSet; `ready_since` makes it Running and Ready.
    fn pod(name: &str, node: &str, ready_since: Option<&str>, created: &str) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                         "labels": {"app": "web", "tier": "fe"}, "creationTimestamp": created,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                              "uid": "rs-uid", "controller": true}]},
            "spec": {"nodeName": node},
            "status": {"phase": if ready_since.is_some() { "Running" } else { "Pending" }},
        });
        if let Some(since) = ready_since {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": since}]);
        }
        p
    }

    #[test]
    fn creates_missing_pods_up_to_burst() {
        let pods = vec![pod("a", "n1", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z")];
        let plan = reconcile(&rs(5), &pods, now(), 2);
        assert_eq!(plan.create.len(), 2, "capped by burst");
        let p = &plan.create[0];
        assert_eq!(p["metadata"]["generateName"], "web-");
        assert_eq!(p["metadata"]["namespace"], "ns");
        assert_eq!(p["metadata"]["labels"], json!({"app": "web", "tier": "fe"}));
        assert_eq!(p["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["spec"]["containers"][0]["image"], "nginx");
        assert!(plan.delete.is_empty());

        let plan = reconcile(&rs(5), &pods, now(), 500);
        assert_eq!(plan.create.len(), 4);
    }

    #[test]
    fn inactive_pods_do_not_count() {
        let mut failed = pod("f", "n1", None, "2024-01-01T00:00:00Z");
        failed["status"]["phase"] = json!("Failed");
        let mut deleting = pod("d", "n1", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z");
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T11:00:00Z");
        let plan = reconcile(&rs(2), &[failed, deleting], now(), 10);
        assert_eq!(plan.create.len(), 2);
        assert_eq!(plan.status["replicas"], 0);
    }

    #[test]
    fn deletes_victims_in_rank_order() {
        let pods = vec![
            pod("ready-old", "n1", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
            pod("ready-new", "n2", Some("2024-01-01T11:59:00Z"), "2024-01-01T11:58:00Z"),
            pod("pending", "n3", None, "2024-01-01T00:00:00Z"),
            pod("unassigned", "", None, "2024-01-01T00:00:00Z"),
            pod("doubled-1", "n4", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
            pod("doubled-2", "n4", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
        ];
        let plan = reconcile(&rs(1), &pods, now(), 10);
        assert_eq!(
            plan.delete,
            vec!["unassigned", "pending", "doubled-1", "doubled-2", "ready-new"],
            "unassigned, then pending, then doubled-up, then recently ready"
        );
        let plan = reconcile(&rs(4), &pods, now(), 10);
        assert_eq!(plan.delete, vec!["unassigned", "pending"]);
    }

    #[test]
    fn victim_ties_broken_by_restarts_cost_and_age() {
        let mut crashy = pod("crashy", "n1", None, "2024-01-01T00:00:00Z");
        crashy["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": 5}]);
        let calm = pod("calm", "n2", None, "2024-01-01T00:00:00Z");
        let young = pod("young", "n3", None, "2024-01-01T11:59:59Z");
        let plan = reconcile(&rs(1), &[calm.clone(), young.clone(), crashy.clone()], now(), 10);
        assert_eq!(plan.delete, vec!["crashy", "young"]);

        let mut cheap = calm.clone();
        cheap["metadata"]["name"] = json!("cheap");
        cheap["metadata"]["annotations"] = json!({POD_DELETION_COST_ANNOTATION: "-10"});
        let plan = reconcile(&rs(3), &[calm, young, crashy, cheap], now(), 10);
        assert_eq!(plan.delete, vec!["cheap"], "lowest deletion cost goes first");
    }

    #[test]
    fn scaling_thousands_down_ranks_in_a_total_order() {
        // Ready and creation times spread over a few age buckets, some equal to the second, with
        // restarts and shared nodes: pairs that Kubernetes' comparison orders inconsistently (the
        // sort panicked on 2000 such pods). The victims must not depend on the order of the input.
        let mut seed: u64 = 7;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let pods: Vec<Value> = (0..2000)
            .map(|i| {
                let at = |s: u64| format!("2024-01-01T11:{:02}:{:02}Z", 59 - s / 60, 59 - s % 60);
                let (ready, created) = (next(300), next(300));
                let mut p = pod(
                    &format!("p{i}"),
                    &format!("n{}", next(40)),
                    Some(&at(ready)),
                    &at(created.max(ready)),
                );
                p["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": next(3)}]);
                p
            })
            .collect();
        let forward = reconcile(&rs(500), &pods, now(), 2000).delete;
        let reversed: Vec<Value> = pods.iter().rev().cloned().collect();
        let backward = reconcile(&rs(500), &reversed, now(), 2000).delete;
        assert_eq!(forward.len(), BURST_REPLICAS, "deletions per reconcile are capped");
        assert_eq!(forward, backward);
    }

    #[test]
    fn sibling_pods_count_toward_node_rank() {
        let mut with_owner = rs(1);
        with_owner["metadata"]["ownerReferences"] = json!([{"kind": "Deployment", "uid": "d-uid", "controller": true}]);
        let sibling = json!({"metadata": {"name": "web-old", "namespace": "ns", "uid": "sib-uid",
                              "ownerReferences": [{"kind": "Deployment", "uid": "d-uid", "controller": true}]}});
        let mut sib_pod = pod("sib", "n2", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z");
        sib_pod["metadata"]["ownerReferences"][0]["uid"] = json!("sib-uid");
        sib_pod["metadata"]["labels"] = json!({"app": "other"});
        let pods = vec![
            pod("on-n1", "n1", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
            pod("on-n2", "n2", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
            sib_pod,
        ];
        let plan = reconcile_with_siblings(&with_owner, &[sibling], &pods, now(), 10);
        assert_eq!(plan.delete, vec!["on-n2"], "n2 also hosts a sibling's pod");
    }

    #[test]
    fn adopts_orphans_and_releases_mismatches() {
        let mut orphan = pod("orphan", "n1", None, "2024-01-01T00:00:00Z");
        orphan["metadata"].as_object_mut().map(|m| m.remove("ownerReferences"));
        let mut deleting_orphan = orphan.clone();
        deleting_orphan["metadata"]["name"] = json!("deleting-orphan");
        deleting_orphan["metadata"]["deletionTimestamp"] = json!("2024-01-01T11:00:00Z");
        let mut relabeled = pod("relabeled", "n1", None, "2024-01-01T00:00:00Z");
        relabeled["metadata"]["labels"] = json!({"app": "debug"});
        let mut other_ns = orphan.clone();
        other_ns["metadata"]["name"] = json!("elsewhere");
        other_ns["metadata"]["namespace"] = json!("other");
        let mut foreign = pod("foreign", "n1", None, "2024-01-01T00:00:00Z");
        foreign["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");

        let pods = vec![orphan, deleting_orphan, relabeled, other_ns, foreign];
        let plan = reconcile(&rs(1), &pods, now(), 10);
        assert_eq!(plan.adopt, vec!["orphan"]);
        assert_eq!(plan.release, vec!["relabeled"]);
        assert!(plan.create.is_empty(), "the adopted pod fills the one replica");
        assert_eq!(plan.status["replicas"], 1);

        let mut deleting = rs(1);
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T11:00:00Z");
        let plan = reconcile(&deleting, &pods, now(), 10);
        assert!(plan.adopt.is_empty() && plan.release.is_empty() && plan.create.is_empty());
    }

    #[test]
    fn status_counts() {
        let mut partly_labeled = pod("partly", "n1", Some("2024-01-01T11:59:50Z"), "2024-01-01T00:00:00Z");
        partly_labeled["metadata"]["labels"] = json!({"app": "web"});
        let pods = vec![
            pod("avail", "n1", Some("2024-01-01T00:00:00Z"), "2024-01-01T00:00:00Z"),
            partly_labeled,
            pod("pending", "n1", None, "2024-01-01T00:00:00Z"),
        ];
        let mut set = rs(3);
        set["spec"]["minReadySeconds"] = json!(30);
        set["status"] = json!({"replicas": 3, "conditions": [{"type": "ReplicaFailure", "status": "True"}]});
        let plan = reconcile(&set, &pods, now(), 10);
        assert_eq!(plan.status["replicas"], 3);
        assert_eq!(plan.status["fullyLabeledReplicas"], 2);
        assert_eq!(plan.status["readyReplicas"], 2);
        assert_eq!(plan.status["availableReplicas"], 1, "one pod ready for only 10s of 30");
        assert_eq!(plan.status["observedGeneration"], 3);
        assert!(plan.status_changed);
        assert_eq!(plan.requeue_after, Some(Duration::from_secs(21)));
        assert_eq!(
            plan.status["conditions"][0]["type"], "ReplicaFailure",
            "kept for the runtime to clear"
        );
        let cleared = with_replica_failure(plan.status.clone(), None, now());
        assert!(cleared.get("conditions").is_none());
        let failed = with_replica_failure(cleared, Some(("FailedCreate", "quota")), now());
        assert_eq!(failed["conditions"][0]["reason"], "FailedCreate");

        set["status"] = plan.status.clone();
        let again = reconcile(&set, &pods, now(), 10);
        assert!(!again.status_changed);
    }

    #[test]
    fn empty_selector_manages_nothing() {
        let mut set = rs(2);
        set["spec"]["selector"] = json!({});
        let pods = vec![pod("a", "n1", None, "2024-01-01T00:00:00Z")];
        let plan = reconcile(&set, &pods, now(), 10);
        assert!(plan.create.is_empty() && plan.delete.is_empty() && plan.release.is_empty());
        assert!(!plan.status_changed);
    }
}

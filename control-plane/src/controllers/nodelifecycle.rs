//! The decision half of the node lifecycle controller: from a node, its kubelet's Lease and the
//! clock, whether the node's conditions must turn `Unknown`, which condition taints it must carry,
//! and which of its pods the taint-based eviction removes.
//!
//! Pure so that the grace arithmetic is tested with a fake clock; the runtime watches Nodes, Leases
//! (`kube-node-lease`) and Pods, writes `.status` and `spec.taints`, and deletes the evicted pods.
//! The algorithm is kubernetes/kubernetes `pkg/controller/nodelifecycle`
//! (`tryUpdateNodeHealth`, `doNoScheduleTaintingPass`, `processTaintBaseEviction`) and
//! `pkg/controller/tainteviction` (the NoExecute taint manager):
//!
//! - the heartbeat is the later of the Lease's `renewTime` and the Ready condition's
//!   `lastHeartbeatTime`; a node that never reported gets its grace from `creationTimestamp`. Past
//!   the grace (40 s) Ready, MemoryPressure, DiskPressure and PIDPressure become `Unknown`.
//! - conditions become taints, which is how the scheduler and the eviction see them: Ready
//!   `False` → `node.kubernetes.io/not-ready`, `Unknown` → `unreachable`, each `NoSchedule` and
//!   `NoExecute`; pressure conditions and `spec.unschedulable` → their `NoSchedule` taints. Added
//!   taints carry `timeAdded`; taints already there keep theirs; taints of other keys are never
//!   touched.
//! - a pod on a node with a `NoExecute` taint it does not tolerate is evicted at once; tolerated
//!   with `tolerationSeconds`, once that much time has passed; tolerated without, never.
//!
//! Differences from Kubernetes: Kubernetes measures the grace against its own clock (when it saw
//! the heartbeat change), here the heartbeat's own timestamps are used, so kubelet and controller
//! clocks must roughly agree; as in Kubernetes, no heartbeat counts from before the controllers
//! started (`NodeHealth::watching_since`), so a new leader gives every node a full grace. The toleration clock starts at the taint's `timeAdded` (or, for a pod
//! bound later, when the pod was scheduled) rather than when the taint manager first saw the pair.
//! Kubernetes' zone-aware eviction rate limiting (full/partial disruption) is reduced to
//! [`EvictionLimiter`], a single token bucket the runtime may apply to newly tainted nodes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::podutil::{creation_timestamp, format_time, is_being_deleted, name_of, namespace_of, parse_time};
use super::podutil::{pod_node_name, semantically_equal};
use crate::scheduler::plugins::taint_toleration::{Taint, Toleration};

/// `node.kubernetes.io/not-ready`: Ready is `False`.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// `node.kubernetes.io/unreachable`: Ready is `Unknown` (the kubelet stopped reporting).
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// Kubernetes' `--node-monitor-grace-period` default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(40);

/// The conditions the controller turns `Unknown` when the kubelet goes silent.
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
const UNKNOWN_REASON: &str = "NodeStatusUnknown";
const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";
const NEVER_REASON: &str = "NodeStatusNeverUpdated";
const NEVER_MESSAGE: &str = "Kubelet never posted node status.";

/// `nodeConditionToTaintKeyStatusMap`: the `NoSchedule` taint a condition status implies.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY_TAINT),
    ("Ready", "Unknown", UNREACHABLE_TAINT),
    ("MemoryPressure", "True", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("NetworkUnavailable", "True", "node.kubernetes.io/network-unavailable"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Node health settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHealth {
    /// How long a heartbeat may be missing before the node is unreachable (40 s).
    pub grace: Duration,
    /// When these controllers began watching the nodes. Like kube-controller-manager (whose
    /// probe timestamps start when it first sees a node), a controller gives every node a full
    /// grace from then: a new leader, or one back from a store outage longer than the grace,
    /// does not find every heartbeat stale and evict every pod.
    pub watching_since: Option<DateTime<Utc>>,
}

impl Default for NodeHealth {
    fn default() -> Self {
        NodeHealth {
            grace: DEFAULT_GRACE,
            watching_since: None,
        }
    }
}

impl NodeHealth {
    /// [`evaluate`] with this grace, counting no heartbeat from before `watching_since`.
    pub fn evaluate(&self, node: &Value, lease: Option<&Value>, now: DateTime<Utc>) -> NodePlan {
        evaluate_from(node, self.last_seen(node, lease), now, self.grace)
    }

    /// [`stale_at`] with this grace, counting no heartbeat from before `watching_since`.
    pub fn stale_at(&self, node: &Value, lease: Option<&Value>) -> Option<DateTime<Utc>> {
        stale_from(self.last_seen(node, lease), self.grace)
    }

    fn last_seen(&self, node: &Value, lease: Option<&Value>) -> Option<DateTime<Utc>> {
        heartbeat(node, lease).max(self.watching_since)
    }
}

/// The writes one evaluation of a node decided; `None` leaves the field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodePlan {
    /// The node's new `.status` (conditions turned `Unknown`).
    pub status: Option<Value>,
    /// The node's new `spec.taints`.
    pub taints: Option<Vec<Value>>,
}

/// The last sign of life: the later of the Lease's `renewTime` and the Ready condition's
/// `lastHeartbeatTime`, else the node's `creationTimestamp`.
pub fn heartbeat(node: &Value, lease: Option<&Value>) -> Option<DateTime<Utc>> {
    let renew = lease.and_then(|l| parse_time(l.pointer("/spec/renewTime")));
    let posted = condition(node, "Ready").and_then(|c| parse_time(c.get("lastHeartbeatTime")));
    renew.max(posted).or_else(|| creation_timestamp(node))
}

/// When the node will be considered unreachable if nothing changes (to requeue the node then).
pub fn stale_at(node: &Value, lease: Option<&Value>, grace: Duration) -> Option<DateTime<Utc>> {
    stale_from(heartbeat(node, lease), grace)
}

fn stale_from(last_seen: Option<DateTime<Utc>>, grace: Duration) -> Option<DateTime<Utc>> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    last_seen.and_then(|h| h.checked_add_signed(grace))
}

/// Decides the node's conditions and condition taints at `now`.
pub fn evaluate(node: &Value, lease: Option<&Value>, now: DateTime<Utc>, grace: Duration) -> NodePlan {
    evaluate_from(node, heartbeat(node, lease), now, grace)
}

fn evaluate_from(node: &Value, last_seen: Option<DateTime<Utc>>, now: DateTime<Utc>, grace: Duration) -> NodePlan {
    let stale = stale_from(last_seen, grace).is_some_and(|at| now > at);
    let old_status = node.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut status = old_status.clone();
    if stale {
        mark_unknown(node, &mut status, now);
    }
    let taints = desired_taints(node, &status, now);
    let old_taints = taints_of(node);
    NodePlan {
        status: (!semantically_equal(&old_status, &status)).then_some(status),
        taints: (taints != old_taints).then_some(taints),
    }
}

/// `tryUpdateNodeHealth` past the grace: every watched condition not already `Unknown` becomes so.
fn mark_unknown(node: &Value, status: &mut Value, now: DateTime<Utc>) {
    if !status.is_object() {
        *status = json!({});
    }
    let mut conditions = match status.get("conditions") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let created = creation_timestamp(node).map(format_time);
    for ty in WATCHED_CONDITIONS {
        match conditions
            .iter_mut()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        {
            Some(c) if c.get("status").and_then(Value::as_str) == Some("Unknown") => {}
            Some(Value::Object(c)) => {
                c.insert("status".into(), json!("Unknown"));
                c.insert("reason".into(), json!(UNKNOWN_REASON));
                c.insert("message".into(), json!(UNKNOWN_MESSAGE));
                c.insert("lastTransitionTime".into(), json!(format_time(now)));
            }
            Some(_) => {}
            None => conditions.push(json!({
                "type": ty,
                "status": "Unknown",
                "reason": NEVER_REASON,
                "message": NEVER_MESSAGE,
                "lastHeartbeatTime": created,
                "lastTransitionTime": format_time(now),
            })),
        }
    }
    if let Value::Object(s) = status {
        s.insert("conditions".into(), Value::Array(conditions));
    }
}

fn condition<'a>(node: &'a Value, ty: &str) -> Option<&'a Value> {
    conditions_in(node.get("status")?, ty)
}

fn conditions_in<'a>(status: &'a Value, ty: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

fn taints_of(node: &Value) -> Vec<Value> {
    match node.pointer("/spec/taints") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The node's taints with the condition taints reconciled to `status`: managed `(key, effect)`
/// pairs are added (with `timeAdded`) or removed, everything else is kept as it is.
fn desired_taints(node: &Value, status: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ready = conditions_in(status, "Ready").map(|c| str_field(c, "status"));
    let cond_status = |ty: &str| conditions_in(status, ty).map(|c| str_field(c, "status"));
    // (key, effect, wanted). Before the node has ever reported Ready, its readiness taints are left
    // alone (the API server's admission put `not-ready:NoSchedule` there at creation).
    let mut managed: Vec<(&str, &str, bool)> = Vec::new();
    for (ty, when, key) in CONDITION_TAINTS {
        if ty == "Ready" && ready.is_none() {
            continue;
        }
        managed.push((key, "NoSchedule", cond_status(ty) == Some(when)));
    }
    let unschedulable = node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
    managed.push((UNSCHEDULABLE_TAINT, "NoSchedule", unschedulable));
    if let Some(ready) = ready {
        managed.push((NOT_READY_TAINT, "NoExecute", ready == "False"));
        managed.push((UNREACHABLE_TAINT, "NoExecute", ready == "Unknown"));
    }

    let is = |t: &Value, key: &str, effect: &str| str_field(t, "key") == key && str_field(t, "effect") == effect;
    let mut out: Vec<Value> = taints_of(node)
        .into_iter()
        .filter(|t| !managed.iter().any(|(k, e, wanted)| !wanted && is(t, k, e)))
        .collect();
    for (key, effect, _) in managed.iter().filter(|(_, _, wanted)| *wanted) {
        if !out.iter().any(|t| is(t, key, effect)) {
            out.push(json!({"key": key, "effect": effect, "timeAdded": format_time(now)}));
        }
    }
    out
}

/// A pod toleration with its `tolerationSeconds`.
struct PodToleration {
    toleration: Toleration,
    seconds: Option<i64>,
}

fn pod_tolerations(pod: &Value) -> Vec<PodToleration> {
    let Some(list) = pod.pointer("/spec/tolerations").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|t| PodToleration {
            toleration: Toleration {
                key: str_field(t, "key").to_string(),
                operator: str_field(t, "operator").to_string(),
                value: str_field(t, "value").to_string(),
                effect: str_field(t, "effect").to_string(),
            },
            seconds: t.get("tolerationSeconds").and_then(Value::as_i64),
        })
        .collect()
}

/// When the pod was bound to its node: its `PodScheduled` condition, else its creation.
fn pod_start(pod: &Value) -> Option<DateTime<Utc>> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| str_field(c, "type") == "PodScheduled" && str_field(c, "status") == "True")
        })
        .and_then(|c| parse_time(c.get("lastTransitionTime")))
        .or_else(|| creation_timestamp(pod))
}

/// When `pod` must be evicted given the node's `NoExecute` taints: `Some(t)` at `t` (`<= now` means
/// now), `None` never. Each taint is tolerated by the first toleration matching it
/// (`GetMatchingTolerations`); a `tolerationSeconds <= 0` is no toleration time at all.
fn eviction_time(taints: &[(Taint, Option<DateTime<Utc>>)], pod: &Value, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tolerations = pod_tolerations(pod);
    let start = pod_start(pod);
    let mut deadline: Option<DateTime<Utc>> = None;
    for (taint, added) in taints {
        let Some(tol) = tolerations.iter().find(|t| t.toleration.tolerates(taint)) else {
            return Some(now);
        };
        let Some(seconds) = tol.seconds else { continue };
        if seconds <= 0 {
            return Some(now);
        }
        // The clock starts when both the taint and the pod were on the node.
        let since = match (*added, start) {
            (Some(a), Some(s)) => a.max(s),
            (a, s) => a.or(s).unwrap_or(now),
        };
        let at = since
            .checked_add_signed(chrono::Duration::seconds(seconds))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    deadline
}

/// Taint-based eviction for one node: the pods bound to it (not already being deleted) to delete
/// now, as `(namespace, name)`, and how long until the next toleration runs out.
pub fn evictions(node: &Value, pods: &[Value], now: DateTime<Utc>) -> (Vec<(String, String)>, Option<Duration>) {
    let taints: Vec<(Taint, Option<DateTime<Utc>>)> = taints_of(node)
        .iter()
        .filter(|t| str_field(t, "effect") == "NoExecute")
        .map(|t| {
            let taint = Taint {
                key: str_field(t, "key").to_string(),
                value: str_field(t, "value").to_string(),
                effect: "NoExecute".to_string(),
            };
            (taint, parse_time(t.get("timeAdded")))
        })
        .collect();
    let mut evict = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    if taints.is_empty() || name_of(node).is_empty() {
        return (evict, None);
    }
    for pod in pods
        .iter()
        .filter(|p| pod_node_name(p) == name_of(node) && !is_being_deleted(p))
    {
        match eviction_time(&taints, pod, now) {
            Some(at) if at <= now => evict.push((namespace_of(pod).to_string(), name_of(pod).to_string())),
            Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
            None => {}
        }
    }
    let wait = next.map(|at| (at - now).to_std().unwrap_or(Duration::ZERO));
    (evict, wait)
}

/// A token bucket for node evictions (Kubernetes' `--node-eviction-rate`, 0.1 nodes per second,
/// burst 1): the runtime asks before applying a new `NoExecute` taint to a node.
#[derive(Debug, Clone, PartialEq)]
pub struct EvictionLimiter {
    /// Tokens per second.
    pub rate: f64,
    pub burst: f64,
    tokens: f64,
    last: Option<DateTime<Utc>>,
}

impl Default for EvictionLimiter {
    fn default() -> Self {
        EvictionLimiter::new(0.1, 1.0)
    }
}

impl EvictionLimiter {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64) -> Self {
        EvictionLimiter {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Takes a token if one is available at `now`; otherwise says how long until one is.
    pub fn try_take(&mut self, now: DateTime<Utc>) -> Result<(), Duration> {
        if let Some(last) = self.last {
            let elapsed = (now - last).num_milliseconds().max(0) as f64 / 1000.0;
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.rate <= 0.0 {
            return Err(Duration::MAX);
        }
        Err(Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).min(1e9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(Some(&json!(s))).unwrap_or_default()
    }

    fn node(ready: Option<(&str, &str)>, taints: Value) -> Value {
        let mut n = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"taints": taints},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2024-01-01T00:00:00Z"}
            ]},
        });
        if let Some((status, beat)) = ready {
            n["status"]["conditions"]
                .as_array_mut()
                .into_iter()
                .for_each(|cs| cs.push(json!({"type": "Ready", "status": status, "lastHeartbeatTime": beat})));
        }
        n
    }

    fn lease(renew: &str) -> Value {
        json!({"spec": {"holderIdentity": "n1", "renewTime": renew}})
    }

    fn cond<'a>(status: &'a Value, ty: &str) -> &'a Value {
        conditions_in(status, ty).unwrap_or(&Value::Null)
    }

    fn keys(taints: &[Value]) -> Vec<String> {
        let mut k: Vec<String> = taints
            .iter()
            .map(|t| format!("{}:{}", str_field(t, "key"), str_field(t, "effect")))
            .collect();
        k.sort();
        k
    }

    #[test]
    fn fresh_lease_keeps_ready_node_untouched() {
        // The Ready heartbeat is old, but the lease was renewed 10 s ago.
        let n = node(Some(("True", "2024-01-01T00:00:00Z")), json!([]));
        let plan = evaluate(
            &n,
            Some(&lease("2024-01-01T00:05:00.123456Z")),
            t("2024-01-01T00:05:10Z"),
            DEFAULT_GRACE,
        );
        assert_eq!(plan, NodePlan::default());
        // Without the lease the same node is stale.
        let plan = evaluate(&n, None, t("2024-01-01T00:05:10Z"), DEFAULT_GRACE);
        assert!(plan.status.is_some());
    }

    #[test]
    fn a_new_leader_gives_every_node_a_full_grace() {
        // Five minutes of silence (a store outage, say) before these controllers started.
        let n = node(Some(("True", "2024-01-01T00:00:00Z")), json!([]));
        let old = lease("2024-01-01T00:00:00Z");
        let health = NodeHealth {
            grace: DEFAULT_GRACE,
            watching_since: Some(t("2024-01-01T00:05:00Z")),
        };
        assert_eq!(
            health.evaluate(&n, Some(&old), t("2024-01-01T00:05:30Z")),
            NodePlan::default()
        );
        assert_eq!(health.stale_at(&n, Some(&old)), Some(t("2024-01-01T00:05:40Z")));
        // Still silent a grace after they started: unreachable, as before.
        let late = health.evaluate(&n, Some(&old), t("2024-01-01T00:05:41Z"));
        assert!(late.status.is_some() && late.taints.is_some(), "{late:?}");
        // Counted from the object's own timestamps the node was stale all along.
        assert!(evaluate(&n, Some(&old), t("2024-01-01T00:05:30Z"), DEFAULT_GRACE)
            .status
            .is_some());
    }

    #[test]
    fn stale_lease_turns_conditions_unknown_and_taints_unreachable() {
        let n = node(
            Some(("True", "2024-01-01T00:00:00Z")),
            json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
        );
        let now = t("2024-01-01T00:01:00Z");
        let plan = NodeHealth::default().evaluate(&n, Some(&lease("2024-01-01T00:00:10Z")), now);
        let status = plan.status.unwrap_or_default();
        let ready = cond(&status, "Ready");
        assert_eq!(ready["status"], "Unknown");
        assert_eq!(ready["reason"], UNKNOWN_REASON);
        assert_eq!(ready["message"], UNKNOWN_MESSAGE);
        assert_eq!(ready["lastTransitionTime"], "2024-01-01T00:01:00Z");
        assert_eq!(ready["lastHeartbeatTime"], "2024-01-01T00:00:00Z", "heartbeat kept");
        assert_eq!(cond(&status, "MemoryPressure")["status"], "Unknown");
        assert_eq!(cond(&status, "MemoryPressure")["reason"], UNKNOWN_REASON);
        // Conditions the kubelet never posted are added as never updated.
        assert_eq!(cond(&status, "DiskPressure")["reason"], NEVER_REASON);
        assert_eq!(cond(&status, "PIDPressure")["status"], "Unknown");
        let taints = plan.taints.unwrap_or_default();
        assert_eq!(
            keys(&taints),
            vec![
                "dedicated:NoSchedule".to_string(),
                format!("{UNREACHABLE_TAINT}:NoExecute"),
                format!("{UNREACHABLE_TAINT}:NoSchedule"),
            ]
        );
        assert!(taints
            .iter()
            .filter(|t| str_field(t, "key") == UNREACHABLE_TAINT)
            .all(|t| t["timeAdded"] == "2024-01-01T00:01:00Z"));

        // Exactly at the grace it is not yet stale.
        let edge = evaluate(&n, Some(&lease("2024-01-01T00:00:20Z")), now, DEFAULT_GRACE);
        assert_eq!(edge.status, None);
    }

    #[test]
    fn unknown_node_is_stable_and_recovers() {
        let n = node(Some(("True", "2024-01-01T00:00:00Z")), json!([]));
        let now = t("2024-01-01T00:01:00Z");
        let first = evaluate(&n, None, now, DEFAULT_GRACE);
        let mut unknown = n.clone();
        unknown["status"] = first.status.unwrap_or_default();
        unknown["spec"]["taints"] = json!(first.taints.unwrap_or_default());
        // Evaluating again later changes nothing: conditions and taints (with their timeAdded) stay.
        assert_eq!(
            evaluate(&unknown, None, t("2024-01-01T00:02:00Z"), DEFAULT_GRACE),
            NodePlan::default()
        );

        // The kubelet comes back: it posts Ready True and renews the lease.
        let mut back = unknown.clone();
        back["status"] = json!({"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-01T00:03:00Z"}
        ]});
        let plan = evaluate(
            &back,
            Some(&lease("2024-01-01T00:03:00Z")),
            t("2024-01-01T00:03:05Z"),
            DEFAULT_GRACE,
        );
        assert_eq!(plan.status, None);
        assert_eq!(plan.taints, Some(vec![]), "unreachable taints removed");
    }

    #[test]
    fn not_ready_node_gets_not_ready_taints_replacing_unreachable() {
        let n = node(
            Some(("False", "2024-01-01T00:00:50Z")),
            json!([{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:00Z"}]),
        );
        let plan = evaluate(&n, None, t("2024-01-01T00:01:00Z"), DEFAULT_GRACE);
        assert_eq!(plan.status, None, "fresh heartbeat: conditions are the kubelet's");
        let taints = plan.taints.unwrap_or_default();
        assert_eq!(
            keys(&taints),
            vec![
                format!("{NOT_READY_TAINT}:NoExecute"),
                format!("{NOT_READY_TAINT}:NoSchedule")
            ]
        );
    }

    #[test]
    fn new_node_gets_grace_from_creation() {
        let n = node(None, json!([{"key": NOT_READY_TAINT, "effect": "NoSchedule"}]));
        let early = evaluate(&n, None, t("2024-01-01T00:00:30Z"), DEFAULT_GRACE);
        assert_eq!(
            early,
            NodePlan::default(),
            "within grace, and its admission taint is left alone"
        );
        assert_eq!(stale_at(&n, None, DEFAULT_GRACE), Some(t("2024-01-01T00:00:40Z")));
        let late = evaluate(&n, None, t("2024-01-01T00:00:41Z"), DEFAULT_GRACE);
        let status = late.status.unwrap_or_default();
        assert_eq!(cond(&status, "Ready")["reason"], NEVER_REASON);
        assert_eq!(cond(&status, "Ready")["lastHeartbeatTime"], "2024-01-01T00:00:00Z");
        assert_eq!(
            keys(&late.taints.unwrap_or_default()),
            vec![
                format!("{UNREACHABLE_TAINT}:NoExecute"),
                format!("{UNREACHABLE_TAINT}:NoSchedule")
            ]
        );
    }

    #[test]
    fn pressure_and_unschedulable_become_no_schedule_taints() {
        let mut n = node(Some(("True", "2024-01-01T00:00:50Z")), json!([]));
        n["status"]["conditions"][0]["status"] = json!("True");
        n["spec"]["unschedulable"] = json!(true);
        let plan = evaluate(&n, None, t("2024-01-01T00:01:00Z"), DEFAULT_GRACE);
        assert_eq!(
            keys(&plan.taints.unwrap_or_default()),
            vec![
                "node.kubernetes.io/memory-pressure:NoSchedule".to_string(),
                format!("{UNSCHEDULABLE_TAINT}:NoSchedule")
            ]
        );
    }

    fn bound_pod(name: &str, tolerations: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2024-01-01T00:00:00Z"},
               "spec": {"nodeName": "n1", "tolerations": tolerations}})
    }

    #[test]
    fn taint_based_eviction() {
        let n = json!({"metadata": {"name": "n1"}, "spec": {"taints": [
            {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": "2024-01-01T00:01:00Z"},
            {"key": "soft", "effect": "NoSchedule"},
        ]}});
        let tol = |secs: Value| json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": secs}]);
        let mut deleting = bound_pod("deleting", json!([]));
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:01:00Z");
        let mut elsewhere = bound_pod("elsewhere", json!([]));
        elsewhere["spec"]["nodeName"] = json!("n2");
        let pods = vec![
            bound_pod("untolerated", json!([])),
            bound_pod("wait300", tol(json!(300))),
            bound_pod("wait60", tol(json!(60))),
            bound_pod("forever", tol(Value::Null)),
            bound_pod("zero", tol(json!(0))),
            deleting,
            elsewhere,
        ];
        let names = |v: &[(String, String)]| v.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>();

        let (evict, next) = evictions(&n, &pods, t("2024-01-01T00:01:30Z"));
        assert_eq!(names(&evict), vec!["untolerated", "zero"]);
        assert_eq!(evict[0].0, "ns");
        assert_eq!(next, Some(Duration::from_secs(30)), "wait60 runs out at 00:02:00");

        let (evict, next) = evictions(&n, &pods, t("2024-01-01T00:02:00Z"));
        assert_eq!(names(&evict), vec!["untolerated", "wait60", "zero"]);
        assert_eq!(next, Some(Duration::from_secs(240)));

        let (evict, next) = evictions(&n, &pods, t("2024-01-01T10:00:00Z"));
        assert!(
            !names(&evict).contains(&"forever".to_string()),
            "no tolerationSeconds: never"
        );
        assert_eq!(evict.len(), 4);
        assert_eq!(next, None);

        // A NoSchedule-only node evicts nobody.
        let calm = json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "soft", "effect": "NoSchedule"}]}});
        assert_eq!(evictions(&calm, &pods, t("2024-01-01T10:00:00Z")), (vec![], None));
    }

    #[test]
    fn toleration_clock_starts_when_pod_arrives() {
        let n = json!({"metadata": {"name": "n1"}, "spec": {"taints": [
            {"key": NOT_READY_TAINT, "effect": "NoExecute", "timeAdded": "2024-01-01T00:00:00Z"}]}});
        let mut p = bound_pod(
            "late",
            json!([{"key": NOT_READY_TAINT, "operator": "Exists", "tolerationSeconds": 60}]),
        );
        p["metadata"]["creationTimestamp"] = json!("2024-01-01T01:00:00Z");
        let (evict, next) = evictions(&n, &[p], t("2024-01-01T01:00:30Z"));
        assert!(evict.is_empty());
        assert_eq!(next, Some(Duration::from_secs(30)));
    }

    #[test]
    fn eviction_limiter_is_a_token_bucket() {
        let mut l = EvictionLimiter::default();
        let t0 = t("2024-01-01T00:00:00Z");
        assert_eq!(l.try_take(t0), Ok(()));
        assert_eq!(l.try_take(t0), Err(Duration::from_secs(10)));
        assert!(l.try_take(t0 + chrono::Duration::seconds(5)).is_err());
        assert_eq!(l.try_take(t0 + chrono::Duration::seconds(10)), Ok(()));
    }
}

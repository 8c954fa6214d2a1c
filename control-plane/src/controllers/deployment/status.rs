//! Deployment status: the counts, the `Available` and `Progressing` conditions, and the progress
//! deadline (kubernetes/kubernetes `pkg/controller/deployment/sync.go` `calculateStatus`,
//! `progress.go` `syncRolloutStatus`/`requeueStuckDeployment`, and the condition helpers of
//! `util/deployment_util.go`).
//!
//! `kubectl rollout status` reads exactly these fields, so the condition bookkeeping (when
//! `lastUpdateTime` and `lastTransitionTime` move) follows Kubernetes closely: a condition is only
//! replaced when its status or reason changes, except `Progressing`, whose `lastUpdateTime` moves
//! on every sign of progress so the deadline is measured from the last progress.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::util::{Deploy, Rs};
use crate::controllers::podutil::{format_time, int_at, normalize, parse_time};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

/// The Deployment's conditions as the reconcile updates them (Kubernetes mutates `d.Status`).
#[derive(Debug, Clone, Default)]
pub struct Conditions(pub Vec<Value>);

impl Conditions {
    pub fn from_status(status: &Value) -> Conditions {
        Conditions(
            status
                .get("conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        )
    }

    pub fn get(&self, ty: &str) -> Option<&Value> {
        self.0.iter().find(|c| field(c, "type") == ty)
    }

    pub fn remove(&mut self, ty: &str) {
        self.0.retain(|c| field(c, "type") != ty);
    }

    /// Kubernetes' `SetDeploymentCondition`: no-op if status and reason are unchanged; keeps
    /// `lastTransitionTime` if only the reason changed; the new condition goes last.
    pub fn set(&mut self, mut cond: Value) {
        let ty = field(&cond, "type").to_string();
        if let Some(current) = self.get(&ty) {
            if field(current, "status") == field(&cond, "status") {
                if field(current, "reason") == field(&cond, "reason") {
                    return;
                }
                cond["lastTransitionTime"] = current.get("lastTransitionTime").cloned().unwrap_or(Value::Null);
            }
        }
        self.remove(&ty);
        self.0.push(cond);
    }
}

/// A string field of a condition, `""` if absent.
pub fn field<'a>(cond: &'a Value, key: &str) -> &'a str {
    cond.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Kubernetes' `NewDeploymentCondition`: both times are now.
pub fn condition(ty: &str, status: &str, reason: &str, message: String, now: DateTime<Utc>) -> Value {
    let t = format_time(now);
    json!({
        "type": ty,
        "status": status,
        "lastUpdateTime": t,
        "lastTransitionTime": t,
        "reason": reason,
        "message": message,
    })
}

/// The counts of a DeploymentStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub observed_generation: i64,
    pub replicas: i64,
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
    pub unavailable: i64,
}

impl Counts {
    /// Reads the counts of a stored status (absent = 0).
    pub fn of(status: &Value) -> Counts {
        let n = |k: &str| int_at(status, &format!("/{k}")).unwrap_or(0);
        Counts {
            observed_generation: n("observedGeneration"),
            replicas: n("replicas"),
            updated: n("updatedReplicas"),
            ready: n("readyReplicas"),
            available: n("availableReplicas"),
            unavailable: n("unavailableReplicas"),
        }
    }
}

/// Kubernetes' `calculateStatus`: sums over the ReplicaSets' statuses (as stored: the sizes planned
/// in this reconcile show up in the next one, as in Kubernetes) plus the `Available` condition.
pub fn calculate(d: &Deploy, all: &[&Rs], new: Option<&Rs>, conditions: &mut Conditions, now: DateTime<Utc>) -> Counts {
    let available: i64 = all.iter().map(|rs| rs.available).sum();
    let total: i64 = all.iter().map(|rs| rs.stored_replicas).sum();
    let counts = Counts {
        observed_generation: d.generation,
        replicas: all.iter().map(|rs| rs.status_replicas).sum(),
        updated: new.map_or(0, |rs| rs.status_replicas),
        ready: all.iter().map(|rs| rs.ready).sum(),
        available,
        unavailable: (total - available).max(0),
    };
    if available >= d.replicas - d.max_unavailable() {
        let msg = "Deployment has minimum availability.".to_string();
        conditions.set(condition(AVAILABLE, "True", "MinimumReplicasAvailable", msg, now));
    } else {
        let msg = "Deployment does not have minimum availability.".to_string();
        conditions.set(condition(AVAILABLE, "False", "MinimumReplicasUnavailable", msg, now));
    }
    counts
}

/// Kubernetes' `DeploymentComplete`: every replica updated and available, none old, observed.
pub fn complete(d: &Deploy, s: &Counts) -> bool {
    s.updated == d.replicas
        && s.replicas == d.replicas
        && s.available == d.replicas
        && s.observed_generation >= d.generation
}

/// Kubernetes' `DeploymentProgressing`: more updated, fewer old, more ready or more available.
fn progressing(old: &Counts, new: &Counts) -> bool {
    new.updated > old.updated
        || (new.replicas - new.updated) < (old.replicas - old.updated)
        || new.ready > old.ready
        || new.available > old.available
}

/// Kubernetes' `DeploymentTimedOut`, on the new status's `Progressing` condition.
fn timed_out(d: &Deploy, conditions: &Conditions, now: DateTime<Utc>) -> bool {
    let (Some(deadline), Some(cond)) = (d.progress_deadline, conditions.get(PROGRESSING)) else {
        return false;
    };
    match field(cond, "reason") {
        NEW_RS_AVAILABLE => false,
        TIMED_OUT => true,
        _ => {
            parse_time(cond.get("lastUpdateTime")).is_some_and(|from| from + chrono::Duration::seconds(deadline) < now)
        }
    }
}

/// Kubernetes' `syncRolloutStatus` (status part): [`calculate`], then the `Progressing` condition
/// for a rollout in flight and the `ReplicaFailure` condition copied from the ReplicaSets.
/// `conditions` holds the Deployment's conditions as updated earlier in this reconcile.
pub fn rollout(d: &Deploy, all: &[&Rs], new: Option<&Rs>, conditions: &mut Conditions, now: DateTime<Utc>) -> Counts {
    let current = conditions.get(PROGRESSING).cloned();
    let counts = calculate(d, all, new, conditions, now);
    if d.progress_deadline.is_none() {
        conditions.remove(PROGRESSING);
    }
    let already_complete =
        counts.replicas == counts.updated && current.as_ref().is_some_and(|c| field(c, "reason") == NEW_RS_AVAILABLE);
    let subject = match new {
        Some(rs) => format!("ReplicaSet {:?}", rs.name),
        None => format!("Deployment {:?}", d.name),
    };
    if d.progress_deadline.is_some() && !already_complete {
        if complete(d, &counts) {
            let msg = format!("{subject} has successfully progressed.");
            conditions.set(condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now));
        } else if progressing(&Counts::of(&d.status), &counts) {
            let msg = format!("{subject} is progressing.");
            let mut cond = condition(PROGRESSING, "True", RS_UPDATED, msg, now);
            // Progress moves lastUpdateTime even with an unchanged reason; the transition time
            // stays while the condition stays True.
            if let Some(current) = &current {
                if field(current, "status") == "True" {
                    cond["lastTransitionTime"] = current.get("lastTransitionTime").cloned().unwrap_or(Value::Null);
                }
                conditions.remove(PROGRESSING);
            }
            conditions.set(cond);
        } else if timed_out(d, conditions, now) {
            let msg = format!("{subject} has timed out progressing.");
            conditions.set(condition(PROGRESSING, "False", TIMED_OUT, msg, now));
        }
    }

    // The new ReplicaSet's failure wins over old ones'; Kubernetes reports one.
    let failure = new
        .and_then(|rs| rs.failure_conditions.first())
        .or_else(|| all.iter().find_map(|rs| rs.failure_conditions.first()));
    match failure {
        Some(c) => conditions.set(json!({
            "type": REPLICA_FAILURE,
            "status": field(c, "status"),
            "lastUpdateTime": c.get("lastTransitionTime").cloned().unwrap_or(Value::Null),
            "lastTransitionTime": c.get("lastTransitionTime").cloned().unwrap_or(Value::Null),
            "reason": field(c, "reason"),
            "message": field(c, "message"),
        })),
        None => conditions.remove(REPLICA_FAILURE),
    }
    counts
}

/// Kubernetes' `requeueStuckDeployment`: with a deadline and a rollout in flight, when to look
/// again to declare it timed out (a second late, to be safely past it).
pub fn requeue_after(d: &Deploy, counts: &Counts, conditions: &Conditions, now: DateTime<Utc>) -> Option<Duration> {
    let deadline = d.progress_deadline?;
    let cond = conditions.get(PROGRESSING)?;
    if complete(d, counts) || field(cond, "reason") == TIMED_OUT {
        return None;
    }
    let last = parse_time(cond.get("lastUpdateTime"))?;
    let after = (last + chrono::Duration::seconds(deadline) - now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(after + Duration::from_secs(1))
}

/// Renders a DeploymentStatus the way Go's `omitempty` does (zero counts omitted).
pub fn render(counts: &Counts, conditions: &Conditions, collision_count: Option<i64>) -> Value {
    let mut status = Map::new();
    let fields = [
        ("observedGeneration", counts.observed_generation),
        ("replicas", counts.replicas),
        ("updatedReplicas", counts.updated),
        ("readyReplicas", counts.ready),
        ("availableReplicas", counts.available),
        ("unavailableReplicas", counts.unavailable),
    ];
    for (k, n) in fields {
        if n != 0 {
            status.insert(k.into(), json!(n));
        }
    }
    if !conditions.0.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions.0.clone()));
    }
    if let Some(c) = collision_count {
        status.insert("collisionCount".into(), json!(c));
    }
    Value::Object(status)
}

/// Whether two statuses differ in substance: counts (absent = 0), collision count, and conditions
/// compared by type regardless of order.
pub fn differs(old: &Value, new: &Value) -> bool {
    let key = |s: &Value| {
        let conditions: BTreeMap<String, Option<Value>> = s
            .get("conditions")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| (field(c, "type").to_string(), normalize(c)))
                    .collect()
            })
            .unwrap_or_default();
        (Counts::of(s), int_at(s, "/collisionCount"), conditions)
    };
    key(old) != key(new)
}

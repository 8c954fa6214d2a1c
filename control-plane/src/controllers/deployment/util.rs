//! The Deployment controller's vocabulary: a typed view of the Deployment and its ReplicaSets,
//! the pod-template hash, `maxSurge`/`maxUnavailable` resolution, revisions and the annotations
//! that carry them (kubernetes/kubernetes `pkg/controller/deployment/util/deployment_util.go`,
//! `pkg/controller/controller_utils.go`'s `ComputeHash` and ReplicaSet orderings).
//!
//! Parsing once into plain structs keeps the algorithm files about the algorithm; every field is
//! read defensively (absent or malformed reads as Kubernetes' default).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::controllers::podutil::{
    creation_timestamp, int_at, is_being_deleted, name_of, normalize, uid_of, POD_TEMPLATE_HASH_LABEL,
};

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
/// The controller's default `--deployment-controller-...` limit on `revision-history` length.
const REVISION_HISTORY_MAX_CHARS: usize = 2000;

/// The fields of a Deployment the controller reads, defaulted as apps/v1 defaults them.
#[derive(Debug, Clone)]
pub struct Deploy {
    pub name: String,
    pub generation: i64,
    pub replicas: i64,
    pub paused: bool,
    pub recreate: bool,
    pub max_surge_raw: Value,
    pub max_unavailable_raw: Value,
    pub min_ready_seconds: i64,
    /// `None` for no limit (`math.MaxInt32`).
    pub revision_history_limit: Option<i64>,
    /// `None` when there is no deadline (absent from the object is the default, 600s).
    pub progress_deadline: Option<i64>,
    pub template: Value,
    pub annotations: BTreeMap<String, String>,
    pub status: Value,
}

impl Deploy {
    pub fn from_value(d: &Value) -> Deploy {
        let spec = d.get("spec").unwrap_or(&Value::Null);
        let strategy = spec.get("strategy").unwrap_or(&Value::Null);
        let rolling = strategy.get("rollingUpdate").unwrap_or(&Value::Null);
        let pct25 = Value::String("25%".into());
        let deadline = int_at(spec, "/progressDeadlineSeconds").unwrap_or(600);
        Deploy {
            name: name_of(d).to_string(),
            generation: int_at(d, "/metadata/generation").unwrap_or(0),
            replicas: int_at(spec, "/replicas").unwrap_or(1).max(0),
            paused: spec.get("paused").and_then(Value::as_bool).unwrap_or(false),
            recreate: strategy.get("type").and_then(Value::as_str) == Some("Recreate"),
            max_surge_raw: rolling
                .get("maxSurge")
                .filter(|v| !v.is_null())
                .unwrap_or(&pct25)
                .clone(),
            max_unavailable_raw: rolling
                .get("maxUnavailable")
                .filter(|v| !v.is_null())
                .unwrap_or(&pct25)
                .clone(),
            min_ready_seconds: int_at(spec, "/minReadySeconds").unwrap_or(0),
            revision_history_limit: Some(int_at(spec, "/revisionHistoryLimit").unwrap_or(10).max(0))
                .filter(|l| *l != i64::from(i32::MAX)),
            // math.MaxInt32 is how Kubernetes spells "no deadline".
            progress_deadline: (deadline != i64::from(i32::MAX)).then_some(deadline),
            template: spec.get("template").cloned().unwrap_or(Value::Null),
            annotations: string_map(d.pointer("/metadata/annotations")),
            status: d.get("status").cloned().unwrap_or_else(|| Value::Object(Map::new())),
        }
    }

    /// `(maxSurge, maxUnavailable)` resolved against `replicas` (Kubernetes' `ResolveFenceposts`):
    /// surge rounds up, unavailable rounds down, and if both resolve to 0, unavailable becomes 1.
    fn fenceposts(&self) -> (i64, i64) {
        let surge = scaled_value(&self.max_surge_raw, self.replicas, true);
        let mut unavailable = scaled_value(&self.max_unavailable_raw, self.replicas, false);
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        (surge, unavailable)
    }

    /// Kubernetes' `MaxSurge`: 0 for Recreate.
    pub fn max_surge(&self) -> i64 {
        if self.recreate {
            return 0;
        }
        self.fenceposts().0
    }

    /// Kubernetes' `MaxUnavailable`: 0 for Recreate or 0 replicas, never above `replicas`.
    pub fn max_unavailable(&self) -> i64 {
        if self.recreate || self.replicas == 0 {
            return 0;
        }
        self.fenceposts().1.min(self.replicas)
    }

    /// A count from the current (stored) status, absent read as 0.
    pub fn status_int(&self, key: &str) -> i64 {
        int_at(&self.status, &format!("/{key}")).unwrap_or(0)
    }
}

/// An int-or-percent (`3`, `"25%"`) scaled against `total`. Anything else reads as 0, which
/// validation would have refused.
pub fn scaled_value(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(pct) => {
                let scaled = total.saturating_mul(pct);
                if round_up {
                    (scaled + 99).div_euclid(100)
                } else {
                    scaled.div_euclid(100)
                }
            }
            None => 0,
        },
        _ => 0,
    }
}

/// The fields of a ReplicaSet the controller reads, and the replicas it plans for it.
#[derive(Debug, Clone)]
pub struct Rs {
    pub name: String,
    pub uid: String,
    pub created: Option<DateTime<Utc>>,
    /// `spec.replicas` as planned so far (starts as stored).
    pub replicas: i64,
    /// `spec.replicas` as stored (or as created), which the status computation uses.
    pub stored_replicas: i64,
    pub status_replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub generation: i64,
    pub observed_generation: i64,
    pub min_ready_seconds: i64,
    pub deleting: bool,
    pub annotations: BTreeMap<String, String>,
    pub template: Value,
    pub failure_conditions: Vec<Value>,
    /// Planned in this reconcile, not yet in the API.
    pub to_create: bool,
}

impl Rs {
    pub fn from_value(rs: &Value) -> Rs {
        let status_int = |k: &str| int_at(rs, &format!("/status/{k}")).unwrap_or(0);
        Rs {
            name: name_of(rs).to_string(),
            uid: uid_of(rs).to_string(),
            created: creation_timestamp(rs),
            replicas: int_at(rs, "/spec/replicas").unwrap_or(1).max(0),
            stored_replicas: int_at(rs, "/spec/replicas").unwrap_or(1).max(0),
            status_replicas: status_int("replicas"),
            ready: status_int("readyReplicas"),
            available: status_int("availableReplicas"),
            generation: int_at(rs, "/metadata/generation").unwrap_or(0),
            observed_generation: status_int("observedGeneration"),
            min_ready_seconds: int_at(rs, "/spec/minReadySeconds").unwrap_or(0),
            deleting: is_being_deleted(rs),
            annotations: string_map(rs.pointer("/metadata/annotations")),
            template: rs.pointer("/spec/template").cloned().unwrap_or(Value::Null),
            failure_conditions: rs
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c.get("type").and_then(Value::as_str) == Some("ReplicaFailure"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            to_create: false,
        }
    }

    /// The `revision` annotation as a number; unparsable reads as 0 (Kubernetes' `Revision` errs
    /// and `MaxRevision` skips it).
    pub fn revision(&self) -> i64 {
        self.annotations
            .get(REVISION_ANNOTATION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    }

    pub fn annotation_int(&self, key: &str) -> Option<i64> {
        self.annotations.get(key).and_then(|v| v.parse().ok())
    }
}

/// A string-to-string map field (labels, annotations); non-string values are skipped.
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `ReplicaSetsByCreationTimestamp`: older first, then by name.
pub fn by_creation(a: &Rs, b: &Rs) -> Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

/// `ReplicaSetsByRevision`: lower revision first, then older.
pub fn by_revision(a: &Rs, b: &Rs) -> Ordering {
    a.revision().cmp(&b.revision()).then_with(|| by_creation(a, b))
}

/// `ReplicaSetsBySizeNewer`: larger first; equal sizes newer first.
pub fn by_size_newer(a: &Rs, b: &Rs) -> Ordering {
    b.replicas.cmp(&a.replicas).then_with(|| by_creation(b, a))
}

/// `ReplicaSetsBySizeOlder`: larger first; equal sizes older first.
pub fn by_size_older(a: &Rs, b: &Rs) -> Ordering {
    b.replicas.cmp(&a.replicas).then_with(|| by_creation(a, b))
}

/// A pod template without the `pod-template-hash` label, normalized for comparison.
fn template_without_hash(template: &Value) -> Option<Value> {
    let mut t = template.clone();
    if let Some(Value::Object(labels)) = t.pointer_mut("/metadata/labels") {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    normalize(&t)
}

/// Kubernetes' `EqualIgnoreHash`: the templates are semantically equal but for the hash label.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    template_without_hash(a) == template_without_hash(b)
}

/// The annotations Kubernetes never copies from a Deployment to its ReplicaSets.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | ROLLBACK_TO_ANNOTATION
    )
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises the
/// revision to `new_revision` if lower (keeping the superseded number in `revision-history`, which
/// is how a rolled-back-to ReplicaSet remembers it), and for a ReplicaSet about to be created
/// (`!exists`) sets the replicas annotations. Returns the annotations to set; empty if none change.
pub fn new_rs_annotations(d: &Deploy, rs: &Rs, new_revision: i64, exists: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in &d.annotations {
        if !skip_copy(k) && rs.annotations.get(k) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    let old = rs.annotations.get(REVISION_ANNOTATION);
    let old_revision = match old.map(|r| r.parse::<i64>()) {
        None => 0,
        Some(Ok(r)) => r,
        // Kubernetes gives up on a ReplicaSet whose revision is not a number.
        Some(Err(_)) => return out,
    };
    if old_revision < new_revision {
        out.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        if let Some(old) = old {
            let history = rs
                .annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                out.insert(REVISION_HISTORY_ANNOTATION.into(), old.clone());
            } else {
                let mut parts: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                while total > REVISION_HISTORY_MAX_CHARS && !parts.is_empty() {
                    total -= parts[0].len() + 1;
                    parts.remove(0);
                }
                if total <= REVISION_HISTORY_MAX_CHARS {
                    parts.push(old);
                    out.insert(REVISION_HISTORY_ANNOTATION.into(), parts.join(","));
                }
            }
        }
    }
    if !exists {
        out.extend(replicas_annotations(d, rs));
    }
    out
}

/// Kubernetes' `SetReplicasAnnotations`: `desired-replicas` and `max-replicas`, the sizes the
/// Deployment had when it last scaled this ReplicaSet (read back by proportional scaling).
/// Returns those that differ.
pub fn replicas_annotations(d: &Deploy, rs: &Rs) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let want = [
        (DESIRED_REPLICAS_ANNOTATION, d.replicas),
        (MAX_REPLICAS_ANNOTATION, d.replicas + d.max_surge()),
    ];
    for (key, n) in want {
        let n = n.to_string();
        if rs.annotations.get(key) != Some(&n) {
            out.insert(key.to_string(), n);
        }
    }
    out
}

/// Kubernetes' `ComputeHash`: FNV-32a over the template, then the collision count, rendered with
/// `SafeEncodeString` (digits of the decimal hash mapped onto consonants and digits that cannot
/// spell words).
///
/// Go hashes a `spew` dump of the typed struct; this hashes a canonical encoding of the normalized
/// JSON (keys sorted, nulls and empty collections dropped), so hashes are stable and change with
/// the template but do not equal kube-controller-manager's byte for byte. Only consistency within
/// skiff matters: the hash names and labels ReplicaSets, and finding the new ReplicaSet compares
/// templates, not hashes.
pub fn pod_template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut h = Fnv32a::new();
    encode(&normalize(template).unwrap_or(Value::Null), &mut h);
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        // Go writes the count as a little-endian uint32 into an 8-byte buffer.
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        h.write(&bytes);
    }
    safe_encode(&h.0.to_string())
}

struct Fnv32a(u32);

impl Fnv32a {
    fn new() -> Self {
        Fnv32a(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

/// A prefix-free encoding: a type tag, then length-prefixed contents, object keys sorted.
fn encode(v: &Value, h: &mut Fnv32a) {
    let string = |h: &mut Fnv32a, s: &str| {
        h.write(&(s.len() as u64).to_le_bytes());
        h.write(s.as_bytes());
    };
    match v {
        Value::Null => h.write(b"n"),
        Value::Bool(b) => h.write(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.write(b"#");
            string(h, &n.to_string());
        }
        Value::String(s) => {
            h.write(b"s");
            string(h, s);
        }
        Value::Array(a) => {
            h.write(b"[");
            h.write(&(a.len() as u64).to_le_bytes());
            for item in a {
                encode(item, h);
            }
        }
        Value::Object(m) => {
            h.write(b"{");
            h.write(&(m.len() as u64).to_le_bytes());
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                string(h, k);
                if let Some(item) = m.get(k) {
                    encode(item, h);
                }
            }
        }
    }
}

/// apimachinery's `rand.SafeEncodeString`.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv_matches_reference_vectors() {
        let mut h = Fnv32a::new();
        h.write(b"");
        assert_eq!(h.0, 0x811c_9dc5);
        let mut h = Fnv32a::new();
        h.write(b"a");
        assert_eq!(h.0, 0xe40c_292c);
        let mut h = Fnv32a::new();
        h.write(b"foobar");
        assert_eq!(h.0, 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_uses_kubernetes_alphabet() {
        // '0' is byte 48: 48 % 27 = 21 -> '4'; '9' is 57: 57 % 27 = 3 -> 'f'.
        assert_eq!(safe_encode("09"), "4f");
    }

    #[test]
    fn hash_is_deterministic_and_sensitive() {
        let a = json!({"metadata": {"labels": {"app": "x", "b": "c"}}, "spec": {"containers": [{"image": "v1"}]}});
        let reordered =
            json!({"spec": {"containers": [{"image": "v1"}]}, "metadata": {"labels": {"b": "c", "app": "x"}}});
        let b = json!({"metadata": {"labels": {"app": "x", "b": "c"}}, "spec": {"containers": [{"image": "v2"}]}});
        assert_eq!(pod_template_hash(&a, None), pod_template_hash(&reordered, None));
        assert_ne!(pod_template_hash(&a, None), pod_template_hash(&b, None));
        assert_ne!(pod_template_hash(&a, None), pod_template_hash(&a, Some(1)));
        assert!(pod_template_hash(&a, None)
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn fenceposts_round_and_never_both_zero() {
        let d = |replicas: i64, surge: Value, unavailable: Value| {
            Deploy::from_value(&json!({"spec": {"replicas": replicas,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}))
        };
        let x = d(10, json!("25%"), json!("25%"));
        assert_eq!((x.max_surge(), x.max_unavailable()), (3, 2));
        let x = d(1, json!(0), json!("10%"));
        assert_eq!(
            (x.max_surge(), x.max_unavailable()),
            (0, 1),
            "both zero resolves unavailable to 1"
        );
        let x = d(3, json!(1), json!(5));
        assert_eq!(x.max_unavailable(), 3, "capped at replicas");
        let x = Deploy::from_value(&json!({"spec": {"replicas": 4}}));
        assert_eq!((x.max_surge(), x.max_unavailable()), (1, 1), "defaults 25%/25%");
        let x = Deploy::from_value(&json!({"spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}));
        assert_eq!((x.max_surge(), x.max_unavailable()), (0, 0));
    }

    #[test]
    fn revision_annotations_keep_history() {
        let d = Deploy::from_value(&json!({"metadata": {"annotations": {
            "kubernetes.io/change-cause": "v2", REVISION_ANNOTATION: "9"}}, "spec": {"replicas": 2}}));
        let mut rs = Rs::from_value(&json!({"metadata": {"name": "r", "annotations": {REVISION_ANNOTATION: "1"}}}));
        let a = new_rs_annotations(&d, &rs, 4, true);
        assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("4"));
        assert_eq!(a.get(REVISION_HISTORY_ANNOTATION).map(String::as_str), Some("1"));
        assert_eq!(a.get("kubernetes.io/change-cause").map(String::as_str), Some("v2"));
        assert!(
            !a.contains_key(DESIRED_REPLICAS_ANNOTATION),
            "existing ReplicaSets keep their replicas annotations"
        );
        rs.annotations.extend(a);
        let again = new_rs_annotations(&d, &rs, 4, true);
        assert!(again.is_empty(), "idempotent: {again:?}");
        let b = new_rs_annotations(&d, &rs, 6, true);
        assert_eq!(b.get(REVISION_HISTORY_ANNOTATION).map(String::as_str), Some("1,4"));
    }
}

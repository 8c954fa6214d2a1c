//! The decision half of the DaemonSet controller: given a DaemonSet, the nodes, and the pods of its
//! namespace, which daemon pods to create, which to delete, and the new `.status`.
//!
//! Pure so the per-node arithmetic (eligibility, duplicates, rolling replacement under
//! `maxUnavailable`/`maxSurge`) is tested without a cluster; the runtime executes the [`Plan`] and
//! calls again on the next event. The algorithm is kubernetes/kubernetes `pkg/controller/daemon`
//! (`daemon_controller.go` `manage`/`podsShouldBeOnNode`/`updateDaemonSetStatus`, `update.go`
//! `rollingUpdate`, `util/daemonset_util.go`) as of 1.32:
//!
//! - a node should run a daemon pod when the template (plus the automatic DaemonSet tolerations)
//!   fits it by `nodeSelector`, required node affinity and `NoSchedule`/`NoExecute` taints;
//!   resources are the scheduler's business. A node whose only problem is an untolerated
//!   `NoSchedule` taint keeps the pod it has but gets no new one.
//! - pods are not bound by this controller: each carries a required node affinity naming its node
//!   (`matchFields metadata.name In [node]`) and the default scheduler binds it there.
//! - like Kubernetes (whose expectations stop the rolling update while creations or deletions are
//!   in flight), one reconcile takes one step: if the per-node sync has anything to do, the rolling
//!   update waits for the next reconcile. Status is computed from the pods as they were.
//!
//! Differences from Kubernetes: a pod is "ours" only when its controller reference names the
//! DaemonSet and the selector still selects it (the [`Plan`] has no adopt/release writes); scheduled
//! pods on nodes that no longer exist are deleted here rather than by the pod garbage collector;
//! failed pods are deleted without the per-node exponential back-off (the runtime's rate-limited
//! queue bounds the churn); there are no ControllerRevisions, the revision hash is
//! [`pod_template_hash`] of the template.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::deployment::pod_template_hash;
use super::podutil::{
    claim, creation_timestamp, int_at, is_being_deleted, is_pod_available, is_pod_ready, labels_of, name_of,
    namespace_of, owner_reference, pod_available_at, pod_node_name, pod_phase, semantically_equal, workload_selector,
    Claim,
};
use crate::scheduler::model::{NodeInfo, PodInfo};
use crate::scheduler::plugins::node_affinity::matches_required;
use crate::scheduler::plugins::taint_toleration::{untolerated, Taint};

/// The label naming the template revision a daemon pod was created from.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// The label carrying the DaemonSet's template generation when the pod was created.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The deprecated annotation extensions/v1beta1 used for the template generation; honoured when
/// present so pods labelled by it count as up to date.
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// What one reconcile of a DaemonSet decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Pods to POST (with `generateName`).
    pub create: Vec<Value>,
    /// Names of pods (in the DaemonSet's namespace) to DELETE.
    pub delete: Vec<String>,
    /// The new `.status`.
    pub status: Value,
    pub status_changed: bool,
    /// When to reconcile again without events: a ready pod becoming available (`minReadySeconds`).
    pub requeue_after: Option<Duration>,
}

/// Whether a node should run a daemon pod, and whether one already there may stay
/// (Kubernetes' `NodeShouldRunDaemonPod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fit {
    should_run: bool,
    should_continue: bool,
}

/// The DaemonSet reduced to what the reconcile reads.
struct Ds<'a> {
    obj: &'a Value,
    hash: String,
    /// The deprecated template-generation annotation, if set.
    annotated_generation: Option<i64>,
    min_ready: i64,
    on_delete: bool,
    max_unavailable: Option<Value>,
    max_surge: Option<Value>,
    /// The daemon pod as `NewPod` builds it (template plus automatic tolerations), for predicates.
    probe: PodInfo,
    template_node_name: String,
}

/// Reconciles `ds` against `nodes` and `pods` (all of its namespace) at `now`.
pub fn reconcile(ds: &Value, nodes: &[Value], pods: &[Value], now: DateTime<Utc>) -> Plan {
    let old_status = ds.get("status").cloned().unwrap_or_else(|| json!({}));
    let unchanged = Plan {
        status: old_status.clone(),
        ..Plan::default()
    };
    // Kubernetes does nothing for a DaemonSet being deleted, or one whose selector selects
    // everything (here also: nothing, or is invalid).
    if is_being_deleted(ds) {
        return unchanged;
    }
    let Some(selector) = workload_selector(ds.pointer("/spec/selector").unwrap_or(&Value::Null)) else {
        return unchanged;
    };
    let Some(d) = Ds::from_value(ds) else {
        return unchanged;
    };

    // Our pods, by the node they run on or are meant for; pods that are terminal and already
    // being deleted are ignored so a replacement need not wait for them.
    let mut by_node: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| namespace_of(p) == namespace_of(ds)) {
        if claim(ds, Some(&selector), pod) != Claim::Owned || (is_terminal(pod) && is_being_deleted(pod)) {
            continue;
        }
        if let Some(node) = target_node_name(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    for list in by_node.values_mut() {
        list.sort_by(|a, b| by_creation_and_phase(a, b));
    }
    let fits: Vec<(&str, Fit)> = nodes
        .iter()
        .filter(|n| !name_of(n).is_empty())
        .map(|n| (name_of(n), d.fit(n)))
        .collect();

    let mut plan = Plan::default();
    let (mut create_nodes, delete) = d.manage(&fits, &by_node, now);
    plan.delete = delete;
    // Kubernetes' expectations hold the rolling update back while the per-node sync has writes
    // in flight; here: while it has any to make.
    if create_nodes.is_empty() && plan.delete.is_empty() && !d.on_delete {
        (create_nodes, plan.delete) = d.rolling_update(&fits, &by_node, now);
    }
    plan.create = create_nodes.iter().map(|n| d.new_pod(n)).collect();

    let (status, requeue) = d.status(&fits, &by_node, now);
    plan.status_changed = !semantically_equal(&old_status, &status);
    plan.status = status;
    plan.requeue_after = requeue;
    plan
}

impl<'a> Ds<'a> {
    fn from_value(obj: &'a Value) -> Option<Ds<'a>> {
        let template = obj.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
        let collision_count = int_at(obj, "/status/collisionCount");
        let strategy = obj.pointer("/spec/updateStrategy").unwrap_or(&Value::Null);
        let rolling = strategy.get("rollingUpdate").unwrap_or(&Value::Null);
        let probe_pod = json!({
            "metadata": {
                "namespace": namespace_of(obj),
                "labels": template.pointer("/metadata/labels").cloned().unwrap_or(Value::Null),
            },
            "spec": spec_with_tolerations(&template),
        });
        Some(Ds {
            obj,
            hash: pod_template_hash(&template, collision_count),
            annotated_generation: obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok()),
            min_ready: int_at(obj, "/spec/minReadySeconds").unwrap_or(0).max(0),
            on_delete: strategy.get("type").and_then(Value::as_str) == Some("OnDelete"),
            max_unavailable: rolling.get("maxUnavailable").filter(|v| !v.is_null()).cloned(),
            max_surge: rolling.get("maxSurge").filter(|v| !v.is_null()).cloned(),
            // A template the scheduler could not parse would be rejected by validation; acting on
            // a half-read one could delete every daemon pod, so do nothing instead.
            probe: PodInfo::from_value(&probe_pod).ok()?,
            template_node_name: template
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    /// `NodeShouldRunDaemonPod`. A node the scheduler cannot parse keeps its pods but gets none.
    fn fit(&self, node: &Value) -> Fit {
        let no = Fit {
            should_run: false,
            should_continue: false,
        };
        if !self.template_node_name.is_empty() && self.template_node_name != name_of(node) {
            return no;
        }
        let Ok(info) = NodeInfo::from_value(node) else {
            return Fit {
                should_run: false,
                should_continue: true,
            };
        };
        if !matches_required(&self.probe, &info) {
            return no;
        }
        if untolerated(&info.taints, &self.probe.tolerations).is_none() {
            return Fit {
                should_run: true,
                should_continue: true,
            };
        }
        let no_execute: Vec<Taint> = info.taints.into_iter().filter(|t| t.effect == "NoExecute").collect();
        Fit {
            should_run: false,
            should_continue: untolerated(&no_execute, &self.probe.tolerations).is_none(),
        }
    }

    /// Kubernetes' `IsPodUpdated`: the revision hash matches, or the deprecated template
    /// generation does.
    fn is_updated(&self, pod: &Value) -> bool {
        let labels = labels_of(pod);
        let label = |k: &str| labels.get(k).and_then(Value::as_str).map(str::to_string);
        label(CONTROLLER_REVISION_HASH_LABEL).as_deref() == Some(self.hash.as_str())
            || self
                .annotated_generation
                .is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(g.to_string()))
    }

    fn surge_allowed(&self) -> bool {
        !self.on_delete && scaled(self.max_surge.as_ref(), 1, 0) > 0
    }

    /// `manage`/`podsShouldBeOnNode`: the nodes needing a pod and the pods to delete.
    fn manage(
        &self,
        fits: &[(&str, Fit)],
        by_node: &BTreeMap<String, Vec<&Value>>,
        now: DateTime<Utc>,
    ) -> (Vec<String>, Vec<String>) {
        let mut create = Vec::new();
        let mut delete = Vec::new();
        let empty = Vec::new();
        for (node, fit) in fits {
            let pods = by_node.get(*node).unwrap_or(&empty);
            if fit.should_run && pods.is_empty() {
                create.push(node.to_string());
            } else if fit.should_continue {
                let mut running = Vec::new();
                for pod in pods.iter().filter(|p| !is_being_deleted(p)) {
                    // A daemon pod that ended is replaced: delete now, recreate once it is gone.
                    if is_terminal(pod) {
                        delete.push(name_of(pod).to_string());
                    } else {
                        running.push(*pod);
                    }
                }
                if self.surge_allowed() {
                    delete.extend(self.surge_duplicates(&running, now));
                } else {
                    // Keep the oldest (pods are sorted), delete the rest.
                    delete.extend(running.iter().skip(1).map(|p| name_of(p).to_string()));
                }
            } else {
                delete.extend(
                    pods.iter()
                        .filter(|p| !is_being_deleted(p))
                        .map(|p| name_of(p).to_string()),
                );
            }
        }
        let known: BTreeSet<&str> = fits.iter().map(|(n, _)| *n).collect();
        for pods in by_node
            .iter()
            .filter(|(n, _)| !known.contains(n.as_str()))
            .map(|(_, p)| p)
        {
            delete.extend(
                pods.iter()
                    .filter(|p| !is_being_deleted(p))
                    .map(|p| name_of(p).to_string()),
            );
        }
        (create, delete)
    }

    /// With surge, a node may hold the oldest updated pod and the oldest old pod together while the
    /// new one is not yet available; everything else goes, and the old one goes once it is not
    /// ready or the new one is available.
    fn surge_duplicates(&self, running: &[&Value], now: DateTime<Utc>) -> Vec<String> {
        let mut delete = Vec::new();
        let (mut oldest_new, mut oldest_old): (Option<&Value>, Option<&Value>) = (None, None);
        for pod in running {
            let slot = if self.is_updated(pod) {
                &mut oldest_new
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(pod);
            } else {
                delete.push(name_of(pod).to_string());
            }
        }
        if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
            if !is_pod_ready(old) || is_pod_available(new, self.min_ready, now) {
                delete.push(name_of(old).to_string());
            }
        }
        delete
    }

    /// `rollingUpdate`: old pods to delete (and, with surge, nodes to create new pods on).
    fn rolling_update(
        &self,
        fits: &[(&str, Fit)],
        by_node: &BTreeMap<String, Vec<&Value>>,
        now: DateTime<Utc>,
    ) -> (Vec<String>, Vec<String>) {
        // Every node with pods, plus every node that should run one.
        let mut nodes: BTreeMap<&str, Vec<&Value>> = by_node.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
        let mut desired = 0;
        for (node, _) in fits.iter().filter(|(_, f)| f.should_run) {
            desired += 1;
            nodes.entry(node).or_default();
        }
        let mut max_unavailable = scaled(self.max_unavailable.as_ref(), desired, 1);
        let max_surge = scaled(self.max_surge.as_ref(), desired, 0);
        if max_unavailable == 0 && max_surge == 0 {
            max_unavailable = 1;
        }
        let available = |p: &Value| is_pod_available(p, self.min_ready, now);
        let mut to_delete = Vec::new();
        if max_surge == 0 {
            let (mut unavailable, mut allowed, mut candidates) = (0, Vec::new(), Vec::new());
            for pods in nodes.values() {
                match self.updated_and_old(pods) {
                    Some((Some(new), None)) => {
                        if !available(new) {
                            unavailable += 1;
                        }
                    }
                    Some((None, Some(old))) if !available(old) => allowed.push(name_of(old).to_string()),
                    Some((None, Some(old))) if unavailable < max_unavailable => {
                        candidates.push(name_of(old).to_string())
                    }
                    Some((None, Some(_))) => {}
                    // Nothing, both, or duplicates: the per-node sync fixes it; count it unavailable.
                    _ => unavailable += 1,
                }
            }
            let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i64) as usize;
            to_delete.extend(allowed);
            to_delete.extend(candidates.into_iter().take(room));
            return (Vec::new(), to_delete);
        }
        let (mut surged, mut allowed, mut candidates) = (0, Vec::new(), Vec::new());
        let fit_of = |node: &str| fits.iter().find(|(n, _)| *n == node).map(|(_, f)| *f);
        for (node, pods) in &nodes {
            match self.updated_and_old(pods) {
                None => surged += 1,
                Some((_, None)) => {}
                Some((None, Some(old))) if !available(old) => {
                    if fit_of(node).is_some_and(|f| f.should_run) {
                        allowed.push(node.to_string());
                    } else {
                        to_delete.push(name_of(old).to_string());
                    }
                }
                Some((None, Some(_))) if surged < max_surge => candidates.push(node.to_string()),
                Some((None, Some(_))) => {}
                Some((Some(new), Some(_))) if !available(new) => surged += 1,
                Some((Some(_), Some(old))) => to_delete.push(name_of(old).to_string()),
            }
        }
        let room = (max_surge - surged).clamp(0, candidates.len() as i64) as usize;
        allowed.extend(candidates.into_iter().take(room));
        (allowed, to_delete)
    }

    /// `findUpdatedPodsOnNode`: the node's one updated and one old pod (ignoring pods being
    /// deleted); `None` when there are two of either kind.
    #[allow(clippy::type_complexity)]
    fn updated_and_old<'p>(&self, pods: &[&'p Value]) -> Option<(Option<&'p Value>, Option<&'p Value>)> {
        let (mut new, mut old) = (None, None);
        for pod in pods.iter().filter(|p| !is_being_deleted(p)) {
            let slot = if self.is_updated(pod) { &mut new } else { &mut old };
            if slot.is_some() {
                return None;
            }
            *slot = Some(*pod);
        }
        Some((new, old))
    }

    /// `NewPod` + `CreatePodTemplate` + the node-name affinity `syncNodes` adds.
    fn new_pod(&self, node: &str) -> Value {
        let template = self.obj.pointer("/spec/template").unwrap_or(&Value::Null);
        let mut meta = Map::new();
        for key in ["labels", "annotations", "finalizers"] {
            if let Some(v) = template.pointer(&format!("/metadata/{key}")).filter(|v| !v.is_null()) {
                meta.insert(key.into(), v.clone());
            }
        }
        let mut labels = match meta.remove("labels") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        labels.insert(CONTROLLER_REVISION_HASH_LABEL.into(), json!(self.hash));
        let generation = self
            .annotated_generation
            .or_else(|| int_at(self.obj, "/metadata/generation"))
            .unwrap_or(0);
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), json!(generation.to_string()));
        meta.insert("labels".into(), Value::Object(labels));
        meta.insert("generateName".into(), json!(format!("{}-", name_of(self.obj))));
        meta.insert("namespace".into(), json!(namespace_of(self.obj)));
        meta.insert(
            "ownerReferences".into(),
            json!([owner_reference(self.obj, "apps/v1", "DaemonSet")]),
        );
        let mut spec = spec_with_tolerations(template);
        replace_node_affinity(&mut spec, node);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    }

    /// `updateDaemonSetStatus`, plus when a ready pod becomes available.
    fn status(
        &self,
        fits: &[(&str, Fit)],
        by_node: &BTreeMap<String, Vec<&Value>>,
        now: DateTime<Utc>,
    ) -> (Value, Option<Duration>) {
        let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) = (0, 0, 0, 0, 0, 0);
        let mut next: Option<DateTime<Utc>> = None;
        for (node, fit) in fits {
            let pods = by_node.get(*node).map(Vec::as_slice).unwrap_or_default();
            if !fit.should_run {
                if !pods.is_empty() {
                    misscheduled += 1;
                }
                continue;
            }
            desired += 1;
            // Pods are sorted: the oldest scheduled one speaks for the node.
            let Some(pod) = pods.first() else { continue };
            current += 1;
            if is_pod_ready(pod) {
                ready += 1;
                if is_pod_available(pod, self.min_ready, now) {
                    available += 1;
                } else if let Some(at) = pod_available_at(pod, self.min_ready) {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
            if self.is_updated(pod) {
                updated += 1;
            }
        }
        let mut status = match self.obj.get("status") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let generation = int_at(self.obj, "/metadata/generation").unwrap_or(0);
        for (k, v) in [
            ("desiredNumberScheduled", desired),
            ("currentNumberScheduled", current),
            ("numberMisscheduled", misscheduled),
            ("numberReady", ready),
            ("updatedNumberScheduled", updated),
            ("numberAvailable", available),
            ("numberUnavailable", desired - available),
            ("observedGeneration", generation),
        ] {
            status.insert(k.into(), json!(v));
        }
        // Kubernetes requeues after minReadySeconds; the exact moment is known here. One second
        // past it, since availability needs strictly more than minReadySeconds.
        let requeue = next.map(|at| {
            let wait = (at - now).num_milliseconds().max(0) as u64 + 1000;
            Duration::from_millis(wait)
        });
        (Value::Object(status), requeue)
    }
}

fn is_terminal(pod: &Value) -> bool {
    matches!(pod_phase(pod), "Failed" | "Succeeded")
}

/// `GetTargetNodeName`: the pod's node, or for an unscheduled daemon pod the node its
/// `matchFields metadata.name In [node]` affinity names.
fn target_node_name(pod: &Value) -> Option<String> {
    let bound = pod_node_name(pod);
    if !bound.is_empty() {
        return Some(bound.to_string());
    }
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    let req = terms
        .iter()
        .filter_map(|t| t.get("matchFields").and_then(Value::as_array))
        .flatten()
        .find(|r| {
            r.get("key").and_then(Value::as_str) == Some("metadata.name")
                && r.get("operator").and_then(Value::as_str) == Some("In")
        })?;
    match req.get("values").and_then(Value::as_array).map(Vec::as_slice) {
        Some([v]) => v.as_str().map(str::to_string),
        _ => None,
    }
}

/// `podByCreationTimestampAndPhase`: scheduled pods first, then oldest, then by name.
fn by_creation_and_phase(a: &Value, b: &Value) -> Ordering {
    let unscheduled = |p: &Value| pod_node_name(p).is_empty();
    unscheduled(a)
        .cmp(&unscheduled(b))
        .then_with(|| creation_timestamp(a).cmp(&creation_timestamp(b)))
        .then_with(|| name_of(a).cmp(name_of(b)))
}

/// The tolerations every daemon pod gets (`AddOrUpdateDaemonPodTolerations`): it must survive the
/// node conditions the node lifecycle controller turns into taints.
fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let tol = |key: &str, effect: &str| json!({"key": format!("node.kubernetes.io/{key}"), "operator": "Exists", "effect": effect});
    let mut out = vec![
        tol("not-ready", "NoExecute"),
        tol("unreachable", "NoExecute"),
        tol("disk-pressure", "NoSchedule"),
        tol("memory-pressure", "NoSchedule"),
        tol("pid-pressure", "NoSchedule"),
        tol("unschedulable", "NoSchedule"),
    ];
    if host_network {
        out.push(tol("network-unavailable", "NoSchedule"));
    }
    out
}

/// The template's spec with the daemon tolerations added; one that matches an existing toleration
/// by key, operator, value and effect replaces it (`AddOrUpdateTolerationInPodSpec`).
fn spec_with_tolerations(template: &Value) -> Value {
    let mut spec = match template.get("spec") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    let mut tolerations = match spec.get("tolerations") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let field = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let same = |a: &Value, b: &Value| {
        ["key", "operator", "value", "effect"]
            .iter()
            .all(|k| field(a, k) == field(b, k))
    };
    for tol in daemon_tolerations(host_network) {
        match tolerations.iter_mut().find(|t| same(t, &tol)) {
            Some(existing) => *existing = tol,
            None => tolerations.push(tol),
        }
    }
    spec.insert("tolerations".into(), Value::Array(tolerations));
    Value::Object(spec)
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the single term
/// naming `node`; preferred terms and pod (anti-)affinity are kept.
fn replace_node_affinity(spec: &mut Value, node: &str) {
    let required = json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}
    ]}]});
    let Value::Object(spec) = spec else { return };
    let affinity = spec.entry("affinity").or_insert_with(|| json!({}));
    if !affinity.is_object() {
        *affinity = json!({});
    }
    let Value::Object(affinity) = affinity else { return };
    let node_affinity = affinity.entry("nodeAffinity").or_insert_with(|| json!({}));
    if !node_affinity.is_object() {
        *node_affinity = json!({});
    }
    if let Value::Object(na) = node_affinity {
        na.insert("requiredDuringSchedulingIgnoredDuringExecution".into(), required);
    }
}

/// An int-or-percent (`maxUnavailable`, `maxSurge`) scaled against `total`, percentages rounded up
/// (`GetScaledValueFromIntOrPercent(..., true)`); absent or malformed is `default`.
fn scaled(v: Option<&Value>, total: i64, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default).max(0),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(pct) => (pct.max(0) * total + 99) / 100,
            None => default,
        },
        _ => default,
    }
}

#[cfg(test)]
mod tests;

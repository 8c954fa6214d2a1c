//! The decision half of the Deployment controller: given a Deployment and the ReplicaSets and pods
//! of its namespace, which ReplicaSet to create, how to scale, annotate, adopt, release and delete
//! ReplicaSets, and the new `.status`.
//!
//! Pure so the rollout arithmetic is tested step by step without a cluster; the runtime executes
//! the returned [`Plan`] and calls again on the next event. The algorithm is kubernetes/kubernetes
//! `pkg/controller/deployment` (`deployment_controller.go` `syncDeployment`, `sync.go`,
//! `rolling.go`, `recreate.go`, `progress.go`, `util/deployment_util.go`), decision for decision:
//!
//! - a deployment being deleted only gets its status synced; a paused one, or one whose
//!   `spec.replicas` changed (a "scaling event", detected through the `desired-replicas`
//!   annotation of its active ReplicaSets), is scaled proportionally without rolling out;
//!   otherwise the `RollingUpdate` or `Recreate` strategy takes one step.
//! - the new ReplicaSet is the oldest whose template equals the Deployment's but for the
//!   `pod-template-hash` label. Re-applying an old template (`kubectl rollout undo` patches the
//!   template client-side) thus finds the old ReplicaSet and bumps its revision.
//! - like Kubernetes, one reconcile takes one step: if it scaled up it does not also scale down, and
//!   the status it reports is computed from the ReplicaSets as they were (their `.status` is the
//!   ReplicaSet controller's to update).
//!
//! Differences from Kubernetes: where Kubernetes writes the new ReplicaSet's annotations and
//! returns, leaving the Deployment's revision annotation for the next sync, the plan does both.
//! The deprecated `rollbackTo` annotation of extensions/v1beta1 is not supported (apps/v1 has no
//! rollback API).

mod status;
#[cfg(test)]
mod tests;
mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::podutil::{claim, controller_uid, is_being_deleted, name_of, namespace_of, owner_reference, uid_of};
use super::podutil::{format_time, pod_phase, workload_selector, Claim, POD_TEMPLATE_HASH_LABEL};
use status::{condition, Conditions, Counts};
use util::{by_creation, by_revision, by_size_newer, by_size_older, equal_ignore_hash, Deploy, Rs};
pub use util::{
    pod_template_hash, DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
};

/// What one reconcile of a Deployment decided. Apply `scale` and `annotate` entries for the same
/// ReplicaSet together (one update), as Kubernetes does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// A new ReplicaSet to POST (named `<deployment>-<hash>`).
    pub create_rs: Option<Value>,
    /// `(ReplicaSet name, spec.replicas)` to set.
    pub scale: Vec<(String, i64)>,
    /// `(ReplicaSet name, annotations)` to set (merge; nothing is removed).
    pub annotate: Vec<(String, BTreeMap<String, String>)>,
    /// `(ReplicaSet name, spec.minReadySeconds)` to set: the Deployment's changed.
    pub min_ready_seconds: Vec<(String, i64)>,
    /// Orphan ReplicaSets the Deployment selects: patch its controller reference onto them.
    pub adopt_rs: Vec<String>,
    /// Owned ReplicaSets it no longer selects: remove its owner reference.
    pub release_rs: Vec<String>,
    /// Old ReplicaSets beyond `revisionHistoryLimit`, scaled to 0 and empty.
    pub delete_rs: Vec<String>,
    /// Annotations to set on the Deployment (its `deployment.kubernetes.io/revision`); empty if none
    /// change. Kubernetes writes them through the status subresource.
    pub deployment_annotations: BTreeMap<String, String>,
    /// The new `.status`.
    pub status: Value,
    pub status_changed: bool,
    /// When to reconcile again even without events: the progress deadline.
    pub requeue_after: Option<Duration>,
}

/// Reconciles `d` against `rses` and `pods` (all of its namespace) at `now`.
pub fn reconcile(d: &Value, rses: &[Value], pods: &[Value], now: DateTime<Utc>) -> Plan {
    let deploy = Deploy::from_value(d);
    // Kubernetes syncs nothing for a Deployment selecting everything (or, here, nothing) but
    // records that it saw the generation.
    let Some(selector) = workload_selector(d.pointer("/spec/selector").unwrap_or(&Value::Null)) else {
        let mut status = deploy.status.clone();
        if deploy.status_int("observedGeneration") < deploy.generation {
            object_at(&mut status).insert("observedGeneration".into(), json!(deploy.generation));
        }
        return Plan {
            status_changed: status::differs(&deploy.status, &status),
            status,
            ..Plan::default()
        };
    };

    let mut p = Planner::new(d, deploy, now);
    for rs in rses.iter().filter(|rs| namespace_of(rs) == namespace_of(d)) {
        match claim(d, Some(&selector), rs) {
            Claim::Owned => p.rses.push(Rs::from_value(rs)),
            Claim::Adopt => {
                p.plan.adopt_rs.push(name_of(rs).to_string());
                p.rses.push(Rs::from_value(rs));
            }
            Claim::Release => p.plan.release_rs.push(name_of(rs).to_string()),
            Claim::Ignore => {}
        }
    }
    p.namespace_rses = rses.iter().filter(|rs| namespace_of(rs) == namespace_of(d)).collect();

    if is_being_deleted(d) {
        p.sync_revision(false);
        return p.finish(false);
    }
    p.check_paused_conditions();
    if p.d.paused || p.is_scaling_event() {
        p.sync_scale();
        return p.finish(false);
    }
    if p.d.recreate {
        // Pods of the old ReplicaSets must be gone before the new ones start.
        let old_pods_running = |p: &Planner| p.old_pods_running(pods);
        p.rollout_recreate(old_pods_running);
    } else {
        p.rollout_rolling();
    }
    p.finish(true)
}

/// The state of one reconcile: the Deployment, its ReplicaSets with their planned sizes, and the
/// plan so far.
struct Planner<'a> {
    obj: &'a Value,
    d: Deploy,
    now: DateTime<Utc>,
    /// The Deployment's ReplicaSets (claimed), plus the one planned for creation.
    rses: Vec<Rs>,
    /// Every ReplicaSet of the namespace, to avoid name collisions.
    namespace_rses: Vec<&'a Value>,
    new: Option<usize>,
    revision_synced: bool,
    conditions: Conditions,
    collision_count: Option<i64>,
    scale: BTreeMap<String, i64>,
    annotate: BTreeMap<String, BTreeMap<String, String>>,
    plan: Plan,
}

impl<'a> Planner<'a> {
    fn new(obj: &'a Value, d: Deploy, now: DateTime<Utc>) -> Self {
        let conditions = Conditions::from_status(&d.status);
        let collision_count = d.status_int("collisionCount");
        let has_collision_count = d.status.get("collisionCount").is_some_and(|v| !v.is_null());
        Planner {
            obj,
            now,
            rses: Vec::new(),
            namespace_rses: Vec::new(),
            new: None,
            revision_synced: false,
            conditions,
            collision_count: has_collision_count.then_some(collision_count),
            scale: BTreeMap::new(),
            annotate: BTreeMap::new(),
            plan: Plan::default(),
            d,
        }
    }

    fn old(&self) -> Vec<usize> {
        (0..self.rses.len()).filter(|i| Some(*i) != self.new).collect()
    }

    fn active_old(&self) -> Vec<usize> {
        self.old().into_iter().filter(|i| self.rses[*i].replicas > 0).collect()
    }

    fn sum_replicas(&self, idx: &[usize]) -> i64 {
        idx.iter().map(|i| self.rses[*i].replicas).sum()
    }

    fn annotate(&mut self, i: usize, annotations: BTreeMap<String, String>) {
        if annotations.is_empty() {
            return;
        }
        let rs = &mut self.rses[i];
        rs.annotations.extend(annotations.clone());
        self.annotate.entry(rs.name.clone()).or_default().extend(annotations);
    }

    /// Kubernetes' `getAllReplicaSetsAndSyncRevision`: finds the new ReplicaSet (creating it if
    /// `create`), brings its revision above every old one's and copies the revision to the
    /// Deployment.
    fn sync_revision(&mut self, create: bool) {
        if self.new.is_some() || (self.revision_synced && !create) {
            return;
        }
        self.revision_synced = true;
        let mut order: Vec<usize> = (0..self.rses.len()).collect();
        order.sort_by(|a, b| by_creation(&self.rses[*a], &self.rses[*b]));
        self.new = order
            .into_iter()
            .find(|i| equal_ignore_hash(&self.rses[*i].template, &self.d.template));
        let max_old = self.old().iter().map(|i| self.rses[*i].revision()).max().unwrap_or(0);
        let new_revision = max_old + 1;

        if let Some(i) = self.new {
            let annotations = util::new_rs_annotations(&self.d, &self.rses[i], new_revision, true);
            self.annotate(i, annotations);
            let rs = &self.rses[i];
            if rs.min_ready_seconds != self.d.min_ready_seconds {
                self.plan
                    .min_ready_seconds
                    .push((rs.name.clone(), self.d.min_ready_seconds));
            }
            let (name, revision) = (rs.name.clone(), rs.annotations.get(REVISION_ANNOTATION).cloned());
            if let Some(revision) = revision {
                self.set_deployment_revision(revision);
            }
            if self.d.progress_deadline.is_some() && self.conditions.get(status::PROGRESSING).is_none() {
                let msg = format!("Found new replica set {name:?}");
                self.conditions.set(condition(
                    status::PROGRESSING,
                    "True",
                    status::FOUND_NEW_RS,
                    msg,
                    self.now,
                ));
            }
        } else if create {
            let i = self.new_replica_set(new_revision);
            self.new = Some(i);
            self.set_deployment_revision(new_revision.to_string());
            if self.d.progress_deadline.is_some() {
                let msg = format!("Created new replica set {:?}", self.rses[i].name);
                self.conditions.set(condition(
                    status::PROGRESSING,
                    "True",
                    status::NEW_RS_CREATED,
                    msg,
                    self.now,
                ));
            }
        }
    }

    fn set_deployment_revision(&mut self, revision: String) {
        if self.d.annotations.get(REVISION_ANNOTATION) != Some(&revision) {
            self.plan
                .deployment_annotations
                .insert(REVISION_ANNOTATION.into(), revision);
        }
    }

    /// Plans the new ReplicaSet: named after the template hash, raising the collision count while
    /// the name is taken by a ReplicaSet that is not this template's (Kubernetes does this one
    /// failed create at a time).
    fn new_replica_set(&mut self, revision: i64) -> usize {
        let mut hash = pod_template_hash(&self.d.template, self.collision_count);
        for _ in 0..100 {
            let name = format!("{}-{hash}", self.d.name);
            let taken = self.namespace_rses.iter().find(|rs| name_of(rs) == name);
            match taken {
                Some(rs)
                    if controller_uid(rs).as_deref() != Some(uid_of(self.obj))
                        || !equal_ignore_hash(
                            rs.pointer("/spec/template").unwrap_or(&Value::Null),
                            &self.d.template,
                        ) =>
                {
                    self.collision_count = Some(self.collision_count.unwrap_or(0) + 1);
                    hash = pod_template_hash(&self.d.template, self.collision_count);
                }
                _ => break,
            }
        }
        let mut template = self.d.template.clone();
        let meta = object_at(object_at(&mut template).entry("metadata").or_insert(Value::Null));
        object_at(meta.entry("labels").or_insert(Value::Null)).insert(POD_TEMPLATE_HASH_LABEL.into(), json!(hash));
        let mut rs = Rs::from_value(&json!({
            "metadata": {"name": format!("{}-{hash}", self.d.name), "creationTimestamp": format_time(self.now)},
            "spec": {"replicas": 0, "minReadySeconds": self.d.min_ready_seconds, "template": template},
        }));
        rs.to_create = true;
        self.rses.push(rs);
        let i = self.rses.len() - 1;
        let annotations = util::new_rs_annotations(&self.d, &self.rses[i], revision, false);
        self.rses[i].annotations.extend(annotations);
        let all: Vec<usize> = (0..self.rses.len()).collect();
        let replicas = self.new_rs_new_replicas(i, &all);
        self.rses[i].replicas = replicas;
        self.rses[i].stored_replicas = replicas;
        i
    }

    /// Kubernetes' `NewRSNewReplicas`: Recreate jumps to `replicas`; RollingUpdate grows the new
    /// ReplicaSet as far as `replicas + maxSurge` total pods allow.
    fn new_rs_new_replicas(&self, new: usize, all: &[usize]) -> i64 {
        if self.d.recreate {
            return self.d.replicas;
        }
        let max_total = self.d.replicas + self.d.max_surge();
        let current = self.sum_replicas(all);
        let rs = &self.rses[new];
        if current >= max_total {
            return rs.replicas;
        }
        rs.replicas + (max_total - current).min(self.d.replicas - rs.replicas)
    }

    /// Kubernetes' `scaleReplicaSet`: sets the size and the replicas annotations; true if the
    /// size changed.
    fn scale_rs(&mut self, i: usize, replicas: i64) -> bool {
        let annotations = util::replicas_annotations(&self.d, &self.rses[i]);
        let resize = self.rses[i].replicas != replicas;
        if !resize && annotations.is_empty() {
            return false;
        }
        self.annotate(i, annotations);
        if resize {
            self.rses[i].replicas = replicas;
            self.scale.insert(self.rses[i].name.clone(), replicas);
        }
        resize
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`: [`Self::scale_rs`] only if the size differs.
    fn scale_if_needed(&mut self, i: usize, replicas: i64) -> bool {
        self.rses[i].replicas != replicas && self.scale_rs(i, replicas)
    }

    /// Kubernetes' `checkPausedConditions`: a paused Deployment reports `Progressing` Unknown so the
    /// pause does not count against the progress deadline.
    fn check_paused_conditions(&mut self) {
        if self.d.progress_deadline.is_none() {
            return;
        }
        let reason = self
            .conditions
            .get(status::PROGRESSING)
            .map(|c| status::field(c, "reason").to_string());
        if reason.as_deref() == Some(status::TIMED_OUT) {
            return;
        }
        let paused_cond = reason.as_deref() == Some(status::PAUSED);
        if self.d.paused && !paused_cond {
            let c = condition(
                status::PROGRESSING,
                "Unknown",
                status::PAUSED,
                "Deployment is paused".into(),
                self.now,
            );
            self.conditions.set(c);
        } else if !self.d.paused && paused_cond {
            let msg = "Deployment is resumed".to_string();
            self.conditions.set(condition(
                status::PROGRESSING,
                "Unknown",
                status::RESUMED,
                msg,
                self.now,
            ));
        }
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was last sized for another
    /// `spec.replicas`.
    fn is_scaling_event(&mut self) -> bool {
        self.sync_revision(false);
        let d_replicas = self.d.replicas;
        self.rses.iter().filter(|rs| rs.replicas > 0).any(|rs| {
            rs.annotation_int(DESIRED_REPLICAS_ANNOTATION)
                .is_some_and(|n| n != d_replicas)
        })
    }

    /// Kubernetes' `sync` + `scale`: resize without rolling out, proportionally across the active
    /// ReplicaSets during a rollout so the mix of old and new does not change.
    fn sync_scale(&mut self) {
        self.sync_revision(false);
        self.scale_proportionally();
        if self.d.paused {
            self.cleanup();
        }
    }

    fn scale_proportionally(&mut self) {
        let d_replicas = self.d.replicas;
        if let Some(i) = self.active_or_latest() {
            self.scale_if_needed(i, d_replicas);
            return;
        }
        if self.new.is_some_and(|n| self.saturated(n)) {
            for i in self.active_old() {
                self.scale_if_needed(i, 0);
            }
            return;
        }
        if self.d.recreate {
            return;
        }
        let mut active: Vec<usize> = self.active_old();
        active.extend(self.new.filter(|n| self.rses[*n].replicas > 0));
        let allowed = if d_replicas > 0 {
            d_replicas + self.d.max_surge()
        } else {
            0
        };
        let to_add = allowed - self.sum_replicas(&active);
        if to_add > 0 {
            active.sort_by(|a, b| by_size_newer(&self.rses[*a], &self.rses[*b]));
        } else if to_add < 0 {
            active.sort_by(|a, b| by_size_older(&self.rses[*a], &self.rses[*b]));
        }
        let mut added = 0;
        let mut sizes: Vec<i64> = Vec::with_capacity(active.len());
        for &i in &active {
            let proportion = if to_add != 0 {
                self.proportion(i, to_add, added)
            } else {
                0
            };
            sizes.push(self.rses[i].replicas + proportion);
            added += proportion;
        }
        for (k, &i) in active.iter().enumerate() {
            let mut size = sizes[k];
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_rs(i, size);
        }
    }

    /// Kubernetes' `FindActiveOrLatest`: the only active ReplicaSet, or the newest if none is.
    fn active_or_latest(&self) -> Option<usize> {
        let mut active = self.active_old();
        active.extend(self.new.filter(|n| self.rses[*n].replicas > 0));
        match active.len() {
            0 => self.new.or_else(|| {
                self.old()
                    .into_iter()
                    .max_by(|a, b| by_creation(&self.rses[*a], &self.rses[*b]))
            }),
            1 => active.first().copied(),
            _ => None,
        }
    }

    /// Kubernetes' `IsSaturated`: the new ReplicaSet has all replicas, sized for them, available.
    fn saturated(&self, i: usize) -> bool {
        let rs = &self.rses[i];
        rs.replicas == self.d.replicas
            && rs.annotation_int(DESIRED_REPLICAS_ANNOTATION) == Some(self.d.replicas)
            && rs.available == self.d.replicas
    }

    /// Kubernetes' `GetProportion`/`getReplicaSetFraction`: this ReplicaSet's share of the change,
    /// scaled by the Deployment size it was last sized for (`max-replicas`).
    fn proportion(&self, i: usize, to_add: i64, added: i64) -> i64 {
        let rs = &self.rses[i];
        if rs.replicas == 0 || to_add == added {
            return 0;
        }
        let fraction = if self.d.replicas == 0 {
            -rs.replicas
        } else {
            let max_now = self.d.replicas + self.d.max_surge();
            let before = rs
                .annotation_int(MAX_REPLICAS_ANNOTATION)
                .unwrap_or_else(|| self.d.status_int("replicas"));
            if before == 0 {
                0
            } else {
                let size = (rs.replicas * max_now) as f64 / before as f64;
                size.round() as i64 - rs.replicas
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// Kubernetes' `rolloutRolling`: scale the new ReplicaSet up within `maxSurge`; if that did
    /// nothing, scale old ones down within `maxUnavailable`; once complete, trim history.
    fn rollout_rolling(&mut self) {
        self.sync_revision(true);
        let Some(new) = self.new else { return };
        if self.reconcile_new(new) || self.reconcile_old(new) {
            return;
        }
        if status::complete(&self.d, &Counts::of(&self.d.status)) {
            self.cleanup();
        }
    }

    fn reconcile_new(&mut self, new: usize) -> bool {
        let d_replicas = self.d.replicas;
        let current = self.rses[new].replicas;
        if current == d_replicas {
            return false;
        }
        if current > d_replicas {
            return self.scale_if_needed(new, d_replicas);
        }
        let all: Vec<usize> = (0..self.rses.len()).collect();
        let target = self.new_rs_new_replicas(new, &all);
        self.scale_if_needed(new, target)
    }

    /// Kubernetes' `reconcileOldReplicaSets`: scale down old ReplicaSets, unhealthy replicas first,
    /// never below `replicas - maxUnavailable` available and not counting the new ReplicaSet's
    /// unavailable pods as room to scale down.
    fn reconcile_old(&mut self, new: usize) -> bool {
        let mut old = self.active_old();
        if self.sum_replicas(&old) == 0 {
            return false;
        }
        let all: Vec<usize> = (0..self.rses.len()).collect();
        let min_available = self.d.replicas - self.d.max_unavailable();
        let new_unavailable = self.rses[new].replicas - self.rses[new].available;
        let max_scaled_down = self.sum_replicas(&all) - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        old.sort_by(|a, b| by_creation(&self.rses[*a], &self.rses[*b]));

        // cleanupUnhealthyReplicas: unavailable pods of old ReplicaSets can go at no cost.
        let mut cleaned = 0;
        for &i in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.rses[i];
            if rs.replicas == 0 || rs.replicas == rs.available {
                continue;
            }
            let count = (max_scaled_down - cleaned).min(rs.replicas - rs.available);
            if count < 0 {
                // Kubernetes refuses to "scale down" upwards and abandons this step.
                return false;
            }
            let target = rs.replicas - count;
            self.scale_if_needed(i, target);
            cleaned += count;
        }

        // scaleDownOldReplicaSetsForRollingUpdate: available pods beyond the minimum.
        let available: i64 = all.iter().map(|i| self.rses[*i].available).sum();
        let mut scaled = 0;
        if available > min_available {
            let budget = available - min_available;
            for &i in &old {
                if scaled >= budget {
                    break;
                }
                let replicas = self.rses[i].replicas;
                if replicas == 0 {
                    continue;
                }
                let count = replicas.min(budget - scaled);
                self.scale_if_needed(i, replicas - count);
                scaled += count;
            }
        }
        cleaned + scaled > 0
    }

    /// Kubernetes' `rolloutRecreate`: old ReplicaSets to 0; once their pods are gone, create (or
    /// reuse) the new ReplicaSet at full size.
    fn rollout_recreate(&mut self, old_pods_running: impl Fn(&Planner) -> bool) {
        self.sync_revision(false);
        let mut scaled_down = false;
        for i in self.active_old() {
            scaled_down |= self.scale_if_needed(i, 0);
        }
        if scaled_down || old_pods_running(self) {
            return;
        }
        self.sync_revision(true);
        let Some(new) = self.new else { return };
        self.scale_if_needed(new, self.d.replicas);
        if status::complete(&self.d, &Counts::of(&self.d.status)) {
            self.cleanup();
        }
    }

    /// Kubernetes' `oldPodsRunning`: an old ReplicaSet still reports pods, or a non-terminal pod
    /// of the Deployment belongs to a ReplicaSet other than the new one.
    fn old_pods_running(&self, pods: &[Value]) -> bool {
        let old = self.old();
        if old.iter().map(|i| self.rses[*i].status_replicas).sum::<i64>() > 0 {
            return true;
        }
        let new_uid = self.new.map(|i| self.rses[i].uid.as_str());
        let selector = workload_selector(self.obj.pointer("/spec/selector").unwrap_or(&Value::Null));
        pods.iter()
            .filter(|p| namespace_of(p) == namespace_of(self.obj))
            .filter(|p| selector.as_ref().is_some_and(|s| s.matches_object(p)))
            .filter(|p| !matches!(pod_phase(p), "Succeeded" | "Failed"))
            .any(|p| {
                controller_uid(p)
                    .is_some_and(|uid| Some(uid.as_str()) != new_uid && old.iter().any(|i| self.rses[*i].uid == uid))
            })
    }

    /// Kubernetes' `cleanupDeployment`: delete the oldest revisions beyond `revisionHistoryLimit`,
    /// only those scaled to 0, empty, and fully observed by the ReplicaSet controller.
    fn cleanup(&mut self) {
        let Some(limit) = self.d.revision_history_limit else {
            return;
        };
        let mut alive: Vec<usize> = self
            .old()
            .into_iter()
            .filter(|i| !self.rses[*i].deleting && !self.rses[*i].to_create)
            .collect();
        let excess = usize::try_from(alive.len() as i64 - limit).unwrap_or(0);
        alive.sort_by(|a, b| by_revision(&self.rses[*a], &self.rses[*b]));
        for &i in alive.iter().take(excess) {
            let rs = &self.rses[i];
            if rs.status_replicas != 0 || rs.stored_replicas != 0 || rs.generation > rs.observed_generation {
                continue;
            }
            self.plan.delete_rs.push(rs.name.clone());
        }
    }

    /// Computes the status and assembles the plan. `rollout` selects `syncRolloutStatus` (progress
    /// tracking) over the plain `syncDeploymentStatus`.
    fn finish(mut self, rollout: bool) -> Plan {
        let all: Vec<&Rs> = self.rses.iter().collect();
        let new = self.new.map(|i| &self.rses[i]);
        let counts = if rollout {
            status::rollout(&self.d, &all, new, &mut self.conditions, self.now)
        } else {
            status::calculate(&self.d, &all, new, &mut self.conditions, self.now)
        };
        let mut plan = std::mem::take(&mut self.plan);
        if rollout {
            plan.requeue_after = status::requeue_after(&self.d, &counts, &self.conditions, self.now);
        }
        plan.status = status::render(&counts, &self.conditions, self.collision_count);
        plan.status_changed = status::differs(&self.d.status, &plan.status);

        for rs in &self.rses {
            if rs.to_create {
                plan.create_rs = Some(self.replica_set_object(rs));
                continue;
            }
            if let Some(n) = self.scale.remove(&rs.name) {
                plan.scale.push((rs.name.clone(), n));
            }
            if let Some(a) = self.annotate.remove(&rs.name) {
                plan.annotate.push((rs.name.clone(), a));
            }
        }
        plan
    }

    /// The ReplicaSet object to POST for a planned new ReplicaSet.
    fn replica_set_object(&self, rs: &Rs) -> Value {
        let hash = rs
            .template
            .pointer(&format!("/metadata/labels/{POD_TEMPLATE_HASH_LABEL}"))
            .cloned()
            .unwrap_or(Value::Null);
        let mut selector = self.obj.pointer("/spec/selector").cloned().unwrap_or(Value::Null);
        let match_labels = object_at(&mut selector).entry("matchLabels").or_insert(Value::Null);
        object_at(match_labels).insert(POD_TEMPLATE_HASH_LABEL.into(), hash);
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs.name,
                "namespace": namespace_of(self.obj),
                "labels": rs.template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
                "annotations": rs.annotations,
                "ownerReferences": [owner_reference(self.obj, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": rs.replicas,
                "minReadySeconds": self.d.min_ready_seconds,
                "selector": selector,
                "template": rs.template,
            },
        })
    }
}

/// The object at `v`, first replacing anything else (null, a malformed field) by `{}`, so building
/// objects from user input never panics the way `Value`'s `IndexMut` does.
fn object_at(v: &mut Value) -> &mut Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => {
            *other = Value::Object(Map::new());
            object_at(other)
        }
    }
}

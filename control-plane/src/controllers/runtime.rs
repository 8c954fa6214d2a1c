//! The controllers' IO edge: watch-fed caches of pods, ReplicaSets and Deployments; event
//! handlers that only enqueue keys; one worker that takes keys, asks the pure reconcilers
//! (`replicaset`, `deployment`) what to do and does it through the API server's own write
//! pipeline (defaults, admission, validation), as `system:kube-controller-manager`, with every
//! store write fenced by the leader's term.
//!
//! No stale cache ever causes a double create: after a reconcile writes, the next reconcile
//! first waits until the caches have seen the store up to that write's revision. This does
//! what Kubernetes' "expectations" do, exactly rather than by counting.
//!
//! Garbage collection of what a deleted owner controlled (ReplicaSets of a Deployment, pods of a
//! ReplicaSet) happens here too, in the background propagation Kubernetes uses by default: a
//! dependent is deleted once a linearizable read confirms its owner is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::queue::WorkQueue;
use super::{deployment, podutil, replicaset};
use crate::api::request::{Query, Target};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::informer::{self, Cache, Change, Handler, Synced};
use crate::leader::Term;
use crate::pki::UserInfo;
use crate::registry::{self, Resource};
use crate::storage::Stored;

/// Pods created per ReplicaSet reconcile (Kubernetes' burstReplicas).
const BURST: usize = 500;
/// First batch of Kubernetes' slow start: 1, 2, 4, ... pods at once.
const SLOW_START: usize = 1;
const CACHE_WAIT: Duration = Duration::from_secs(5);

fn replicasets() -> &'static Resource {
    registry::lookup("apps", "v1", "replicasets").unwrap_or_else(|| panic!("apps/v1 replicasets missing"))
}

fn deployments() -> &'static Resource {
    registry::lookup("apps", "v1", "deployments").unwrap_or_else(|| panic!("apps/v1 deployments missing"))
}

fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn key_of(v: &Value) -> String {
    format!("{}/{}", text(v, "/metadata/namespace"), text(v, "/metadata/name"))
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

fn rv_of(v: &Value) -> i64 {
    text(v, "/metadata/resourceVersion").parse().unwrap_or(0)
}

/// The caches and queues event handlers route through.
struct Shared {
    pods: Cache,
    rs: Cache,
    deploys: Cache,
    rs_queue: WorkQueue,
    deploy_queue: WorkQueue,
    wake: tokio::sync::Notify,
}

impl Shared {
    /// A ReplicaSet changed: it, and the Deployment controlling it (or any that may adopt it).
    fn rs_changed(&self, rs: &Value) {
        self.rs_queue.add(&key_of(rs));
        let ns = text(rs, "/metadata/namespace");
        match podutil::controller_of(rs) {
            Some((kind, name, _)) if kind == "Deployment" => self.deploy_queue.add(&format!("{ns}/{name}")),
            Some(_) => {}
            None => {
                for d in self.deploys.list(ns) {
                    if podutil::selector_matches(&d["spec"]["selector"], &rs["metadata"]["labels"]) {
                        self.deploy_queue.add(&key_of(&d));
                    }
                }
            }
        }
    }

    /// A pod changed: its ReplicaSet (or any that may adopt it) and that one's Deployment.
    fn pod_changed(&self, pod: &Value) {
        let ns = text(pod, "/metadata/namespace");
        match podutil::controller_of(pod) {
            Some((kind, name, _)) if kind == "ReplicaSet" => {
                self.rs_queue.add(&format!("{ns}/{name}"));
                if let Some(rs) = self.rs.get(ns, &name) {
                    if let Some((k, d, _)) = podutil::controller_of(&rs) {
                        if k == "Deployment" {
                            self.deploy_queue.add(&format!("{ns}/{d}"));
                        }
                    }
                }
            }
            Some(_) => {}
            None => {
                for rs in self.rs.list(ns) {
                    if podutil::selector_matches(&rs["spec"]["selector"], &pod["metadata"]["labels"]) {
                        self.rs_queue.add(&key_of(&rs));
                    }
                }
            }
        }
    }
}

/// Feeds one cache and routes each change, old and new state, to the queues.
struct Route {
    shared: Arc<Shared>,
    kind: &'static str,
}

impl Route {
    fn cache(&self) -> &Cache {
        match self.kind {
            "Pod" => &self.shared.pods,
            "ReplicaSet" => &self.shared.rs,
            _ => &self.shared.deploys,
        }
    }

    fn route(&self, obj: &Value) {
        match self.kind {
            "Pod" => self.shared.pod_changed(obj),
            "ReplicaSet" => self.shared.rs_changed(obj),
            _ => self.shared.deploy_queue.add(&key_of(obj)),
        }
    }
}

impl Handler for Route {
    fn replace(&self, res: &'static Resource, objects: Vec<Value>) {
        for o in &objects {
            self.route(o);
        }
        self.cache().replace(res, objects);
        self.shared.wake.notify_one();
    }

    fn apply(&self, res: &'static Resource, change: Change) {
        let old = match &change {
            Change::Put(o) => self
                .cache()
                .get(text(o, "/metadata/namespace"), text(o, "/metadata/name")),
            Change::Delete { namespace, name } => self.cache().get(namespace.as_deref().unwrap_or(""), name),
        };
        if let Some(o) = &old {
            self.route(o);
        }
        if let Change::Put(o) = &change {
            self.route(o);
        }
        if let (Change::Delete { namespace, name }, "ReplicaSet" | "Deployment") = (&change, self.kind) {
            // The owner is gone from the cache: its key reconciles into garbage collection.
            let key = format!("{}/{name}", namespace.as_deref().unwrap_or(""));
            if self.kind == "ReplicaSet" {
                self.shared.rs_queue.add(&key);
            } else {
                self.shared.deploy_queue.add(&key);
            }
        }
        self.cache().apply(res, change);
        self.shared.wake.notify_one();
    }
}

struct Worker {
    api: Arc<ApiState>,
    shared: Arc<Shared>,
    synced: Vec<Synced>,
    user: UserInfo,
    /// Revision of this worker's last write: caches must reach it before the next reconcile.
    written: i64,
    first_logged: bool,
    since: Instant,
    term: u64,
}

/// Runs the controllers for one term of leadership.
pub async fn run(t: Term, api: Arc<ApiState>) {
    let api = api.fenced(t.term);
    let shared = Arc::new(Shared {
        pods: Cache::default(),
        rs: Cache::default(),
        deploys: Cache::default(),
        rs_queue: WorkQueue::default(),
        deploy_queue: WorkQueue::default(),
        wake: tokio::sync::Notify::new(),
    });
    let mut synced = Vec::new();
    for (res, kind) in [
        (registry::pods(), "Pod"),
        (replicasets(), "ReplicaSet"),
        (deployments(), "Deployment"),
    ] {
        let route = Arc::new(Route {
            shared: shared.clone(),
            kind,
        });
        let (_, s) = informer::spawn(api.storage.clone(), res, route, t.stop.clone());
        synced.push(s);
    }
    let mut w = Worker {
        api,
        shared: shared.clone(),
        synced,
        user: UserInfo::authenticated("system:kube-controller-manager".into(), String::new(), Vec::new()),
        written: 1,
        first_logged: false,
        since: t.since,
        term: t.term,
    };
    tracing::info!(term = t.term, "controllers started");
    loop {
        if t.stop.is_cancelled() {
            return;
        }
        let now = Instant::now();
        if let Some(key) = shared.deploy_queue.try_next(now) {
            let r = w.sync_deployment(&key).await;
            w.finish(&shared.deploy_queue, &key, r);
            continue;
        }
        if let Some(key) = shared.rs_queue.try_next(now) {
            let r = w.sync_replicaset(&key).await;
            w.finish(&shared.rs_queue, &key, r);
            continue;
        }
        let due = [shared.deploy_queue.next_due(), shared.rs_queue.next_due()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| now + Duration::from_secs(1));
        tokio::select! {
            _ = t.stop.cancelled() => return,
            _ = shared.wake.notified() => {}
            _ = shared.rs_queue.changed() => {}
            _ = shared.deploy_queue.changed() => {}
            _ = tokio::time::sleep_until(due.into()) => {}
        }
    }
}

/// What a reconcile asks of the queue afterwards.
enum Outcome {
    Done,
    Again,
    After(Duration),
}

impl Worker {
    fn finish(&mut self, q: &WorkQueue, key: &str, r: ApiResult<Outcome>) {
        match r {
            Ok(o) => {
                q.forget(key);
                match o {
                    Outcome::Done => {}
                    Outcome::Again => q.add_after(key, Duration::ZERO),
                    Outcome::After(d) => q.add_after(key, d),
                }
            }
            Err(e) => {
                tracing::debug!(key, error = %e.message, "reconcile failed; retrying");
                q.retry(key);
            }
        }
        q.done(key);
    }

    fn wrote(&mut self, rv: i64) {
        self.written = self.written.max(rv);
        if !self.first_logged {
            self.first_logged = true;
            tracing::info!(
                term = self.term,
                after_ms = self.since.elapsed().as_millis() as u64,
                "first controller write since this master became leader"
            );
        }
    }

    /// Waits until every cache has seen this worker's writes.
    async fn caught_up(&self) -> ApiResult<()> {
        for s in &self.synced {
            if tokio::time::timeout(CACHE_WAIT, s.wait_for(self.written)).await != Ok(true) {
                return Err(ApiError::timeout("controller caches are behind the store".to_string()));
            }
        }
        Ok(())
    }

    fn target(res: &'static Resource, ns: &str, name: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            res,
            namespace: Some(ns.to_string()),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        }
    }

    async fn create(&mut self, res: &'static Resource, ns: &str, obj: Value) -> ApiResult<Value> {
        let t = Self::target(res, ns, None, None);
        let (created, _) = crate::api::write::create_object(&self.api, &t, &Query::default(), obj, &self.user).await?;
        self.wrote(rv_of(&created));
        Ok(created)
    }

    /// Replaces `current` (read from a cache, carrying its resourceVersion) with `new`, through
    /// `sub` (None or "status"). A stale cache is a 409: the key is retried.
    async fn update(
        &mut self,
        res: &'static Resource,
        current: &Value,
        new: Value,
        sub: Option<&str>,
    ) -> ApiResult<()> {
        let (ns, name) = (text(current, "/metadata/namespace"), text(current, "/metadata/name"));
        let t = Self::target(res, ns, Some(name), sub);
        let stored = Stored {
            obj: current.clone(),
            rv: rv_of(current),
        };
        let (updated, _) =
            crate::api::write::update_object(&self.api, &t, &Query::default(), new, &stored, "Update", &self.user)
                .await?;
        self.wrote(rv_of(&updated));
        Ok(())
    }

    async fn delete(&mut self, res: &'static Resource, current: &Value) -> ApiResult<()> {
        let (ns, name) = (text(current, "/metadata/namespace"), text(current, "/metadata/name"));
        let t = Self::target(res, ns, Some(name), None);
        let stored = Stored {
            obj: current.clone(),
            rv: rv_of(current),
        };
        match crate::api::delete::delete_object(&self.api, &t, stored, text(current, "/metadata/uid"), &self.user).await
        {
            Ok(_) => {
                self.wrote(self.api.storage.revision());
                Ok(())
            }
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the dependents in `candidates` controlled by the `kind` named `owner`, once a
    /// linearizable read confirms that owner is gone (or is another object now).
    async fn collect(
        &mut self,
        owner_res: &'static Resource,
        dep_res: &'static Resource,
        ns: &str,
        owner: &str,
        candidates: Vec<Value>,
    ) -> ApiResult<Outcome> {
        let live = self.api.storage.get(owner_res, Some(ns), owner, false).await?;
        let live_uid = live.as_ref().map(|s| text(&s.obj, "/metadata/uid").to_string());
        for d in candidates {
            let Some((kind, name, uid)) = podutil::controller_of(&d) else {
                continue;
            };
            if kind == owner_res.kind && name == owner && live_uid.as_deref() != Some(uid.as_str()) {
                self.delete(dep_res, &d).await?;
            }
        }
        Ok(Outcome::Done)
    }

    async fn sync_replicaset(&mut self, key: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let (ns, name) = split(key);
        let pods = self.shared.pods.list(ns);
        let Some(rs) = self.shared.rs.get(ns, name) else {
            return self.collect(replicasets(), registry::pods(), ns, name, pods).await;
        };
        let plan = replicaset::reconcile(&rs, &pods, chrono::Utc::now(), BURST);
        let pods_res = registry::pods();
        for pname in &plan.release {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                let mut new = p.clone();
                if let Some(refs) = new
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    let uid = text(&rs, "/metadata/uid").to_string();
                    refs.retain(|r| r["uid"] != json!(uid));
                }
                self.update(pods_res, &p, new, None).await?;
            }
        }
        for pname in &plan.adopt {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                let mut new = p.clone();
                let owner = podutil::owner_reference(&rs, "apps/v1", "ReplicaSet");
                match new
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    Some(refs) => refs.push(owner),
                    None => new["metadata"]["ownerReferences"] = json!([owner]),
                }
                self.update(pods_res, &p, new, None).await?;
            }
        }
        // Slow start: batches of 1, 2, 4, ... created concurrently; a failure stops the rest.
        let mut pending = plan.create.into_iter().peekable();
        let mut batch = SLOW_START;
        while pending.peek().is_some() {
            let chunk: Vec<Value> = pending.by_ref().take(batch).collect();
            let api = self.api.clone();
            let user = self.user.clone();
            let results = futures::future::join_all(chunk.into_iter().map(|pod| {
                let (api, user) = (api.clone(), user.clone());
                let t = Self::target(pods_res, ns, None, None);
                async move { crate::api::write::create_object(&api, &t, &Query::default(), pod, &user).await }
            }))
            .await;
            for r in results {
                let (created, _) = r?;
                self.wrote(rv_of(&created));
            }
            batch = (batch * 2).min(BURST);
        }
        for pname in &plan.delete {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                self.delete(pods_res, &p).await?;
            }
        }
        if plan.status_changed {
            let mut new = rs.clone();
            new["status"] = plan.status;
            self.update(replicasets(), &rs, new, Some("status")).await?;
        }
        Ok(match plan.requeue_after {
            Some(d) => Outcome::After(d),
            None => Outcome::Done,
        })
    }

    async fn sync_deployment(&mut self, key: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let (ns, name) = split(key);
        let rses = self.shared.rs.list(ns);
        let Some(d) = self.shared.deploys.get(ns, name) else {
            return self.collect(deployments(), replicasets(), ns, name, rses).await;
        };
        if d.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            return Ok(Outcome::Done);
        }
        let pods = self.shared.pods.list(ns);
        let plan = deployment::reconcile(&d, &rses, &pods, chrono::Utc::now());
        let rs_res = replicasets();
        if let Some(rs) = plan.create_rs {
            match self.create(rs_res, ns, rs).await {
                Ok(_) => {}
                // Created by an earlier reconcile whose event is on its way: do it again then.
                Err(e) if e.code == 409 => return Ok(Outcome::Again),
                Err(e) => return Err(e),
            }
        }
        // Every change to one ReplicaSet (scale, annotations, minReadySeconds, owner) in one write.
        let mut names: Vec<&String> = plan
            .scale
            .iter()
            .map(|(n, _)| n)
            .chain(plan.annotate.iter().map(|(n, _)| n))
            .chain(plan.min_ready_seconds.iter().map(|(n, _)| n))
            .chain(plan.adopt_rs.iter())
            .chain(plan.release_rs.iter())
            .collect();
        names.sort();
        names.dedup();
        let uid = text(&d, "/metadata/uid").to_string();
        for rs_name in names {
            let Some(rs) = self.shared.rs.get(ns, rs_name) else {
                continue;
            };
            let mut new = rs.clone();
            for (_, replicas) in plan.scale.iter().filter(|(n, _)| n == rs_name) {
                new["spec"]["replicas"] = json!(replicas);
            }
            for (_, seconds) in plan.min_ready_seconds.iter().filter(|(n, _)| n == rs_name) {
                new["spec"]["minReadySeconds"] = json!(seconds);
            }
            for (_, annotations) in plan.annotate.iter().filter(|(n, _)| n == rs_name) {
                for (k, v) in annotations {
                    new["metadata"]["annotations"][k] = json!(v);
                }
            }
            if plan.adopt_rs.contains(rs_name) {
                let owner = podutil::owner_reference(&d, "apps/v1", "Deployment");
                match new
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    Some(refs) => refs.push(owner),
                    None => new["metadata"]["ownerReferences"] = json!([owner]),
                }
            }
            if plan.release_rs.contains(rs_name) {
                if let Some(refs) = new
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r["uid"] != json!(uid));
                }
            }
            if new != rs {
                self.update(rs_res, &rs, new, None).await?;
            }
        }
        for rs_name in &plan.delete_rs {
            if let Some(rs) = self.shared.rs.get(ns, rs_name) {
                self.delete(rs_res, &rs).await?;
            }
        }
        let mut current = d.clone();
        if !plan.deployment_annotations.is_empty() {
            let mut new = d.clone();
            for (k, v) in &plan.deployment_annotations {
                new["metadata"]["annotations"][k] = json!(v);
            }
            if new != d {
                self.update(deployments(), &d, new, None).await?;
                // The status write below needs the deployment as it is now.
                self.caught_up().await?;
                current = self.shared.deploys.get(ns, name).unwrap_or(d.clone());
            }
        }
        if plan.status_changed {
            let mut new = current.clone();
            new["status"] = plan.status;
            self.update(deployments(), &current, new, Some("status")).await?;
        }
        Ok(match plan.requeue_after {
            Some(d) => Outcome::After(d),
            None => Outcome::Done,
        })
    }
}

//! The controllers' IO edge: watch-fed caches of the objects they read, event handlers that
//! only enqueue keys, and one worker (`worker`, `sync_*`) that takes keys, asks the pure
//! reconcilers what to do and does it through the API server's own write pipeline, every store
//! write fenced by the leader's term.
//!
//! No stale cache ever causes a double create: after a reconcile writes, the next reconcile
//! first waits until the caches have seen the store up to that write's revision. This does
//! what Kubernetes' "expectations" do, exactly rather than by counting. Handlers update the
//! cache before they enqueue, so a key taken by the worker always finds the change behind it.
//!
//! Garbage collection of what a deleted owner controlled (ReplicaSets of a Deployment, pods of a
//! ReplicaSet or DaemonSet) happens in the owner's reconcile, in the background propagation
//! Kubernetes uses by default: a dependent is deleted once a linearizable read confirms its
//! owner is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::podutil;
use super::queue::WorkQueue;
use super::worker::Worker;
use crate::api::ApiState;
use crate::informer::{self, Cache, Change, Handler};
use crate::leader::Term;
use crate::pki::UserInfo;
use crate::registry::{self, Resource};

/// Pods created per ReplicaSet reconcile (Kubernetes' burstReplicas).
pub(super) const BURST: usize = 500;
/// First batch of Kubernetes' slow start: 1, 2, 4, ... pods at once.
pub(super) const SLOW_START: usize = 1;
pub(super) const CACHE_WAIT: Duration = Duration::from_secs(5);
pub(super) const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Every node is looked at this often even without events (heartbeats are time-based).
const NODE_RESYNC: Duration = Duration::from_secs(5);

pub(super) use crate::registry::{
    daemonsets, deployments, endpoint_slices, endpoints as endpoints_res, leases, replicasets, services,
};

pub(super) fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn key_of(v: &Value) -> String {
    format!("{}/{}", text(v, "/metadata/namespace"), text(v, "/metadata/name"))
}

pub(super) fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

pub(super) fn rv_of(v: &Value) -> i64 {
    text(v, "/metadata/resourceVersion").parse().unwrap_or(0)
}

/// The caches, and the queues their changes are routed to.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) pods: Cache,
    pub(super) rs: Cache,
    pub(super) deploys: Cache,
    pub(super) daemonsets: Cache,
    pub(super) nodes: Cache,
    pub(super) leases: Cache,
    pub(super) services: Cache,
    pub(super) endpoints: Cache,
    pub(super) slices: Cache,
    pub(super) rs_queue: WorkQueue,
    pub(super) deploy_queue: WorkQueue,
    pub(super) ds_queue: WorkQueue,
    pub(super) node_queue: WorkQueue,
    pub(super) svc_queue: WorkQueue,
    wake: tokio::sync::Notify,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pod,
    ReplicaSet,
    Deployment,
    DaemonSet,
    Node,
    Lease,
    Service,
    Endpoints,
    EndpointSlice,
}

impl Shared {
    fn cache(&self, kind: Kind) -> &Cache {
        match kind {
            Kind::Pod => &self.pods,
            Kind::ReplicaSet => &self.rs,
            Kind::Deployment => &self.deploys,
            Kind::DaemonSet => &self.daemonsets,
            Kind::Node => &self.nodes,
            Kind::Lease => &self.leases,
            Kind::Service => &self.services,
            Kind::Endpoints => &self.endpoints,
            Kind::EndpointSlice => &self.slices,
        }
    }

    /// The keys one state of an object concerns (called with the old and the new state).
    fn route(&self, kind: Kind, obj: &Value) {
        let ns = text(obj, "/metadata/namespace");
        match kind {
            Kind::Pod => self.pod_changed(obj),
            Kind::ReplicaSet => self.rs_changed(obj),
            Kind::Deployment => self.deploy_queue.add(&key_of(obj)),
            Kind::DaemonSet => self.ds_queue.add(&key_of(obj)),
            Kind::Node => {
                self.node_queue.add(text(obj, "/metadata/name"));
                // Which nodes a DaemonSet runs on may have changed.
                for ds in self.daemonsets.all() {
                    self.ds_queue.add(&key_of(&ds));
                }
            }
            Kind::Lease if ns == NODE_LEASE_NAMESPACE => self.node_queue.add(text(obj, "/metadata/name")),
            Kind::Lease => {}
            Kind::Service | Kind::Endpoints => self.svc_queue.add(&key_of(obj)),
            Kind::EndpointSlice => {
                let svc = text(obj, "/metadata/labels/kubernetes.io~1service-name");
                if !svc.is_empty() {
                    self.svc_queue.add(&format!("{ns}/{svc}"));
                }
            }
        }
    }

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

    /// A pod changed: its controller (or any ReplicaSet that may adopt it) and that one's
    /// Deployment, the Services selecting it, and its node when it may have to be evicted.
    fn pod_changed(&self, pod: &Value) {
        let ns = text(pod, "/metadata/namespace");
        match podutil::controller_of(pod) {
            Some((kind, name, _)) if kind == "ReplicaSet" => {
                self.rs_queue.add(&format!("{ns}/{name}"));
                if let Some((k, d, _)) = self.rs.get(ns, &name).as_ref().and_then(podutil::controller_of) {
                    if k == "Deployment" {
                        self.deploy_queue.add(&format!("{ns}/{d}"));
                    }
                }
            }
            Some((kind, name, _)) if kind == "DaemonSet" => self.ds_queue.add(&format!("{ns}/{name}")),
            Some(_) => {}
            None => {
                for rs in self.rs.list(ns) {
                    if podutil::selector_matches(&rs["spec"]["selector"], &pod["metadata"]["labels"]) {
                        self.rs_queue.add(&key_of(&rs));
                    }
                }
            }
        }
        for svc in self.services.list(ns) {
            let Some(sel) = svc
                .pointer("/spec/selector")
                .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
            else {
                continue;
            };
            if podutil::selector_matches(&json!({ "matchLabels": sel }), &pod["metadata"]["labels"]) {
                self.svc_queue.add(&key_of(&svc));
            }
        }
        let node = text(pod, "/spec/nodeName");
        if !node.is_empty() {
            let tainted = self.nodes.get("", node).is_some_and(|n| {
                n.pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .is_some_and(|ts| ts.iter().any(|t| t["effect"] == "NoExecute"))
            });
            if tainted {
                self.node_queue.add(node);
            }
        }
    }

    /// An owner gone from its cache: its key reconciles into garbage collection.
    fn gone(&self, kind: Kind, key: String) {
        match kind {
            Kind::ReplicaSet => self.rs_queue.add(&key),
            Kind::Deployment => self.deploy_queue.add(&key),
            Kind::DaemonSet => self.ds_queue.add(&key),
            Kind::Service => self.svc_queue.add(&key),
            _ => {}
        }
    }
}

/// Feeds one cache and routes each change, old and new state, to the queues.
struct Route {
    shared: Arc<Shared>,
    kind: Kind,
}

impl Handler for Route {
    fn replace(&self, res: &'static Resource, objects: Vec<Value>) {
        // The cache first: a key the worker takes must find the object as it is now.
        let before = self.shared.cache(self.kind).all();
        self.shared.cache(self.kind).replace(res, objects.clone());
        for o in before.iter().chain(&objects) {
            self.shared.route(self.kind, o);
        }
        for o in &before {
            if self
                .shared
                .cache(self.kind)
                .get(text(o, "/metadata/namespace"), text(o, "/metadata/name"))
                .is_none()
            {
                self.shared.gone(self.kind, key_of(o));
            }
        }
        self.shared.wake.notify_one();
    }

    fn apply(&self, res: &'static Resource, change: Change) {
        let cache = self.shared.cache(self.kind);
        let (old, new, gone) = match &change {
            Change::Put(o) => (
                cache.get(text(o, "/metadata/namespace"), text(o, "/metadata/name")),
                Some(o.clone()),
                None,
            ),
            Change::Delete { namespace, name } => {
                let ns = namespace.as_deref().unwrap_or("");
                (cache.get(ns, name), None, Some(format!("{ns}/{name}")))
            }
        };
        // The cache first, then the keys: a worker taking a key reads the change.
        cache.apply(res, change);
        for o in old.iter().chain(new.iter()) {
            self.shared.route(self.kind, o);
        }
        if let Some(key) = gone {
            self.shared.gone(self.kind, key);
        }
        self.shared.wake.notify_one();
    }
}

/// Runs the controllers for one term of leadership.
pub async fn run(t: Term, api: Arc<ApiState>, settings: Arc<super::Settings>) {
    let api = api.fenced(t.term);
    let shared = Arc::new(Shared::default());
    let mut synced = Vec::new();
    for (res, kind) in [
        (registry::nodes(), Kind::Node),
        (leases(), Kind::Lease),
        (services(), Kind::Service),
        (endpoints_res(), Kind::Endpoints),
        (endpoint_slices(), Kind::EndpointSlice),
        (replicasets(), Kind::ReplicaSet),
        (deployments(), Kind::Deployment),
        (daemonsets(), Kind::DaemonSet),
        (registry::pods(), Kind::Pod),
    ] {
        let route = Arc::new(Route {
            shared: shared.clone(),
            kind,
        });
        let (_, s) = informer::spawn(api.storage.clone(), res, route, t.stop.clone());
        synced.push(s);
    }
    // Every cache must have seen the store as it is now (the last leader's writes included)
    // before the first reconcile: informers list at different moments, and a pod cache behind
    // the ReplicaSet cache would create pods that exist.
    let start = loop {
        let spec = crate::storage::ListSpec {
            limit: 1,
            ..crate::storage::ListSpec::all("/registry/minions/")
        };
        match api.storage.list(&spec, None).await {
            Ok(page) => break page.revision,
            Err(e) => {
                tracing::debug!(error = %e.message, "controllers: reading the store's revision");
                tokio::select! {
                    _ = t.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    };
    let mut w = Worker {
        rs_events: crate::scheduler::events::Recorder::start(
            api.storage.clone(),
            "replicaset-controller",
            t.stop.clone(),
        ),
        api,
        settings,
        shared: shared.clone(),
        synced,
        user: UserInfo::authenticated("system:kube-controller-manager".into(), String::new(), Vec::new()),
        written: start,
        first_logged: false,
        since: t.since,
        started_at: chrono::Utc::now(),
        term: t.term,
    };
    tracing::info!(term = t.term, "controllers started");
    let mut next_resync = Instant::now() + NODE_RESYNC;
    // Where the turn of the queues after the ReplicaSets' starts.
    let mut turn = 0;
    loop {
        if t.stop.is_cancelled() {
            return;
        }
        let now = Instant::now();
        if now >= next_resync {
            for n in shared.nodes.all() {
                shared.node_queue.add(text(&n, "/metadata/name"));
            }
            next_resync = now + NODE_RESYNC;
        }
        // The caches catch up to the last write before a key is chosen: the keys that write
        // concerns are queued by then. Then one key: a ReplicaSet's first, so that its pods
        // follow its scale before its Deployment is looked at again (a Deployment scaling its new
        // ReplicaSet up while the old one's pods are not yet gone would overshoot maxSurge);
        // after it the other queues take turns, so that none starves the rest (every Lease
        // renewal queues a node: with a few hundred nodes that queue is never empty).
        if let Err(e) = w.caught_up().await {
            tracing::debug!(error = %e.message, "controllers waiting for their caches");
            continue;
        }
        let others = [
            &shared.deploy_queue,
            &shared.ds_queue,
            &shared.node_queue,
            &shared.svc_queue,
        ];
        let order = std::iter::once(0).chain((0..others.len()).map(|i| 1 + (turn + i) % others.len()));
        let mut worked = false;
        for i in order {
            let q = if i == 0 { &shared.rs_queue } else { others[i - 1] };
            let Some(key) = q.try_next(now) else {
                continue;
            };
            worked = true;
            let r = match i {
                0 => w.sync_replicaset(&key).await,
                1 => w.sync_deployment(&key).await,
                2 => w.sync_daemonset(&key).await,
                3 => w.sync_node(&key).await,
                _ => w.sync_service(&key).await,
            };
            w.finish(q, &key, r);
            if i > 0 {
                turn = i % others.len();
            }
            break;
        }
        if worked {
            continue;
        }
        let due = std::iter::once(&shared.rs_queue)
            .chain(others)
            .filter_map(|q| q.next_due())
            .chain(std::iter::once(next_resync))
            .min()
            .unwrap_or(next_resync);
        tokio::select! {
            _ = t.stop.cancelled() => return,
            _ = shared.wake.notified() => {}
            _ = shared.deploy_queue.changed() => {}
            _ = shared.rs_queue.changed() => {}
            _ = shared.ds_queue.changed() => {}
            _ = shared.node_queue.changed() => {}
            _ = shared.svc_queue.changed() => {}
            _ = tokio::time::sleep_until(due.into()) => {}
        }
    }
}

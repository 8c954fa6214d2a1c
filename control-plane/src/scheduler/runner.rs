//! The scheduling loop: the IO edge around the pure core. It keeps the `Cluster` (nodes and the
//! pods bound to them) and the queue current from the informers, pops one pod at a time, asks
//! `framework::schedule` for a node, assumes the pod there at once (so the next decision counts
//! it) and binds it in the background, many bindings in flight. A pod that fits nowhere gets
//! preemption, a `PodScheduled=False` condition and a `FailedScheduling` event.
//!
//! Every write goes through the fenced `Storage` of the leader's term: if this master is
//! deposed, its bindings fail at apply time, whatever is in flight.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::events::{Recorder, Regarding};
use super::feed::{fingerprint, Event, Feed, PodState};
use super::framework::{self, Profile};
use super::model::{Cluster, PodInfo};
use super::preemption;
use super::queue::{Queue, QueuedPod};
use crate::binding;
use crate::error::ApiError;
use crate::informer;
use crate::leader::Term;
use crate::meta;
use crate::registry;
use crate::storage::{Storage, Stored};

/// Bindings in flight at once: enough to keep the store's pipeline full.
const MAX_BINDING: usize = 128;
/// Pods scheduled between two looks at the informers' news.
const BURST: usize = 64;
/// Longest sleep when nothing is due (the five-minute unschedulable flush needs a tick).
const IDLE: Duration = Duration::from_secs(1);

type BindResult = (QueuedPod, String, Result<Stored, ApiError>);

struct Loop {
    profiles: Arc<Vec<Profile>>,
    storage: Storage,
    recorder: Recorder,
    cluster: Cluster,
    queue: Queue,
    /// Pods assumed on a node, binding in flight: key -> node, and the pod's latest unbound
    /// state seen meanwhile (what to retry with if the binding fails).
    assumed: HashMap<String, (String, Option<QueuedPod>)>,
    /// Known pods (bound or not), to tell what a relist dropped.
    known: HashSet<String>,
    node_prints: HashMap<String, u64>,
    namespaces: HashSet<String>,
    next_start: usize,
    rng: StdRng,
    binds: JoinSet<BindResult>,
    writes: JoinSet<()>,
    permits: Arc<Semaphore>,
    first_bind_logged: bool,
    since: Instant,
    term: u64,
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

fn node_print(node: &Value) -> u64 {
    fingerprint(&[
        &node["metadata"]["labels"],
        &node["spec"]["taints"],
        &node["spec"]["unschedulable"],
        &node["status"]["allocatable"],
        &node["status"]["capacity"],
    ])
}

/// Runs the scheduler for one term of leadership.
pub async fn run(t: Term, profiles: Arc<Vec<Profile>>) {
    let names = profiles.iter().map(|p| p.scheduler_name.clone()).collect();
    let feed = Arc::new(Feed::new(names));
    let (_, ns_synced) = informer::spawn(t.storage.clone(), registry::namespaces(), feed.clone(), t.stop.clone());
    let (_, nodes_synced) = informer::spawn(t.storage.clone(), registry::nodes(), feed.clone(), t.stop.clone());
    let (_, pods_synced) = informer::spawn(t.storage.clone(), registry::pods(), feed.clone(), t.stop.clone());
    tokio::select! {
        _ = t.stop.cancelled() => return,
        _ = async { ns_synced.wait_for(1).await && nodes_synced.wait_for(1).await && pods_synced.wait_for(1).await } => {}
    }
    let mut l = Loop {
        recorder: Recorder::start(t.storage.clone(), "default-scheduler", t.stop.clone()),
        profiles,
        storage: t.storage.clone(),
        cluster: Cluster::default(),
        queue: Queue::default(),
        assumed: HashMap::new(),
        known: HashSet::new(),
        node_prints: HashMap::new(),
        namespaces: HashSet::new(),
        next_start: 0,
        rng: StdRng::from_entropy(),
        binds: JoinSet::new(),
        writes: JoinSet::new(),
        permits: Arc::new(Semaphore::new(MAX_BINDING)),
        first_bind_logged: false,
        since: t.since,
        term: t.term,
    };
    tracing::info!(term = t.term, "scheduler started");
    loop {
        for e in feed.drain() {
            l.apply(e);
        }
        while let Some(Some(r)) = l.binds.try_join_next().map(Result::ok) {
            l.bound(r);
        }
        while l.writes.try_join_next().is_some() {}
        let mut n = 0;
        while n < BURST {
            let Some(pod) = l.queue.pop(Instant::now()) else {
                break;
            };
            l.schedule(pod).await;
            n += 1;
        }
        if n == BURST {
            tokio::task::yield_now().await;
            continue;
        }
        let wake = l.queue.next_wakeup().unwrap_or_else(|| Instant::now() + IDLE);
        tokio::select! {
            _ = t.stop.cancelled() => return,
            _ = feed.notify.notified() => {}
            Some(r) = l.binds.join_next(), if !l.binds.is_empty() => {
                if let Ok(r) = r { l.bound(r) }
            }
            _ = tokio::time::sleep_until(wake.min(Instant::now() + IDLE).into()) => {}
        }
    }
}

impl Loop {
    fn apply(&mut self, e: Event) {
        let now = Instant::now();
        match e {
            Event::Namespaces(all) => {
                let names: HashSet<String> = all
                    .iter()
                    .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect();
                for gone in self.namespaces.difference(&names) {
                    self.cluster.remove_namespace(gone);
                }
                for ns in &all {
                    self.cluster.upsert_namespace(ns);
                }
                self.namespaces = names;
                self.queue.move_all(now);
            }
            Event::Namespace(ns) => {
                if let Some(name) = ns.pointer("/metadata/name").and_then(Value::as_str) {
                    self.namespaces.insert(name.to_string());
                }
                self.cluster.upsert_namespace(&ns);
                self.queue.move_all(now);
            }
            Event::NamespaceGone(name) => {
                self.namespaces.remove(&name);
                self.cluster.remove_namespace(&name);
            }
            Event::Nodes(nodes) => {
                let names: HashSet<String> = nodes
                    .iter()
                    .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect();
                let gone: Vec<String> = self
                    .node_prints
                    .keys()
                    .filter(|n| !names.contains(*n))
                    .cloned()
                    .collect();
                for n in gone {
                    self.apply(Event::NodeGone(n));
                }
                for n in nodes {
                    self.apply(Event::Node(n));
                }
            }
            Event::Node(node) => {
                let name = node
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let print = node_print(&node);
                if let Err(why) = self.cluster.upsert_node(&node) {
                    tracing::warn!(node = name, %why, "scheduler cannot read node");
                    return;
                }
                if self.node_prints.insert(name, print) != Some(print) {
                    self.queue.move_all(now);
                }
            }
            Event::NodeGone(name) => {
                self.node_prints.remove(&name);
                self.cluster.remove_node(&name);
            }
            Event::Pods(pods) => {
                let keys: HashSet<String> = pods.iter().map(PodState::key).collect();
                let gone: Vec<String> = self.known.iter().filter(|k| !keys.contains(*k)).cloned().collect();
                for k in gone {
                    let (ns, name) = split(&k);
                    self.apply(Event::PodGone {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                    });
                }
                for p in pods {
                    self.apply(Event::Pod(p));
                }
            }
            Event::Pod(state) => {
                let key = state.key();
                self.known.insert(key.clone());
                match state {
                    PodState::Assigned(info) => {
                        self.queue.remove(&key);
                        self.assumed.remove(&key);
                        self.cluster.add_pod(info);
                    }
                    PodState::Pending(q) => {
                        // Our own binding is in flight: its result decides; keep this view for a retry.
                        if let Some((_, latest)) = self.assumed.get_mut(&key) {
                            *latest = Some(q);
                        } else {
                            // A nominated pod keeps its room on the node it preempted for.
                            if !q.info.nominated_node_name.is_empty() {
                                self.cluster.add_pod(q.info.clone());
                            }
                            self.queue.add(q, now);
                        }
                    }
                    PodState::Other { namespace, name } => {
                        self.queue.remove(&key);
                        if self.cluster.remove_pod(&namespace, &name).is_some() {
                            self.queue.move_all(now);
                        }
                    }
                }
            }
            Event::PodGone { namespace, name } => {
                let key = format!("{namespace}/{name}");
                self.known.remove(&key);
                self.queue.remove(&key);
                self.assumed.remove(&key);
                if self.cluster.remove_pod(&namespace, &name).is_some() {
                    self.queue.move_all(now);
                }
            }
        }
    }

    fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.scheduler_name == name)
    }

    async fn schedule(&mut self, pod: QueuedPod) {
        let key = pod.key();
        let Some(profile) = self.profile(&pod.info.scheduler_name).cloned() else {
            self.queue.remove(&key);
            return;
        };
        let result = framework::schedule(&profile, &pod.info, &self.cluster, &mut self.next_start, &mut self.rng);
        match result {
            Ok(node) => self.assume_and_bind(pod, node).await,
            Err(fit) => {
                let now = Instant::now();
                let candidate = preemption::preempt(&profile, &pod.info, &self.cluster, &fit);
                let mut message = fit.to_string();
                if candidate.is_none() {
                    message = format!("{message} {}", preemption_note(&fit));
                }
                self.queue.unschedulable(&key, now);
                self.failed(&pod, &message, candidate.as_ref().map(|c| c.node.clone()));
                if let Some(c) = candidate {
                    self.preempt(&pod, c);
                }
            }
        }
    }

    async fn assume_and_bind(&mut self, pod: QueuedPod, node: String) {
        let key = pod.key();
        let mut assumed = PodInfo::clone(&pod.info);
        assumed.node_name = node.clone();
        self.cluster.add_pod(Arc::new(assumed));
        self.queue.done(&key);
        self.assumed.insert(key, (node.clone(), None));
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let storage = self.storage.clone();
        self.binds.spawn(async move {
            let (ns, name) = (pod.info.namespace.clone(), pod.info.name.clone());
            let current = Stored {
                obj: (*pod.obj).clone(),
                rv: pod.rv,
            };
            let r = binding::bind(&storage, &ns, &name, &node, current).await;
            drop(permit);
            (pod, node, r)
        });
    }

    /// A binding finished.
    fn bound(&mut self, (pod, node, result): BindResult) {
        let key = pod.key();
        let info = &pod.info;
        match result {
            Ok(stored) => {
                if !self.first_bind_logged {
                    self.first_bind_logged = true;
                    tracing::info!(
                        term = self.term,
                        after_ms = self.since.elapsed().as_millis() as u64,
                        "first pod bound since this master became leader"
                    );
                }
                self.recorder.record(
                    &Regarding {
                        api_version: "v1",
                        kind: "Pod",
                        namespace: &info.namespace,
                        name: &info.name,
                        uid: &info.uid,
                        rv: stored.rv,
                    },
                    "Normal",
                    "Scheduled",
                    &format!("Successfully assigned {}/{} to {node}", info.namespace, info.name),
                );
            }
            Err(e) => {
                let mut latest = None;
                if self.assumed.get(&key).is_some_and(|(n, _)| *n == node) {
                    latest = self.assumed.remove(&key).and_then(|(_, l)| l);
                    self.cluster.remove_pod(&info.namespace, &info.name);
                }
                // Bound elsewhere, being deleted, gone: the informer says what became of it.
                // Anything else (a conflict with an update, no quorum, a deposed term) is
                // retried, with the pod as last seen.
                let settled = e.code == 404
                    || (e.code == 409
                        && (e.message.contains("already assigned") || e.message.contains("being deleted")));
                if !settled {
                    tracing::debug!(pod = key, error = %e.message, "binding failed; backing off");
                    self.queue.error(latest.unwrap_or(pod), Instant::now());
                }
            }
        }
    }

    /// Records why the pod fits nowhere: its PodScheduled condition and an event.
    fn failed(&mut self, pod: &QueuedPod, message: &str, nominated: Option<String>) {
        let info = &pod.info;
        self.recorder.record(
            &Regarding {
                api_version: "v1",
                kind: "Pod",
                namespace: &info.namespace,
                name: &info.name,
                uid: &info.uid,
                rv: pod.rv,
            },
            "Warning",
            "FailedScheduling",
            message,
        );
        let mut obj = (*pod.obj).clone();
        let mut changed = binding::set_condition(
            &mut obj,
            json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                   "reason": "Unschedulable", "message": message}),
            &meta::now(),
        );
        if let Some(n) = nominated {
            if obj["status"]["nominatedNodeName"] != json!(n) {
                obj["status"]["nominatedNodeName"] = json!(n);
                changed = true;
            }
        }
        if !changed {
            return;
        }
        let storage = self.storage.clone();
        let (ns, name, rv) = (info.namespace.clone(), info.name.clone(), pod.rv);
        self.writes.spawn(async move {
            // A conflict means the pod moved on; the next attempt writes a fresh condition.
            if let Err(e) = storage.update(registry::pods(), Some(&ns), &name, &obj, rv).await {
                tracing::debug!(pod = name, error = %e.message, "recording unschedulable condition");
            }
        });
    }

    /// Evicts the victims preemption chose for `pod`.
    fn preempt(&mut self, pod: &QueuedPod, c: preemption::Candidate) {
        for v in &c.victims {
            self.recorder.record(
                &Regarding {
                    api_version: "v1",
                    kind: "Pod",
                    namespace: &v.namespace,
                    name: &v.name,
                    uid: &v.uid,
                    rv: 0,
                },
                "Normal",
                "Preempted",
                &format!("Preempted by pod {} on node {}", pod.info.uid, c.node),
            );
        }
        let storage = self.storage.clone();
        let victims: Vec<(String, String, String)> = c
            .victims
            .iter()
            .map(|v| (v.namespace.clone(), v.name.clone(), v.uid.clone()))
            .collect();
        self.writes.spawn(async move {
            for (ns, name, uid) in victims {
                if let Err(e) = delete_victim(&storage, &ns, &name, &uid).await {
                    tracing::debug!(pod = name, error = %e.message, "deleting preemption victim");
                }
            }
        });
    }
}

/// Deletes a victim if it is still the pod preemption chose (same uid).
async fn delete_victim(storage: &Storage, ns: &str, name: &str, uid: &str) -> Result<(), ApiError> {
    let pods = registry::pods();
    let Some(cur) = storage.get(pods, Some(ns), name, false).await? else {
        return Ok(());
    };
    if cur.obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return Ok(());
    }
    storage.delete(pods, Some(ns), name, cur.rv).await.map(|_| ())
}

/// The second half of kube-scheduler's message when preemption found nothing.
fn preemption_note(fit: &framework::FitError) -> String {
    let (resolvable, unresolvable) = fit.preemption_counts();
    let mut parts = Vec::new();
    if resolvable > 0 {
        parts.push(format!("{resolvable} No preemption victims found for incoming pod"));
    }
    if unresolvable > 0 {
        parts.push(format!("{unresolvable} Preemption is not helpful for scheduling"));
    }
    parts.sort();
    format!(
        "preemption: 0/{} nodes are available: {}.",
        fit.num_all_nodes,
        parts.join(", ")
    )
}

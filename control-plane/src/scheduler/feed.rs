//! What the node and pod informers tell the scheduling loop. The informers call the handler on
//! their own tasks, so pods are decoded there (off the scheduling loop) and handed over in a
//! buffer the loop drains whole: a burst of watch events costs the loop one wake-up.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Notify;

use super::model::PodInfo;
use super::queue::QueuedPod;
use crate::informer::{Change, Handler};
use crate::registry::Resource;

/// A pod as the scheduler sees it.
#[derive(Debug)]
pub enum PodState {
    /// Bound to a node: it uses that node's resources.
    Assigned(Arc<PodInfo>),
    /// Waiting for one of our profiles.
    Pending(QueuedPod),
    /// Neither (another scheduler's, finished, being deleted, undecodable): only its absence
    /// from the queue and the cluster matters.
    Other { namespace: String, name: String },
}

impl PodState {
    pub fn key(&self) -> String {
        match self {
            PodState::Assigned(p) => format!("{}/{}", p.namespace, p.name),
            PodState::Pending(q) => q.key(),
            PodState::Other { namespace, name } => format!("{namespace}/{name}"),
        }
    }
}

#[derive(Debug)]
pub enum Event {
    /// Namespaces matter only for their labels (affinity terms' namespaceSelector).
    Namespaces(Vec<Value>),
    Namespace(Value),
    NamespaceGone(String),
    Nodes(Vec<Value>),
    Node(Value),
    NodeGone(String),
    Pods(Vec<PodState>),
    Pod(PodState),
    PodGone {
        namespace: String,
        name: String,
    },
}

pub struct Feed {
    schedulers: HashSet<String>,
    buffer: Mutex<Vec<Event>>,
    pub notify: Notify,
}

/// Digest of the parts of an object that scheduling depends on.
pub fn fingerprint(parts: &[&Value]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.to_string().hash(&mut h);
    }
    h.finish()
}

fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

impl Feed {
    pub fn new(schedulers: HashSet<String>) -> Self {
        Feed {
            schedulers,
            buffer: Mutex::new(Vec::new()),
            notify: Notify::new(),
        }
    }

    fn push(&self, e: Event) {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner()).push(e);
        self.notify.notify_one();
    }

    pub fn drain(&self) -> Vec<Event> {
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Classifies one pod.
    pub fn pod_state(&self, obj: Value) -> PodState {
        let other = |obj: &Value| PodState::Other {
            namespace: text(obj, "/metadata/namespace").to_string(),
            name: text(obj, "/metadata/name").to_string(),
        };
        let info = match PodInfo::from_value(&obj) {
            Ok(i) => Arc::new(i),
            Err(why) => {
                tracing::warn!(pod = text(&obj, "/metadata/name"), %why, "scheduler cannot read pod");
                return other(&obj);
            }
        };
        if !info.node_name.is_empty() {
            return PodState::Assigned(info);
        }
        let phase = text(&obj, "/status/phase");
        let deleting = obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
        if deleting || phase == "Succeeded" || phase == "Failed" || !self.schedulers.contains(&info.scheduler_name) {
            return other(&obj);
        }
        let rv = text(&obj, "/metadata/resourceVersion").parse().unwrap_or(0);
        let fp = fingerprint(&[&obj["spec"], &obj["metadata"]["labels"]]);
        PodState::Pending(QueuedPod {
            info,
            obj: Arc::new(obj),
            rv,
            fingerprint: fp,
        })
    }
}

impl Handler for Feed {
    fn replace(&self, res: &'static Resource, objects: Vec<Value>) {
        if res.kind == "Namespace" {
            self.push(Event::Namespaces(objects));
        } else if res.kind == "Node" {
            self.push(Event::Nodes(objects));
        } else {
            let pods = objects.into_iter().map(|o| self.pod_state(o)).collect();
            self.push(Event::Pods(pods));
        }
    }

    fn apply(&self, res: &'static Resource, change: Change) {
        let e = match (res.kind, change) {
            ("Namespace", Change::Put(o)) => Event::Namespace(o),
            ("Namespace", Change::Delete { name, .. }) => Event::NamespaceGone(name),
            ("Node", Change::Put(o)) => Event::Node(o),
            ("Node", Change::Delete { name, .. }) => Event::NodeGone(name),
            (_, Change::Put(o)) => Event::Pod(self.pod_state(o)),
            (_, Change::Delete { namespace, name }) => Event::PodGone {
                namespace: namespace.unwrap_or_default(),
                name,
            },
        };
        self.push(e);
    }
}

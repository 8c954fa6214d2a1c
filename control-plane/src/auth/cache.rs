//! The RBAC objects of the cluster, in memory, fed by one informer per kind: authorization never
//! reads the store. The cache knows the store revision it has caught up to, so a refusal can
//! first wait for the cache to see writes this master already applied (a binding created a
//! moment ago on this master is honoured at once, not after a watch round trip).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::node::NodeGraph;
use super::rbac::{ClusterRole, ClusterRoleBinding, Policy, Role, RoleBinding};
use crate::informer::{self, Change, Handler, Synced};
use crate::registry::{self, Resource};
use crate::storage::Storage;

/// The four RBAC kinds, in the order informers start.
const KINDS: [&str; 4] = ["clusterroles", "clusterrolebindings", "roles", "rolebindings"];

pub struct PolicyCache {
    policy: RwLock<Policy>,
}

impl PolicyCache {
    /// Runs `f` on the current policy. The lock is never held across an await.
    pub fn read<T>(&self, f: impl FnOnce(&Policy) -> T) -> T {
        match self.policy.read() {
            Ok(p) => f(&p),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write(&self, f: impl FnOnce(&mut Policy)) {
        match self.policy.write() {
            Ok(mut p) => f(&mut p),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn put(&self, res: &Resource, obj: &Value) {
        self.write(|p| upsert(p, res, obj));
    }

    fn remove(&self, res: &Resource, namespace: &str, name: &str) {
        self.write(|p| match res.plural {
            "roles" => {
                p.remove_role(namespace, name);
            }
            "rolebindings" => {
                p.remove_role_binding(namespace, name);
            }
            "clusterroles" => {
                p.remove_cluster_role(name);
            }
            "clusterrolebindings" => {
                p.remove_cluster_role_binding(name);
            }
            _ => {}
        });
    }
}

/// Adds or replaces one object of `res` in `p`; an unreadable object is skipped with a warning.
fn upsert(p: &mut Policy, res: &Resource, obj: &Value) {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?");
    let bad = |e: String| tracing::warn!(kind = res.kind, name, error = %e, "RBAC object ignored");
    match res.plural {
        "roles" => match Role::from_object(obj) {
            Ok(r) => p.upsert_role(r),
            Err(e) => bad(e),
        },
        "rolebindings" => match RoleBinding::from_object(obj) {
            Ok(b) => p.upsert_role_binding(b),
            Err(e) => bad(e),
        },
        "clusterroles" => match ClusterRole::from_object(obj) {
            Ok(r) => p.upsert_cluster_role(r),
            Err(e) => bad(e),
        },
        "clusterrolebindings" => match ClusterRoleBinding::from_object(obj) {
            Ok(b) => p.upsert_cluster_role_binding(b),
            Err(e) => bad(e),
        },
        _ => {}
    }
}

impl Handler for PolicyCache {
    /// Clears and reloads the kind under one write lock, so no reader ever sees it half loaded
    /// (and no other kind's change, applied concurrently by its own informer, is lost).
    fn replace(&self, res: &'static Resource, objects: Vec<Value>) {
        self.write(|p| {
            match res.plural {
                "roles" => p.clear_roles(),
                "rolebindings" => p.clear_role_bindings(),
                "clusterroles" => p.clear_cluster_roles(),
                "clusterrolebindings" => p.clear_cluster_role_bindings(),
                _ => {}
            }
            for o in &objects {
                upsert(p, res, o);
            }
        });
    }

    fn apply(&self, res: &'static Resource, change: Change) {
        match change {
            Change::Put(o) => self.put(res, &o),
            Change::Delete { namespace, name } => self.remove(res, namespace.as_deref().unwrap_or(""), &name),
        }
    }
}

/// The caches authorization reads (RBAC objects, and the pods graph of the Node authorizer)
/// and the revisions their informers reached.
pub struct Rbac {
    pub cache: Arc<PolicyCache>,
    pub graph: Arc<NodeGraph>,
    synced: Vec<Synced>,
}

impl Rbac {
    /// Starts the informers; the cache fills in the background (see [`Rbac::wait_for`]).
    pub fn start(storage: &Storage, shutdown: &CancellationToken) -> Rbac {
        let cache = Arc::new(PolicyCache {
            policy: RwLock::new(Policy::default()),
        });
        let mut synced: Vec<Synced> = KINDS
            .iter()
            .filter_map(|plural| registry::lookup("rbac.authorization.k8s.io", "v1", plural))
            .map(|res| {
                let (_task, synced) = informer::spawn(storage.clone(), res, cache.clone(), shutdown.clone());
                synced
            })
            .collect();
        let graph = Arc::new(NodeGraph::default());
        if let Some(pods) = registry::lookup("", "v1", "pods") {
            let (_task, s) = informer::spawn(storage.clone(), pods, graph.clone(), shutdown.clone());
            synced.push(s);
        }
        Rbac { cache, graph, synced }
    }

    /// The revision every RBAC kind has caught up to (0 before the first lists).
    pub fn revision(&self) -> i64 {
        self.synced.iter().map(Synced::revision).min().unwrap_or(0)
    }

    /// Waits up to `timeout` for the cache to reach store revision `rev`; whether it did.
    pub async fn wait_for(&self, rev: i64, timeout: Duration) -> bool {
        let wait_all = async {
            for s in &self.synced {
                if !s.wait_for(rev).await {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, wait_all).await.unwrap_or(false)
    }
}

//! A watch-fed local copy of one resource, as client-go's reflector keeps one: list everything at
//! a store revision, hand it over whole, then apply every change after that revision from a store
//! watch on the resource's prefix. When the watch is lost (compacted away, cancelled) the copy is
//! rebuilt from a fresh list, so a handler never has to reason about gaps.
//!
//! The informer reads the local member's store directly (no HTTP, no authorization): it is the
//! server's own view, used by the RBAC cache and, later, the watch cache and the controllers.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use raft_store::mvcc::{EventType, KeyValue};
use raft_store::watch::{WatchMsg, WatchSpec};
use serde_json::Value;
use tokio::sync::{mpsc, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::registry::Resource;
use crate::storage::{for_response, prefix_end, ListSpec, Storage, Stored};

/// Pause before listing again after a failure (no quorum, an election).
const RETRY: Duration = Duration::from_millis(500);

/// One change to an object, after the initial list.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Created or updated; the object carries its resourceVersion.
    Put(Value),
    /// Deleted.
    Delete { namespace: Option<String>, name: String },
}

/// What an informer feeds. Calls for one resource never overlap and come in store order.
pub trait Handler: Send + Sync + 'static {
    /// Everything `res` holds at one revision: replaces whatever was known before.
    fn replace(&self, res: &'static Resource, objects: Vec<Value>);
    fn apply(&self, res: &'static Resource, change: Change);
}

/// The revision an informer has caught up to (0 until its first list). A prefix nobody writes
/// to sees no events, so a waiter asks the informer for a progress notification, which carries
/// the store's current revision once the watch has delivered everything before it.
#[derive(Clone)]
pub struct Synced {
    rev: watch::Receiver<i64>,
    want: Arc<Notify>,
}

impl Synced {
    pub fn revision(&self) -> i64 {
        *self.rev.borrow()
    }

    /// Waits until the informer has seen every change up to `target`; false if it stopped.
    pub async fn wait_for(&self, target: i64) -> bool {
        let mut rx = self.rev.clone();
        loop {
            if *rx.borrow_and_update() >= target {
                return true;
            }
            self.want.notify_one();
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }
}

/// Starts an informer for `res` on `storage`, feeding `handler` until `shutdown`.
pub fn spawn(
    storage: Storage,
    res: &'static Resource,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) -> (tokio::task::JoinHandle<()>, Synced) {
    let (tx, rx) = watch::channel(0i64);
    let want = Arc::new(Notify::new());
    let synced = Synced {
        rev: rx,
        want: want.clone(),
    };
    let task = tokio::spawn(async move {
        while !shutdown.is_cancelled() {
            match run_once(&storage, res, handler.as_ref(), &tx, &want, &shutdown).await {
                Ok(()) => return,
                Err(why) => tracing::debug!(resource = res.plural, %why, "informer restarting"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    });
    (task, synced)
}

/// List, then watch until the watch ends. `Ok` only on shutdown.
async fn run_once(
    storage: &Storage,
    res: &'static Resource,
    handler: &dyn Handler,
    synced: &watch::Sender<i64>,
    want: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let prefix = res.list_prefix(None);
    let page = storage
        .list(&ListSpec::all(&prefix), None)
        .await
        .map_err(|e| e.to_string())?;
    let revision = page.revision;
    handler.replace(res, page.items.iter().map(|s| for_response(res, s)).collect());
    synced.send_replace(revision);

    let (tx, mut rx) = mpsc::channel::<WatchMsg>(256);
    let stream = storage.store().watch_hub().open_stream(tx.clone());
    let permit = tx.reserve().await.map_err(|_| "watch channel closed".to_string())?;
    stream
        .watch(
            permit,
            0,
            WatchSpec {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision: revision + 1,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
    drop(tx);
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = want.notified() => {
                stream.request_progress();
                continue;
            }
            m = rx.recv() => m.ok_or_else(|| "watch stream closed".to_string())?,
        };
        match msg {
            WatchMsg::Created {
                cancel_reason: Some(r), ..
            } => return Err(r),
            WatchMsg::Created { .. } => {}
            WatchMsg::Events { events, revision, .. } => {
                for ev in &events {
                    if let Some(change) = change_of(res, ev.kind, &ev.kv) {
                        handler.apply(res, change);
                    }
                }
                synced.send_replace(revision);
            }
            WatchMsg::Progress { revision, .. } => {
                synced.send_replace(revision);
            }
            WatchMsg::Canceled { reason, .. } => return Err(reason),
        }
    }
}

/// The simplest handler: every object of one resource by (namespace, name). Readers clone
/// what they need; the lock is never held across an await.
#[derive(Default)]
pub struct Cache {
    objects: RwLock<BTreeMap<(String, String), Value>>,
}

impl Cache {
    fn key(obj: &Value) -> (String, String) {
        let m = |f: &str| {
            obj.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        (m("namespace"), m("name"))
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<(String, String), Value>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<(String, String), Value>> {
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    /// One object ("" namespace for cluster-scoped ones).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        self.read().get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// Every object of a namespace.
    pub fn list(&self, namespace: &str) -> Vec<Value> {
        self.read()
            .range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every object, of every namespace.
    pub fn all(&self) -> Vec<Value> {
        self.read().values().cloned().collect()
    }

    /// The objects, of every namespace, for which `keep` is true (only those are cloned).
    pub fn filter(&self, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.read().values().filter(|v| keep(v)).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Handler for Cache {
    fn replace(&self, _res: &'static Resource, objects: Vec<Value>) {
        let fresh: BTreeMap<_, _> = objects.into_iter().map(|o| (Cache::key(&o), o)).collect();
        *self.write() = fresh;
    }

    fn apply(&self, _res: &'static Resource, change: Change) {
        match change {
            Change::Put(o) => {
                self.write().insert(Cache::key(&o), o);
            }
            Change::Delete { namespace, name } => {
                self.write().remove(&(namespace.unwrap_or_default(), name));
            }
        }
    }
}

fn change_of(res: &'static Resource, kind: EventType, kv: &KeyValue) -> Option<Change> {
    match kind {
        EventType::Put => {
            let obj: Value = match serde_json::from_slice(&kv.value) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&kv.key), error = %e, "informer skips an unreadable object");
                    return None;
                }
            };
            Some(Change::Put(for_response(
                res,
                &Stored {
                    obj,
                    rv: kv.mod_revision,
                },
            )))
        }
        EventType::Delete => {
            let key = String::from_utf8_lossy(&kv.key);
            let rest = key.strip_prefix(&res.list_prefix(None))?.to_string();
            let (namespace, name) = match (res.namespaced, rest.split_once('/')) {
                (true, Some((ns, name))) => (Some(ns.to_string()), name.to_string()),
                (false, None) => (None, rest),
                _ => return None,
            };
            Some(Change::Delete { namespace, name })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
            ..Default::default()
        }
    }

    #[test]
    fn store_events_become_changes() {
        let roles = registry::lookup("rbac.authorization.k8s.io", "v1", "roles").expect("roles");
        let put = change_of(
            roles,
            EventType::Put,
            &kv(
                "/registry/roles/a/r1",
                r#"{"metadata":{"name":"r1","namespace":"a"}}"#,
                7,
            ),
        );
        match put {
            Some(Change::Put(v)) => {
                assert_eq!(v["metadata"]["resourceVersion"], "7");
                assert_eq!(v["kind"], "Role");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            change_of(roles, EventType::Delete, &kv("/registry/roles/a/r1", "", 8)),
            Some(Change::Delete {
                namespace: Some("a".into()),
                name: "r1".into()
            })
        );
        let crs = registry::lookup("rbac.authorization.k8s.io", "v1", "clusterroles").expect("clusterroles");
        assert_eq!(
            change_of(crs, EventType::Delete, &kv("/registry/clusterroles/view", "", 9)),
            Some(Change::Delete {
                namespace: None,
                name: "view".into()
            })
        );
        // Garbage in the store is skipped, not a panic.
        assert_eq!(
            change_of(crs, EventType::Put, &kv("/registry/clusterroles/x", "{", 9)),
            None
        );
        assert_eq!(
            change_of(roles, EventType::Delete, &kv("/registry/roles/flat", "", 9)),
            None
        );
    }

    #[test]
    fn cache_keeps_objects_by_namespace_and_name() {
        let pods = registry::lookup("", "v1", "pods").expect("pods");
        let c = Cache::default();
        let pod = |ns: &str, name: &str| serde_json::json!({"metadata": {"namespace": ns, "name": name}});
        c.replace(pods, vec![pod("a", "x"), pod("b", "y"), pod("a", "z")]);
        assert_eq!(c.list("a").len(), 2);
        c.apply(pods, Change::Put(pod("ab", "w")));
        assert_eq!(c.list("a").len(), 2, "a namespace's listing stops at its own name");
        c.apply(
            pods,
            Change::Delete {
                namespace: Some("a".into()),
                name: "x".into(),
            },
        );
        assert!(c.get("a", "x").is_none());
        assert!(c.get("b", "y").is_some());
        c.replace(pods, Vec::new());
        assert!(c.is_empty());
    }
}

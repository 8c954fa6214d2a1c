//! List+watch of Services and EndpointSlices into the proxier's model. A list replaces that kind
//! wholesale (so objects deleted while the watch was down disappear); a broken or expired watch
//! lists again. Objects that do not parse are left out with a warning, never fatal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use node_agent::kube::KubeClient;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::model::{EndpointSlice, Model, Service};
use crate::proxier::{Proxier, Source};

/// One kind the proxy follows.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Services,
    Slices,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Services => "/api/v1/services",
            Kind::Slices => "/apis/discovery.k8s.io/v1/endpointslices",
        }
    }

    fn source(self) -> Source {
        match self {
            Kind::Services => Source::Services,
            Kind::Slices => Source::Slices,
        }
    }
}

fn key_of(obj: &Value) -> (String, String) {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    (s("/metadata/namespace"), s("/metadata/name"))
}

/// A parsed object, or None (logged) when it does not parse.
enum Parsed {
    Service(Service),
    Slice(EndpointSlice),
}

fn parse(kind: Kind, obj: &Value) -> Option<Parsed> {
    let parsed = match kind {
        Kind::Services => Service::from_json(obj).map(Parsed::Service),
        Kind::Slices => EndpointSlice::from_json(obj).map(Parsed::Slice),
    };
    match parsed {
        Ok(p) => Some(p),
        Err(e) => {
            let (ns, name) = key_of(obj);
            tracing::warn!(kind = ?kind, namespace = %ns, name = %name, error = %e, "ignoring an object the proxy cannot use");
            None
        }
    }
}

fn upsert(model: &mut Model, parsed: Parsed) {
    match parsed {
        Parsed::Service(s) => model.upsert_service(s),
        Parsed::Slice(s) => model.upsert_slice(s),
    }
}

fn remove(model: &mut Model, kind: Kind, key: &(String, String)) {
    match kind {
        Kind::Services => drop(model.delete_service(&key.0, &key.1)),
        Kind::Slices => drop(model.delete_slice(&key.0, &key.1)),
    }
}

/// Follows `kind` until `stop`.
pub async fn follow(client: Arc<KubeClient>, kind: Kind, proxier: Arc<Proxier>, stop: CancellationToken) {
    loop {
        let list: Result<Value, _> = tokio::select! {
            _ = stop.cancelled() => return,
            l = client.get(kind.path()) => l,
        };
        let rv = match list {
            Ok(list) => {
                let mut objs: BTreeMap<(String, String), Parsed> = BTreeMap::new();
                for obj in list.get("items").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(p) = parse(kind, obj) {
                        objs.insert(key_of(obj), p);
                    }
                }
                proxier.listed(kind.source(), |model| {
                    let stale: Vec<(String, String)> = match kind {
                        Kind::Services => model.services.keys().cloned().collect(),
                        Kind::Slices => model.slices.keys().cloned().collect(),
                    };
                    for key in stale.iter().filter(|k| !objs.contains_key(k)) {
                        remove(model, kind, key);
                    }
                    for (_, p) in objs {
                        upsert(model, p);
                    }
                });
                list.pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            }
            Err(e) => {
                tracing::warn!(kind = ?kind, error = %e, "listing");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        let started = std::time::Instant::now();
        let mut events = match client.watch::<Value>(kind.path(), &rv).await {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(kind = ?kind, error = %e, "watching");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => return,
                ev = events.recv() => ev,
            };
            // A closed stream or an error (410 Gone after compaction included): list again,
            // after a pause if the watch did not last (no list+watch spin).
            let Some(Ok(ev)) = ev else {
                if started.elapsed() < Duration::from_secs(1) {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                break;
            };
            let key = key_of(&ev.object);
            match ev.kind.as_str() {
                "BOOKMARK" => {}
                "DELETED" => proxier.update(|m| remove(m, kind, &key)),
                _ => match parse(kind, &ev.object) {
                    Some(p) => proxier.update(|m| upsert(m, p)),
                    // An object changed into something unusable: its old rules must go.
                    None => proxier.update(|m| remove(m, kind, &key)),
                },
            }
        }
    }
}

//! Events about pods (`Scheduled`, `FailedScheduling`, `Preempted`), as kube-scheduler records
//! them, in the core/v1 shape `kubectl describe` and `kubectl get events` read. Recording never
//! blocks scheduling: events go through a bounded channel (dropped when it is full, as client-go's
//! broadcaster drops them) to one task that writes whatever has gathered in one store txn.

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::meta;
use crate::registry;
use crate::storage::Storage;

/// Events waiting to be written before new ones are dropped.
const BUFFER: usize = 8192;
/// Events per txn.
const BATCH: usize = 256;

/// The object an event is about (a pod, unless `kind` says otherwise).
pub struct Regarding<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub rv: i64,
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<(String, String, Value)>,
    component: &'static str,
}

/// A core/v1 Event object named as client-go names them (`<object>.<hex nanoseconds>`).
pub fn event(component: &str, pod: &Regarding<'_>, kind: &str, reason: &str, message: &str) -> (String, Value) {
    let now = meta::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Several events about one pod can share a nanosecond on a fast path: add entropy.
    let name = format!("{}.{:x}{:04x}", pod.name, nanos, rand::random::<u16>());
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": pod.namespace,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now,
        },
        "involvedObject": {
            "apiVersion": pod.api_version,
            "kind": pod.kind,
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
            "resourceVersion": pod.rv.to_string(),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    (name, obj)
}

impl Recorder {
    /// Starts the writer; it stops with `stop`.
    pub fn start(storage: Storage, component: &'static str, stop: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(write_loop(storage, rx, stop));
        Recorder { tx, component }
    }

    pub fn record(&self, pod: &Regarding<'_>, kind: &str, reason: &str, message: &str) {
        let (name, obj) = event(self.component, pod, kind, reason, message);
        if self.tx.try_send((pod.namespace.to_string(), name, obj)).is_err() {
            tracing::debug!(pod = pod.name, reason, "event dropped: recorder is behind");
        }
    }
}

async fn write_loop(storage: Storage, mut rx: mpsc::Receiver<(String, String, Value)>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
        }
        if let Err(e) = storage.put_many(registry::events(), &batch).await {
            tracing::debug!(error = %e, dropped = batch.len(), "writing scheduler events");
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_pod_they_are_about() {
        let pod = Regarding {
            api_version: "v1",
            kind: "Pod",
            namespace: "ns",
            name: "web",
            uid: "u1",
            rv: 7,
        };
        let (name, e) = event(
            "default-scheduler",
            &pod,
            "Normal",
            "Scheduled",
            "Successfully assigned ns/web to n1",
        );
        assert!(name.starts_with("web."));
        assert_eq!(e["metadata"]["name"], name.as_str());
        assert_eq!(e["involvedObject"]["uid"], "u1");
        assert_eq!(e["involvedObject"]["resourceVersion"], "7");
        assert_eq!(e["source"]["component"], "default-scheduler");
        let (other, _) = event("default-scheduler", &pod, "Normal", "Scheduled", "x");
        assert_ne!(name, other);
    }
}

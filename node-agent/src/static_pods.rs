//! Static pods: manifests in a directory (kubelet's `--pod-manifest-path`) run on this node
//! without the API, and are mirrored into the API (read-only copies marked
//! `kubernetes.io/config.mirror`) so `kubectl get pods` shows them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::kube::KubeClient;

pub const RESCAN: Duration = Duration::from_secs(5);
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Static pods' uids start with this, so they are never confused with API pods' uuids.
pub const UID_PREFIX: &str = "static-";

pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

pub struct StaticPods {
    dir: Option<PathBuf>,
    node: String,
    /// uid -> pod, as last read.
    pods: HashMap<String, Pod>,
}

impl StaticPods {
    pub fn new(dir: Option<PathBuf>, node: &str) -> StaticPods {
        StaticPods {
            dir,
            node: node.to_string(),
            pods: HashMap::new(),
        }
    }

    pub fn uids(&self) -> HashSet<String> {
        self.pods.keys().cloned().collect()
    }

    /// Reads the directory; returns the changes as (uid, pod or None when removed).
    pub fn scan(&mut self) -> Vec<(String, Option<Pod>)> {
        let Some(dir) = &self.dir else { return Vec::new() };
        let mut now: HashMap<String, Pod> = HashMap::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for path in entries {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !matches!(ext, "yaml" | "yml" | "json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match manifest_pod(&text, &self.node) {
                Ok(p) => {
                    if let Some(uid) = p.metadata.uid.clone() {
                        now.insert(uid, p);
                    }
                }
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "static pod manifest"),
            }
        }
        let mut changes = Vec::new();
        for (uid, p) in &now {
            if !self.pods.contains_key(uid) {
                changes.push((uid.clone(), Some(p.clone())));
            }
        }
        for uid in self.pods.keys() {
            if !now.contains_key(uid) {
                changes.push((uid.clone(), None));
            }
        }
        self.pods = now;
        changes
    }

    /// Creates missing mirror pods and deletes mirrors of removed manifests.
    pub async fn sync_mirrors(&self, client: &KubeClient) {
        let Some(_) = &self.dir else { return };
        for p in self.pods.values() {
            let ns = p.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let name = p.metadata.name.clone().unwrap_or_default();
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
            match client.get_opt::<Pod>(&path).await {
                Ok(Some(m))
                    if is_mirror(&m)
                        && m.metadata.annotations.as_ref().and_then(|a| a.get(MIRROR_ANNOTATION))
                            == p.metadata.uid.as_ref() =>
                {
                    continue
                }
                // A stale mirror (an older manifest) is replaced; a user's own pod is left alone.
                Ok(Some(m)) if is_mirror(&m) => {
                    let _ = client
                        .delete(
                            &path,
                            &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": m.metadata.uid}}),
                        )
                        .await;
                }
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(_) => continue,
            }
            let mut mirror = serde_json::to_value(p).unwrap_or_default();
            mirror["metadata"]["uid"] = serde_json::Value::Null;
            mirror["metadata"]["annotations"][MIRROR_ANNOTATION] = json!(p.metadata.uid);
            mirror["status"] = serde_json::Value::Null;
            if let Err(e) = client
                .create::<_, Pod>(&format!("/api/v1/namespaces/{ns}/pods"), &mirror)
                .await
            {
                if !e.is_conflict() {
                    tracing::warn!(pod = %name, error = %e, "creating mirror pod");
                }
            }
        }
    }
}

/// A manifest as the pod this node runs: named `<name>-<node>`, bound to the node, with a uid
/// derived from the content (an edited manifest is a new pod, as with kubelet).
pub fn manifest_pod(text: &str, node: &str) -> Result<Pod, String> {
    let mut pod: Pod = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name: Required value")?;
    let hash = hex(&Sha256::digest(format!("{node}\n{text}").as_bytes())[..12]);
    let uid = format!("{UID_PREFIX}{hash}");
    pod.metadata.name = Some(format!("{name}-{node}"));
    pod.metadata.namespace.get_or_insert_with(|| "default".into());
    pod.metadata.uid = Some(uid.clone());
    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert("kubernetes.io/config.source".into(), "file".into());
    ann.insert("kubernetes.io/config.hash".into(), uid);
    let spec = pod.spec.as_mut().ok_or("spec: Required value")?;
    if spec.containers.is_empty() {
        return Err("spec.containers: Required value".into());
    }
    spec.node_name = Some(node.to_string());
    Ok(pod)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_becomes_a_node_pod() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let p = manifest_pod(text, "n1").unwrap_or_default();
        assert_eq!(p.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert!(p.metadata.uid.as_deref().is_some_and(|u| u.starts_with(UID_PREFIX)));
        assert_eq!(p.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
        // Same content, same uid; other content, other uid.
        let again = manifest_pod(text, "n1").ok().and_then(|p| p.metadata.uid);
        let other = manifest_pod(&text.replace("busybox", "busybox:1"), "n1")
            .ok()
            .and_then(|p| p.metadata.uid);
        let first = manifest_pod(text, "n1").ok().and_then(|p| p.metadata.uid);
        assert_eq!(again, first);
        assert_ne!(other, first);
    }

    #[test]
    fn bad_manifests_name_the_field() {
        assert!(manifest_pod("metadata: {}\nspec: {containers: [{name: c}]}", "n")
            .is_err_and(|e| e.contains("metadata.name")));
        assert!(manifest_pod("metadata: {name: a}\nspec: {containers: []}", "n")
            .is_err_and(|e| e.contains("spec.containers")));
        assert!(manifest_pod(": not yaml [", "n").is_err());
    }
}

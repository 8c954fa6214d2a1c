//! The Node authorizer: what a node (user `system:node:<name>` in group `system:nodes`) may do,
//! as Kubernetes decides it before RBAC. A node may read a secret, configmap, persistent volume
//! claim or service account only if a pod bound to it uses that object (the "graph"), may touch
//! only its own lease in kube-node-lease, and otherwise gets the rules of the `system:node`
//! ClusterRole. Anything else gets no opinion and falls through to RBAC.
//!
//! The graph is an index kept by a pod informer: pod -> (node, objects it references), and
//! object -> nodes with a count, so a decision is one hash lookup.

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::Value;

use super::rbac::{Attributes, Policy, User};
use crate::informer::{Change, Handler};
use crate::registry::Resource;

pub const NODES_GROUP: &str = "system:nodes";
const NODE_PREFIX: &str = "system:node:";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is, if it is one.
pub fn node_name(user: &User) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

/// An object a pod uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

/// The node a pod is bound to and the objects it references (secrets and configmaps in volumes,
/// projected volumes, env and envFrom of every container kind, image pull secrets; claims; its
/// service account).
pub fn refs_of(pod: &Value) -> (String, Vec<Ref>) {
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut refs = Vec::new();
    let mut add = |kind: &'static str, name: Option<&Value>| {
        if let Some(n) = name.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            refs.push(Ref {
                kind,
                namespace: ns.to_string(),
                name: n.to_string(),
            });
        }
    };
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    add("serviceaccounts", spec.get("serviceAccountName"));
    for s in spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add("secrets", s.get("name"));
    }
    for v in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        add("secrets", v.pointer("/secret/secretName"));
        add("configmaps", v.pointer("/configMap/name"));
        add("persistentvolumeclaims", v.pointer("/persistentVolumeClaim/claimName"));
        for src in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add("secrets", src.pointer("/secret/name"));
            add("configmaps", src.pointer("/configMap/name"));
        }
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                add("secrets", e.pointer("/valueFrom/secretKeyRef/name"));
                add("configmaps", e.pointer("/valueFrom/configMapKeyRef/name"));
            }
            for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                add("secrets", e.pointer("/secretRef/name"));
                add("configmaps", e.pointer("/configMapRef/name"));
            }
        }
    }
    refs.sort();
    refs.dedup();
    (node, refs)
}

#[derive(Default)]
struct Graph {
    /// (namespace, pod name) -> (node, references)
    pods: HashMap<(String, String), (String, Vec<Ref>)>,
    /// reference -> node -> how many of its pods use it
    edges: HashMap<Ref, HashMap<String, usize>>,
}

impl Graph {
    fn remove(&mut self, key: &(String, String)) {
        let Some((node, refs)) = self.pods.remove(key) else {
            return;
        };
        for r in refs {
            if let Some(nodes) = self.edges.get_mut(&r) {
                if let Some(n) = nodes.get_mut(&node) {
                    *n -= 1;
                    if *n == 0 {
                        nodes.remove(&node);
                    }
                }
                if nodes.is_empty() {
                    self.edges.remove(&r);
                }
            }
        }
    }

    fn put(&mut self, pod: &Value) {
        let m = |f: &str| {
            pod.pointer(&format!("/metadata/{f}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let key = (m("namespace"), m("name"));
        self.remove(&key);
        let (node, refs) = refs_of(pod);
        if node.is_empty() {
            return;
        }
        for r in &refs {
            *self
                .edges
                .entry(r.clone())
                .or_default()
                .entry(node.clone())
                .or_default() += 1;
        }
        self.pods.insert(key, (node, refs));
    }
}

/// Pods by node and what they reference, fed by a pod informer.
#[derive(Default)]
pub struct NodeGraph {
    graph: RwLock<Graph>,
}

impl NodeGraph {
    /// Whether a pod bound to `node` references the object.
    pub fn related(&self, node: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let g = self.graph.read().unwrap_or_else(|p| p.into_inner());
        let Some(kind) = ["secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"]
            .into_iter()
            .find(|k| *k == kind)
        else {
            return false;
        };
        let r = Ref {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        g.edges.get(&r).is_some_and(|nodes| nodes.contains_key(node))
    }
}

impl Handler for NodeGraph {
    fn replace(&self, _res: &'static Resource, objects: Vec<Value>) {
        let mut g = Graph::default();
        for o in &objects {
            g.put(o);
        }
        *self.graph.write().unwrap_or_else(|p| p.into_inner()) = g;
    }

    fn apply(&self, _res: &'static Resource, change: Change) {
        let mut g = self.graph.write().unwrap_or_else(|p| p.into_inner());
        match change {
            Change::Put(o) => g.put(&o),
            Change::Delete { namespace, name } => g.remove(&(namespace.unwrap_or_default(), name)),
        }
    }
}

/// The Node authorizer's answer: `Ok(())` to allow, `Err(reason)` for no opinion (RBAC decides,
/// and the reason joins its refusal). Not for users that are no node.
pub fn decide(graph: &NodeGraph, policy: &Policy, node: &str, a: &Attributes) -> Result<(), String> {
    if node.is_empty() {
        return Err("unknown node".to_string());
    }
    if a.resource_request && a.api_group.is_empty() {
        let graph_kind = matches!(
            (a.resource.as_str(), a.subresource.as_str()),
            ("secrets" | "configmaps" | "persistentvolumeclaims", "") | ("serviceaccounts", "token")
        );
        if graph_kind {
            let verb_ok = match a.subresource.as_str() {
                "token" => a.verb == "create",
                _ => a.verb == "get",
            };
            if !verb_ok {
                return Err(match a.subresource.as_str() {
                    "token" => "can only create tokens for individual service accounts".to_string(),
                    _ => "can only get individual resources of this type".to_string(),
                });
            }
            if a.name.is_empty() {
                return Err("can only get individual resources of this type".to_string());
            }
            return if graph.related(node, &a.resource, &a.namespace, &a.name) {
                Ok(())
            } else {
                Err(format!("no relationship found between node '{node}' and this object"))
            };
        }
    }
    if a.resource_request && a.api_group == "coordination.k8s.io" && a.resource == "leases" {
        if !matches!(a.verb.as_str(), "get" | "create" | "update" | "patch" | "delete") {
            return Err(format!(
                "can only get, create, update, patch, or delete a node lease, not {}",
                a.verb
            ));
        }
        if a.namespace != LEASE_NAMESPACE {
            return Err(format!("can only access leases in the {LEASE_NAMESPACE} namespace"));
        }
        // A create names its lease only in the body: NodeRestriction checks it there.
        if a.name != node && !(a.verb == "create" && a.name.is_empty()) {
            return Err("can only access node lease with the same name as the requesting node".to_string());
        }
        return Ok(());
    }
    let rules = policy.cluster_role_rules("system:node").unwrap_or(&[]);
    if rules.iter().any(|r| r.allows(a)) {
        Ok(())
    } else {
        Err(String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::bootstrap;
    use serde_json::json;

    fn node_user(n: &str) -> User {
        User {
            name: format!("system:node:{n}"),
            groups: vec![NODES_GROUP.into(), "system:authenticated".into()],
        }
    }

    fn policy() -> Policy {
        let mut p = Policy::new();
        for o in bootstrap::cluster_roles() {
            p.upsert_object(&o).expect("bootstrap role");
        }
        p
    }

    fn get(user: &User, resource: &str, ns: &str, name: &str) -> Attributes {
        Attributes::resource(user.clone(), "get", "", resource, ns).with_name(name)
    }

    fn pod(ns: &str, name: &str, node: &str, secret: &str) -> Value {
        json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "default",
                "volumes": [{"name": "v", "secret": {"secretName": secret}}],
                "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": format!("{secret}-cm")}}]}],
            }
        })
    }

    #[test]
    fn node_names_need_the_group() {
        assert_eq!(node_name(&node_user("n1")), Some("n1"));
        let impostor = User {
            name: "system:node:n1".into(),
            groups: vec![],
        };
        assert_eq!(node_name(&impostor), None);
    }

    #[test]
    fn refs_cover_volumes_env_and_service_account() {
        let (node, refs) = refs_of(&pod("a", "p", "n1", "s1"));
        assert_eq!(node, "n1");
        let kinds: Vec<(&str, &str)> = refs.iter().map(|r| (r.kind, r.name.as_str())).collect();
        assert!(kinds.contains(&("secrets", "s1")));
        assert!(kinds.contains(&("configmaps", "s1-cm")));
        assert!(kinds.contains(&("serviceaccounts", "default")));
    }

    #[test]
    fn a_node_reads_only_what_its_pods_use() {
        let pods = crate::registry::lookup("", "v1", "pods").expect("pods");
        let g = NodeGraph::default();
        g.replace(pods, vec![pod("a", "p1", "n1", "s1"), pod("a", "p2", "n2", "s2")]);
        let p = policy();
        let n1 = node_user("n1");
        assert!(decide(&g, &p, "n1", &get(&n1, "secrets", "a", "s1")).is_ok());
        let e = decide(&g, &p, "n1", &get(&n1, "secrets", "a", "s2")).expect_err("not its pod's");
        assert_eq!(e, "no relationship found between node 'n1' and this object");
        let list = Attributes::resource(n1.clone(), "list", "", "secrets", "a");
        assert!(decide(&g, &p, "n1", &list).is_err());
        // The pod moves away: the secret is no longer n1's to read.
        g.apply(
            pods,
            Change::Delete {
                namespace: Some("a".into()),
                name: "p1".into(),
            },
        );
        assert!(decide(&g, &p, "n1", &get(&n1, "secrets", "a", "s1")).is_err());
        // Two pods on one node share a secret: it stays readable until both are gone.
        g.apply(pods, Change::Put(pod("a", "p3", "n2", "s2")));
        g.apply(
            pods,
            Change::Delete {
                namespace: Some("a".into()),
                name: "p2".into(),
            },
        );
        assert!(decide(&g, &p, "n2", &get(&node_user("n2"), "secrets", "a", "s2")).is_ok());
    }

    #[test]
    fn leases_and_the_node_role() {
        let g = NodeGraph::default();
        let p = policy();
        let n1 = node_user("n1");
        let lease = |ns: &str, name: &str| {
            Attributes::resource(n1.clone(), "update", "coordination.k8s.io", "leases", ns).with_name(name)
        };
        assert!(decide(&g, &p, "n1", &lease(LEASE_NAMESPACE, "n1")).is_ok());
        assert!(decide(&g, &p, "n1", &lease(LEASE_NAMESPACE, "n2")).is_err());
        assert!(decide(&g, &p, "n1", &lease("default", "n1")).is_err());
        let list_pods = Attributes::resource(n1.clone(), "list", "", "pods", "");
        assert!(decide(&g, &p, "n1", &list_pods).is_ok(), "system:node lists pods");
        let delete_ns = Attributes::resource(n1, "delete", "", "namespaces", "").with_name("x");
        assert!(decide(&g, &p, "n1", &delete_ns).is_err());
    }
}

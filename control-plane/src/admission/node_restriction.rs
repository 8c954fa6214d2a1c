//! NodeRestriction: what a node's identity may write, beyond what the Node authorizer lets it
//! reach, as Kubernetes' plugin limits it: only its own Node object; only mirror pods bound to
//! itself (a static pod's reflection in the API), which may reference no secrets, configmaps,
//! claims or service account; the status and deletion only of pods bound to itself; only its own
//! lease. Messages are Kubernetes' own. Pure: the caller passes the objects.

use serde_json::Value;

/// The annotation that marks a mirror pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// What is being written and by which node.
pub struct Write<'a> {
    pub node: &'a str,
    pub op: Operation,
    pub group: &'a str,
    pub plural: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    /// The new object (create, update), if any.
    pub obj: Option<&'a Value>,
    /// The stored object (update, delete), if any.
    pub old: Option<&'a Value>,
}

fn node_of(pod: Option<&Value>) -> &str {
    pod.and_then(|p| p.pointer("/spec/nodeName"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `Ok` or the reason the write is refused (the caller words the 403 around it).
pub fn admit(w: &Write<'_>) -> Result<(), String> {
    let node = w.node;
    match (w.group, w.plural) {
        ("", "nodes") => {
            let verb = if w.op == Operation::Delete { "delete" } else { "modify" };
            if w.name != node {
                return Err(format!("node \"{node}\" is not allowed to {verb} node \"{}\"", w.name));
            }
            admit_own_node(node, w.op, w.obj, w.old)
        }
        ("", "pods") => match (w.op, w.subresource) {
            (Operation::Create, "") => admit_mirror_pod(node, w.obj),
            (Operation::Create, "eviction") | (Operation::Update, "status") | (Operation::Delete, "") => {
                if node_of(w.old) != node {
                    let what = match (w.op, w.subresource) {
                        (Operation::Update, _) => "update pod status",
                        (Operation::Delete, _) => "delete pods",
                        _ => "evict pods",
                    };
                    return Err(format!(
                        "node \"{node}\" can only {what} for pods with spec.nodeName set to itself"
                    ));
                }
                Ok(())
            }
            (Operation::Update, _) => Err(format!("node \"{node}\" can only update pod status")),
            _ => Ok(()),
        },
        ("coordination.k8s.io", "leases") => {
            let name = w
                .obj
                .and_then(|o| o.pointer("/metadata/name"))
                .and_then(Value::as_str)
                .unwrap_or(w.name);
            if name != node {
                return Err("can only access node lease with the same name as the requesting node".to_string());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Labels only the cluster's administrators may put on nodes (to steer workloads to them).
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";

/// A node writing itself: no restricted labels added or changed, no taint changes after
/// registration (taints keep workloads away; a node must not lift its own).
fn admit_own_node(node: &str, op: Operation, obj: Option<&Value>, old: Option<&Value>) -> Result<(), String> {
    let Some(obj) = obj else {
        return Ok(());
    };
    let labels = |v: Option<&Value>| -> Vec<(String, String)> {
        v.and_then(|v| v.pointer("/metadata/labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with(RESTRICTED_LABEL_PREFIX))
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (new_labels, old_labels) = (labels(Some(obj)), labels(old));
    let mut changed: Vec<String> = new_labels
        .iter()
        .filter(|l| !old_labels.contains(l))
        .chain(old_labels.iter().filter(|l| !new_labels.contains(l)))
        .map(|(k, _)| k.clone())
        .collect();
    changed.sort();
    changed.dedup();
    if !changed.is_empty() {
        return Err(match op {
            Operation::Create => format!(
                "node \"{node}\" is not allowed to set the following labels: {}",
                changed.join(", ")
            ),
            _ => format!(
                "node \"{node}\" is not allowed to modify labels: {}",
                changed.join(", ")
            ),
        });
    }
    if op == Operation::Update {
        let taints = |v: Option<&Value>| {
            v.and_then(|v| v.pointer("/spec/taints"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let empty = |t: &Value| t.is_null() || t.as_array().is_some_and(Vec::is_empty);
        let (new_t, old_t) = (taints(Some(obj)), taints(old));
        if new_t != old_t && !(empty(&new_t) && empty(&old_t)) {
            return Err(format!("node \"{node}\" is not allowed to modify taints"));
        }
    }
    Ok(())
}

fn admit_mirror_pod(node: &str, pod: Option<&Value>) -> Result<(), String> {
    let Some(pod) = pod else {
        return Ok(());
    };
    if pod
        .pointer(&format!(
            "/metadata/annotations/{}",
            MIRROR_ANNOTATION.replace('/', "~1")
        ))
        .is_none()
    {
        return Err(format!(
            "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
        ));
    }
    if node_of(Some(pod)) != node {
        return Err(format!(
            "node \"{node}\" can only create pods with spec.nodeName set to itself"
        ));
    }
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(format!(
            "node \"{node}\" can not create pods that reference a service account"
        ));
    }
    let (_, refs) = crate::auth::node::refs_of(pod);
    for (kind, what) in [
        ("secrets", "secrets"),
        ("configmaps", "configmaps"),
        ("persistentvolumeclaims", "persistentvolumeclaims"),
    ] {
        if refs.iter().any(|r| r.kind == kind) {
            return Err(format!("node \"{node}\" can not create pods that reference {what}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w<'a>(
        op: Operation,
        plural: &'a str,
        sub: &'a str,
        name: &'a str,
        obj: Option<&'a Value>,
        old: Option<&'a Value>,
    ) -> Write<'a> {
        Write {
            node: "n1",
            op,
            group: "",
            plural,
            subresource: sub,
            name,
            obj,
            old,
        }
    }

    #[test]
    fn a_node_modifies_only_itself() {
        assert!(admit(&w(Operation::Update, "nodes", "status", "n1", None, None)).is_ok());
        assert_eq!(
            admit(&w(Operation::Update, "nodes", "", "n2", None, None)).expect_err("other node"),
            "node \"n1\" is not allowed to modify node \"n2\""
        );
        assert_eq!(
            admit(&w(Operation::Delete, "nodes", "", "n2", None, None)).expect_err("other node"),
            "node \"n1\" is not allowed to delete node \"n2\""
        );
    }

    #[test]
    fn a_node_keeps_its_taints_and_restricted_labels() {
        let old = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "a"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        let relabelled = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "b"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        assert_eq!(
            admit(&w(Operation::Update, "nodes", "", "n1", Some(&relabelled), Some(&old))).expect_err("label"),
            "node \"n1\" is not allowed to modify labels: node-restriction.kubernetes.io/pool"
        );
        let untainted =
            json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "a", "x": "y"}}, "spec": {}});
        assert_eq!(
            admit(&w(
                Operation::Update,
                "nodes",
                "status",
                "n1",
                Some(&untainted),
                Some(&old)
            ))
            .expect_err("taints"),
            "node \"n1\" is not allowed to modify taints"
        );
        let ok = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "a", "x": "y"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        assert!(admit(&w(Operation::Update, "nodes", "", "n1", Some(&ok), Some(&old))).is_ok());
        let registering = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "a"}}});
        assert!(admit(&w(Operation::Create, "nodes", "", "n1", Some(&registering), None)).is_err());
    }

    #[test]
    fn pods_only_bound_to_itself() {
        let mine = json!({"spec": {"nodeName": "n1"}});
        let theirs = json!({"spec": {"nodeName": "n2"}});
        assert!(admit(&w(Operation::Update, "pods", "status", "p", Some(&mine), Some(&mine))).is_ok());
        assert_eq!(
            admit(&w(
                Operation::Update,
                "pods",
                "status",
                "p",
                Some(&theirs),
                Some(&theirs)
            ))
            .expect_err("theirs"),
            "node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
        );
        assert!(admit(&w(Operation::Delete, "pods", "", "p", None, Some(&theirs))).is_err());
        assert_eq!(
            admit(&w(Operation::Update, "pods", "", "p", Some(&mine), Some(&mine))).expect_err("spec"),
            "node \"n1\" can only update pod status"
        );
    }

    #[test]
    fn only_plain_mirror_pods_are_created() {
        let plain = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        assert!(admit(&w(Operation::Create, "pods", "", "", Some(&plain), None))
            .expect_err("not a mirror pod")
            .contains("can only create mirror pods"));
        let mirror =
            json!({"metadata": {"name": "p", "annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": "n1"}});
        assert!(admit(&w(Operation::Create, "pods", "", "", Some(&mirror), None)).is_ok());
        let elsewhere = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": "n2"}});
        assert!(admit(&w(Operation::Create, "pods", "", "", Some(&elsewhere), None)).is_err());
        let secret = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"nodeName": "n1",
            "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}});
        assert_eq!(
            admit(&w(Operation::Create, "pods", "", "", Some(&secret), None)).expect_err("secret"),
            "node \"n1\" can not create pods that reference secrets"
        );
    }

    #[test]
    fn leases_by_name() {
        let lease = |name: &str| json!({"metadata": {"name": name}});
        let (mine, theirs) = (lease("n1"), lease("n2"));
        let mut write = w(Operation::Create, "leases", "", "", Some(&mine), None);
        write.group = "coordination.k8s.io";
        assert!(admit(&write).is_ok());
        write.obj = Some(&theirs);
        assert!(admit(&write).is_err());
    }
}

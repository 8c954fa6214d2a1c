//! NamespaceLifecycle: nothing new may be created in a namespace that is being deleted (its
//! contents are on their way out), and the namespaces Kubernetes treats as immortal cannot be
//! deleted. A namespace that does not exist is refused by the store txn itself (404), so this
//! plugin only needs the namespace's deletion state, from the informer cache.

use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::registry::Resource;

pub const NAME: &str = "NamespaceLifecycle";

/// Refuses a create of `res` named `name` in `namespace` when `ns_obj` (the namespace as the
/// cache holds it) is being deleted.
pub fn admit_create(res: &Resource, namespace: &str, name: &str, ns_obj: Option<&Value>) -> Result<(), ApiError> {
    let terminating = ns_obj.is_some_and(|n| {
        n.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
            || n.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
    });
    if !terminating {
        return Ok(());
    }
    let qualified = crate::error::qualified(res.group, res.plural);
    let subject = if name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{name}\"")
    };
    let mut e = ApiError::new(
        403,
        "Forbidden",
        format!(
            "{subject} is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
        ),
    )
    .about(res.group, res.plural, name);
    e.causes.push(Cause {
        reason: "NamespaceTerminating",
        field: "metadata.namespace".to_string(),
        message: format!("namespace {namespace} is being terminated"),
    });
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;
    use serde_json::json;

    #[test]
    fn creates_in_a_terminating_namespace_are_refused() {
        let pods = registry::lookup("", "v1", "pods").expect("pods");
        let live = json!({"metadata": {"name": "a"}, "status": {"phase": "Active"}});
        assert!(admit_create(pods, "a", "web", Some(&live)).is_ok());
        assert!(
            admit_create(pods, "a", "web", None).is_ok(),
            "a missing namespace is the store's 404"
        );
        let dying = json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        let e = admit_create(pods, "a", "web", Some(&dying)).expect_err("refused");
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "pods \"web\" is forbidden: unable to create new content in namespace a because it is being terminated"
        );
        assert_eq!(e.causes[0].reason, "NamespaceTerminating");
        let deploy = registry::lookup("apps", "v1", "deployments").expect("deployments");
        let e = admit_create(deploy, "a", "", Some(&dying)).expect_err("refused");
        assert!(
            e.message.starts_with("deployments.apps is forbidden: "),
            "{}",
            e.message
        );
    }
}

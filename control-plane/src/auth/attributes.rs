//! What a request asks to do, in RBAC's terms: Kubernetes' request-info rules turn the method
//! and path into a verb and either a resource (group, resource, subresource, namespace, name) or
//! a non-resource path. Pure, so every shape is tested without a server.

use axum::http::Method;

use super::rbac::{Attributes, User};
use crate::api::request::Target;

/// The RBAC verb of a resource request, as kube-apiserver's RequestInfoFactory derives it.
pub fn resource_verb(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match method.as_str() {
        "GET" | "HEAD" if watch => "watch",
        "GET" | "HEAD" if has_name => "get",
        "GET" | "HEAD" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if has_name => "delete",
        "DELETE" => "deletecollection",
        _ => "",
    }
}

/// The verb of a non-resource request: the lower-cased method (HEAD reads as get).
pub fn path_verb(method: &Method) -> String {
    match method.as_str() {
        "HEAD" => "get".to_string(),
        m => m.to_ascii_lowercase(),
    }
}

/// Attributes of a request on a resource.
pub fn for_target(user: &User, method: &Method, t: &Target, watch: bool) -> Attributes {
    let mut verb = resource_verb(method, t.name.is_some(), watch).to_string();
    // A watch on a single object (fieldSelector=metadata.name=x) reads as a named watch; a
    // GET with ?watch on a name is a watch too.
    if watch && t.name.is_some() {
        verb = "watch".to_string();
    }
    // Running something in a pod is a create, whichever method carries it: a WebSocket
    // upgrade is a GET (as kube-apiserver 1.35's AuthorizePodWebsocketUpgradeCreatePermission).
    if matches!(t.subresource.as_deref(), Some("exec" | "attach" | "portforward")) && t.res.plural == "pods" {
        verb = "create".to_string();
    }
    // kube-apiserver reads `/namespaces/<name>` as being in namespace <name>, so a RoleBinding
    // in a namespace can grant access to that namespace object itself.
    let namespace = match (&t.namespace, &t.name) {
        (Some(ns), _) => ns.clone(),
        (None, Some(name)) if t.res.group.is_empty() && t.res.plural == "namespaces" => name.clone(),
        _ => String::new(),
    };
    Attributes {
        user: user.clone(),
        verb,
        resource_request: true,
        namespace,
        api_group: t.res.group.to_string(),
        resource: t.res.plural.to_string(),
        subresource: t.subresource.clone().unwrap_or_default(),
        name: t.name.clone().unwrap_or_default(),
        path: String::new(),
    }
}

/// Attributes of a request on a path that is no resource (discovery, /healthz, /metrics).
pub fn for_path(user: &User, method: &Method, path: &str) -> Attributes {
    Attributes {
        user: user.clone(),
        verb: path_verb(method),
        resource_request: false,
        namespace: String::new(),
        api_group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        name: String::new(),
        path: path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::parse_path;

    fn user() -> User {
        User {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    fn attrs(method: Method, path: &str, watch: bool) -> Attributes {
        let t = parse_path(path).expect("path").expect("resource path");
        for_target(&user(), &method, &t, watch)
    }

    #[test]
    fn exec_is_a_create_even_as_a_websocket_get() {
        for m in [Method::GET, Method::POST] {
            let a = attrs(m, "/api/v1/namespaces/a/pods/web/exec", false);
            assert_eq!((a.verb.as_str(), a.subresource.as_str()), ("create", "exec"));
        }
        assert_eq!(
            attrs(Method::GET, "/api/v1/namespaces/a/pods/web/log", false).verb,
            "get"
        );
    }

    #[test]
    fn verbs_follow_kubernetes_request_info() {
        let a = attrs(Method::GET, "/api/v1/namespaces/default/pods", false);
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.resource.as_str()),
            ("list", "default", "pods")
        );
        assert_eq!(attrs(Method::GET, "/api/v1/pods", true).verb, "watch");
        assert_eq!(attrs(Method::GET, "/api/v1/namespaces/a/pods/web", false).verb, "get");
        assert_eq!(attrs(Method::POST, "/api/v1/namespaces/a/pods", false).verb, "create");
        assert_eq!(
            attrs(Method::PUT, "/api/v1/namespaces/a/pods/web", false).verb,
            "update"
        );
        assert_eq!(
            attrs(Method::PATCH, "/api/v1/namespaces/a/pods/web", false).verb,
            "patch"
        );
        assert_eq!(
            attrs(Method::DELETE, "/api/v1/namespaces/a/pods/web", false).verb,
            "delete"
        );
        assert_eq!(
            attrs(Method::DELETE, "/api/v1/namespaces/a/pods", false).verb,
            "deletecollection"
        );
        let log = attrs(Method::GET, "/api/v1/namespaces/a/pods/web/log", false);
        assert_eq!((log.subresource.as_str(), log.name.as_str()), ("log", "web"));
        let scale = attrs(Method::PUT, "/apis/apps/v1/namespaces/a/deployments/d/scale", false);
        assert_eq!(
            (scale.api_group.as_str(), scale.subresource.as_str()),
            ("apps", "scale")
        );
        let node = attrs(Method::GET, "/api/v1/nodes/n1", false);
        assert_eq!((node.namespace.as_str(), node.name.as_str()), ("", "n1"));
        // As in kube-apiserver, a namespace object is addressed within itself.
        let ns = attrs(Method::DELETE, "/api/v1/namespaces/a", false);
        assert_eq!(
            (ns.resource.as_str(), ns.namespace.as_str(), ns.name.as_str()),
            ("namespaces", "a", "a")
        );
        assert_eq!(attrs(Method::GET, "/api/v1/namespaces", false).namespace, "");
    }

    #[test]
    fn non_resource_paths_use_the_method() {
        let a = for_path(&user(), &Method::GET, "/metrics");
        assert!(!a.resource_request);
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/metrics"));
        assert_eq!(for_path(&user(), &Method::HEAD, "/healthz").verb, "get");
        assert_eq!(for_path(&user(), &Method::POST, "/x").verb, "post");
    }
}

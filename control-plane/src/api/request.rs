//! What a request is about: the resource, namespace, name and subresource from its path, and its
//! query options. Pure parsing, so every path shape is tested without a server.

use std::collections::HashMap;

use crate::error::{ApiError, ApiResult};
use crate::registry::{self, Resource};

/// The object or collection a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub res: &'static Resource,
    /// The namespace in the path (None: cluster-scoped, or every namespace).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/<group>/<version>/...` resource paths. `Ok(None)` when the
/// path is not a resource path (discovery and the like).
pub fn parse_path(path: &str) -> ApiResult<Option<Target>> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Ok(None),
    };
    let find = |plural: &str| registry::lookup(group, version, plural).ok_or_else(ApiError::path_not_found);
    let target = |res: &'static Resource, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        res,
        namespace: ns.map(String::from),
        name: name.map(String::from),
        subresource: sub.map(String::from),
    };
    let t = match rest {
        // /namespaces/<ns>/<plural>[/<name>[/<sub>]] addresses namespaced resources; a third
        // segment that is not a namespaced resource is a namespace subresource (status, finalize).
        ["namespaces", ns, plural, tail @ ..]
            if registry::lookup(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            let res = find(plural)?;
            match tail {
                [] => target(res, Some(ns), None, None),
                [name] => target(res, Some(ns), Some(name), None),
                [name, sub] => target(res, Some(ns), Some(name), Some(sub)),
                _ => return Err(ApiError::path_not_found()),
            }
        }
        [plural] => target(find(plural)?, None, None, None),
        [plural, name] => target(find(plural)?, None, Some(name), None),
        [plural, name, sub] => target(find(plural)?, None, Some(name), Some(sub)),
        _ => return Err(ApiError::path_not_found()),
    };
    if let Some(sub) = &t.subresource {
        if !t.res.has_subresource(sub) {
            return Err(ApiError::path_not_found());
        }
    }
    if t.res.namespaced && t.name.is_some() && t.namespace.is_none() {
        // A namespaced object must be addressed within its namespace.
        return Err(ApiError::path_not_found());
    }
    if !t.res.namespaced && t.namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    Ok(Some(t))
}

/// Query parameters, decoded once.
#[derive(Debug, Default, Clone)]
pub struct Query {
    map: HashMap<String, String>,
    /// Every value of `command` in order (exec's arguments: the one repeated parameter).
    commands: Vec<String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> ApiResult<Query> {
        let mut map = HashMap::new();
        let mut commands = Vec::new();
        if let Some(q) = raw {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q)
                .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
            for (k, v) in pairs {
                if k == "command" {
                    commands.push(v.clone());
                }
                map.insert(k, v);
            }
        }
        Ok(Query { map, commands })
    }

    /// Every `command` parameter, in order.
    pub fn commands(&self) -> &[String] {
        &self.commands
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }

    pub fn remove(&mut self, k: &str) {
        self.map.remove(k);
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{k}: Invalid value: {s:?}: must be an integer"))),
        }
    }

    /// `dryRun=All` (the only value Kubernetes accepts).
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// `fieldValidation`: Strict, Warn (default for kubectl is Strict), Ignore.
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> Target {
        parse_path(path).expect("parses").expect("a resource path")
    }

    #[test]
    fn every_path_shape() {
        let p = t("/api/v1/namespaces/default/pods");
        assert_eq!(
            (p.res.plural, p.namespace.as_deref(), p.name.as_deref()),
            ("pods", Some("default"), None)
        );
        let p = t("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(
            (p.name.as_deref(), p.subresource.as_deref()),
            (Some("web"), Some("status"))
        );
        let p = t("/api/v1/pods");
        assert_eq!((p.res.plural, p.namespace), ("pods", None));
        let p = t("/api/v1/namespaces/kube-system");
        assert_eq!((p.res.plural, p.name.as_deref()), ("namespaces", Some("kube-system")));
        let p = t("/api/v1/namespaces/kube-system/status");
        assert_eq!((p.res.plural, p.subresource.as_deref()), ("namespaces", Some("status")));
        let p = t("/apis/apps/v1/namespaces/x/deployments/d/scale");
        assert_eq!((p.res.kind, p.subresource.as_deref()), ("Deployment", Some("scale")));
        let p = t("/api/v1/nodes/n1");
        assert_eq!((p.res.plural, p.name.as_deref()), ("nodes", Some("n1")));
        assert!(parse_path("/api/v1").expect("ok").is_none());
        assert!(parse_path("/version").expect("ok").is_none());
    }

    #[test]
    fn unknown_or_misplaced_resources_are_404() {
        for bad in [
            "/api/v1/widgets",
            "/api/v1/pods/web",
            "/api/v1/namespaces/default/nodes/n1",
            "/api/v1/namespaces/default/pods/web/nope",
            "/apis/apps/v2/deployments",
            "/api/v1/namespaces/a/pods/b/c/d",
        ] {
            let e = parse_path(bad).expect_err(bad);
            assert_eq!(e.code, 404, "{bad}");
        }
    }

    #[test]
    fn query_options() {
        let q = Query::parse(Some("labelSelector=app%3Dweb&limit=5&dryRun=All&watch=1")).expect("query");
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert_eq!(q.int("limit").expect("int"), Some(5));
        assert!(q.dry_run().expect("dry"));
        assert!(q.flag("watch"));
        assert_eq!(
            Query::parse(Some("limit=x"))
                .expect("q")
                .int("limit")
                .expect_err("bad")
                .code,
            400
        );
        assert_eq!(
            Query::parse(Some("dryRun=Some"))
                .expect("q")
                .dry_run()
                .expect_err("bad")
                .code,
            400
        );
    }
}

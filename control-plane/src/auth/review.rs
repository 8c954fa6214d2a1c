//! The review APIs kubectl's `auth` commands use, all create-only and never stored:
//! SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview and
//! LocalSubjectAccessReview (can a given user?), SelfSubjectRulesReview (`can-i --list`) and
//! SelfSubjectReview (`kubectl auth whoami`).

use serde_json::{json, Value};

use super::rbac::{Attributes, User};
use super::Authorizer;
use crate::error::{ApiError, ApiResult, Cause};
use crate::pki::UserInfo;

const AUTHZ: &str = "authorization.k8s.io";
const AUTHN: &str = "authentication.k8s.io";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SelfSubjectAccessReview,
    SubjectAccessReview,
    LocalSubjectAccessReview,
    SelfSubjectRulesReview,
    SelfSubjectReview,
}

impl Kind {
    fn group(self) -> &'static str {
        match self {
            Kind::SelfSubjectReview => AUTHN,
            _ => AUTHZ,
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::SelfSubjectAccessReview => "selfsubjectaccessreviews",
            Kind::SubjectAccessReview => "subjectaccessreviews",
            Kind::LocalSubjectAccessReview => "localsubjectaccessreviews",
            Kind::SelfSubjectRulesReview => "selfsubjectrulesreviews",
            Kind::SelfSubjectReview => "selfsubjectreviews",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::SelfSubjectAccessReview => "SelfSubjectAccessReview",
            Kind::SubjectAccessReview => "SubjectAccessReview",
            Kind::LocalSubjectAccessReview => "LocalSubjectAccessReview",
            Kind::SelfSubjectRulesReview => "SelfSubjectRulesReview",
            Kind::SelfSubjectReview => "SelfSubjectReview",
        }
    }

    const ALL: [Kind; 5] = [
        Kind::SelfSubjectAccessReview,
        Kind::SubjectAccessReview,
        Kind::LocalSubjectAccessReview,
        Kind::SelfSubjectRulesReview,
        Kind::SelfSubjectReview,
    ];
}

/// A review endpoint a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub kind: Kind,
    /// LocalSubjectAccessReview's namespace.
    pub namespace: Option<String>,
}

impl Review {
    /// `/apis/authorization.k8s.io/v1/selfsubjectaccessreviews` and the like.
    pub fn parse(path: &str) -> Option<Review> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, plural, namespace) = match segs.as_slice() {
            ["apis", g, "v1", p] => (*g, *p, None),
            ["apis", g, "v1", "namespaces", ns, p] => (*g, *p, Some(ns.to_string())),
            _ => return None,
        };
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == plural)?;
        if (kind == Kind::LocalSubjectAccessReview) != namespace.is_some() {
            return None;
        }
        Some(Review { kind, namespace })
    }

    /// What creating the review asks of RBAC.
    pub fn attributes(&self, user: &User) -> Attributes {
        Attributes {
            user: user.clone(),
            verb: "create".to_string(),
            resource_request: true,
            namespace: self.namespace.clone().unwrap_or_default(),
            api_group: self.kind.group().to_string(),
            resource: self.kind.plural().to_string(),
            subresource: String::new(),
            name: String::new(),
            path: String::new(),
        }
    }
}

fn invalid(kind: Kind, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(kind.group(), kind.name(), "", causes)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The attributes an access review's spec asks about, for `user`.
fn spec_attributes(kind: Kind, spec: &Value, user: User) -> ApiResult<Attributes> {
    let res = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    match (res, non) {
        (Some(r), None) => Ok(Attributes {
            user,
            verb: str_at(r, "/verb").to_string(),
            resource_request: true,
            namespace: str_at(r, "/namespace").to_string(),
            api_group: str_at(r, "/group").to_string(),
            resource: str_at(r, "/resource").to_string(),
            subresource: str_at(r, "/subresource").to_string(),
            name: str_at(r, "/name").to_string(),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes {
            user,
            verb: str_at(n, "/verb").to_string(),
            resource_request: false,
            namespace: String::new(),
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            name: String::new(),
            path: str_at(n, "/path").to_string(),
        }),
        _ => Err(invalid(
            kind,
            vec![Cause::invalid(
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

fn answer(kind: Kind, body: &Value, spec: Value, status: Value) -> Value {
    let mut metadata = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if let Some(m) = metadata.as_object_mut() {
        m.insert("creationTimestamp".into(), Value::Null);
    }
    json!({
        "kind": kind.name(),
        "apiVersion": format!("{}/v1", kind.group()),
        "metadata": metadata,
        "spec": spec,
        "status": status,
    })
}

/// Runs a review for `caller` (the identity after impersonation); returns the object to send
/// back with 201.
pub async fn run(authz: &Authorizer, r: &Review, caller: &UserInfo, body: &Value, applied: i64) -> ApiResult<Value> {
    let kind = r.kind;
    if let Some(k) = body.get("kind").and_then(Value::as_str) {
        if k != kind.name() {
            return Err(ApiError::bad_request(format!(
                "the body is a {k}, but the path is for {}",
                kind.name()
            )));
        }
    }
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    match kind {
        Kind::SelfSubjectReview => {
            let info = json!({"username": caller.name, "uid": caller.uid, "groups": caller.groups});
            let mut out = answer(kind, body, Value::Null, json!({"userInfo": info}));
            // SelfSubjectReview has no spec.
            if let Some(m) = out.as_object_mut() {
                m.remove("spec");
            }
            Ok(out)
        }
        Kind::SelfSubjectRulesReview => {
            let ns = str_at(&spec, "/namespace").to_string();
            let user = super::user_of(caller);
            let review = authz.rbac.cache.read(|p| p.rules_for(&user, &ns));
            let status = serde_json::to_value(&review).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(answer(kind, body, spec, status))
        }
        Kind::SelfSubjectAccessReview => {
            let a = spec_attributes(kind, &spec, super::user_of(caller))?;
            Ok(answer(kind, body, spec, decide(authz, &a, applied).await))
        }
        Kind::SubjectAccessReview | Kind::LocalSubjectAccessReview => {
            let user = str_at(&spec, "/user").to_string();
            let groups: Vec<String> = spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            if user.is_empty() && groups.is_empty() {
                return Err(invalid(
                    kind,
                    vec![Cause::invalid(
                        "spec.user",
                        "",
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            let mut a = spec_attributes(kind, &spec, User { name: user, groups })?;
            if let Some(ns) = &r.namespace {
                if !a.resource_request {
                    return Err(invalid(
                        kind,
                        vec![Cause::invalid(
                            "spec.nonResourceAttributes",
                            "",
                            "disallowed on this kind of request",
                        )],
                    ));
                }
                if a.namespace.is_empty() {
                    a.namespace = ns.clone();
                } else if &a.namespace != ns {
                    return Err(invalid(
                        kind,
                        vec![Cause::invalid(
                            "spec.resourceAttributes.namespace",
                            &a.namespace,
                            format!("must match metadata.namespace {ns:?}"),
                        )],
                    ));
                }
            }
            Ok(answer(kind, body, spec, decide(authz, &a, applied).await))
        }
    }
}

async fn decide(authz: &Authorizer, a: &Attributes, applied: i64) -> Value {
    match authz.authorize(a, applied).await {
        Ok(()) => {
            let d = authz.decide(a);
            json!({"allowed": true, "reason": d.reason})
        }
        Err(_) => json!({"allowed": false}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_paths() {
        let r = Review::parse("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").expect("ssar");
        assert_eq!(r.kind, Kind::SelfSubjectAccessReview);
        let r = Review::parse("/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews").expect("lsar");
        assert_eq!(r.namespace.as_deref(), Some("a"));
        assert!(Review::parse("/apis/authorization.k8s.io/v1/localsubjectaccessreviews").is_none());
        assert!(Review::parse("/apis/authorization.k8s.io/v1/namespaces/a/selfsubjectaccessreviews").is_none());
        assert_eq!(
            Review::parse("/apis/authentication.k8s.io/v1/selfsubjectreviews").map(|r| r.kind),
            Some(Kind::SelfSubjectReview)
        );
        assert!(Review::parse("/apis/authentication.k8s.io/v1/selfsubjectaccessreviews").is_none());
        let u = User {
            name: "a".into(),
            groups: vec![],
        };
        let a = r.attributes(&u);
        assert_eq!(
            (a.verb.as_str(), a.api_group.as_str(), a.resource.as_str()),
            ("create", AUTHZ, "localsubjectaccessreviews")
        );
    }

    #[test]
    fn access_review_needs_exactly_one_attribute_set() {
        let u = User {
            name: "a".into(),
            groups: vec![],
        };
        let e = spec_attributes(Kind::SelfSubjectAccessReview, &json!({}), u.clone()).expect_err("none");
        assert_eq!(e.code, 422);
        let both = json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/x"}});
        assert!(spec_attributes(Kind::SelfSubjectAccessReview, &both, u.clone()).is_err());
        let a = spec_attributes(
            Kind::SelfSubjectAccessReview,
            &json!({"resourceAttributes": {"verb": "list", "group": "apps", "resource": "deployments", "namespace": "x"}}),
            u,
        )
        .expect("ok");
        assert_eq!(
            (a.verb.as_str(), a.api_group.as_str(), a.namespace.as_str()),
            ("list", "apps", "x")
        );
    }
}

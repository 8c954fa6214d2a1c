//! `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-*` headers
//! (kubectl's `--as`, `--as-group`): the caller acts as another user if RBAC lets it
//! `impersonate` that user, each of those groups, that uid and those extras, as kube-apiserver's
//! impersonation filter checks them.

use axum::http::HeaderMap;

use super::rbac::{Attributes, User};
use super::Authorizer;
use crate::error::{ApiError, ApiResult};
use crate::pki::UserInfo;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";
const SA_PREFIX: &str = "system:serviceaccount:";

/// What one impersonation header asks for, as the attributes RBAC checks.
fn attributes(actor: &User, resource: &str, group: &str, namespace: &str, name: &str, sub: &str) -> Attributes {
    Attributes {
        user: actor.clone(),
        verb: "impersonate".to_string(),
        resource_request: true,
        namespace: namespace.to_string(),
        api_group: group.to_string(),
        resource: resource.to_string(),
        subresource: sub.to_string(),
        name: name.to_string(),
        path: String::new(),
    }
}

fn header_values(headers: &HeaderMap, name: &str) -> ApiResult<Vec<String>> {
    headers
        .get_all(name)
        .iter()
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad_request(format!("the {name} header is not valid text")))
        })
        .collect()
}

/// The checks an impersonation request needs and the identity it yields, or `None` when the
/// request impersonates no one. Pure: the caller authorizes each check.
pub fn plan(actor: &User, headers: &HeaderMap) -> ApiResult<Option<(Vec<Attributes>, UserInfo)>> {
    let users = header_values(headers, USER)?;
    let groups = header_values(headers, GROUP)?;
    let uids = header_values(headers, UID)?;
    let mut extras = Vec::new();
    for (k, v) in headers.iter() {
        if let Some(key) = k.as_str().strip_prefix(EXTRA) {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("the {} header is not valid text", k.as_str())))?;
            extras.push((key.to_string(), v.to_string()));
        }
    }
    if users.is_empty() {
        if !groups.is_empty() || !uids.is_empty() || !extras.is_empty() {
            return Err(ApiError::bad_request(
                "impersonating groups, a uid or extra fields requires impersonating a user (Impersonate-User)",
            ));
        }
        return Ok(None);
    }
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request(
            "only one Impersonate-User and one Impersonate-Uid header may be given",
        ));
    }
    let name = users[0].clone();
    if name.is_empty() {
        return Err(ApiError::bad_request("Impersonate-User must not be empty"));
    }
    let mut checks = Vec::new();
    let mut out_groups = groups.clone();
    match name.strip_prefix(SA_PREFIX).and_then(|rest| rest.split_once(':')) {
        Some((ns, sa)) => {
            checks.push(attributes(actor, "serviceaccounts", "", ns, sa, ""));
            if groups.is_empty() {
                // A service account's groups come with it, as the token authenticator sets them.
                out_groups.push("system:serviceaccounts".to_string());
                out_groups.push(format!("system:serviceaccounts:{ns}"));
            }
        }
        None => checks.push(attributes(actor, "users", "", "", &name, "")),
    }
    for g in &groups {
        checks.push(attributes(actor, "groups", "", "", g, ""));
    }
    for u in &uids {
        checks.push(attributes(actor, "uids", "authentication.k8s.io", "", u, ""));
    }
    for (k, v) in &extras {
        checks.push(attributes(actor, "userextras", "authentication.k8s.io", "", v, k));
    }
    let uid = uids.first().cloned().unwrap_or_default();
    let user = if name == "system:anonymous" {
        if out_groups.is_empty() {
            out_groups.push("system:unauthenticated".to_string());
        }
        UserInfo {
            name,
            groups: out_groups,
            uid,
        }
    } else {
        UserInfo::authenticated(name, uid, out_groups)
    };
    Ok(Some((checks, user)))
}

/// The identity a request acts as: `real`, or whom it impersonates if allowed to.
pub async fn resolve(authz: &Authorizer, real: UserInfo, headers: &HeaderMap, applied: i64) -> ApiResult<UserInfo> {
    let actor = super::user_of(&real);
    match plan(&actor, headers)? {
        None => Ok(real),
        Some((checks, user)) => {
            for a in &checks {
                authz.authorize(a, applied).await?;
            }
            Ok(user)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> User {
        User {
            name: "alice".into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn no_headers_no_impersonation() {
        assert!(plan(&actor(), &HeaderMap::new()).expect("plan").is_none());
    }

    #[test]
    fn user_and_groups_are_each_checked() {
        let h = headers(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "ops"),
        ]);
        let (checks, user) = plan(&actor(), &h).expect("plan").expect("some");
        let what: Vec<(&str, &str)> = checks.iter().map(|a| (a.resource.as_str(), a.name.as_str())).collect();
        assert_eq!(what, vec![("users", "bob"), ("groups", "devs"), ("groups", "ops")]);
        assert!(checks.iter().all(|a| a.verb == "impersonate" && a.user.name == "alice"));
        assert_eq!(user.name, "bob");
        assert_eq!(user.groups, vec!["devs", "ops", "system:authenticated"]);
    }

    #[test]
    fn service_accounts_are_checked_in_their_namespace() {
        let h = headers(&[("Impersonate-User", "system:serviceaccount:ci:builder")]);
        let (checks, user) = plan(&actor(), &h).expect("plan").expect("some");
        assert_eq!(
            (
                checks[0].resource.as_str(),
                checks[0].namespace.as_str(),
                checks[0].name.as_str()
            ),
            ("serviceaccounts", "ci", "builder")
        );
        assert!(user.groups.contains(&"system:serviceaccounts:ci".to_string()));
    }

    #[test]
    fn extras_and_uid_use_the_authentication_group() {
        let h = headers(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Uid", "u-1"),
            ("Impersonate-Extra-Scopes", "view"),
        ]);
        let (checks, user) = plan(&actor(), &h).expect("plan").expect("some");
        assert_eq!(checks[1].resource, "uids");
        assert_eq!(checks[1].api_group, "authentication.k8s.io");
        assert_eq!(
            (
                checks[2].resource.as_str(),
                checks[2].subresource.as_str(),
                checks[2].name.as_str()
            ),
            ("userextras", "scopes", "view")
        );
        assert_eq!(user.uid, "u-1");
    }

    #[test]
    fn groups_without_a_user_are_refused() {
        let e = plan(&actor(), &headers(&[("Impersonate-Group", "devs")])).expect_err("refused");
        assert_eq!(e.code, 400);
        let e = plan(
            &actor(),
            &headers(&[("Impersonate-User", "a"), ("Impersonate-User", "b")]),
        )
        .expect_err("two users");
        assert_eq!(e.code, 400);
    }
}

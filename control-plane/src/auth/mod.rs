//! Authorization: who may do what. Requests arrive authenticated (`tls`), may act as someone
//! else (`impersonate`), and are then checked against RBAC (`rbac`) over an in-memory copy of the
//! cluster's roles and bindings (`cache`), as kube-apiserver's authorizer chain does: members of
//! `system:masters` pass without a lookup (Kubernetes' privileged-group authorizer), nodes are
//! checked by the Node authorizer, and everyone else needs an RBAC rule. A refusal is a 403 whose message names the user, the verb and the resource.
//!
//! # Layout
//! - `attributes`: method and path to RBAC attributes.
//! - `rbac`: rule matching, bindings, aggregation, escalation checks (pure).
//! - `bootstrap`: the default roles and bindings Kubernetes ships.
//! - `cache`: the watch-fed policy.
//! - `impersonate`: `Impersonate-*` headers.
//! - `node`: the Node authorizer (what a node's identity may read, by the pods bound to it).
//! - `token`: service account tokens (signed JWTs).
//! - `review`: SelfSubjectAccessReview, SubjectAccessReview, SelfSubjectRulesReview,
//!   SelfSubjectReview.

pub mod attributes;
pub mod bootstrap;
pub mod cache;
pub mod impersonate;
pub mod node;
pub mod rbac;
pub mod review;
pub mod token;

use std::time::Duration;

use serde_json::Value;

use crate::error::ApiError;
use crate::pki::UserInfo;
use crate::registry::Resource;
pub use cache::Rbac;
use rbac::{Attributes, ClusterRole, Decision, Policy, PolicyRule, Role, RoleBinding, RoleRef, User};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Kubernetes' privileged group: its members are authorized without consulting RBAC.
pub const MASTERS_GROUP: &str = "system:masters";
/// How long a refusal waits for the cache to catch up with this master's store.
const CATCH_UP: Duration = Duration::from_secs(1);

pub fn user_of(u: &UserInfo) -> User {
    User {
        name: u.name.clone(),
        groups: u.groups.clone(),
    }
}

/// The authorizer chain of the API server.
pub struct Authorizer {
    pub rbac: Rbac,
}

impl Authorizer {
    /// The decision with the cache as it is now.
    pub fn decide(&self, a: &Attributes) -> Decision {
        if a.user.groups.iter().any(|g| g == MASTERS_GROUP) {
            return Decision {
                allowed: true,
                reason: format!("member of {MASTERS_GROUP}"),
            };
        }
        let mut node_reason = String::new();
        if let Some(node) = node::node_name(&a.user) {
            match self.rbac.cache.read(|p| node::decide(&self.rbac.graph, p, node, a)) {
                Ok(()) => {
                    return Decision {
                        allowed: true,
                        reason: "allowed by the Node authorizer".to_string(),
                    }
                }
                Err(why) => node_reason = why,
            }
        }
        let mut d = self.rbac.cache.read(|p| p.authorize(a));
        if !d.allowed && !node_reason.is_empty() {
            // Kubernetes' union authorizer joins the reasons of every authorizer that refused.
            d.reason = if d.reason.is_empty() {
                node_reason
            } else {
                format!("{node_reason}\n{}", d.reason)
            };
        }
        d
    }

    /// Allows or refuses a request. A refusal is final only once the cache has seen every
    /// write this master had applied when the request arrived (`applied`).
    pub async fn authorize(&self, a: &Attributes, applied: i64) -> Result<(), ApiError> {
        let d = self.decide(a);
        if d.allowed {
            return Ok(());
        }
        if self.rbac.revision() < applied && self.rbac.wait_for(applied, CATCH_UP).await && self.decide(a).allowed {
            return Ok(());
        }
        Err(forbidden(a, &d.reason))
    }
}

impl Authorizer {
    /// Escalation prevention on RBAC writes, as Kubernetes' RBAC storage checks them: a role may
    /// only hold rules its writer holds (or may `escalate`); a binding may only grant a role
    /// whose rules its writer holds (or may `bind`); only full authority may set an
    /// aggregationRule. Members of system:masters pass. `url_name` is the name in the request's
    /// URL (empty on create), which an `escalate` rule limited by resourceNames must match.
    pub async fn check_escalation(
        &self,
        user: &UserInfo,
        res: &Resource,
        obj: &Value,
        url_name: &str,
        applied: i64,
    ) -> Result<(), ApiError> {
        if res.group != RBAC_GROUP {
            return Ok(());
        }
        let u = user_of(user);
        if rbac::escalation_allowed(&u) {
            return Ok(());
        }
        let ns = crate::meta::namespace(obj).unwrap_or("").to_string();
        let name = crate::meta::name(obj).unwrap_or("").to_string();
        let refuse = |message: String| {
            ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{}.{RBAC_GROUP} {} is forbidden: {message}",
                    res.plural,
                    rbac::quote(&name)
                ),
            )
            .about(RBAC_GROUP, res.plural, &name)
        };
        let bad = |e: String| ApiError::bad_request(format!("{}: {e}", res.kind));
        match res.plural {
            "roles" | "clusterroles" => {
                let cluster = res.plural == "clusterroles";
                let rules = if cluster {
                    let role = ClusterRole::from_object(obj).map_err(bad)?;
                    if role.aggregation_rule.is_some() {
                        let full = rbac::full_authority();
                        return self
                            .holds(&u, "", &full, applied)
                            .await
                            .map_err(|_| refuse(rbac::AGGREGATION_RULE_FORBIDDEN.to_string()));
                    }
                    role.rules
                } else {
                    Role::from_object(obj).map_err(bad)?.rules
                };
                let escalate = rbac::escalate_attributes(&u, cluster, &ns, url_name);
                if self.authorize(&escalate, applied).await.is_ok() {
                    return Ok(());
                }
                self.holds(&u, &ns, &rules, applied).await.map_err(refuse)
            }
            "rolebindings" | "clusterrolebindings" => {
                let role_ref: RoleRef = if res.plural == "rolebindings" {
                    RoleBinding::from_object(obj).map_err(bad)?.role_ref
                } else {
                    rbac::ClusterRoleBinding::from_object(obj).map_err(bad)?.role_ref
                };
                if let Some(bind) = rbac::bind_attributes(&u, &role_ref, &ns) {
                    if self.authorize(&bind, applied).await.is_ok() {
                        return Ok(());
                    }
                }
                let resolve = |p: &Policy| p.resolve_role_ref(&role_ref, &ns).map(<[PolicyRule]>::to_vec);
                let rules = match self.rbac.cache.read(resolve) {
                    Ok(r) => r,
                    Err(_) if self.rbac.wait_for(applied, CATCH_UP).await => {
                        self.rbac.cache.read(resolve).map_err(|e| not_found(&e))?
                    }
                    Err(e) => return Err(not_found(&e)),
                };
                self.holds(&u, &ns, &rules, applied).await.map_err(refuse)
            }
            _ => Ok(()),
        }
    }

    /// Whether `user` holds every rule in `rules` within `namespace`; the escalation message if not.
    async fn holds(&self, user: &User, namespace: &str, rules: &[PolicyRule], applied: i64) -> Result<(), String> {
        let check = |p: &Policy| rbac::escalation_check(p, user, namespace, rules);
        match self.rbac.cache.read(check) {
            Ok(()) => Ok(()),
            Err(_) if self.rbac.revision() < applied && self.rbac.wait_for(applied, CATCH_UP).await => {
                self.rbac.cache.read(check)
            }
            Err(e) => Err(e),
        }
    }
}

fn not_found(e: &rbac::RoleRefError) -> ApiError {
    ApiError::new(404, "NotFound", e.registry_message())
}

/// Kubernetes' 403: the message names who was refused what; details name the object.
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let message = rbac::forbidden_message_with_reason(a, reason);
    let kind = if a.resource_request { a.resource.as_str() } else { "" };
    ApiError::new(403, "Forbidden", message).about(&a.api_group, kind, &a.name)
}

//! The RBAC object store and the decisions made from it.
//!
//! [`Policy`] holds the four RBAC kinds, keyed the way a watch reports them,
//! so a cache can apply one event at a time. It answers the same questions
//! kube-apiserver's RBAC authorizer and rule resolver do. It differs from
//! Kubernetes' implementation in two ways:
//! - Bindings are looked up through the subject index in `super::index`, not
//!   scanned. Matching allocates nothing. Strings are only built for the allow
//!   reason and for errors.
//! - Aggregated ClusterRoles are served from a cache. Kubernetes'
//!   clusterrole-aggregation controller replaces the `rules` of every
//!   ClusterRole that has an `aggregationRule` with the union of the `rules` of
//!   the other ClusterRoles its selectors match. A single pass does not
//!   recurse, but the controller runs again whenever any ClusterRole changes.
//!   So once it settles, `admin` holds `edit`'s rules as the controller wrote
//!   them, and those include `view`'s. The cache stores that settled state
//!   directly and is recomputed when a ClusterRole change could affect it. Like
//!   the controller, it ignores the stored `rules` of an aggregated role,
//!   because the controller would overwrite them.

use super::index::{allow_reason, Binding, BindingSet};
use super::{
    aggregate_messages, quote, Attributes, ClusterRole, ClusterRoleBinding, Decision, PolicyRule, Role, RoleBinding,
    RoleRef, User,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Why a RoleRef could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleRefError {
    NotFound { cluster_scoped: bool, name: String },
    UnsupportedKind(String),
}

impl RoleRefError {
    /// The wording the RBAC REST storage uses during escalation checks. It
    /// reads through the registry, which names resources in the plural.
    pub fn registry_message(&self) -> String {
        match self {
            RoleRefError::NotFound { cluster_scoped, name } => {
                let r = if *cluster_scoped { "clusterroles" } else { "roles" };
                format!("{r}.rbac.authorization.k8s.io {} not found", quote(name))
            }
            RoleRefError::UnsupportedKind(_) => self.to_string(),
        }
    }
}

/// Formats the message the authorizer puts in its deny reason. It reads
/// through informer listers, which use the singular name, as in
/// `clusterrole.rbac.authorization.k8s.io "x" not found`.
impl fmt::Display for RoleRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleRefError::NotFound { cluster_scoped, name } => {
                let r = if *cluster_scoped { "clusterrole" } else { "role" };
                write!(f, "{r}.rbac.authorization.k8s.io {} not found", quote(name))
            }
            RoleRefError::UnsupportedKind(k) => {
                write!(f, "unsupported role reference kind: {}", quote(k))
            }
        }
    }
}

/// `authorizer.ResourceRuleInfo` as serialized in a SelfSubjectRulesReview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRule {
    pub verbs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NonResourceRule {
    pub verbs: Vec<String>,
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

/// Serializes as the `status` of a SelfSubjectRulesReview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RulesReview {
    pub resource_rules: Vec<ResourceRule>,
    pub non_resource_rules: Vec<NonResourceRule>,
    pub incomplete: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub evaluation_error: String,
}

/// All RBAC objects of a cluster and the answers derived from them.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// namespace -> name -> Role
    roles: HashMap<String, HashMap<String, Role>>,
    /// A BTreeMap, because aggregation visits source roles in name order as the
    /// Kubernetes controller does, and that fixes the order of the merged rules.
    cluster_roles: BTreeMap<String, ClusterRole>,
    /// Effective rules of every ClusterRole that has an aggregationRule.
    aggregated: HashMap<String, Vec<PolicyRule>>,
    cluster_bindings: BindingSet<ClusterRoleBinding>,
    namespace_bindings: HashMap<String, BindingSet<RoleBinding>>,
}

impl Policy {
    pub fn new() -> Self {
        Policy::default()
    }

    pub fn upsert_role(&mut self, role: Role) {
        self.roles
            .entry(role.namespace.clone())
            .or_default()
            .insert(role.name.clone(), role);
    }

    pub fn remove_role(&mut self, namespace: &str, name: &str) -> bool {
        let Some(ns) = self.roles.get_mut(namespace) else {
            return false;
        };
        let removed = ns.remove(name).is_some();
        if ns.is_empty() {
            self.roles.remove(namespace);
        }
        removed
    }

    pub fn upsert_cluster_role(&mut self, role: ClusterRole) {
        let name = role.name.clone();
        let old = self.cluster_roles.insert(name.clone(), role);
        let new = self.cluster_roles.get(&name);
        if old.as_ref() != new && self.affects_aggregation(old.as_ref(), new) {
            self.reaggregate();
        }
    }

    pub fn remove_cluster_role(&mut self, name: &str) -> bool {
        let Some(old) = self.cluster_roles.remove(name) else {
            return false;
        };
        if self.affects_aggregation(Some(&old), None) {
            self.reaggregate();
        }
        true
    }

    pub fn upsert_role_binding(&mut self, binding: RoleBinding) {
        self.namespace_bindings
            .entry(binding.namespace.clone())
            .or_default()
            .upsert(binding);
    }

    pub fn remove_role_binding(&mut self, namespace: &str, name: &str) -> bool {
        let Some(set) = self.namespace_bindings.get_mut(namespace) else {
            return false;
        };
        let removed = set.remove(name);
        if set.by_name.is_empty() {
            self.namespace_bindings.remove(namespace);
        }
        removed
    }

    pub fn upsert_cluster_role_binding(&mut self, binding: ClusterRoleBinding) {
        self.cluster_bindings.upsert(binding);
    }

    pub fn remove_cluster_role_binding(&mut self, name: &str) -> bool {
        self.cluster_bindings.remove(name)
    }

    /// Forgets every Role (a watch-fed cache relists).
    pub fn clear_roles(&mut self) {
        self.roles.clear();
    }

    pub fn clear_cluster_roles(&mut self) {
        self.cluster_roles.clear();
        self.aggregated.clear();
    }

    pub fn clear_role_bindings(&mut self) {
        self.namespace_bindings.clear();
    }

    pub fn clear_cluster_role_bindings(&mut self) {
        self.cluster_bindings = BindingSet::default();
    }

    /// Applies a stored object of any of the four kinds, dispatching on `kind`.
    pub fn upsert_object(&mut self, v: &Value) -> Result<(), String> {
        match v.get("kind").and_then(Value::as_str).unwrap_or_default() {
            "Role" => self.upsert_role(Role::from_object(v)?),
            "ClusterRole" => self.upsert_cluster_role(ClusterRole::from_object(v)?),
            "RoleBinding" => self.upsert_role_binding(RoleBinding::from_object(v)?),
            "ClusterRoleBinding" => self.upsert_cluster_role_binding(ClusterRoleBinding::from_object(v)?),
            other => return Err(format!("not an RBAC kind: {}", quote(other))),
        }
        Ok(())
    }

    /// A ClusterRole change only matters to the cache if the role is itself
    /// aggregated, or if some aggregated role selects it (before or after the
    /// change). Without this check, loading N roles would recompute N times.
    fn affects_aggregation(&self, old: Option<&ClusterRole>, new: Option<&ClusterRole>) -> bool {
        [old, new].into_iter().flatten().any(|role| {
            role.aggregation_rule.is_some()
                || self
                    .cluster_roles
                    .values()
                    .any(|agg| agg.name != role.name && agg.selects(&role.labels))
        })
    }

    /// Recomputes the rules of every aggregated ClusterRole. The rules of a
    /// source role are its `rules`, or its own aggregate if it is aggregated.
    /// Iterating until nothing changes gives the state the Kubernetes
    /// controller settles in, cycles included. Each pass only adds rules, so
    /// the loop ends within one pass per aggregated role plus one.
    fn reaggregate(&mut self) {
        let sources: Vec<(String, Vec<&ClusterRole>)> = self
            .cluster_roles
            .values()
            .filter(|r| r.aggregation_rule.is_some())
            .map(|agg| {
                let picked = self
                    .cluster_roles
                    .values()
                    .filter(|r| r.name != agg.name && agg.selects(&r.labels))
                    .collect();
                (agg.name.clone(), picked)
            })
            .collect();
        let mut effective: HashMap<String, Vec<PolicyRule>> =
            sources.iter().map(|(name, _)| (name.clone(), Vec::new())).collect();
        for _ in 0..=sources.len() + 1 {
            let mut changed = false;
            for (name, picked) in &sources {
                let mut merged: Vec<PolicyRule> = Vec::new();
                for src in picked {
                    let rules = effective.get(&src.name).unwrap_or(&src.rules);
                    for rule in rules {
                        if !merged.contains(rule) {
                            merged.push(rule.clone());
                        }
                    }
                }
                if effective.get(name) != Some(&merged) {
                    changed = true;
                    effective.insert(name.clone(), merged);
                }
            }
            if !changed {
                break;
            }
        }
        self.aggregated = effective;
    }

    /// Effective rules of a ClusterRole: the aggregate for an aggregated role,
    /// the stored rules otherwise. `None` if there is no such role.
    pub fn cluster_role_rules(&self, name: &str) -> Option<&[PolicyRule]> {
        let role = self.cluster_roles.get(name)?;
        if role.aggregation_rule.is_some() {
            return Some(self.aggregated.get(name).map_or(&[][..], Vec::as_slice));
        }
        Some(&role.rules)
    }

    /// Resolves the RoleRef of a binding in `namespace` (empty for a
    /// ClusterRoleBinding). As in Kubernetes, only `kind` and `name` count.
    pub fn resolve_role_ref(&self, role_ref: &RoleRef, namespace: &str) -> Result<&[PolicyRule], RoleRefError> {
        let name = &role_ref.name;
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(namespace)
                .and_then(|ns| ns.get(name))
                .map(|r| r.rules.as_slice())
                .ok_or_else(|| RoleRefError::NotFound {
                    cluster_scoped: false,
                    name: name.clone(),
                }),
            "ClusterRole" => self.cluster_role_rules(name).ok_or_else(|| RoleRefError::NotFound {
                cluster_scoped: true,
                name: name.clone(),
            }),
            other => Err(RoleRefError::UnsupportedKind(other.to_owned())),
        }
    }

    /// The rules a RoleRef grants, for the escalation check of a new binding.
    pub fn role_rules(&self, role_ref: &RoleRef, namespace: &str) -> Option<Vec<PolicyRule>> {
        self.resolve_role_ref(role_ref, namespace)
            .ok()
            .map(<[PolicyRule]>::to_vec)
    }

    /// Decides one request like the Kubernetes RBAC authorizer. It looks at the
    /// ClusterRoleBindings, then the RoleBindings of the request's namespace.
    pub fn authorize(&self, a: &Attributes) -> Decision {
        let mut errors: Vec<RoleRefError> = Vec::new();
        if let Some(reason) = self.first_allow(&self.cluster_bindings, a, "", &mut errors) {
            return Decision { allowed: true, reason };
        }
        if !a.namespace.is_empty() {
            if let Some(set) = self.namespace_bindings.get(&a.namespace) {
                if let Some(reason) = self.first_allow(set, a, &a.namespace, &mut errors) {
                    return Decision { allowed: true, reason };
                }
            }
        }
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let reason = if messages.is_empty() {
            String::new()
        } else {
            format!("RBAC: {}", aggregate_messages(&messages))
        };
        Decision { allowed: false, reason }
    }

    fn first_allow<B: Binding>(
        &self,
        set: &BindingSet<B>,
        a: &Attributes,
        namespace: &str,
        errors: &mut Vec<RoleRefError>,
    ) -> Option<String> {
        for b in set.candidates(&a.user) {
            match self.resolve_role_ref(b.role_ref(), namespace) {
                Ok(rules) if rules.iter().any(|r| r.allows(a)) => return Some(allow_reason(&**b, &a.user)),
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        None
    }

    /// The rules `user` holds in `namespace` (empty: cluster-wide only), and
    /// the RoleRefs that could not be resolved and were skipped.
    pub fn collect_rules(&self, user: &User, namespace: &str) -> (Vec<PolicyRule>, Vec<RoleRefError>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules(user, namespace, |rule, _| rules.push(rule.clone()), &mut errors);
        (rules, errors)
    }

    /// Every rule `user` holds in `namespace`: ClusterRoleBindings plus that
    /// namespace's RoleBindings. Used by escalation checks.
    pub fn rules_in(&self, user: &User, namespace: &str) -> Vec<PolicyRule> {
        self.collect_rules(user, namespace).0
    }

    /// The data for a SelfSubjectRulesReview. Resource rules come from
    /// ClusterRoleBindings plus the namespace's RoleBindings. Non-resource
    /// rules come from ClusterRoleBindings only, because only those can
    /// authorize a non-resource request. (Kubernetes also lists the URLs of
    /// ClusterRoles bound by RoleBindings, which is misleading.) A missing role
    /// makes the review incomplete and is named in `evaluation_error`.
    pub fn rules_for(&self, user: &User, namespace: &str) -> RulesReview {
        let mut review = RulesReview::default();
        let mut errors = Vec::new();
        self.visit_rules(
            user,
            namespace,
            |rule, cluster_level| {
                if !rule.resources.is_empty() {
                    review.resource_rules.push(ResourceRule {
                        verbs: rule.verbs.clone(),
                        api_groups: rule.api_groups.clone(),
                        resources: rule.resources.clone(),
                        resource_names: rule.resource_names.clone(),
                    });
                }
                if cluster_level && !rule.non_resource_urls.is_empty() {
                    review.non_resource_rules.push(NonResourceRule {
                        verbs: rule.verbs.clone(),
                        non_resource_urls: rule.non_resource_urls.clone(),
                    });
                }
            },
            &mut errors,
        );
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        review.incomplete = !messages.is_empty();
        review.evaluation_error = aggregate_messages(&messages);
        review
    }

    /// Calls `f(rule, from_cluster_binding)` for every rule that applies to the user.
    fn visit_rules(
        &self,
        user: &User,
        namespace: &str,
        mut f: impl FnMut(&PolicyRule, bool),
        errors: &mut Vec<RoleRefError>,
    ) {
        for b in self.cluster_bindings.applicable(user) {
            match self.resolve_role_ref(&b.role_ref, "") {
                Ok(rules) => rules.iter().for_each(|r| f(r, true)),
                Err(e) => errors.push(e),
            }
        }
        if namespace.is_empty() {
            return;
        }
        let Some(set) = self.namespace_bindings.get(namespace) else {
            return;
        };
        for b in set.applicable(user) {
            match self.resolve_role_ref(&b.role_ref, namespace) {
                Ok(rules) => rules.iter().for_each(|r| f(r, false)),
                Err(e) => errors.push(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            ..PolicyRule::default()
        }
    }

    fn apply(p: &mut Policy, v: Value) {
        p.upsert_object(&v).expect("valid object");
    }

    fn cluster_role(p: &mut Policy, name: &str, labels: Value, rules: Value) {
        apply(
            p,
            json!({"kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules}),
        );
    }

    fn subject(kind: &str, name: &str) -> Value {
        json!({"kind": kind, "name": name})
    }

    fn crb(p: &mut Policy, name: &str, role: &str, subjects: Value) {
        apply(
            p,
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": name}, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}}),
        );
    }

    fn rb(p: &mut Policy, ns: &str, name: &str, kind: &str, role: &str, subjects: Value) {
        apply(
            p,
            json!({"kind": "RoleBinding", "metadata": {"name": name, "namespace": ns}, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}}),
        );
    }

    fn reader() -> Value {
        json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
    }

    fn can(p: &Policy, u: &User, verb: &str, ns: &str) -> bool {
        p.authorize(&Attributes::resource(u.clone(), verb, "", "pods", ns))
            .allowed
    }

    #[test]
    fn cluster_role_bindings_apply_everywhere_with_kubernetes_reason() {
        let mut p = Policy::new();
        cluster_role(&mut p, "pod-reader", json!({}), reader());
        crb(&mut p, "readers", "pod-reader", json!([subject("User", "alice")]));
        let alice = User::new("alice", &[]);
        let d = p.authorize(&Attributes::resource(alice.clone(), "list", "", "pods", "any"));
        assert_eq!(
            d,
            Decision {
                allowed: true,
                reason: r#"RBAC: allowed by ClusterRoleBinding "readers" of ClusterRole "pod-reader" to User "alice""#
                    .into()
            }
        );
        assert!(can(&p, &alice, "get", ""));
        assert!(!can(&p, &alice, "delete", "any"));
        assert!(!can(&p, &User::new("bob", &[]), "get", ""));
        assert_eq!(
            p.authorize(&Attributes::resource(alice, "delete", "", "pods", "")),
            Decision::default()
        );
    }

    #[test]
    fn role_bindings_only_grant_in_their_namespace() {
        let mut p = Policy::new();
        cluster_role(&mut p, "pod-reader", json!({}), reader());
        apply(
            &mut p,
            json!({"kind": "Role", "metadata": {"name": "local", "namespace": "a"},
            "rules": [{"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}]}),
        );
        apply(
            &mut p,
            json!({"kind": "Role", "metadata": {"name": "local", "namespace": "b"}, "rules": reader()}),
        );
        rb(
            &mut p,
            "a",
            "via-cluster-role",
            "ClusterRole",
            "pod-reader",
            json!([subject("Group", "devs")]),
        );
        rb(
            &mut p,
            "a",
            "via-role",
            "Role",
            "local",
            json!([subject("Group", "devs")]),
        );
        let dev = User::new("dana", &["devs"]);
        assert!(can(&p, &dev, "get", "a"));
        assert!(can(&p, &dev, "delete", "a"));
        assert!(!can(&p, &dev, "get", "b"), "Role b/local is not bound in b");
        assert!(!can(&p, &dev, "get", ""), "a RoleBinding never grants cluster-wide");
        let d = p.authorize(&Attributes::resource(dev, "delete", "", "pods", "a"));
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "via-role/a" of Role "local" to Group "devs""#
        );
    }

    #[test]
    fn service_account_subjects_default_to_the_binding_namespace() {
        let mut p = Policy::new();
        cluster_role(&mut p, "pod-reader", json!({}), reader());
        rb(
            &mut p,
            "a",
            "sa",
            "ClusterRole",
            "pod-reader",
            json!([subject("ServiceAccount", "builder")]),
        );
        crb(
            &mut p,
            "sa-no-ns",
            "pod-reader",
            json!([subject("ServiceAccount", "deployer")]),
        );
        let builder = User::service_account("a", "builder");
        let d = p.authorize(&Attributes::resource(builder.clone(), "get", "", "pods", "a"));
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by RoleBinding "sa/a" of ClusterRole "pod-reader" to ServiceAccount "builder/a""#
        );
        assert!(!can(&p, &User::service_account("b", "builder"), "get", "a"));
        assert!(!can(&p, &User::new("builder", &[]), "get", "a"));
        // Without a namespace a ServiceAccount subject of a ClusterRoleBinding matches nobody.
        assert!(!can(&p, &User::service_account("a", "deployer"), "get", "a"));
        crb(
            &mut p,
            "sa-ns",
            "pod-reader",
            json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": "a"}]),
        );
        assert!(can(&p, &User::service_account("a", "deployer"), "get", "zzz"));
    }

    #[test]
    fn missing_roles_deny_with_a_reason_and_updates_take_effect() {
        let mut p = Policy::new();
        crb(&mut p, "b1", "nope", json!([subject("User", "u")]));
        rb(&mut p, "a", "b2", "Role", "gone", json!([subject("User", "u")]));
        let u = User::new("u", &[]);
        let d = p.authorize(&Attributes::resource(u.clone(), "get", "", "pods", "a"));
        assert!(!d.allowed);
        assert_eq!(
            d.reason,
            r#"RBAC: [clusterrole.rbac.authorization.k8s.io "nope" not found, role.rbac.authorization.k8s.io "gone" not found]"#
        );
        cluster_role(&mut p, "nope", json!({}), reader());
        assert!(can(&p, &u, "get", "a"));
        assert!(p.remove_cluster_role("nope"));
        assert!(!can(&p, &u, "get", "a"));
        apply(
            &mut p,
            json!({"kind": "Role", "metadata": {"name": "gone", "namespace": "a"}, "rules": reader()}),
        );
        assert!(can(&p, &u, "get", "a"));
        assert!(p.remove_role("a", "gone"));
        assert!(!p.remove_role("a", "gone"));
        assert!(!can(&p, &u, "get", "a"));
    }

    #[test]
    fn replacing_or_removing_bindings_updates_the_subject_index() {
        let mut p = Policy::new();
        cluster_role(&mut p, "pod-reader", json!({}), reader());
        crb(
            &mut p,
            "b",
            "pod-reader",
            json!([subject("User", "alice"), subject("User", "alice")]),
        );
        let (alice, bob) = (User::new("alice", &[]), User::new("bob", &["team"]));
        assert!(can(&p, &alice, "get", ""));
        crb(
            &mut p,
            "b",
            "pod-reader",
            json!([subject("Group", "team"), subject("Weird", "alice")]),
        );
        assert!(!can(&p, &alice, "get", ""));
        assert!(can(&p, &bob, "get", ""));
        assert!(p.remove_cluster_role_binding("b"));
        assert!(!can(&p, &bob, "get", ""));
        rb(
            &mut p,
            "a",
            "r",
            "ClusterRole",
            "pod-reader",
            json!([subject("User", "alice")]),
        );
        assert!(can(&p, &alice, "get", "a"));
        assert!(p.remove_role_binding("a", "r"));
        assert!(!p.remove_role_binding("a", "r"));
        assert!(!can(&p, &alice, "get", "a"));
    }

    fn aggregating(p: &mut Policy, name: &str, labels: Value, selector_label: &str) {
        apply(
            p,
            json!({"kind": "ClusterRole", "metadata": {"name": name, "labels": labels},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector_label: "true"}}]},
            "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
        );
    }

    #[test]
    fn aggregation_is_transitive_and_ignores_the_stored_rules() {
        let mut p = Policy::new();
        aggregating(&mut p, "top", json!({}), "to-top");
        aggregating(&mut p, "mid", json!({"to-top": "true"}), "to-mid");
        cluster_role(&mut p, "leaf", json!({"to-mid": "true"}), reader());
        cluster_role(
            &mut p,
            "other",
            json!({"to-top": "true"}),
            json!([{"verbs": ["create"], "apiGroups": [""], "resources": ["pods"]}]),
        );
        let expected = [
            rule(&["get", "list"], &[""], &["pods"]),
            rule(&["create"], &[""], &["pods"]),
        ];
        assert_eq!(p.cluster_role_rules("top"), Some(&expected[..]));
        assert_eq!(p.cluster_role_rules("mid"), Some(&expected[..1]));
        // The leaf stops matching: both aggregates lose its rules.
        cluster_role(&mut p, "leaf", json!({}), reader());
        assert_eq!(p.cluster_role_rules("top"), Some(&expected[1..]));
        assert_eq!(p.cluster_role_rules("mid"), Some(&[][..]));
        assert!(p.remove_cluster_role("other"));
        assert_eq!(p.cluster_role_rules("top"), Some(&[][..]));
        assert_eq!(p.cluster_role_rules("missing"), None);
    }

    #[test]
    fn aggregation_cycles_settle() {
        let mut p = Policy::new();
        aggregating(&mut p, "a", json!({"to-b": "true"}), "to-a");
        aggregating(&mut p, "b", json!({"to-a": "true"}), "to-b");
        cluster_role(&mut p, "leaf", json!({"to-a": "true"}), reader());
        assert_eq!(
            p.cluster_role_rules("a"),
            Some(&[rule(&["get", "list"], &[""], &["pods"])][..])
        );
        assert_eq!(p.cluster_role_rules("a"), p.cluster_role_rules("b"));
    }

    #[test]
    fn rules_review_lists_what_the_user_holds() {
        let mut p = Policy::new();
        cluster_role(
            &mut p,
            "disco",
            json!({}),
            json!([{"verbs": ["get"], "nonResourceURLs": ["/api"]}]),
        );
        cluster_role(&mut p, "pod-reader", json!({}), reader());
        crb(
            &mut p,
            "disco",
            "disco",
            json!([subject("Group", "system:authenticated")]),
        );
        rb(
            &mut p,
            "a",
            "r",
            "ClusterRole",
            "pod-reader",
            json!([subject("User", "u")]),
        );
        rb(
            &mut p,
            "a",
            "urls",
            "ClusterRole",
            "disco",
            json!([subject("User", "u")]),
        );
        rb(&mut p, "a", "broken", "Role", "missing", json!([subject("User", "u")]));
        let u = User::new("u", &["system:authenticated"]);
        let review = p.rules_for(&u, "a");
        assert_eq!(
            serde_json::to_value(&review).expect("serializes"),
            json!({
                "resourceRules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}],
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/api"]}],
                "incomplete": true,
                "evaluationError": "role.rbac.authorization.k8s.io \"missing\" not found"
            })
        );
        let cluster_only = p.rules_for(&u, "");
        assert!(cluster_only.resource_rules.is_empty() && !cluster_only.incomplete);
        assert_eq!(p.rules_in(&u, "a").len(), 3);
        assert_eq!(p.rules_in(&u, "b").len(), 1);
        let rr = RoleRef {
            kind: "ClusterRole".into(),
            name: "pod-reader".into(),
            ..RoleRef::default()
        };
        assert_eq!(
            p.role_rules(&rr, "a"),
            Some(vec![rule(&["get", "list"], &[""], &["pods"])])
        );
        let bad = RoleRef {
            kind: "Thing".into(),
            ..rr
        };
        assert_eq!(
            p.resolve_role_ref(&bad, "a"),
            Err(RoleRefError::UnsupportedKind("Thing".into()))
        );
    }

    #[test]
    fn upsert_object_rejects_other_kinds() {
        let mut p = Policy::new();
        assert_eq!(
            p.upsert_object(&json!({"kind": "Pod"})),
            Err(r#"not an RBAC kind: "Pod""#.into())
        );
        assert!(p
            .upsert_object(&json!({"kind": "Role", "metadata": {"name": "x"}}))
            .is_err());
    }
}

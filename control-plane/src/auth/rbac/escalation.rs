//! Escalation prevention for writes to RBAC objects.
//!
//! RBAC would be pointless if anyone who may write a Role could grant
//! themselves anything. So Kubernetes, and skiff through this module, only lets
//! a user write a Role or ClusterRole whose rules they already hold, and only
//! lets them write a binding to a role whose rules they already hold. Each
//! check has a bypass: the `escalate` verb on the role resource, the `bind`
//! verb on the referenced role, or membership in `system:masters`.
//!
//! The REST layer puts the pieces together in Kubernetes' order:
//! 1. [`escalation_allowed`]: system:masters passes.
//! 2. Roles and ClusterRoles: `policy.authorize(&escalate_attributes(..))`
//!    passes. Otherwise `escalation_check(policy, user, ns, &rules)` runs, and
//!    its error becomes a 403 `<roles|clusterroles>.rbac.authorization.k8s.io
//!    "<name>" is forbidden: <error>`. When the new or the old ClusterRole has
//!    an aggregationRule, the user must also cover [`full_authority`];
//!    otherwise the 403 says [`AGGREGATION_RULE_FORBIDDEN`].
//! 3. Bindings: `policy.authorize(&bind_attributes(..))` passes. Otherwise the
//!    roleRef is resolved (a missing role is a 404 worded by
//!    `RoleRefError::registry_message`) and `escalation_check` runs on its rules,
//!    in the binding's namespace (empty for ClusterRoleBindings).

use super::{aggregate_messages, quote, quote_list, Attributes, Policy, PolicyRule, RoleRef, User};

/// The 403 detail when a user without full authority sets or changes an
/// aggregationRule. Such a rule can gather any permission, present or future.
pub const AGGREGATION_RULE_FORBIDDEN: &str = "must have cluster-admin privileges to use the aggregationRule";

/// `*` on everything, the bar for touching an aggregationRule.
pub fn full_authority() -> Vec<PolicyRule> {
    let all = vec!["*".to_owned()];
    vec![
        PolicyRule {
            verbs: all.clone(),
            api_groups: all.clone(),
            resources: all.clone(),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: all.clone(),
            non_resource_urls: all,
            ..PolicyRule::default()
        },
    ]
}

/// Members of this group are trusted to escalate. kube-apiserver's own
/// loopback client is in it.
pub fn escalation_allowed(user: &User) -> bool {
    user.groups.iter().any(|g| g == "system:masters")
}

/// The request whose approval lets `user` write a role it does not fully hold.
/// `name` is the name from the request URL, so it is empty on create, as in
/// Kubernetes. A rule limited by resourceNames therefore cannot grant
/// `escalate` for creates.
pub fn escalate_attributes(user: &User, cluster_role: bool, namespace: &str, name: &str) -> Attributes {
    let resource = if cluster_role { "clusterroles" } else { "roles" };
    Attributes::resource(
        user.clone(),
        "escalate",
        "rbac.authorization.k8s.io",
        resource,
        namespace,
    )
    .with_name(name)
}

/// The request whose approval lets `user` bind `role_ref` in `namespace`
/// (empty for a ClusterRoleBinding) without holding its rules. `None` for an
/// unknown kind, which can never be bound this way.
pub fn bind_attributes(user: &User, role_ref: &RoleRef, namespace: &str) -> Option<Attributes> {
    let resource = match role_ref.kind.as_str() {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        _ => return None,
    };
    let a = Attributes::resource(user.clone(), "bind", &role_ref.api_group, resource, namespace);
    Some(a.with_name(&role_ref.name))
}

/// Splits a rule into atoms of one group, resource, verb and (if any) name,
/// or one URL and verb. A single owner rule then either covers an atom
/// completely or not at all, and the atoms not covered are exactly what is
/// missing.
pub fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut atoms = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let atom = PolicyRule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    atoms.push(atom);
                } else {
                    for name in &rule.resource_names {
                        atoms.push(PolicyRule {
                            resource_names: one(name),
                            ..atom.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            atoms.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..PolicyRule::default()
            });
        }
    }
    atoms
}

/// Whether `owner` grants everything `requested` does. On failure it returns
/// the atoms (see [`breakdown`]) that no owner rule covers.
pub fn covers(owner: &[PolicyRule], requested: &[PolicyRule]) -> Result<(), Vec<PolicyRule>> {
    let missing: Vec<PolicyRule> = requested
        .iter()
        .flat_map(breakdown)
        .filter(|atom| !owner.iter().any(|o| rule_covers(o, atom)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

/// A `*/sub` owner resource covers `anything/sub`. A `pods/*` owner covers
/// nothing beyond itself, as in Kubernetes.
fn resources_cover(owner: &[String], requested: &[String]) -> bool {
    has(owner, "*")
        || requested.iter().all(|r| {
            has(owner, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| owner.iter().any(|o| o.strip_prefix("*/") == Some(sub)))
        })
}

fn urls_cover(owner: &[String], requested: &[String]) -> bool {
    requested.iter().all(|r| {
        owner
            .iter()
            .any(|o| o == r || (o.ends_with('*') && r.starts_with(o.trim_end_matches('*'))))
    })
}

/// Whether one owner rule covers one atom. An owner limited by resourceNames
/// never covers an atom without a name, because the atom grants every name.
fn rule_covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let names = owner.resource_names.is_empty()
        || (!atom.resource_names.is_empty() && has_all(&owner.resource_names, &atom.resource_names));
    names
        && (has(&owner.verbs, "*") || has_all(&owner.verbs, &atom.verbs))
        && (has(&owner.api_groups, "*") || has_all(&owner.api_groups, &atom.api_groups))
        && resources_cover(&owner.resources, &atom.resources)
        && urls_cover(&owner.non_resource_urls, &atom.non_resource_urls)
}

/// Merges atoms that differ only by verb (a single group and resource, no
/// names, no URLs) into one rule. Kubernetes does this so that the error
/// lists `Verbs:["create" "delete"]` once instead of one line per verb.
pub fn compact_rules(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::with_capacity(rules.len());
    for rule in rules {
        let simple = rule.resource_names.is_empty()
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        let same = |o: &&mut PolicyRule| {
            o.resource_names.is_empty()
                && o.non_resource_urls.is_empty()
                && o.api_groups == rule.api_groups
                && o.resources == rule.resources
        };
        match out.iter_mut().find(same) {
            Some(existing) if simple => existing.verbs.extend(rule.verbs),
            _ => out.push(rule),
        }
    }
    out
}

/// Kubernetes' `CompactString`, the form each missing rule takes in the
/// error: `{APIGroups:[""], Resources:["pods"], Verbs:["create"]}`.
pub fn compact_string(rule: &PolicyRule) -> String {
    let fields = [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}:{}", quote_list(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Fails unless `user` already holds every permission in `requested` within
/// `namespace` (empty: cluster-wide rules only). The error reads like
/// Kubernetes': `user "alice" (groups=["g1"]) is attempting to grant RBAC
/// permissions not currently held:` followed by one line per missing rule,
/// sorted. Roles that could not be resolved are named after
/// `; resolution errors: `.
pub fn escalation_check(policy: &Policy, user: &User, namespace: &str, requested: &[PolicyRule]) -> Result<(), String> {
    let (owner, errors) = policy.collect_rules(user, namespace);
    let Err(missing) = covers(&owner, requested) else {
        return Ok(());
    };
    let mut lines: Vec<String> = compact_rules(missing).iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        quote(&user.name),
        quote_list(&user.groups),
        lines.join("\n")
    );
    if !errors.is_empty() {
        // Go prints the []error holding one aggregate as `[<aggregate>]`.
        let messages: Vec<String> = errors.iter().map(|e| e.registry_message()).collect();
        msg.push_str(&format!("; resolution errors: [{}]", aggregate_messages(&messages)));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::super::{ClusterRole, ClusterRoleBinding, RoleBinding};
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

    fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
        PolicyRule {
            verbs: v(verbs),
            non_resource_urls: v(urls),
            ..PolicyRule::default()
        }
    }

    fn named(mut r: PolicyRule, names: &[&str]) -> PolicyRule {
        r.resource_names = names.iter().map(|x| (*x).to_owned()).collect();
        r
    }

    #[test]
    fn breakdown_yields_one_atom_per_combination() {
        let atoms = breakdown(&named(rule(&["get", "update"], &["", "apps"], &["pods"]), &["a", "b"]));
        assert_eq!(atoms.len(), 8);
        assert_eq!(atoms[0], named(rule(&["get"], &[""], &["pods"]), &["a"]));
        assert_eq!(breakdown(&urls(&["get", "post"], &["/x"])).len(), 2);
    }

    #[test]
    fn covers_reports_exactly_the_uncovered_atoms() {
        let owner = [rule(&["get", "list"], &[""], &["pods"])];
        let requested = [rule(&["get", "delete"], &[""], &["pods"])];
        assert_eq!(
            covers(&owner, &requested),
            Err(vec![rule(&["delete"], &[""], &["pods"])])
        );
        assert_eq!(covers(&owner, &[rule(&["list"], &[""], &["pods"])]), Ok(()));
        assert_eq!(covers(&[], &[]), Ok(()));
    }

    #[test]
    fn wildcards_cover_like_kubernetes() {
        let star = [rule(&["*"], &["*"], &["*"])];
        assert!(covers(&star, &[named(rule(&["get"], &["x"], &["y/z"]), &["n"])]).is_ok());
        let scale = [rule(&["update"], &["apps"], &["*/scale"])];
        assert!(covers(&scale, &[rule(&["update"], &["apps"], &["deployments/scale"])]).is_ok());
        assert!(covers(&scale, &[rule(&["update"], &["apps"], &["deployments"])]).is_err());
        let pods_star = [rule(&["get"], &[""], &["pods/*"])];
        assert!(covers(&pods_star, &[rule(&["get"], &[""], &["pods/log"])]).is_err());
    }

    #[test]
    fn resource_names_only_cover_named_atoms() {
        let owner = [named(rule(&["get"], &[""], &["secrets"]), &["a"])];
        assert!(covers(&owner, &[named(rule(&["get"], &[""], &["secrets"]), &["a"])]).is_ok());
        assert!(covers(&owner, &[named(rule(&["get"], &[""], &["secrets"]), &["b"])]).is_err());
        assert!(covers(&owner, &[rule(&["get"], &[""], &["secrets"])]).is_err());
        let unnamed = [rule(&["get"], &[""], &["secrets"])];
        assert!(covers(&unnamed, &[named(rule(&["get"], &[""], &["secrets"]), &["b"])]).is_ok());
    }

    #[test]
    fn non_resource_urls_cover_by_prefix() {
        let owner = [urls(&["get"], &["/apis/*", "/healthz"])];
        assert!(covers(&owner, &[urls(&["get"], &["/apis/apps/v1", "/healthz"])]).is_ok());
        assert_eq!(
            covers(&owner, &[urls(&["get"], &["/api"])]),
            Err(vec![urls(&["get"], &["/api"])])
        );
        assert!(covers(&full_authority(), &[urls(&["post"], &["/anything"])]).is_ok());
    }

    #[test]
    fn compaction_merges_verbs_of_simple_rules_only() {
        let compacted = compact_rules(vec![
            rule(&["create"], &[""], &["pods"]),
            named(rule(&["get"], &[""], &["pods"]), &["x"]),
            rule(&["delete"], &[""], &["pods"]),
        ]);
        assert_eq!(compacted.len(), 2);
        assert_eq!(
            compact_string(&compacted[0]),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete"]}"#
        );
        assert_eq!(
            compact_string(&compacted[1]),
            r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["x"], Verbs:["get"]}"#
        );
        assert_eq!(
            compact_string(&urls(&["get"], &["/metrics"])),
            r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#
        );
    }

    fn policy_with_pod_reader() -> Policy {
        let mut p = Policy::new();
        p.upsert_cluster_role(ClusterRole {
            name: "pod-reader".into(),
            rules: vec![rule(&["get", "list"], &[""], &["pods"])],
            ..ClusterRole::default()
        });
        p.upsert_role_binding(
            RoleBinding::from_object(&json!({
                "metadata": {"name": "rb", "namespace": "ns1"},
                "subjects": [{"kind": "Group", "name": "g1"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"}
            }))
            .expect("valid binding"),
        );
        p
    }

    #[test]
    fn escalation_check_allows_what_the_user_holds_in_that_namespace() {
        let p = policy_with_pod_reader();
        let alice = User::new("alice", &["g1", "system:authenticated"]);
        assert_eq!(
            escalation_check(&p, &alice, "ns1", &[rule(&["get"], &[""], &["pods"])]),
            Ok(())
        );
        // The RoleBinding does not count cluster-wide or in another namespace.
        assert!(escalation_check(&p, &alice, "", &[rule(&["get"], &[""], &["pods"])]).is_err());
        assert!(escalation_check(&p, &alice, "ns2", &[rule(&["get"], &[""], &["pods"])]).is_err());
    }

    #[test]
    fn escalation_error_reads_like_kubernetes() {
        let p = policy_with_pod_reader();
        let alice = User::new("alice", &["g1", "system:authenticated"]);
        let requested = [
            rule(&["create", "get"], &[""], &["pods"]),
            rule(&["delete"], &[""], &["pods"]),
        ];
        assert_eq!(
            escalation_check(&p, &alice, "ns1", &requested),
            Err("user \"alice\" (groups=[\"g1\" \"system:authenticated\"]) is attempting to grant RBAC \
                 permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\" \"delete\"]}"
                .to_owned())
        );
        let two = [
            rule(&["create"], &["apps"], &["deployments"]),
            rule(&["create"], &[""], &["pods"]),
        ];
        let err = escalation_check(&p, &alice, "ns1", &two).expect_err("not held");
        assert!(err.ends_with(
            ":\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\"]}\n\
             {APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"create\"]}"
        ));
    }

    #[test]
    fn escalation_error_names_roles_that_could_not_be_resolved() {
        let mut p = policy_with_pod_reader();
        p.upsert_cluster_role_binding(ClusterRoleBinding {
            name: "dangling".into(),
            subjects: vec![super::super::Subject {
                kind: "User".into(),
                name: "alice".into(),
                ..Default::default()
            }],
            role_ref: RoleRef {
                kind: "ClusterRole".into(),
                name: "gone".into(),
                ..RoleRef::default()
            },
        });
        let err = escalation_check(&p, &User::new("alice", &[]), "", &[rule(&["get"], &[""], &["pods"])])
            .expect_err("not held");
        assert!(err.ends_with(
            "Verbs:[\"get\"]}; resolution errors: [clusterroles.rbac.authorization.k8s.io \"gone\" not found]"
        ));
    }

    #[test]
    fn bind_and_escalate_are_ordinary_rbac_requests() {
        let mut p = policy_with_pod_reader();
        p.upsert_cluster_role(ClusterRole {
            name: "binder".into(),
            rules: vec![named(
                rule(&["bind"], &["rbac.authorization.k8s.io"], &["clusterroles"]),
                &["view"],
            )],
            ..ClusterRole::default()
        });
        p.upsert_role_binding(
            RoleBinding::from_object(&json!({
                "metadata": {"name": "may-bind", "namespace": "ns1"},
                "subjects": [{"kind": "User", "name": "bob"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "binder"}
            }))
            .expect("valid binding"),
        );
        let bob = User::new("bob", &[]);
        let view = RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "view".into(),
        };
        let admin = RoleRef {
            name: "admin".into(),
            ..view.clone()
        };
        let allowed = |r: &RoleRef, ns: &str| bind_attributes(&bob, r, ns).is_some_and(|a| p.authorize(&a).allowed);
        assert!(allowed(&view, "ns1"));
        assert!(!allowed(&admin, "ns1"));
        assert!(!allowed(&view, "ns2"));
        assert!(!allowed(&view, ""));
        assert!(bind_attributes(
            &bob,
            &RoleRef {
                kind: "Other".into(),
                ..view
            },
            "ns1"
        )
        .is_none());
        let esc = escalate_attributes(&bob, false, "ns1", "");
        assert_eq!((esc.verb.as_str(), esc.resource.as_str()), ("escalate", "roles"));
        assert!(!p.authorize(&esc).allowed);
        assert!(escalation_allowed(&User::new("root", &["system:masters"])));
        assert!(!escalation_allowed(&bob));
    }
}

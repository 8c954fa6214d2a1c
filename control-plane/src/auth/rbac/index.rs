//! The subject index: which bindings can apply to a user.
//!
//! Kubernetes' rule resolver lists every binding on every request and tests
//! each subject. skiff indexes bindings by the subjects they name instead,
//! which makes a request cost proportional to the bindings that concern its
//! user. Users and groups are keyed by name. A ServiceAccount subject is
//! keyed by the user name its tokens authenticate as,
//! `system:serviceaccount:<ns>:<name>`, because that is how Kubernetes
//! matches it. The index holds `Arc`s of the bindings, so a lookup goes
//! straight to the binding without a second map access.

use super::{quote, ClusterRoleBinding, RoleBinding, RoleRef, Subject, User, SERVICE_ACCOUNT_USER_PREFIX};
use std::collections::HashMap;
use std::sync::Arc;

/// What the subject index and the reason text need from either binding kind.
pub(super) trait Binding {
    fn name(&self) -> &str;
    /// Empty for ClusterRoleBindings. Service-account subjects without a
    /// namespace never match there.
    fn namespace(&self) -> &str;
    fn subjects(&self) -> &[Subject];
    fn role_ref(&self) -> &RoleRef;
    fn describe(&self) -> String;
}

impl Binding for ClusterRoleBinding {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> &str {
        ""
    }
    fn subjects(&self) -> &[Subject] {
        &self.subjects
    }
    fn role_ref(&self) -> &RoleRef {
        &self.role_ref
    }
    fn describe(&self) -> String {
        format!("ClusterRoleBinding {}", quote(&self.name))
    }
}

impl Binding for RoleBinding {
    fn name(&self) -> &str {
        &self.name
    }
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn subjects(&self) -> &[Subject] {
        &self.subjects
    }
    fn role_ref(&self) -> &RoleRef {
        &self.role_ref
    }
    fn describe(&self) -> String {
        format!("RoleBinding {}", quote(&format!("{}/{}", self.name, self.namespace)))
    }
}

/// The namespace a ServiceAccount subject refers to. Inside a RoleBinding an
/// empty namespace means the binding's own namespace.
fn sa_namespace<'a>(s: &'a Subject, binding_ns: &'a str) -> &'a str {
    if s.namespace.is_empty() {
        binding_ns
    } else {
        &s.namespace
    }
}

fn subject_applies(s: &Subject, user: &User, binding_ns: &str) -> bool {
    match s.kind.as_str() {
        "User" => user.name == s.name,
        "Group" => user.groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = sa_namespace(s, binding_ns);
            !ns.is_empty()
                && user
                    .name
                    .strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)
                    .and_then(|rest| rest.strip_prefix(ns))
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(s.name.as_str())
        }
        _ => false,
    }
}

fn describe_subject(s: &Subject, binding_ns: &str) -> String {
    if s.kind == "ServiceAccount" {
        let ns = sa_namespace(s, binding_ns);
        return format!("{} {}", s.kind, quote(&format!("{}/{ns}", s.name)));
    }
    format!("{} {}", s.kind, quote(&s.name))
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SubjectKey {
    User(String),
    Group(String),
}

fn subject_keys<B: Binding>(b: &B) -> Vec<SubjectKey> {
    let mut keys: Vec<SubjectKey> = b
        .subjects()
        .iter()
        .filter_map(|s| match s.kind.as_str() {
            "User" => Some(SubjectKey::User(s.name.clone())),
            "Group" => Some(SubjectKey::Group(s.name.clone())),
            "ServiceAccount" => {
                let ns = sa_namespace(s, b.namespace());
                (!ns.is_empty()).then(|| SubjectKey::User(format!("{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{}", s.name)))
            }
            _ => None,
        })
        .collect();
    // A binding that names the same subject twice is indexed once.
    keys.sort();
    keys.dedup();
    keys
}

/// The bindings of one scope, plus indexes from user and group names to them.
#[derive(Debug, Clone)]
pub(super) struct BindingSet<B> {
    pub(super) by_name: HashMap<String, Arc<B>>,
    users: HashMap<String, Vec<Arc<B>>>,
    groups: HashMap<String, Vec<Arc<B>>>,
}

impl<B> Default for BindingSet<B> {
    fn default() -> Self {
        BindingSet {
            by_name: HashMap::new(),
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }
}

impl<B: Binding> BindingSet<B> {
    pub(super) fn upsert(&mut self, binding: B) {
        let name = binding.name().to_owned();
        self.remove(&name);
        let binding = Arc::new(binding);
        for key in subject_keys(&*binding) {
            let (map, k) = match key {
                SubjectKey::User(k) => (&mut self.users, k),
                SubjectKey::Group(k) => (&mut self.groups, k),
            };
            map.entry(k).or_default().push(Arc::clone(&binding));
        }
        self.by_name.insert(name, binding);
    }

    pub(super) fn remove(&mut self, name: &str) -> bool {
        let Some(old) = self.by_name.remove(name) else {
            return false;
        };
        for key in subject_keys(&*old) {
            let (map, k) = match key {
                SubjectKey::User(k) => (&mut self.users, k),
                SubjectKey::Group(k) => (&mut self.groups, k),
            };
            if let Some(list) = map.get_mut(&k) {
                list.retain(|b| !Arc::ptr_eq(b, &old));
                if list.is_empty() {
                    map.remove(&k);
                }
            }
        }
        true
    }

    /// Bindings that may apply to `user`. A binding naming both the user and
    /// one of their groups is yielded twice. That is harmless on the hot path,
    /// because the first visit either allows or fails the same way.
    pub(super) fn candidates<'a>(&'a self, user: &'a User) -> impl Iterator<Item = &'a Arc<B>> + 'a {
        let by_user = self.users.get(user.name.as_str()).into_iter().flatten();
        let by_group = user.groups.iter().filter_map(|g| self.groups.get(g.as_str())).flatten();
        by_user.chain(by_group)
    }

    /// Like `candidates`, but each binding once and sorted by name, so that
    /// rule listings are deterministic.
    pub(super) fn applicable<'a>(&'a self, user: &'a User) -> Vec<&'a Arc<B>> {
        let mut list: Vec<&Arc<B>> = self.candidates(user).collect();
        list.sort_by(|a, b| a.name().cmp(b.name()));
        list.dedup_by(|a, b| Arc::ptr_eq(a, b));
        list
    }
}

/// `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "alice"`.
/// The subject named is the binding's first subject that matches, as in Kubernetes.
pub(super) fn allow_reason<B: Binding>(b: &B, user: &User) -> String {
    let role_ref = b.role_ref();
    let mut reason = format!(
        "RBAC: allowed by {} of {} {}",
        b.describe(),
        role_ref.kind,
        quote(&role_ref.name)
    );
    if let Some(s) = b.subjects().iter().find(|s| subject_applies(s, user, b.namespace())) {
        reason.push_str(" to ");
        reason.push_str(&describe_subject(s, b.namespace()));
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(name: &str, namespace: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: namespace.into(),
            ..Subject::default()
        }
    }

    #[test]
    fn service_accounts_match_their_exact_user_name() {
        let user = User::service_account("a", "b");
        assert!(subject_applies(&sa("b", "a"), &user, ""));
        assert!(subject_applies(&sa("b", ""), &user, "a"));
        assert!(!subject_applies(&sa("b", ""), &user, ""));
        assert!(!subject_applies(
            &sa("b", "a"),
            &User::new("system:serviceaccount:a:b:c", &[]),
            ""
        ));
        assert!(!subject_applies(
            &sa("b", "a"),
            &User::new("system:serviceaccount:ab:b", &[]),
            ""
        ));
        assert_eq!(describe_subject(&sa("b", ""), "a"), r#"ServiceAccount "b/a""#);
    }

    #[test]
    fn the_index_holds_each_binding_once_per_subject() {
        let mut set = BindingSet::default();
        let subjects = vec![
            Subject {
                kind: "Group".into(),
                name: "g".into(),
                ..Subject::default()
            },
            Subject {
                kind: "Group".into(),
                name: "g".into(),
                ..Subject::default()
            },
            sa("b", "a"),
            sa("nowhere", ""),
        ];
        set.upsert(ClusterRoleBinding {
            name: "x".into(),
            subjects,
            role_ref: RoleRef::default(),
        });
        assert_eq!(set.groups.get("g").map(Vec::len), Some(1));
        assert_eq!(set.users.keys().collect::<Vec<_>>(), ["system:serviceaccount:a:b"]);
        let user = User::new("system:serviceaccount:a:b", &["g"]);
        assert_eq!(set.candidates(&user).count(), 2);
        assert_eq!(set.applicable(&user).len(), 1);
        assert!(set.remove("x"));
        assert!(set.users.is_empty() && set.groups.is_empty());
    }
}

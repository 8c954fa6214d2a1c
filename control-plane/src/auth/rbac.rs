//! Kubernetes RBAC (`rbac.authorization.k8s.io/v1`) evaluated in memory.
//!
//! skiff has to answer "may this user do this?" on every request exactly as
//! kube-apiserver's RBAC authorizer does: kubectl, controllers and Helm depend
//! on the decisions, on `kubectl auth can-i`, and on the wording of 403s. No
//! IO happens here. A watch-fed cache applies Role, ClusterRole, RoleBinding
//! and ClusterRoleBinding events one at a time through [`Policy`], and the
//! request path calls [`Policy::authorize`].
//!
//! This file holds the API types, which deserialize from stored objects, and
//! rule matching. It also holds the Kubernetes message formats, because
//! clients parse them or show them to people. The submodules are:
//! - `policy`: the object store, the aggregation cache, `authorize` and the
//!   data for SelfSubjectRulesReview.
//! - `index`: the bindings, indexed by the subjects they name.
//! - `escalation`: `covers` and the "attempting to grant" check, which stop a
//!   user from writing a role or binding that grants more than they hold.
//!
//! Their public items are re-exported here, so callers only use `rbac::`.
//! The default roles live in `super::bootstrap`.

mod escalation;
mod index;
mod policy;

pub use escalation::{
    bind_attributes, breakdown, compact_rules, compact_string, covers, escalate_attributes, escalation_allowed,
    escalation_check, full_authority, AGGREGATION_RULE_FORBIDDEN,
};
pub use policy::{NonResourceRule, Policy, ResourceRule, RoleRefError, RulesReview};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Wildcard accepted in verbs, apiGroups, resources and nonResourceURLs.
const ALL: &str = "*";
/// Service-account user names start with this (`system:serviceaccount:<ns>:<name>`).
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// Kubernetes writes `"rules": null` for a role without rules, and users may
/// send null anywhere. serde's `default` only covers a missing field, so this
/// maps null to the default too.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default, deserialize_with = "null_default")]
    pub verbs: Vec<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        rename = "nonResourceURLs",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    /// Whether this single rule grants the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !has_or_all(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.url_matches(&a.path);
        }
        has_or_all(&self.api_groups, &a.api_group)
            && self.resource_matches(&a.resource, &a.subresource)
            && self.name_matches(&a.name)
    }

    /// `*`, exact `resource` or `resource/subresource`, or `*/subresource`.
    /// `pods/*` is deliberately not a wildcard: Kubernetes refuses it because
    /// it would grant subresources added in the future.
    fn resource_matches(&self, resource: &str, sub: &str) -> bool {
        self.resources.iter().any(|r| {
            if r == ALL {
                return true;
            }
            if sub.is_empty() {
                return r == resource;
            }
            // Compares against "resource/sub" without building that string.
            let combined = r.len() == resource.len() + 1 + sub.len()
                && r.starts_with(resource)
                && r.as_bytes()[resource.len()] == b'/'
                && r.ends_with(sub);
            combined || (r.len() == sub.len() + 2 && r.starts_with("*/") && r.ends_with(sub))
        })
    }

    /// An empty list means every name. A non-empty list never matches a
    /// request without a name, such as list, create or deletecollection.
    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls
            .iter()
            .any(|u| u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
    }
}

fn has_or_all(set: &[String], value: &str) -> bool {
    set.iter().any(|s| s == ALL || s == value)
}

/// A binding subject. `namespace` is empty when absent. Only ServiceAccount
/// subjects use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default, deserialize_with = "null_default")]
    pub api_group: String,
    #[serde(default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`. This is a string so that a bad
    /// value in a stored object fails only that selector, not the whole object.
    #[serde(default, deserialize_with = "null_default")]
    pub operator: String,
    #[serde(default, deserialize_with = "null_default")]
    pub values: Vec<String>,
}

impl LabelSelectorRequirement {
    /// An invalid requirement (unknown operator, `In` without values, `Exists`
    /// with values) matches nothing. Kubernetes refuses such a selector, so
    /// nothing is aggregated through it.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.contains(v)),
            "NotIn" => !self.values.is_empty() && value.is_none_or(|v| !self.values.contains(v)),
            "Exists" => self.values.is_empty() && value.is_some(),
            "DoesNotExist" => self.values.is_empty() && value.is_none(),
            _ => false,
        }
    }
}

/// `metav1.LabelSelector`. An empty selector matches every label set, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, deserialize_with = "null_default")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.matches(labels))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregationRule {
    #[serde(default, deserialize_with = "null_default")]
    pub cluster_role_selectors: Vec<LabelSelector>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Role {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterRole {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<PolicyRule>,
    pub aggregation_rule: Option<AggregationRule>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleBinding {
    pub name: String,
    pub namespace: String,
    pub subjects: Vec<Subject>,
    pub role_ref: RoleRef,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterRoleBinding {
    pub name: String,
    pub subjects: Vec<Subject>,
    pub role_ref: RoleRef,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default, deserialize_with = "null_default")]
    name: String,
    #[serde(default, deserialize_with = "null_default")]
    namespace: String,
    #[serde(default, deserialize_with = "null_default")]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RulesBody {
    #[serde(default, deserialize_with = "null_default")]
    rules: Vec<PolicyRule>,
    #[serde(default)]
    aggregation_rule: Option<AggregationRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingBody {
    #[serde(default, deserialize_with = "null_default")]
    subjects: Vec<Subject>,
    role_ref: RoleRef,
}

fn metadata(v: &Value, namespaced: bool) -> Result<Metadata, String> {
    let meta = match v.get("metadata") {
        Some(m) if !m.is_null() => Metadata::deserialize(m).map_err(|e| format!("invalid metadata: {e}"))?,
        _ => Metadata::default(),
    };
    if meta.name.is_empty() {
        return Err("metadata.name is required".to_owned());
    }
    if namespaced && meta.namespace.is_empty() {
        return Err("metadata.namespace is required".to_owned());
    }
    Ok(meta)
}

fn body<T: DeserializeOwned>(v: &Value, kind: &str) -> Result<T, String> {
    T::deserialize(v).map_err(|e| format!("invalid {kind}: {e}"))
}

impl Role {
    pub fn from_object(v: &Value) -> Result<Self, String> {
        let meta = metadata(v, true)?;
        let b: RulesBody = body(v, "Role")?;
        Ok(Role {
            name: meta.name,
            namespace: meta.namespace,
            labels: meta.labels,
            rules: b.rules,
        })
    }
}

impl ClusterRole {
    pub fn from_object(v: &Value) -> Result<Self, String> {
        let meta = metadata(v, false)?;
        let b: RulesBody = body(v, "ClusterRole")?;
        Ok(ClusterRole {
            name: meta.name,
            labels: meta.labels,
            rules: b.rules,
            aggregation_rule: b.aggregation_rule,
        })
    }

    /// Whether this role's aggregationRule selects a role with these labels.
    fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.aggregation_rule
            .as_ref()
            .is_some_and(|a| a.cluster_role_selectors.iter().any(|s| s.matches(labels)))
    }
}

impl RoleBinding {
    pub fn from_object(v: &Value) -> Result<Self, String> {
        let meta = metadata(v, true)?;
        let b: BindingBody = body(v, "RoleBinding")?;
        Ok(RoleBinding {
            name: meta.name,
            namespace: meta.namespace,
            subjects: b.subjects,
            role_ref: b.role_ref,
        })
    }
}

impl ClusterRoleBinding {
    pub fn from_object(v: &Value) -> Result<Self, String> {
        let meta = metadata(v, false)?;
        let b: BindingBody = body(v, "ClusterRoleBinding")?;
        Ok(ClusterRoleBinding {
            name: meta.name,
            subjects: b.subjects,
            role_ref: b.role_ref,
        })
    }
}

/// The authenticated caller. The caller builds this from its own user type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn new(name: &str, groups: &[&str]) -> Self {
        User {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// The identity a service-account token authenticates as, including the
    /// `system:authenticated` group that the authenticator adds to everyone.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        User {
            name: format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        }
    }
}

/// One request as the authorizer sees it (`authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: User,
    /// get, list, watch, create, update, patch, delete, deletecollection,
    /// impersonate, escalate, bind, ... For non-resource requests this is the
    /// lower-cased HTTP method.
    pub verb: String,
    pub resource_request: bool,
    /// Empty for cluster-scoped resources and for requests across all namespaces.
    pub namespace: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// Only used for non-resource requests.
    pub path: String,
}

impl Attributes {
    pub fn resource(user: User, verb: &str, api_group: &str, resource: &str, namespace: &str) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            resource_request: true,
            namespace: namespace.to_owned(),
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            ..Attributes::default()
        }
    }

    pub fn non_resource(user: User, verb: &str, path: &str) -> Self {
        Attributes {
            user,
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Attributes::default()
        }
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_owned();
        self
    }
}

/// The authorizer's answer. `reason` is Kubernetes' reason text. A deny
/// usually has an empty reason. It only has one when a binding pointed at a
/// missing role, and then kube-apiserver appends it to the 403 message (see
/// [`forbidden_message_with_reason`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// Joins errors the way Go's `utilerrors.NewAggregate(...).Error()` does: a
/// single message stays bare, and several distinct messages become `[a, b]`.
pub fn aggregate_messages(messages: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in messages {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen[0].to_owned(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// Quotes like Go's `%q`, which Kubernetes uses for every name in its
/// messages. The result is a double-quoted string with `"` and `\` escaped and
/// control characters written as escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// The `message` of kube-apiserver's 403 Status when the authorizer denies a
/// request and gives no reason.
pub fn forbidden_message(a: &Attributes) -> String {
    forbidden_message_with_reason(a, "")
}

/// The 403 message with the authorizer's reason appended after `: `, as
/// kube-apiserver does when the reason is not empty.
///
/// The message is built in two steps. The inner text is made like
/// `forbiddenMessage` in apiserver's `responsewriters/errors.go`, with `&`,
/// `<` and `>` HTML-escaped. It is then wrapped like `apierrors.NewForbidden`:
/// `<resource>.<group> "<name>" is forbidden: ...`, or `forbidden: ...` when
/// there is no resource (non-resource requests).
pub fn forbidden_message_with_reason(a: &Attributes, reason: &str) -> String {
    let user = quote(&a.user.name);
    let detail = if !a.resource_request {
        format!("User {user} cannot {} path {}", a.verb, quote(&a.path))
    } else {
        let mut resource = a.resource.clone();
        if !a.subresource.is_empty() {
            resource.push('/');
            resource.push_str(&a.subresource);
        }
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {}", quote(&a.namespace))
        };
        format!(
            "User {user} cannot {} resource {} in API group {} {scope}",
            a.verb,
            quote(&resource),
            quote(&a.api_group)
        )
    };
    let mut err = sanitize_html(&detail);
    if !reason.is_empty() {
        err.push_str(": ");
        err.push_str(reason);
    }
    let (group, resource) = if a.resource_request {
        (a.api_group.as_str(), a.resource.as_str())
    } else {
        ("", "")
    };
    if group.is_empty() && resource.is_empty() {
        return format!("forbidden: {err}");
    }
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    if a.name.is_empty() {
        format!("{qualified} is forbidden: {err}")
    } else {
        format!("{qualified} {} is forbidden: {err}", quote(&a.name))
    }
}

/// kube-apiserver escapes these so that an error never looks like HTML.
fn sanitize_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(name: &str) -> User {
        User::new(name, &["system:authenticated"])
    }

    fn rule(v: Value) -> PolicyRule {
        serde_json::from_value(v).expect("valid rule")
    }

    #[test]
    fn rules_use_kubernetes_json_names_and_tolerate_nulls() {
        let r = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"], "apiGroups": null, "x": 1}));
        assert_eq!(r.non_resource_urls, vec!["/healthz"]);
        assert!(r.api_groups.is_empty());
        assert_eq!(
            serde_json::to_value(&r).expect("serializes"),
            json!({"verbs": ["get"], "nonResourceURLs": ["/healthz"]})
        );
    }

    #[test]
    fn objects_parse_from_stored_json() {
        let role = Role::from_object(&json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "ns", "labels": {"a": "b"}, "uid": "u"},
            "rules": null
        }))
        .expect("valid role");
        assert_eq!((role.name.as_str(), role.namespace.as_str()), ("r", "ns"));
        assert_eq!(role.labels.get("a").map(String::as_str), Some("b"));
        assert!(role.rules.is_empty());

        let cr = ClusterRole::from_object(&json!({
            "metadata": {"name": "agg"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
        }))
        .expect("valid cluster role");
        let selectors = cr
            .aggregation_rule
            .map(|a| a.cluster_role_selectors)
            .unwrap_or_default();
        assert_eq!(selectors[0].match_labels.get("x").map(String::as_str), Some("y"));

        let crb = ClusterRoleBinding::from_object(&json!({
            "metadata": {"name": "b"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "kube-system"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
        }))
        .expect("valid binding");
        assert_eq!(crb.subjects[0].namespace, "kube-system");
        assert_eq!(crb.role_ref.name, "view");
    }

    #[test]
    fn malformed_objects_are_errors_not_panics() {
        let role = |v: Value| Role::from_object(&v);
        assert_eq!(
            role(json!({"metadata": {"namespace": "ns"}})),
            Err("metadata.name is required".into())
        );
        assert_eq!(
            role(json!({"metadata": {"name": "r"}})),
            Err("metadata.namespace is required".into())
        );
        assert!(role(json!({"metadata": {"name": "r", "namespace": "n"}, "rules": "x"})).is_err());
        assert!(role(json!("not an object")).is_err());
        assert!(RoleBinding::from_object(&json!({"metadata": {"name": "b", "namespace": "n"}})).is_err());
        assert!(ClusterRole::from_object(&json!({"metadata": {"name": 5}})).is_err());
    }

    fn pods(verb: &str) -> Attributes {
        Attributes::resource(user("u"), verb, "", "pods", "default")
    }

    #[test]
    fn verbs_groups_and_resources_match_with_wildcards() {
        let r = rule(json!({"verbs": ["get"], "apiGroups": ["", "apps"], "resources": ["pods"]}));
        assert!(r.allows(&pods("get")));
        assert!(!r.allows(&pods("list")));
        assert!(!r.allows(&Attributes::resource(user("u"), "get", "batch", "pods", "")));
        let all = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        assert!(all.allows(&Attributes::resource(user("u"), "escalate", "x.io", "y", "").with_subresource("z")));
        assert!(!all.allows(&Attributes::non_resource(user("u"), "get", "/healthz")));
    }

    #[test]
    fn subresources_match_only_as_written() {
        let log = pods("get").with_subresource("log");
        let r = |res: &str| rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": [res]}));
        assert!(r("pods/log").allows(&log));
        assert!(r("*/log").allows(&log));
        assert!(!r("pods").allows(&log));
        assert!(!r("pods/log").allows(&pods("get")));
        assert!(!r("*/scale").allows(&log));
        assert!(!r("nodes/log").allows(&log));
        // Kubernetes deliberately has no `pods/*` wildcard (issue #78936).
        assert!(!r("pods/*").allows(&log));
    }

    #[test]
    fn resource_names_never_match_nameless_requests() {
        let r = rule(json!({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]}));
        assert!(r.allows(&pods("get").with_name("web")));
        assert!(!r.allows(&pods("get").with_name("db")));
        assert!(!r.allows(&pods("list")));
        assert!(!r.allows(&pods("create")));
        assert!(!r.allows(&pods("deletecollection")));
        assert!(r.allows(&pods("create").with_name("web")));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_star_prefix() {
        let r = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
        let get = |p: &str| Attributes::non_resource(user("u"), "get", p);
        assert!(r.allows(&get("/healthz")));
        assert!(!r.allows(&get("/healthz/etcd")));
        assert!(r.allows(&get("/apis/apps/v1")));
        assert!(r.allows(&get("/apis/")));
        assert!(!r.allows(&get("/apis")));
        assert!(!r.allows(&Attributes::non_resource(user("u"), "post", "/healthz")));
        let star = rule(json!({"verbs": ["get"], "nonResourceURLs": ["*"]}));
        assert!(star.allows(&get("/metrics")));
        assert!(!star.allows(&pods("get")));
    }

    #[test]
    fn label_selectors_follow_kubernetes_operators() {
        let labels: BTreeMap<String, String> = [("tier".to_owned(), "web".to_owned())].into();
        let req = |op: &str, values: &[&str]| LabelSelectorRequirement {
            key: "tier".into(),
            operator: op.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        assert!(req("In", &["web", "db"]).matches(&labels));
        assert!(!req("In", &["db"]).matches(&labels));
        assert!(req("NotIn", &["db"]).matches(&labels));
        assert!(req("NotIn", &["db"]).matches(&BTreeMap::new()));
        assert!(req("Exists", &[]).matches(&labels));
        assert!(req("DoesNotExist", &[]).matches(&BTreeMap::new()));
        // Invalid requirements match nothing instead of everything.
        assert!(!req("Exists", &["web"]).matches(&labels));
        assert!(!req("NotIn", &[]).matches(&labels));
        assert!(!req("Like", &["web"]).matches(&labels));
        assert!(LabelSelector::default().matches(&labels));
        let sel = LabelSelector {
            match_labels: labels.clone(),
            match_expressions: vec![req("In", &["db"])],
        };
        assert!(!sel.matches(&labels));
    }

    #[test]
    fn quote_matches_go_percent_q() {
        assert_eq!(quote("alice"), r#""alice""#);
        assert_eq!(quote("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\x01""#);
        assert_eq!(quote("日本"), "\"日本\"");
        assert_eq!(
            quote_list(&["g1".into(), "system:authenticated".into()]),
            r#"["g1" "system:authenticated"]"#
        );
        assert_eq!(quote_list(&[]), "[]");
        assert_eq!(aggregate_messages(&["a".into(), "b".into(), "a".into()]), "[a, b]");
        assert_eq!(aggregate_messages(&["a".into(), "a".into()]), "a");
    }

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let alice = user("alice");
        let bob = user("bob");
        let list = Attributes::resource(alice.clone(), "list", "", "pods", "default");
        assert_eq!(
            forbidden_message(&list),
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let node = Attributes::resource(bob.clone(), "get", "", "nodes", "").with_name("n1");
        assert_eq!(
            forbidden_message(&node),
            r#"nodes "n1" is forbidden: User "bob" cannot get resource "nodes" in API group "" at the cluster scope"#
        );
        let log = Attributes::resource(bob.clone(), "get", "", "pods", "ns")
            .with_name("web")
            .with_subresource("log");
        assert_eq!(
            forbidden_message(&log),
            r#"pods "web" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in the namespace "ns""#
        );
        let deploy = Attributes::resource(alice.clone(), "update", "apps", "deployments", "a").with_name("x");
        assert_eq!(
            forbidden_message(&deploy),
            r#"deployments.apps "x" is forbidden: User "alice" cannot update resource "deployments" in API group "apps" in the namespace "a""#
        );
        let metrics = Attributes::non_resource(bob, "get", "/metrics");
        assert_eq!(
            forbidden_message(&metrics),
            r#"forbidden: User "bob" cannot get path "/metrics""#
        );
        assert_eq!(
            forbidden_message_with_reason(&list, r#"RBAC: role.rbac.authorization.k8s.io "r" not found"#),
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default": RBAC: role.rbac.authorization.k8s.io "r" not found"#
        );
        let html = Attributes::non_resource(User::new("<b>&", &[]), "get", "/x");
        assert_eq!(
            forbidden_message(&html),
            r#"forbidden: User "&lt;b&gt;&amp;" cannot get path "/x""#
        );
    }
}

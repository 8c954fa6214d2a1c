//! ResourceQuota admission and usage accounting.
//!
//! Kubernetes' plugin (plugin/pkg/admission/resourcequota, with the
//! evaluators in pkg/quota/v1/evaluator/core) charges each create (and some
//! updates) against every ResourceQuota in the namespace that tracks one of
//! the object's resources and whose scopes match it. It refuses when the new
//! usage would pass a hard limit, and otherwise writes the increased
//! `status.used` back with a compare-and-swap *before* the object is stored.
//! The quota controller later recomputes usage from scratch to repair drift.
//!
//! This module holds the pure parts: what one object uses ([`usage_of`]), the
//! admission decision ([`admit`] for a whole object, [`check`] for a bare
//! delta) and the resync sum ([`recompute`]). skiff differences:
//! * quotas are evaluated in the order given (upstream: informer order), the
//!   first failure wins; pass them sorted by name for stable messages;
//! * `status.hard` is used when present, else `spec.hard` (upstream only reads
//!   `status.hard`, which its controller copies from `spec.hard`);
//! * pods stuck terminating past their grace period are still charged
//!   (upstream stops charging them; that needs a clock);
//! * the admission-config "limitedResources" list is not supported;
//! * all pod scopes are supported: Terminating, NotTerminating, BestEffort,
//!   NotBestEffort, PriorityClass (In/NotIn/Exists/DoesNotExist) and
//!   CrossNamespacePodAffinity; scoped quotas never match other kinds, as
//!   upstream.

use std::collections::BTreeMap;

use serde_json::Value;

use super::quantity::Quantity;

pub type ResourceList = BTreeMap<String, Quantity>;

/// Per charged quota: its index in the input and its complete new
/// `status.used` (canonical quantity strings), to be written with CAS.
pub type QuotaUpdates = Vec<(usize, BTreeMap<String, String>)>;

mod pods;
use pods::{compute_usage, is_native, pod_is_terminal, pod_matches_scope};
pub use pods::{is_best_effort, pod_aggregate, pod_constraints};

const POD_RESOURCES: &str = "count/pods cpu memory ephemeral-storage requests.cpu requests.memory \
    requests.ephemeral-storage limits.cpu limits.memory limits.ephemeral-storage pods";

const SERVICE_RESOURCES: &str = "services services.loadbalancers services.nodeports count/services";

const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

fn is_core(group: &str) -> bool {
    group.is_empty() || group == "core"
}

/// Reads a `{name: quantity}` map, skipping entries that do not parse (API
/// validation rejects those before quota admission runs).
pub fn resource_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Quantity::from_json(v).map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

fn add_into(into: &mut ResourceList, from: &ResourceList) {
    for (k, v) in from {
        let sum = into.get(k).map_or(*v, |cur| cur.add(v));
        into.insert(k.clone(), sum);
    }
}

fn object_count_name(plural: &str, group: &str) -> String {
    if is_core(group) {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

fn legacy_alias(plural: &str, group: &str) -> Option<&'static str> {
    if !is_core(group) {
        return None;
    }
    match plural {
        "configmaps" => Some("configmaps"),
        "secrets" => Some("secrets"),
        "replicationcontrollers" => Some("replicationcontrollers"),
        "resourcequotas" => Some("resourcequotas"),
        _ => None,
    }
}

/// What one object adds to quota usage. Zero entries are included where
/// Kubernetes includes them (e.g. `services.nodeports` of a ClusterIP
/// service); callers comparing usage should ignore zeros.
pub fn usage_of(resource_plural: &str, group: &str, obj: &Value) -> ResourceList {
    let one = Quantity::from_int(1);
    let mut out = ResourceList::new();
    out.insert(object_count_name(resource_plural, group), one);
    if !is_core(group) {
        return out;
    }
    match resource_plural {
        "pods" => {
            // count/pods tracks every stored pod; the rest only live ones.
            if !pod_is_terminal(obj) {
                let requests = pod_aggregate(obj, "requests", true);
                let limits = pod_aggregate(obj, "limits", true);
                out.extend(compute_usage(&requests, &limits));
            }
        }
        "services" => {
            let ports = obj["spec"]["ports"].as_array().map_or(&[][..], Vec::as_slice);
            let count = |n: usize| Quantity::from_int(i64::try_from(n).unwrap_or(i64::MAX));
            let (node_ports, lbs) = match obj["spec"]["type"].as_str() {
                Some("NodePort") => (count(ports.len()), 0),
                Some("LoadBalancer") => {
                    let np = if obj["spec"]["allocateLoadBalancerNodePorts"] == Value::Bool(false) {
                        count(
                            ports
                                .iter()
                                .filter(|p| p["nodePort"].as_i64().unwrap_or(0) != 0)
                                .count(),
                        )
                    } else {
                        count(ports.len())
                    };
                    (np, 1)
                }
                _ => (Quantity::zero(), 0),
            };
            out.insert("services".into(), one);
            out.insert("services.nodeports".into(), node_ports);
            out.insert("services.loadbalancers".into(), Quantity::from_int(lbs));
        }
        "persistentvolumeclaims" => {
            out.insert("persistentvolumeclaims".into(), one);
            let class = obj["spec"]["storageClassName"]
                .as_str()
                .or_else(|| obj["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str())
                .unwrap_or("");
            if !class.is_empty() {
                out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"), one);
            }
            let spec = resource_list(obj["spec"]["resources"].get("requests"));
            let status = resource_list(obj["status"].get("allocatedResources"));
            let storage = match (spec.get("storage"), status.get("storage")) {
                (Some(a), Some(b)) => Some(*a.max(b)),
                (a, b) => a.or(b).copied(),
            };
            if let Some(s) = storage {
                out.insert("requests.storage".into(), s);
                if !class.is_empty() {
                    out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), s);
                }
            }
        }
        other => {
            if let Some(alias) = legacy_alias(other, group) {
                out.insert(alias.into(), one);
            }
        }
    }
    out
}

/// Whether the evaluator for `(plural, group)` tracks quota resource `name`.
pub fn tracks(resource_plural: &str, group: &str, name: &str) -> bool {
    if name == object_count_name(resource_plural, group) {
        return true;
    }
    if !is_core(group) {
        return false;
    }
    match resource_plural {
        "pods" => {
            POD_RESOURCES.split_whitespace().any(|r| r == name)
                || name.starts_with("hugepages-")
                || name.starts_with("requests.hugepages-")
                || (!is_native(name) && name.starts_with("requests."))
        }
        "services" => SERVICE_RESOURCES.split(' ').any(|r| r == name),
        "persistentvolumeclaims" => {
            name == "persistentvolumeclaims"
                || name == "requests.storage"
                || name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}requests.storage"))
                || name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"))
        }
        other => legacy_alias(other, group) == Some(name),
    }
}

/// Hard limits the quota is enforcing.
pub fn hard_of(quota: &Value) -> ResourceList {
    let status = resource_list(quota["status"].get("hard"));
    if status.is_empty() {
        resource_list(quota["spec"].get("hard"))
    } else {
        status
    }
}

fn quota_name(quota: &Value) -> &str {
    quota["metadata"]["name"].as_str().unwrap_or("")
}

/// `(scopeName, operator, values)` from `spec.scopes` and `spec.scopeSelector`.
fn scope_selectors(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = quota["spec"]["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota["spec"]["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let values = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        out.push((
            e["scopeName"].as_str().unwrap_or("").to_string(),
            e["operator"].as_str().unwrap_or("").to_string(),
            values,
        ));
    }
    out
}

/// Whether the quota's scopes select this object (no scopes selects all).
pub fn scopes_match(quota: &Value, resource_plural: &str, group: &str, obj: &Value) -> bool {
    let selectors = scope_selectors(quota);
    if selectors.is_empty() {
        return true;
    }
    if !(is_core(group) && resource_plural == "pods") {
        return false;
    }
    selectors
        .iter()
        .all(|(s, op, vals)| pod_matches_scope(obj, s, op, vals))
}

fn pretty(list: &ResourceList, keys: &[String]) -> String {
    keys.iter()
        .filter_map(|k| list.get(k).map(|q| format!("{k}={q}")))
        .collect::<Vec<_>>()
        .join(",")
}

fn to_strings(list: &ResourceList) -> BTreeMap<String, String> {
    list.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
}

/// Refuses when a tracked resource has no `status.used` entry yet
/// (upstream: the quota controller has not observed it).
fn require_usage_stats(quota: &Value, tracked: &[String]) -> Result<(), String> {
    let used = resource_list(quota["status"].get("used"));
    if tracked.iter().all(|r| used.contains_key(r)) {
        return Ok(());
    }
    let mut names = tracked.to_vec();
    names.sort();
    Err(format!(
        "status unknown for quota: {}, resources: {}",
        quota_name(quota),
        names.join(",")
    ))
}

/// Adds `delta` to the chosen quotas; fails on the first exceeded one.
fn charge(quotas: &[Value], indexes: &[usize], delta: &ResourceList) -> Result<QuotaUpdates, String> {
    let mut out = Vec::new();
    for &i in indexes {
        let Some(quota) = quotas.get(i) else { continue };
        let hard = hard_of(quota);
        let used = resource_list(quota["status"].get("used"));
        let requested: ResourceList = delta
            .iter()
            .filter(|(k, v)| hard.contains_key(*k) && !v.is_zero())
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if requested.is_empty() {
            continue;
        }
        let mut new_used = used.clone();
        add_into(&mut new_used, &requested);
        let exceeded: Vec<String> = requested
            .keys()
            .filter(|k| matches!((new_used.get(*k), hard.get(*k)), (Some(n), Some(h)) if n > h))
            .cloned()
            .collect();
        if !exceeded.is_empty() {
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                quota_name(quota),
                pretty(&requested, &exceeded),
                pretty(&used, &exceeded),
                pretty(&hard, &exceeded)
            ));
        }
        out.push((i, to_strings(&new_used)));
    }
    Ok(out)
}

/// Charges a precomputed delta against every quota whose hard limits name a
/// non-zero resource in it. Scope-blind and constraint-blind: prefer
/// [`admit`] when the object is at hand. Returns, per charged quota index,
/// the complete new `status.used` (canonical strings) to write with CAS.
pub fn check(quotas: &[Value], delta: &BTreeMap<String, Quantity>) -> Result<QuotaUpdates, String> {
    let mut indexes = Vec::new();
    for (i, quota) in quotas.iter().enumerate() {
        let tracked: Vec<String> = hard_of(quota)
            .into_keys()
            .filter(|k| delta.get(k).is_some_and(|q| !q.is_zero()))
            .collect();
        if tracked.is_empty() {
            continue;
        }
        require_usage_stats(quota, &tracked)?;
        indexes.push(i);
    }
    charge(quotas, &indexes, delta)
}

/// Full admission for one object, in Kubernetes' order: pick the quotas whose
/// hard limits the object's evaluator tracks and whose scopes match; enforce
/// the per-container cpu/memory rule (`failed quota: <name>: must specify
/// …`); require usage stats; then charge the object's usage (minus `old`'s
/// usage on update, never below zero). Upstream runs this for pods on create
/// only, services and PVCs on create and update, other kinds on create.
pub fn admit(
    quotas: &[Value],
    resource_plural: &str,
    group: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<QuotaUpdates, String> {
    let mut indexes = Vec::new();
    for (i, quota) in quotas.iter().enumerate() {
        let tracked: Vec<String> = hard_of(quota)
            .into_keys()
            .filter(|k| tracks(resource_plural, group, k))
            .collect();
        if tracked.is_empty() || !scopes_match(quota, resource_plural, group, obj) {
            continue;
        }
        if is_core(group) && resource_plural == "pods" {
            pod_constraints(&tracked, obj).map_err(|e| format!("failed quota: {}: {e}", quota_name(quota)))?;
        }
        require_usage_stats(quota, &tracked)?;
        indexes.push(i);
    }
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let mut delta = usage_of(resource_plural, group, obj);
    if let Some(old) = old {
        let prev = usage_of(resource_plural, group, old);
        for (k, v) in delta.iter_mut() {
            if let Some(p) = prev.get(k) {
                let d = v.sub(p);
                *v = if d.is_negative() { Quantity::zero() } else { d };
            }
        }
    }
    delta.retain(|_, v| !v.is_zero());
    charge(quotas, &indexes, &delta)
}

/// Full usage for `status.used`, over the objects of the quota's namespace
/// given as `(plural, group, object)`. Only resources named in `spec.hard`
/// appear; a tracked resource with no usage reads `0`; an untracked name
/// keeps its previous `status.used` value (no evaluator knows it).
pub fn recompute<'a>(
    quota: &Value,
    objects: impl Iterator<Item = (&'a str, &'a str, &'a Value)>,
) -> BTreeMap<String, String> {
    let hard = resource_list(quota["spec"].get("hard"));
    let mut sums: ResourceList = ResourceList::new();
    for (plural, group, obj) in objects {
        if !hard.keys().any(|k| tracks(plural, group, k)) || !scopes_match(quota, plural, group, obj) {
            continue;
        }
        let usage = usage_of(plural, group, obj);
        for (k, v) in usage {
            if hard.contains_key(&k) && tracks(plural, group, &k) {
                let sum = sums.get(&k).map_or(v, |cur| cur.add(&v));
                sums.insert(k, sum);
            }
        }
    }
    let previous = resource_list(quota["status"].get("used"));
    const CORE: &str = "pods services persistentvolumeclaims configmaps secrets replicationcontrollers resourcequotas";
    let known = |k: &str| k.starts_with("count/") || CORE.split(' ').any(|p| tracks(p, "", k));
    let mut out = BTreeMap::new();
    for k in hard.keys() {
        if let Some(v) = sums.get(k) {
            out.insert(k.clone(), v.to_string());
        } else if known(k) {
            out.insert(k.clone(), "0".to_string());
        } else if let Some(v) = previous.get(k) {
            out.insert(k.clone(), v.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn strings(list: &ResourceList) -> String {
        let parts: Vec<String> = list.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.join(" ")
    }

    fn container(name: &str, requests: Value, limits: Value) -> Value {
        json!({"name": name, "resources": {"requests": requests, "limits": limits}})
    }

    fn quota(name: &str, hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": {"hard": hard}, "status": {"hard": hard, "used": used}})
    }

    #[test]
    fn service_and_object_count_usage() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            strings(&usage_of("services", "", &svc)),
            "count/services=1 services=1 services.loadbalancers=0 services.nodeports=2"
        );
        let lb = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                                 "ports": [{"port": 80, "nodePort": 30001}, {"port": 81}]}});
        let u = usage_of("services", "", &lb);
        assert_eq!(
            strings(&u),
            "count/services=1 services=1 services.loadbalancers=1 services.nodeports=1"
        );
        assert_eq!(
            strings(&usage_of("configmaps", "", &json!({}))),
            "configmaps=1 count/configmaps=1"
        );
        assert_eq!(
            strings(&usage_of("deployments", "apps", &json!({}))),
            "count/deployments.apps=1"
        );
        let pvc = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(
            strings(&usage_of("persistentvolumeclaims", "", &pvc)),
            "count/persistentvolumeclaims=1 fast.storageclass.storage.k8s.io/persistentvolumeclaims=1 \
             fast.storageclass.storage.k8s.io/requests.storage=1Gi persistentvolumeclaims=1 \
             requests.storage=1Gi"
        );
    }

    #[test]
    fn check_reports_exceeded_resources_sorted() {
        let quotas = [quota(
            "compute",
            json!({"requests.cpu": "1", "requests.memory": "1Gi", "pods": "10"}),
            json!({"requests.cpu": "500m", "requests.memory": "512Mi", "pods": "3"}),
        )];
        let delta: ResourceList = [("requests.cpu", "600m"), ("requests.memory", "768Mi"), ("pods", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), q(v)))
            .collect();
        assert_eq!(
            check(&quotas, &delta),
            Err(
                "exceeded quota: compute, requested: requests.cpu=600m,requests.memory=768Mi, \
                 used: requests.cpu=500m,requests.memory=512Mi, limited: requests.cpu=1,requests.memory=1Gi"
                    .to_string()
            )
        );
        let small: ResourceList = [("requests.cpu".to_string(), q("250m")), ("other".to_string(), q("1"))].into();
        let got = check(&quotas, &small).unwrap_or_default();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1["requests.cpu"], "750m");
        assert_eq!(got[0].1["requests.memory"], "512Mi");
        assert!(!got[0].1.contains_key("other"));
    }

    #[test]
    fn admit_charges_matching_quotas_and_needs_status() {
        let pod =
            json!({"spec": {"containers": [container("web", json!({"cpu": "250m", "memory": "128Mi"}), json!({}))]}});
        let quotas = [
            quota("objects", json!({"configmaps": "5"}), json!({"configmaps": "1"})),
            quota(
                "pods",
                json!({"pods": "2", "requests.memory": "1Gi"}),
                json!({"pods": "1", "requests.memory": "0"}),
            ),
        ];
        let got = admit(&quotas, "pods", "", &pod, None).unwrap_or_default();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 1);
        assert_eq!(got[0].1["pods"], "2");
        assert_eq!(got[0].1["requests.memory"], "128Mi");

        let full = [quota("pods", json!({"pods": "1"}), json!({"pods": "1"}))];
        assert_eq!(
            admit(&full, "pods", "", &pod, None),
            Err("exceeded quota: pods, requested: pods=1, used: pods=1, limited: pods=1".into())
        );
        let fresh = [json!({"metadata": {"name": "new"}, "spec": {"hard": {"pods": "1", "count/pods": "1"}}})];
        assert_eq!(
            admit(&fresh, "pods", "", &pod, None),
            Err("status unknown for quota: new, resources: count/pods,pods".into())
        );
    }

    #[test]
    fn admit_update_charges_only_growth() {
        let quotas = [quota(
            "svc",
            json!({"services.loadbalancers": "1", "services": "5"}),
            json!({"services.loadbalancers": "1", "services": "2"}),
        )];
        let old = json!({"spec": {"type": "ClusterIP"}});
        let new = json!({"spec": {"type": "LoadBalancer"}});
        assert!(admit(&quotas, "services", "", &new, Some(&old)).is_err());
        assert_eq!(admit(&quotas, "services", "", &old, Some(&old)), Ok(vec![]));
    }

    #[test]
    fn recompute_sums_matching_objects_only() {
        let rq = json!({"spec": {"hard": {"pods": "10", "requests.cpu": "4", "count/deployments.apps": "3",
                                          "services": "2", "example.com/widgets": "1"}},
                        "status": {"used": {"example.com/widgets": "1"}}});
        let p1 = json!({"spec": {"containers": [container("a", json!({"cpu": "500m"}), json!({}))]}});
        let p2 = json!({"spec": {"containers": [container("a", json!({"cpu": "1"}), json!({}))]}});
        let done = json!({"spec": {"containers": [container("a", json!({"cpu": "1"}), json!({}))]},
                          "status": {"phase": "Failed"}});
        let dep = json!({});
        let objs = [("pods", "", &p1), ("pods", "", &p2), ("pods", "", &done)];
        let used = recompute(&rq, objs.into_iter().chain([("deployments", "apps", &dep)]));
        let used: Vec<String> = used.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            used.join(" "),
            "count/deployments.apps=1 example.com/widgets=1 pods=2 requests.cpu=1500m services=0"
        );
    }
}

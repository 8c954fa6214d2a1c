//! The pod evaluator's pieces: Kubernetes' PodRequests/PodLimits
//! aggregation, the compute usage a pod is charged, QoS and scope matching,
//! and the "must specify" per-container rule.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{add_into, resource_list, Quantity, ResourceList};

/// Per-container resources upstream refuses to leave unset once a quota
/// tracks them (a documented historical mistake kept for compatibility).
const VALIDATION_SET: &str = "cpu memory requests.cpu requests.memory limits.cpu limits.memory";

pub(super) fn max_into(into: &mut ResourceList, from: &ResourceList) {
    for (k, v) in from {
        if into.get(k).is_none_or(|cur| v > cur) {
            into.insert(k.clone(), *v);
        }
    }
}

pub(super) fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod["spec"][field].as_array().into_iter().flatten()
}

pub(super) fn container_list(c: &Value, kind: &str) -> ResourceList {
    resource_list(c.get("resources").and_then(|r| r.get(kind)))
}

/// Pod-level aggregate of `requests` or `limits`, as Kubernetes' PodRequests
/// / PodLimits compute it: the sum over app containers and restartable
/// (sidecar) init containers, raised to the largest single init container
/// plus the sidecars started before it; then pod-level `spec.resources`
/// overrides cpu/memory, and `spec.overhead` is added (to every request, but
/// only to limits that are set).
pub fn pod_aggregate(pod: &Value, kind: &str, include_overhead: bool) -> ResourceList {
    let mut total = ResourceList::new();
    for c in containers(pod, "containers") {
        add_into(&mut total, &container_list(c, kind));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in containers(pod, "initContainers") {
        let own = container_list(c, kind);
        if c["restartPolicy"].as_str() == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
            max_into(&mut init_max, &sidecars);
        } else {
            let mut with_sidecars = own;
            add_into(&mut with_sidecars, &sidecars);
            max_into(&mut init_max, &with_sidecars);
        }
    }
    max_into(&mut total, &init_max);
    let pod_level = container_list(&pod["spec"], kind);
    for name in ["cpu", "memory"] {
        if let Some(q) = pod_level.get(name) {
            total.insert(name.to_string(), *q);
        }
    }
    if include_overhead {
        for (k, v) in resource_list(pod["spec"].get("overhead")) {
            match total.get(&k) {
                Some(cur) => {
                    let sum = cur.add(&v);
                    total.insert(k, sum);
                }
                None if kind == "requests" => {
                    total.insert(k, v);
                }
                None => {}
            }
        }
    }
    total
}

pub(super) fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

pub(super) fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

/// Pod compute usage from aggregated (or one container's) requests/limits.
pub(super) fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), Quantity::from_int(1));
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(name) {
            out.insert(name.into(), *q);
            out.insert(format!("requests.{name}"), *q);
        }
        if let Some(q) = limits.get(name) {
            out.insert(format!("limits.{name}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), *q);
            out.insert(format!("requests.{name}"), *q);
        }
        if is_extended(name) {
            out.insert(format!("requests.{name}"), *q);
        }
    }
    out
}

pub(super) fn pod_is_terminal(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded") | Some("Failed"))
}

/// Kubernetes' QoS class: BestEffort when nothing sets a non-zero cpu or
/// memory request or limit (status.qosClass wins when already recorded).
pub fn is_best_effort(pod: &Value) -> bool {
    if let Some(class) = pod["status"]["qosClass"].as_str().filter(|c| !c.is_empty()) {
        return class == "BestEffort";
    }
    let sets_compute = |lists: [ResourceList; 2]| {
        lists.iter().any(|l| {
            ["cpu", "memory"]
                .iter()
                .any(|r| l.get(*r).is_some_and(|q| !q.is_zero()))
        })
    };
    let spec = &pod["spec"];
    let mut all = containers(pod, "containers").chain(containers(pod, "initContainers"));
    !sets_compute([container_list(spec, "requests"), container_list(spec, "limits")])
        && !all.any(|c| sets_compute([container_list(c, "requests"), container_list(c, "limits")]))
}

fn cross_namespace_affinity(pod: &Value) -> bool {
    let affinity = &pod["spec"]["affinity"];
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let a = &affinity[*kind];
        let required = a["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = a["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| &w["podAffinityTerm"]);
        required
            .chain(preferred)
            .any(|t| t["namespaces"].as_array().is_some_and(|n| !n.is_empty()) || !t["namespaceSelector"].is_null())
    })
}

pub(super) fn pod_matches_scope(pod: &Value, scope: &str, op: &str, values: &[String]) -> bool {
    let terminating = pod["spec"]["activeDeadlineSeconds"].as_i64().is_some_and(|s| s >= 0);
    match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod["spec"]["priorityClassName"].as_str().filter(|c| !c.is_empty());
            match op {
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                "NotIn" => class.is_none_or(|c| !values.iter().any(|v| v == c)),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        _ => false,
    }
}

/// The per-container rule: once a quota tracks cpu/memory (requests or
/// limits), every container and init container must state them. Returns the
/// text after `failed quota: <name>: `.
pub fn pod_constraints(required: &[String], pod: &Value) -> Result<(), String> {
    let required: BTreeSet<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|r| VALIDATION_SET.split(' ').any(|v| v == *r))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
        let usage = compute_usage(&container_list(c, "requests"), &container_list(c, "limits"));
        for &r in &required {
            if !usage.contains_key(r) {
                let name = c["name"].as_str().unwrap_or("");
                missing.entry(r).or_default().insert(name);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            let names: Vec<&str> = names.iter().copied().collect();
            format!("{r} for: {}", names.join(","))
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::super::{admit, scopes_match, usage_of};
    use super::*;
    use serde_json::json;

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
    fn pod_usage_follows_pod_requests_with_init_containers_sidecars_and_overhead() {
        let pod = json!({"spec": {
            "containers": [
                container("a", json!({"cpu": "100m", "memory": "64Mi"}), json!({"cpu": "200m"})),
                container("b", json!({"cpu": "0.2", "nvidia.com/gpu": "1", "hugepages-2Mi": "4Mi"}), json!({})),
            ],
            "initContainers": [
                container("side", json!({"cpu": "50m"}), json!({})),
                container("init", json!({"cpu": "1", "memory": "32Mi"}), json!({"memory": "1Gi"})),
            ],
            "overhead": {"cpu": "10m"}}});
        // init container "side" is a plain init container here: max(350m, 1) = 1.
        let usage = usage_of("pods", "", &pod);
        assert_eq!(
            strings(&usage),
            "count/pods=1 cpu=1010m hugepages-2Mi=4Mi limits.cpu=210m limits.memory=1Gi memory=64Mi \
             pods=1 requests.cpu=1010m requests.hugepages-2Mi=4Mi requests.memory=64Mi \
             requests.nvidia.com/gpu=1"
        );
        let mut sidecar = pod.clone();
        sidecar["spec"]["initContainers"][0]["restartPolicy"] = json!("Always");
        // sidecar runs alongside: 350m; init needs 1 + 50m.
        let usage = usage_of("pods", "", &sidecar);
        assert_eq!(usage["requests.cpu"].to_string(), "1060m");
    }

    #[test]
    fn terminal_pods_only_count_objects() {
        let pod = json!({"spec": {"containers": [container("a", json!({"cpu": "1"}), json!({}))]},
                         "status": {"phase": "Succeeded"}});
        assert_eq!(strings(&usage_of("pods", "", &pod)), "count/pods=1");
    }

    #[test]
    fn admit_requires_cpu_and_memory_per_container() {
        let quotas = [quota(
            "q",
            json!({"limits.cpu": "4", "requests.memory": "1Gi"}),
            json!({"limits.cpu": "0", "requests.memory": "0"}),
        )];
        let pod = json!({"spec": {
            "containers": [container("web", json!({"memory": "1Mi"}), json!({})),
                           container("db", json!({}), json!({"cpu": "1"}))],
            "initContainers": [container("setup", json!({}), json!({}))]}});
        assert_eq!(
            admit(&quotas, "pods", "", &pod, None),
            Err("failed quota: q: must specify limits.cpu for: setup,web; requests.memory for: db,setup".into())
        );
    }

    #[test]
    fn scopes_select_pods() {
        let be = json!({"spec": {"containers": [{"name": "a"}]}});
        let burst = json!({"spec": {"activeDeadlineSeconds": 10,
                                   "containers": [container("a", json!({"cpu": "1"}), json!({}))]}});
        let scoped = |scopes: Value| json!({"spec": {"hard": {"pods": "1"}, "scopes": scopes}});
        let pods = |scopes: Value, pod: &Value| scopes_match(&scoped(scopes), "pods", "", pod);
        assert!(pods(json!(["BestEffort"]), &be));
        assert!(!pods(json!(["BestEffort"]), &burst));
        assert!(pods(json!(["NotBestEffort", "Terminating"]), &burst));
        assert!(!pods(json!(["NotTerminating"]), &burst));
        assert!(!scopes_match(&scoped(json!(["BestEffort"])), "services", "", &be));
        let prio = json!({"spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        let mut high = be.clone();
        high["spec"]["priorityClassName"] = json!("high");
        assert!(scopes_match(&prio, "pods", "", &high));
        assert!(!scopes_match(&prio, "pods", "", &be));
    }
}

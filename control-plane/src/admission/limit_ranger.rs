//! LimitRanger admission.
//!
//! Kubernetes' plugin (plugin/pkg/admission/limitranger) enforces the
//! namespace's LimitRange objects on pod creation in two phases:
//! * mutate: every `type: Container` item contributes `default` (limits) and
//!   `defaultRequest` (requests); a container or init container that lacks a
//!   resource gets it, and the pod is annotated
//!   `kubernetes.io/limit-ranger: LimitRanger plugin set: cpu, memory request
//!   for container web; cpu limit for container web` (the last LimitRange
//!   that set anything writes the annotation);
//! * validate: `min`, `max` and `maxLimitRequestRatio` of `Container` items
//!   per container and init container, and of `Pod` items against the pod
//!   aggregate (sidecar-aware, without overhead). The errors of the first
//!   LimitRange that fails are joined Kubernetes-style (`a`, or `[a, b]`).
//!
//! Two API-server defaulting rules that Kubernetes applies at decode time are
//! applied here too, because they change the outcome and are idempotent:
//! a LimitRange `Container` item defaults `default` from `max` and
//! `defaultRequest` from `default` then `min`; a container with limits but no
//! request for a resource gets request = limit (SetDefaults_Pod), *before*
//! LimitRange defaults. So "only limits given" ends with requests = limits.
//!
//! skiff differences: map iteration is sorted (upstream's is random, so the
//! order of multiple errors varies there); unparseable quantities are treated
//! as absent (upstream cannot even decode them). The caller should run this on
//! pod create only (upstream skips pod updates except the `resize`
//! subresource) and prefix errors with `pods "<name>" is forbidden: `.

use serde_json::{Map, Value};

use super::quantity::{Quantity, MAX_MILLI_VALUE};
use super::quota::{pod_aggregate, resource_list, ResourceList};

pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

struct Item {
    kind: String,
    min: ResourceList,
    max: ResourceList,
    ratio: ResourceList,
    default_limits: ResourceList,
    default_requests: ResourceList,
}

fn items(limit_range: &Value) -> Vec<Item> {
    let list = limit_range["spec"]["limits"].as_array();
    list.into_iter()
        .flatten()
        .map(|it| {
            let kind = it["type"].as_str().unwrap_or("").to_string();
            let min = resource_list(it.get("min"));
            let max = resource_list(it.get("max"));
            let mut default_limits = resource_list(it.get("default"));
            let mut default_requests = resource_list(it.get("defaultRequest"));
            if kind == "Container" {
                // SetDefaults_LimitRangeItem, in its order.
                for (k, v) in &max {
                    default_limits.entry(k.clone()).or_insert(*v);
                }
                for (k, v) in default_limits.iter().chain(&min) {
                    default_requests.entry(k.clone()).or_insert(*v);
                }
            }
            Item {
                kind,
                min,
                max,
                ratio: resource_list(it.get("maxLimitRequestRatio")),
                default_limits,
                default_requests,
            }
        })
        .collect()
}

/// SetDefaults_Pod: for every resource with a limit and no request, the
/// request becomes the limit.
pub fn default_requests_from_limits(pod: &mut Value) {
    for field in ["containers", "initContainers"] {
        let Some(list) = containers_mut(pod, field) else {
            continue;
        };
        for c in list {
            let Some(limits) = c["resources"]["limits"].as_object().cloned() else {
                continue;
            };
            if limits.is_empty() {
                continue;
            }
            if let Some(requests) = object_at(c, "requests") {
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
}

fn containers_mut<'a>(pod: &'a mut Value, field: &str) -> Option<&'a mut Vec<Value>> {
    pod.get_mut("spec")?.get_mut(field)?.as_array_mut()
}

/// `c.resources.<kind>` as a mutable map, created when missing or null.
fn object_at<'a>(c: &'a mut Value, kind: &str) -> Option<&'a mut Map<String, Value>> {
    let c = c.as_object_mut()?;
    let res = c.entry("resources").or_insert_with(|| Value::Object(Map::new()));
    if res.is_null() {
        *res = Value::Object(Map::new());
    }
    let slot = res
        .as_object_mut()?
        .entry(kind)
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn merge_defaults(c: &mut Value, kind: &str, defaults: &ResourceList, label: &str, notes: &mut Vec<String>) {
    let present = |c: &Value, k: &str| c["resources"][kind].get(k).is_some();
    let missing: Vec<(&String, &Quantity)> = defaults.iter().filter(|(k, _)| !present(c, k)).collect();
    if missing.is_empty() {
        return;
    }
    let Some(target) = object_at(c, kind) else {
        return;
    };
    for (k, v) in &missing {
        target.insert((*k).clone(), Value::String(v.to_string()));
    }
    let names: Vec<&str> = missing.iter().map(|(k, _)| k.as_str()).collect();
    let what = if kind == "requests" { "request" } else { "limit" };
    let name = c["name"].as_str().unwrap_or("");
    notes.push(format!("{} {what} for {label} {name}", names.join(", ")));
}

/// The mutating half: applies one LimitRange's container defaults.
fn mutate(pod: &mut Value, limit_range: &Value) {
    let mut limits = ResourceList::new();
    let mut requests = ResourceList::new();
    for it in items(limit_range).into_iter().filter(|i| i.kind == "Container") {
        limits.extend(it.default_limits);
        requests.extend(it.default_requests);
    }
    let mut notes = Vec::new();
    for (field, label) in [("containers", "container"), ("initContainers", "init container")] {
        let Some(list) = containers_mut(pod, field) else {
            continue;
        };
        for c in list.iter_mut() {
            merge_defaults(c, "requests", &requests, label, &mut notes);
            merge_defaults(c, "limits", &limits, label, &mut notes);
        }
    }
    if notes.is_empty() {
        return;
    }
    let Some(meta) = pod
        .as_object_mut()
        .map(|p| p.entry("metadata").or_insert_with(|| Value::Object(Map::new())))
    else {
        return;
    };
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
    if !ann.is_object() {
        *ann = Value::Object(Map::new());
    }
    if let Some(ann) = ann.as_object_mut() {
        let text = format!("LimitRanger plugin set: {}", notes.join("; "));
        ann.insert(ANNOTATION.to_string(), Value::String(text));
    }
}

/// Kubernetes compares in milli-units unless a value is too large for that,
/// then in whole units; a missing quantity counts as zero.
fn comparable(a: Option<&Quantity>, b: Option<&Quantity>, c: &Quantity) -> (i64, i64, i64) {
    let zero = Quantity::zero();
    let (a, b) = (a.unwrap_or(&zero), b.unwrap_or(&zero));
    if [a, b, c].iter().all(|q| q.value() <= MAX_MILLI_VALUE) {
        (a.milli_value(), b.milli_value(), c.milli_value())
    } else {
        (a.value(), b.value(), c.value())
    }
}

fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (r, l) = (req.get(name), lim.get(name));
    let (rv, lv, ev) = comparable(r, l, enforced);
    match (r, l) {
        (None, _) => Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        )),
        (Some(r), _) if rv < ev => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        (_, Some(l)) if lv < ev => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {l}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (r, l) = (req.get(name), lim.get(name));
    let (rv, lv, ev) = comparable(r, l, enforced);
    match (r, l) {
        (_, None) => Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        )),
        (_, Some(l)) if lv > ev => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {l}"
        )),
        (Some(r), _) if rv > ev => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {r}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (r, l) = (req.get(name), lim.get(name));
    let (rv, lv, _) = comparable(r, l, enforced);
    if r.is_none() || rv == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if l.is_none() || lv == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let shown = lv as f64 / rv as f64;
    let (observed, max) = if enforced.value() <= MAX_MILLI_VALUE {
        (shown * 1000.0, enforced.milli_value() as f64)
    } else {
        (shown, enforced.value() as f64)
    };
    (observed > max).then(|| {
        format!("{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {shown:.6}")
    })
}

fn check_all(it: &Item, kind: &str, req: &ResourceList, lim: &ResourceList, errs: &mut Vec<String>) {
    type Rule = fn(&str, &str, &Quantity, &ResourceList, &ResourceList) -> Option<String>;
    let rules: [(&ResourceList, Rule); 3] = [
        (&it.min, min_constraint),
        (&it.max, max_constraint),
        (&it.ratio, ratio_constraint),
    ];
    for (bounds, rule) in rules {
        for (name, enforced) in bounds {
            errs.extend(rule(kind, name, enforced, req, lim));
        }
    }
}

/// Kubernetes' `utilerrors.NewAggregate(errs).Error()`: duplicates dropped,
/// brackets only around more than one message.
fn aggregate(errs: Vec<String>) -> Result<(), String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => Ok(()),
        1 => Err(seen.remove(0)),
        _ => Err(format!("[{}]", seen.join(", "))),
    }
}

/// The validating half for one LimitRange.
fn validate(pod: &Value, limit_range: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    for it in items(limit_range) {
        match it.kind.as_str() {
            "Container" => {
                for field in ["containers", "initContainers"] {
                    for c in pod["spec"][field].as_array().into_iter().flatten() {
                        let req = resource_list(c["resources"].get("requests"));
                        let lim = resource_list(c["resources"].get("limits"));
                        check_all(&it, "Container", &req, &lim, &mut errs);
                    }
                }
            }
            "Pod" => {
                let req = pod_aggregate(pod, "requests", false);
                let lim = pod_aggregate(pod, "limits", false);
                check_all(&it, "Pod", &req, &lim, &mut errs);
            }
            _ => {}
        }
    }
    aggregate(errs)
}

/// Applies defaults from every LimitRange, then validates against each in
/// turn; the error is the text after `pods "<name>" is forbidden: `.
pub fn admit_pod(pod: &mut Value, limit_ranges: &[Value]) -> Result<(), String> {
    default_requests_from_limits(pod);
    for lr in limit_ranges {
        mutate(pod, lr);
    }
    limit_ranges.iter().try_for_each(|lr| validate(pod, lr))
}

/// PersistentVolumeClaim items: `min` and `max` against
/// `spec.resources.requests` only (claims are never defaulted).
pub fn admit_pvc(pvc: &Value, limit_ranges: &[Value]) -> Result<(), String> {
    for lr in limit_ranges {
        let mut errs = Vec::new();
        let req = resource_list(pvc["spec"]["resources"].get("requests"));
        let none = ResourceList::new();
        for it in items(lr).into_iter().filter(|i| i.kind == "PersistentVolumeClaim") {
            for (name, enforced) in &it.min {
                errs.extend(min_constraint("PersistentVolumeClaim", name, enforced, &req, &none));
            }
            for (name, enforced) in &it.max {
                let kind = "PersistentVolumeClaim";
                errs.extend(match req.get(name) {
                    None => Some(format!(
                        "maximum {name} usage per {kind} is {enforced}.  No request is specified"
                    )),
                    Some(r) if comparable(Some(r), None, enforced).0 > comparable(Some(r), None, enforced).2 => Some(
                        format!("maximum {name} usage per {kind} is {enforced}, but request is {r}"),
                    ),
                    Some(_) => None,
                });
            }
        }
        aggregate(errs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lr(items: Value) -> Value {
        json!({"metadata": {"name": "limits"}, "spec": {"limits": items}})
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn applies_defaults_and_annotates() {
        let ranges = [lr(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "0.25Gi"}, "defaultRequest": {"cpu": "0.1"}}]))];
        let mut p = pod(json!([{"name": "web"}, {"name": "tuned", "resources": {"requests": {"cpu": "50m"}}}]));
        p["spec"]["initContainers"] = json!([{"name": "init", "resources": {}}]);
        assert_eq!(admit_pod(&mut p, &ranges), Ok(()));
        let web = &p["spec"]["containers"][0]["resources"];
        assert_eq!(web["requests"], json!({"cpu": "100m", "memory": "256Mi"}));
        assert_eq!(web["limits"], json!({"cpu": "500m", "memory": "256Mi"}));
        assert_eq!(p["spec"]["containers"][1]["resources"]["requests"]["cpu"], "50m");
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container web; \
             cpu, memory limit for container web; memory request for container tuned; \
             cpu, memory limit for container tuned; cpu, memory request for init container init; \
             cpu, memory limit for init container init"
        );
    }

    #[test]
    fn limits_only_container_gets_requests_equal_to_limits() {
        let ranges = [lr(json!([{"type": "Container", "defaultRequest": {"cpu": "100m"}}]))];
        let mut p = pod(json!([{"name": "web", "resources": {"limits": {"cpu": "2"}}}]));
        assert_eq!(admit_pod(&mut p, &ranges), Ok(()));
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"]["cpu"], "2");
        assert!(p["metadata"]["annotations"].is_null());
    }

    #[test]
    fn max_defaults_the_limit_and_is_enforced() {
        let ranges = [lr(json!([{"type": "Container", "max": {"cpu": "1"}}]))];
        let mut p = pod(json!([{"name": "a"}]));
        assert_eq!(admit_pod(&mut p, &ranges), Ok(()));
        assert_eq!(p["spec"]["containers"][0]["resources"]["limits"]["cpu"], "1");
        let mut p = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "2"}}}]));
        assert_eq!(
            admit_pod(&mut p, &ranges),
            Err("maximum cpu usage per Container is 1, but limit is 2".into())
        );
    }

    #[test]
    fn several_violations_are_aggregated() {
        let range = lr(json!([{"type": "Container", "min": {"memory": "64Mi"}, "max": {"cpu": "1"}}]));
        let p = pod(json!([{"name": "a", "resources": {"requests": {"memory": "32Mi"}}}]));
        assert_eq!(
            validate(&p, &range),
            Err("[minimum memory usage per Container is 64Mi, but request is 32Mi, \
                 maximum cpu usage per Container is 1.  No limit is specified]"
                .into())
        );
        // Identical messages from two containers collapse into one.
        let p = pod(json!([{"name": "a"}, {"name": "b"}]));
        let range = lr(json!([{"type": "Container", "min": {"cpu": "1"}}]));
        assert_eq!(
            validate(&p, &range),
            Err("minimum cpu usage per Container is 1.  No request is specified".into())
        );
    }

    #[test]
    fn ratio_is_checked() {
        let ranges = [lr(json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]))];
        let mut p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}}]));
        assert_eq!(
            admit_pod(&mut p, &ranges),
            Err("cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000".into())
        );
        let mut p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]));
        assert_eq!(admit_pod(&mut p, &ranges), Ok(()));
        let mut p = pod(json!([{"name": "a"}]));
        assert_eq!(
            admit_pod(&mut p, &ranges),
            Err(
                "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0".into()
            )
        );
    }

    #[test]
    fn pod_items_use_the_pod_aggregate() {
        let ranges = [lr(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]))];
        let c = |n: &str| json!({"name": n, "resources": {"limits": {"memory": "768Mi"}}});
        let mut p = pod(json!([c("a"), c("b")]));
        assert_eq!(
            admit_pod(&mut p, &ranges),
            Err("maximum memory usage per Pod is 1Gi, but limit is 1536Mi".into())
        );
        let mut p = pod(json!([c("a")]));
        assert_eq!(admit_pod(&mut p, &ranges), Ok(()));
    }

    #[test]
    fn first_failing_limit_range_wins_and_odd_input_does_not_panic() {
        let ranges = [
            lr(json!([{"type": "Container", "max": {"memory": "1Gi"}}])),
            lr(json!([{"type": "Container", "max": {"cpu": "1"}}])),
        ];
        let mut p = pod(json!([{"name": "a", "resources": {"limits": {"memory": "2Gi", "cpu": "2"}}}]));
        assert_eq!(
            admit_pod(&mut p, &ranges),
            Err("maximum memory usage per Container is 1Gi, but limit is 2Gi".into())
        );
        let mut junk = json!("not a pod");
        assert_eq!(admit_pod(&mut junk, &ranges), Ok(()));
        let mut nulls = json!({"spec": {"containers": [{"name": "a", "resources": null}]}});
        assert!(admit_pod(&mut nulls, &ranges).is_ok());
        assert_eq!(nulls["spec"]["containers"][0]["resources"]["limits"]["memory"], "1Gi");
    }

    #[test]
    fn pvc_min_and_max() {
        let ranges = [lr(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}}]),
        )];
        let pvc = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert_eq!(
            admit_pvc(&pvc("500Mi"), &ranges),
            Err("minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi".into())
        );
        assert_eq!(
            admit_pvc(&pvc("10Gi"), &ranges),
            Err("maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi".into())
        );
        assert_eq!(admit_pvc(&pvc("2Gi"), &ranges), Ok(()));
    }
}

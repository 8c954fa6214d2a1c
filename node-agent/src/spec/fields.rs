//! Downward API values: `fieldRef` paths and `resourceFieldRef` resources.
//!
//! Shared by container env (`valueFrom`) and downwardAPI/projected volumes, which accept the
//! same paths plus the whole-map forms `metadata.labels` / `metadata.annotations`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};

use super::quantity::{self, Quantity};
use super::SpecError;

/// What the node offers, used where a container sets no limit (kubelet defaults downward-API
/// limits to node allocatable) and for the Burstable OOM score (node memory capacity).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeResources {
    pub allocatable_cpu_milli: i64,
    pub allocatable_memory_bytes: i64,
    pub memory_capacity_bytes: i64,
}

/// The value of a `fieldRef` path for `pod`. `context` names the referrer for errors.
pub fn field_ref_value(pod: &Pod, path: &str, context: &str) -> Result<String, SpecError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => {
            let ips = status.and_then(|s| s.host_ips.as_ref());
            ips.map(|v| v.iter().map(|ip| ip.ip.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        }
        "status.podIPs" => {
            let ips = status.and_then(|s| s.pod_ips.as_ref());
            ips.map(|v| v.iter().map(|ip| ip.ip.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        }
        _ => {
            let unsupported = || SpecError::UnsupportedFieldPath {
                path: path.to_string(),
                context: context.to_string(),
            };
            let (map, key) = if let Some(key) = subscript(path, "metadata.labels") {
                (meta.labels.as_ref(), key)
            } else if let Some(key) = subscript(path, "metadata.annotations") {
                (meta.annotations.as_ref(), key)
            } else {
                return Err(unsupported());
            };
            // A missing key is the empty string, as in kubelet.
            map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
        }
    };
    Ok(value)
}

/// `metadata.labels['key']` -> `key`.
fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let inner = path.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

/// Kubernetes' downward-API rendering of a map: sorted `key="value"` lines, Go-quoted.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let mut out = String::new();
    for (k, v) in map.into_iter().flatten() {
        out.push_str(k);
        out.push('=');
        out.push_str(&go_quote(v));
        out.push('\n');
    }
    // kubelet trims the trailing newline of the last entry.
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// A close rendering of Go's `%q`: escapes quotes, backslashes and control characters.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef` for `container`, scaled by its divisor and rounded up.
pub fn resource_field_value(
    container: &Container,
    selector: &ResourceFieldSelector,
    node: &NodeResources,
    context: &str,
) -> Result<String, SpecError> {
    let divisor = match &selector.divisor {
        Some(d) => Quantity::parse(&d.0)?,
        None => Quantity::from_units(1),
    };
    let resources = container.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let resource = selector.resource.as_str();
    let (kind, map, name) = match resource.split_once('.') {
        Some(("limits", name)) => ("limits", limits, name),
        Some(("requests", name)) => ("requests", requests, name),
        _ => return Err(unsupported_resource(resource, context)),
    };
    let value = quantity::lookup(map, name)?;
    if name == "cpu" {
        // Unset CPU limit -> node allocatable, as kubelet's downward API does.
        let milli = match (kind, value) {
            (_, Some(q)) => q.milli_value(),
            ("limits", None) => node.allocatable_cpu_milli,
            _ => 0,
        };
        let div = divisor.milli_value();
        if div <= 0 {
            return Err(SpecError::ZeroDivisor {
                context: context.to_string(),
            });
        }
        return Ok(ceil_div(milli, div).to_string());
    }
    let is_known = name == "memory" || name == "ephemeral-storage" || name.starts_with("hugepages-");
    if !is_known {
        return Err(unsupported_resource(resource, context));
    }
    let units = match (kind, name, value) {
        (_, _, Some(q)) => q.value(),
        ("limits", "memory", None) => node.allocatable_memory_bytes,
        _ => 0,
    };
    let div = divisor.value();
    if div <= 0 {
        return Err(SpecError::ZeroDivisor {
            context: context.to_string(),
        });
    }
    Ok(ceil_div(units, div).to_string())
}

fn unsupported_resource(resource: &str, context: &str) -> SpecError {
    SpecError::UnsupportedResource {
        resource: resource.to_string(),
        context: context.to_string(),
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQ;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                          "labels": {"app": "web", "tier": "a\"b"}, "annotations": {"x/y": "z"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": []},
            "status": {"podIP": "10.244.1.5", "hostIP": "192.168.0.2",
                        "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]}
        }))
        .unwrap()
    }

    #[test]
    fn field_paths() {
        let p = pod();
        let f = |path| field_ref_value(&p, path, "t").unwrap();
        assert_eq!(f("metadata.name"), "web");
        assert_eq!(f("metadata.namespace"), "prod");
        assert_eq!(f("metadata.uid"), "u-1");
        assert_eq!(f("metadata.labels['app']"), "web");
        assert_eq!(f("metadata.labels['missing']"), "");
        assert_eq!(f("metadata.annotations['x/y']"), "z");
        assert_eq!(f("spec.nodeName"), "n1");
        assert_eq!(f("spec.serviceAccountName"), "sa");
        assert_eq!(f("status.podIP"), "10.244.1.5");
        assert_eq!(f("status.hostIP"), "192.168.0.2");
        assert_eq!(f("status.podIPs"), "10.244.1.5,fd00::5");
        assert_eq!(f("metadata.labels"), "app=\"web\"\ntier=\"a\\\"b\"");
        assert!(field_ref_value(&p, "spec.containers", "t").is_err());
    }

    #[test]
    fn resource_fields() {
        let c: Container = serde_json::from_value(json!({"name": "c",
            "resources": {"limits": {"cpu": "1500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}}}))
        .unwrap();
        let node = NodeResources {
            allocatable_cpu_milli: 4000,
            allocatable_memory_bytes: 1 << 30,
            memory_capacity_bytes: 0,
        };
        let sel = |resource: &str, divisor: Option<&str>| ResourceFieldSelector {
            container_name: None,
            divisor: divisor.map(|d| KQ(d.to_string())),
            resource: resource.to_string(),
        };
        let v = |r, d| resource_field_value(&c, &sel(r, d), &node, "t").unwrap();
        assert_eq!(v("limits.cpu", None), "2", "1.5 cpu rounds up to 2");
        assert_eq!(v("limits.cpu", Some("1m")), "1500");
        assert_eq!(v("requests.cpu", Some("1m")), "250");
        assert_eq!(v("limits.memory", Some("1Mi")), "128");
        assert_eq!(v("limits.memory", None), "134217728");
        assert_eq!(v("requests.memory", None), "0");
        let bare = Container {
            name: "b".into(),
            ..Default::default()
        };
        let b = |r| resource_field_value(&bare, &sel(r, None), &node, "t").unwrap();
        assert_eq!(b("limits.cpu"), "4", "unset limit falls back to allocatable");
        assert_eq!(b("limits.memory"), (1u64 << 30).to_string());
        assert!(resource_field_value(&c, &sel("limits.gpu", None), &node, "t").is_err());
        assert!(resource_field_value(&c, &sel("limits.cpu", Some("0")), &node, "t").is_err());
    }
}

//! Validation of the built-in types, Kubernetes' rules: object names, labels and annotations,
//! the required fields of each kind, and the fields that may not change on update. Returns every
//! cause at once, so a 422 lists them all.

use serde_json::Value;

use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::Resource;
use crate::selector::{validate_label_key, validate_label_value};

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= DNS1123_SUBDOMAIN_MAX && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Name rule per kind: namespaces are DNS-1123 labels, services DNS-1035 labels, the rest
/// DNS-1123 subdomains (RBAC objects accept any path segment name).
fn check_name(res: &Resource, name: &str, causes: &mut Vec<Cause>) {
    let ok = match res.kind {
        "Namespace" => is_dns1123_label(name).then_some(()).ok_or(LABEL_MSG),
        "Service" => is_dns1035_label(name).then_some(()).ok_or(DNS1035_MSG),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
            (!name.contains('/') && !name.contains('%') && name != "." && name != "..")
                .then_some(())
                .ok_or("may not contain '/' or '%'")
        }
        _ => is_dns1123_subdomain(name).then_some(()).ok_or(SUBDOMAIN_MSG),
    };
    if let Err(why) = ok {
        causes.push(Cause::invalid("metadata.name", name, why));
    }
}

fn check_meta(obj: &Value, causes: &mut Vec<Cause>) {
    let meta = obj.get("metadata");
    if let Some(labels) = meta.and_then(|m| m.get("labels")).and_then(Value::as_object) {
        for (k, v) in labels {
            if let Err(e) = validate_label_key(k) {
                causes.push(Cause::invalid("metadata.labels", k, e));
            }
            match v.as_str() {
                Some(s) => {
                    if let Err(e) = validate_label_value(s) {
                        causes.push(Cause::invalid(format!("metadata.labels[{k}]"), s, e));
                    }
                }
                None => causes.push(Cause::invalid(
                    format!("metadata.labels[{k}]"),
                    &v.to_string(),
                    "must be a string",
                )),
            }
        }
    }
    if let Some(ann) = meta.and_then(|m| m.get("annotations")).and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in ann {
            if let Err(e) = validate_label_key(k) {
                causes.push(Cause::invalid("metadata.annotations", k, e));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: "Too long: must have at most 262144 bytes".into(),
            });
        }
    }
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Vec<Value>> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_array()
}

fn check_pod_spec(spec: Option<&Value>, base: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        causes.push(Cause::required(base));
        return;
    };
    match spec.get("containers").and_then(Value::as_array) {
        None => causes.push(Cause::required(format!("{base}.containers"))),
        Some(cs) if cs.is_empty() => causes.push(Cause::required(format!("{base}.containers"))),
        Some(_) => {}
    }
    let mut names = std::collections::HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let f = format!("{base}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{f}.name"))),
                Some(n) => {
                    if !is_dns1123_label(n) {
                        causes.push(Cause::invalid(format!("{f}.name"), n, LABEL_MSG));
                    } else if !names.insert(n.to_string()) {
                        causes.push(Cause {
                            reason: "FieldValueDuplicate",
                            field: format!("{f}.name"),
                            message: format!("Duplicate value: {n:?}"),
                        });
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                causes.push(Cause::required(format!("{f}.image")));
            }
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push(Cause::invalid(
                        format!("{f}.ports[{j}].containerPort"),
                        &port.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    if let Some(p) = spec.get("restartPolicy").and_then(Value::as_str) {
        if !["Always", "OnFailure", "Never"].contains(&p) {
            causes.push(Cause::unsupported(
                format!("{base}.restartPolicy"),
                p,
                &["Always", "OnFailure", "Never"],
            ));
        }
    }
}

/// Validation of a whole object on create or update.
pub fn validate(res: &Resource, obj: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    let name = obj
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::required("metadata.name"));
    } else {
        check_name(res, name, &mut causes);
    }
    check_meta(obj, &mut causes);
    match (res.group, res.kind) {
        ("", "Pod") => check_pod_spec(obj.get("spec"), "spec", &mut causes),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let field = |f: &str| {
                obj.pointer(&format!("/roleRef/{f}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            let group = field("apiGroup");
            if group != "rbac.authorization.k8s.io" {
                causes.push(Cause::unsupported(
                    "roleRef.apiGroup",
                    group,
                    &["rbac.authorization.k8s.io"],
                ));
            }
            let kinds: &[&str] = if res.kind == "RoleBinding" {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            if !kinds.contains(&field("kind")) {
                causes.push(Cause::unsupported("roleRef.kind", field("kind"), kinds));
            }
            if field("name").is_empty() {
                causes.push(Cause::required("roleRef.name"));
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => {
            let spec = obj.get("spec");
            if let Some(r) = spec.and_then(|s| s.get("replicas")).and_then(Value::as_i64) {
                if r < 0 {
                    causes.push(Cause::invalid(
                        "spec.replicas",
                        &r.to_string(),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            let selector = spec.and_then(|s| s.get("selector"));
            let template_labels = spec
                .and_then(|s| s.get("template"))
                .and_then(|t| t.get("metadata"))
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object);
            match selector {
                None => causes.push(Cause::required("spec.selector")),
                Some(sel) => match crate::selector::LabelSelector::from_label_selector_json(sel) {
                    Err(e) => causes.push(Cause::invalid("spec.selector", &sel.to_string(), e)),
                    Ok(s) if s.is_empty() => causes.push(Cause::invalid(
                        "spec.selector",
                        &sel.to_string(),
                        "empty selector is invalid for deployment",
                    )),
                    Ok(s) => {
                        let empty = serde_json::Map::new();
                        if !s.matches(template_labels.unwrap_or(&empty)) {
                            causes.push(Cause::invalid(
                                "spec.template.metadata.labels",
                                &template_labels
                                    .map(|l| Value::Object(l.clone()).to_string())
                                    .unwrap_or_default(),
                                "`selector` does not match template `labels`",
                            ));
                        }
                    }
                },
            }
            check_pod_spec(
                spec.and_then(|s| s.get("template")).and_then(|t| t.get("spec")),
                "spec.template.spec",
                &mut causes,
            );
        }
        ("", "Service") => {
            let ty = obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
            let ports = arr(obj, &["spec", "ports"]).cloned().unwrap_or_default();
            if ports.is_empty()
                && ty != "ExternalName"
                && obj.pointer("/spec/clusterIP").and_then(Value::as_str) != Some("None")
            {
                causes.push(Cause::required("spec.ports"));
            }
            for (i, p) in ports.iter().enumerate() {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push(Cause::invalid(
                        format!("spec.ports[{i}].port"),
                        &port.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                if ports.len() > 1 && p.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                    causes.push(Cause::required(format!("spec.ports[{i}].name")));
                }
            }
            if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
                causes.push(Cause::unsupported(
                    "spec.type",
                    ty,
                    &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
                ));
            }
        }
        ("", "ConfigMap" | "Secret") => {
            for field in ["data", "binaryData", "stringData"] {
                for k in obj
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    let ok = !k.is_empty()
                        && k.len() <= 253
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                    if !ok {
                        causes.push(Cause::invalid(
                            format!("{field}[{k}]"),
                            k,
                            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(res.group, res.kind, name, causes))
    }
}

/// Fields that may not change on update (pod spec but images and a few others, a workload's
/// selector, a service's clusterIP, immutable ConfigMaps and Secrets).
pub fn validate_update(res: &Resource, new: &Value, old: &Value) -> ApiResult<()> {
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let mut causes = Vec::new();
    match (res.group, res.kind) {
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding")
            if new.get("roleRef") != old.get("roleRef") =>
        {
            causes.push(Cause::invalid("roleRef", "", "cannot change roleRef"));
        }
        ("", "Pod") => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                for list in ["containers", "initContainers"] {
                    if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                        for c in cs {
                            if let Some(o) = c.as_object_mut() {
                                o.remove("image");
                            }
                        }
                    }
                }
                if let Some(o) = s.as_object_mut() {
                    for f in [
                        "activeDeadlineSeconds",
                        "tolerations",
                        "terminationGracePeriodSeconds",
                        "schedulingGates",
                    ] {
                        o.remove(f);
                    }
                    // nodeName is set once, by binding.
                    if old.pointer("/spec/nodeName").is_none() {
                        o.remove("nodeName");
                    }
                }
                s
            };
            if strip(new) != strip(old) {
                causes.push(Cause::forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet")
            if new.pointer("/spec/selector") != old.pointer("/spec/selector") =>
        {
            causes.push(Cause::invalid(
                "spec.selector",
                &new.pointer("/spec/selector").map(Value::to_string).unwrap_or_default(),
                "field is immutable",
            ));
        }
        ("", "Service") => {
            let old_ip = old.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
            let new_ip = new.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or("");
            if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
                causes.push(Cause::invalid("spec.clusterIP", new_ip, "field is immutable"));
            }
        }
        ("", "ConfigMap" | "Secret") if old.get("immutable") == Some(&Value::Bool(true)) => {
            for f in ["data", "binaryData", "immutable"] {
                if new.get(f) != old.get(f) {
                    causes.push(Cause::forbidden(f, "field is immutable when `immutable` is set"));
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(res.group, res.kind, name, causes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;
    use serde_json::json;

    #[test]
    fn names_and_required_fields() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let e = validate(
            pods,
            &json!({"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c"}]}}),
        )
        .expect_err("invalid");
        assert_eq!(e.code, 422);
        let fields: Vec<&str> = e.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.name", "spec.containers[0].image"]);
        assert!(validate(
            pods,
            &json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        )
        .is_ok());
        let ns = lookup("", "v1", "namespaces").expect("ns");
        assert!(
            validate(ns, &json!({"metadata": {"name": "a.b"}})).is_err(),
            "namespaces are labels"
        );
        let svc = lookup("", "v1", "services").expect("svc");
        let e = validate(
            svc,
            &json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 70000}]}}),
        )
        .expect_err("svc");
        assert_eq!(e.causes.len(), 2);
    }

    #[test]
    fn deployments_need_a_matching_selector() {
        let d = lookup("apps", "v1", "deployments").expect("deploy");
        let tmpl =
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let ok =
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": tmpl}});
        assert!(validate(d, &ok).is_ok());
        let bad =
            json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": tmpl}});
        let e = validate(d, &bad).expect_err("mismatch");
        assert_eq!(e.causes[0].field, "spec.template.metadata.labels");
        let mut moved = ok.clone();
        moved["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        assert_eq!(
            validate_update(d, &moved, &ok).expect_err("immutable").causes[0].field,
            "spec.selector"
        );
    }

    #[test]
    fn pod_spec_is_immutable_but_images() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let old =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a", "command": ["x"]}]}});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("b");
        assert!(validate_update(pods, &new, &old).is_ok());
        new["spec"]["containers"][0]["command"] = json!(["y"]);
        assert_eq!(validate_update(pods, &new, &old).expect_err("immutable").code, 422);
    }
}

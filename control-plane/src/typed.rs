//! Decoding through the k8s-openapi types: a body is read into its Kubernetes type (type errors
//! are a 400 naming the field) and written back, which drops fields the type does not know, as
//! kube-apiserver does. The fields dropped are reported so `fieldValidation=Strict` can refuse
//! them and `Warn` can name them in a warning.

use k8s_openapi::api::{apps, certificates, coordination, core, discovery, events, rbac, scheduling};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The object as its Kubernetes type sees it, and the paths of the fields it dropped.
pub fn normalize(res: &Resource, obj: &Value) -> ApiResult<(Value, Vec<String>)> {
    let out = match (res.group, res.kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(obj),
        ("", "Pod") => roundtrip::<core::v1::Pod>(obj),
        ("", "Node") => roundtrip::<core::v1::Node>(obj),
        ("", "Service") => roundtrip::<core::v1::Service>(obj),
        ("", "Endpoints") => roundtrip::<core::v1::Endpoints>(obj),
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(obj),
        ("", "Secret") => roundtrip::<core::v1::Secret>(obj),
        ("", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(obj),
        ("", "Event") => roundtrip::<core::v1::Event>(obj),
        ("", "LimitRange") => roundtrip::<core::v1::LimitRange>(obj),
        ("", "ResourceQuota") => roundtrip::<core::v1::ResourceQuota>(obj),
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(obj),
        ("apps", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(obj),
        ("coordination.k8s.io", "Lease") => roundtrip::<coordination::v1::Lease>(obj),
        ("discovery.k8s.io", "EndpointSlice") => roundtrip::<discovery::v1::EndpointSlice>(obj),
        ("events.k8s.io", "Event") => roundtrip::<events::v1::Event>(obj),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            roundtrip::<certificates::v1::CertificateSigningRequest>(obj)
        }
        ("scheduling.k8s.io", "PriorityClass") => roundtrip::<scheduling::v1::PriorityClass>(obj),
        ("rbac.authorization.k8s.io", "Role") => roundtrip::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => roundtrip::<rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => roundtrip::<rbac::v1::ClusterRoleBinding>(obj),
        _ => Ok(obj.clone()),
    };
    let typed =
        out.map_err(|e| ApiError::bad_request(format!("error decoding {} {}: {e}", res.kind, res.api_version())))?;
    let mut unknown = Vec::new();
    dropped("", obj, &typed, &mut unknown);
    Ok((typed, unknown))
}

/// Paths present (non-null) in `given` but absent from `kept`.
fn dropped(path: &str, given: &Value, kept: &Value, out: &mut Vec<String>) {
    match (given, kept) {
        (Value::Object(g), Value::Object(k)) => {
            for (key, gv) in g {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => dropped(&p, gv, kv, out),
                    None if gv.is_null() => {}
                    // Empty containers are dropped by the types' serializers; not unknown.
                    None if gv.as_object().is_some_and(|o| o.is_empty())
                        || gv.as_array().is_some_and(|a| a.is_empty()) => {}
                    None if known_omitted(key, gv) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(g), Value::Array(k)) => {
            for (i, (gv, kv)) in g.iter().zip(k.iter()).enumerate() {
                dropped(&format!("{path}[{i}]"), gv, kv, out);
            }
        }
        _ => {}
    }
}

/// Fields the typed serializers omit at their default value (false booleans and the like).
fn known_omitted(_key: &str, v: &Value) -> bool {
    matches!(v, Value::Bool(false)) || v.as_str() == Some("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_dropped_and_named() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "busybox", "imagee": "typo"}]}});
        let (typed, unknown) = normalize(pods, &pod).expect("normalize");
        assert_eq!(
            unknown,
            vec!["metadata.bogus".to_string(), "spec.containers[0].imagee".to_string()]
        );
        assert!(typed["spec"]["containers"][0].get("imagee").is_none());
        assert_eq!(typed["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn type_errors_are_400_with_the_cause() {
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": "two"}});
        let e = normalize(deploy, &d).expect_err("type error");
        assert_eq!(e.code, 400);
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }
}

//! Object metadata rules, as pure functions: what the server sets on create (uid,
//! creationTimestamp, generation, a name from generateName), what it keeps from the stored object
//! on update, when generation moves, and the resourceVersion <-> store revision mapping.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;

/// RFC 3339 with seconds, as Kubernetes writes `metav1.Time`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn now() -> String {
    timestamp(Utc::now())
}

/// `metadata`, created if missing. Errors when the body's metadata is not an object.
pub fn metadata_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object must be a JSON object"))?;
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if m.is_null() {
        *m = json!({});
    }
    m.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata: must be an object"))
}

pub fn str_field<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = obj;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str()
}

pub fn name(obj: &Value) -> Option<&str> {
    str_field(obj, &["metadata", "name"]).filter(|s| !s.is_empty())
}

pub fn namespace(obj: &Value) -> Option<&str> {
    str_field(obj, &["metadata", "namespace"]).filter(|s| !s.is_empty())
}

/// Parses a client-given resourceVersion. "" and absent are `None`.
pub fn parse_rv(rv: Option<&str>) -> ApiResult<Option<i64>> {
    match rv {
        None | Some("") => Ok(None),
        Some(s) => s.parse::<i64>().ok().filter(|v| *v >= 0).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {s:?}: must be a non-negative integer"
            ))
        }),
    }
}

/// Sets the type fields and the resourceVersion on an object read from the store.
pub fn stamp_read(obj: &mut Value, res: &Resource, mod_revision: i64) {
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), json!(res.api_version()));
        o.insert("kind".into(), json!(res.kind));
        if let Some(Value::Object(m)) = o.get_mut("metadata") {
            m.insert("resourceVersion".into(), json!(mod_revision.to_string()));
        }
    }
}

/// Prepares a new object: namespace from the URL, name (or one from generateName), uid,
/// creationTimestamp, generation 1; fields a client may not set are cleared.
pub fn prepare_create(obj: &mut Value, res: &Resource, url_namespace: Option<&str>) -> ApiResult<()> {
    let api_version = res.api_version();
    if let Some(o) = obj.as_object_mut() {
        match o.get("apiVersion").and_then(Value::as_str) {
            Some(v) if v != api_version => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )))
            }
            _ => {}
        }
        match o.get("kind").and_then(Value::as_str) {
            Some(k) if k != res.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.kind
                )))
            }
            _ => {}
        }
        o.insert("apiVersion".into(), json!(api_version));
        o.insert("kind".into(), json!(res.kind));
    }
    let m = metadata_mut(obj)?;
    if res.namespaced {
        let ns = url_namespace.unwrap_or("default");
        match m.get("namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != ns => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object does not match the namespace sent on the request ({given} vs {ns})"
                )))
            }
            _ => {}
        }
        m.insert("namespace".into(), json!(ns));
    } else {
        m.remove("namespace");
    }
    let has_name = m.get("name").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if !has_name {
        if let Some(prefix) = m.get("generateName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            let name = generate_name(prefix);
            m.insert("name".into(), json!(name));
        }
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now()));
    m.insert("generation".into(), json!(1));
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("selfLink");
    Ok(())
}

/// `prefix` + 5 random characters from Kubernetes' alphabet (no vowels, no look-alikes).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    let max_prefix = 63 - 5;
    let p = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{p}{suffix}")
}

/// Carries the server-owned metadata of `old` into `new` for an update, and bumps generation
/// when anything but metadata and status changed (Kubernetes' rule for built-in types with a
/// status subresource; for the others any non-metadata change counts).
pub fn prepare_update(new: &mut Value, old: &Value, res: &Resource) -> ApiResult<()> {
    if let Some(o) = new.as_object_mut() {
        o.insert("apiVersion".into(), json!(res.api_version()));
        o.insert("kind".into(), json!(res.kind));
    }
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let m = metadata_mut(new)?;
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "namespace",
    ] {
        match old_meta.get(f) {
            Some(v) => m.insert(f.into(), v.clone()),
            None => m.remove(f),
        };
    }
    m.remove("resourceVersion");
    m.remove("selfLink");
    let old_gen = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
    let gen = if spec_changed(new, old, res) {
        old_gen + 1
    } else {
        old_gen
    };
    metadata_mut(new)?.insert("generation".into(), json!(gen));
    Ok(())
}

/// True when the part of the object that generation tracks differs.
fn spec_changed(new: &Value, old: &Value, res: &Resource) -> bool {
    let has_status = res.has_subresource("status");
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            o.remove("apiVersion");
            o.remove("kind");
            if has_status {
                o.remove("status");
            }
        }
        v
    };
    strip(new) != strip(old)
}

/// For a write through a main resource with a status subresource: the stored status is kept
/// (status changes go through `/status`). For a write through `/status`: only the status is
/// taken from the request.
pub fn merge_status(new: &mut Value, old: &Value, through_status: bool) {
    if through_status {
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        if let Some(o) = merged.as_object_mut() {
            match status {
                Some(s) => o.insert("status".into(), s),
                None => o.remove("status"),
            };
            // Labels and annotations may change through /status too in Kubernetes; keep the
            // rest of metadata from the stored object.
            if let (Some(Value::Object(nm)), Some(Value::Object(om))) = (new.get("metadata"), o.get_mut("metadata")) {
                for f in ["labels", "annotations", "resourceVersion"] {
                    match nm.get(f) {
                        Some(v) => om.insert(f.into(), v.clone()),
                        None => om.remove(f),
                    };
                }
            }
        }
        *new = merged;
    } else if let Some(o) = new.as_object_mut() {
        match old.get("status") {
            Some(s) => o.insert("status".into(), s.clone()),
            None => o.remove("status"),
        };
    }
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn create_fills_server_fields_and_generates_names() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let mut pod = json!({"metadata": {"generateName": "web-", "resourceVersion": "5"}, "spec": {}});
        prepare_create(&mut pod, pods, Some("ns1")).expect("prepare");
        let name = name(&pod).expect("name").to_string();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(namespace(&pod), Some("ns1"));
        assert_eq!(pod["metadata"]["generation"], 1);
        assert!(pod["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
        assert!(pod["metadata"].get("resourceVersion").is_none());
        assert_eq!(pod["kind"], "Pod");

        let mut wrong = json!({"metadata": {"name": "a", "namespace": "other"}});
        let e = prepare_create(&mut wrong, pods, Some("ns1")).expect_err("mismatch");
        assert_eq!(e.code, 400);
        let mut wrong_kind = json!({"kind": "Service", "metadata": {"name": "a"}});
        assert_eq!(prepare_create(&mut wrong_kind, pods, None).expect_err("kind").code, 400);
    }

    #[test]
    fn generation_moves_on_spec_changes_only() {
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        let old = json!({"metadata": {"name": "d", "uid": "u1", "generation": 3, "creationTimestamp": "t"},
                         "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut same = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        prepare_update(&mut same, &old, deploy).expect("update");
        assert_eq!(same["metadata"]["generation"], 3);
        assert_eq!(same["metadata"]["uid"], "u1");
        let mut scaled = json!({"metadata": {"name": "d", "uid": "forged"}, "spec": {"replicas": 2}});
        prepare_update(&mut scaled, &old, deploy).expect("update");
        assert_eq!(scaled["metadata"]["generation"], 4);
        assert_eq!(scaled["metadata"]["uid"], "u1");
    }

    #[test]
    fn status_is_owned_by_the_status_subresource() {
        let old =
            json!({"metadata": {"name": "p", "labels": {"x": "1"}}, "spec": {"a": 1}, "status": {"phase": "Running"}});
        let mut main = json!({"metadata": {"name": "p"}, "spec": {"a": 2}, "status": {"phase": "Failed"}});
        merge_status(&mut main, &old, false);
        assert_eq!(main["status"]["phase"], "Running");
        assert_eq!(main["spec"]["a"], 2);
        let mut st = json!({"metadata": {"name": "p"}, "spec": {"a": 3}, "status": {"phase": "Succeeded"}});
        merge_status(&mut st, &old, true);
        assert_eq!(st["status"]["phase"], "Succeeded");
        assert_eq!(st["spec"]["a"], 1);
        assert!(st["metadata"].get("labels").is_none());
    }

    #[test]
    fn resource_versions_parse_strictly() {
        assert_eq!(parse_rv(None).expect("none"), None);
        assert_eq!(parse_rv(Some("")).expect("empty"), None);
        assert_eq!(parse_rv(Some("42")).expect("42"), Some(42));
        assert_eq!(parse_rv(Some("x1")).expect_err("bad").code, 400);
        assert_eq!(parse_rv(Some("-1")).expect_err("neg").code, 400);
    }
}

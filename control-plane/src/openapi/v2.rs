//! `/openapi/v2` as Swagger 2.0 JSON, converted from the v3 documents: every group version's
//! paths, and definitions under `#/definitions/`.
//!
//! kubectl 1.32 never reads this: it fetches `/openapi/v2` only when the v3 documents fail, and
//! then only as protobuf (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`),
//! which it parses with `proto.Unmarshal`; JSON there is an error to it. The JSON is for other
//! clients that ask for `application/json`.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use super::{cache, REF_PREFIX};
use crate::discovery::GIT_VERSION;

/// The Swagger 2.0 document of everything served, built once.
pub fn v2_json() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_vec(&build()).unwrap_or_default())
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for entry in cache() {
        let doc: Value = serde_json::from_slice(&entry.get().0).unwrap_or(Value::Null);
        if let Some(schemas) = doc.pointer("/components/schemas").and_then(Value::as_object) {
            for (name, schema) in schemas {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| retarget_refs(schema.clone()));
            }
        }
        if let Some(v3_paths) = doc.get("paths").and_then(Value::as_object) {
            for (path, item) in v3_paths {
                paths.insert(path.clone(), path_item(item));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

/// `#/components/schemas/X` -> `#/definitions/X`, everywhere in `v`.
fn retarget_refs(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref") {
                    if let Some(name) = r.strip_prefix(REF_PREFIX) {
                        *r = format!("#/definitions/{name}");
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = match key.as_str() {
            "parameters" => parameters(value),
            "get" | "put" | "post" | "delete" | "patch" => operation(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

/// v3 `{name, in, schema: {type}}` -> v2 `{name, in, type}`.
fn parameters(params: &Value) -> Value {
    let converted: Vec<Value> = params
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut out = p.as_object().cloned().unwrap_or_default();
            if let Some(Value::Object(schema)) = out.remove("schema") {
                out.extend(schema);
            }
            Value::Object(out)
        })
        .collect();
    Value::Array(converted)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut params = match op.get("parameters") {
        Some(p) => parameters(p),
        None => json!([]),
    };
    for (key, value) in op.as_object().into_iter().flatten() {
        match key.as_str() {
            "parameters" => {}
            "requestBody" => {
                let content = value.get("content").and_then(Value::as_object);
                let consumes: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                let schema = content
                    .and_then(|c| c.values().next())
                    .and_then(|m| m.get("schema"))
                    .cloned();
                if let (Some(schema), Value::Array(list)) = (schema, &mut params) {
                    list.push(json!({"name": "body", "in": "body", "required": true, "schema": retarget_refs(schema)}));
                }
                out.insert("consumes".into(), json!(consumes));
            }
            "responses" => {
                let mut responses = Map::new();
                for (code, r) in value.as_object().into_iter().flatten() {
                    let mut converted = json!({"description": r.get("description").cloned().unwrap_or(json!(""))});
                    if let Some(schema) = r.pointer("/content/application~1json/schema") {
                        converted["schema"] = retarget_refs(schema.clone());
                    }
                    responses.insert(code.clone(), converted);
                }
                out.insert("responses".into(), Value::Object(responses));
                out.insert("produces".into(), json!(["application/json"]));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if params.as_array().is_some_and(|p| !p.is_empty()) {
        out.insert("parameters".into(), params);
    }
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swagger_document_with_definitions() {
        let doc: Value = serde_json::from_slice(v2_json()).expect("json");
        assert_eq!(doc["swagger"], "2.0");
        let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert_eq!(
            pod["properties"]["spec"]["allOf"][0]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        assert!(doc["definitions"].get("io.k8s.api.apps.v1.Deployment").is_some());
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        let params = patch["parameters"].as_array().expect("params");
        assert!(params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["type"] == "string"));
        assert!(params.iter().any(|p| p["in"] == "body"));
        assert!(patch["consumes"]
            .as_array()
            .expect("consumes")
            .contains(&json!("application/strategic-merge-patch+json")));
        assert_eq!(
            patch["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
        assert!(!String::from_utf8_lossy(v2_json()).contains("#/components/"));
    }
}

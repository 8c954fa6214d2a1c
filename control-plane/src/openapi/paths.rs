//! The `paths` of a group version's OpenAPI document: for each resource its collection, its
//! all-namespaces list, its item and its subresources, with operations named and tagged as
//! Kubernetes names them (`patchAppsV1NamespacedDeploymentStatus`, tag `apps_v1`).
//!
//! What kubectl reads here: the `x-kubernetes-group-version-kind` of each operation (a single
//! object), whether a PATCH takes the `fieldValidation` query parameter, whether it accepts
//! `application/strategic-merge-patch+json`, and (for explain) which kind a path serves.

use serde_json::{json, Map, Value};

use super::{gvk, kind_schema, schema_ref, DELETE_OPTIONS, PATCH, STATUS};
use crate::discovery::subresource;
use crate::registry::Resource;

const OK: &[(&str, &str)] = &[("200", "OK")];
const CREATED: &[(&str, &str)] = &[("200", "OK"), ("201", "Created"), ("202", "Accepted")];
const UPDATED: &[(&str, &str)] = &[("200", "OK"), ("201", "Created")];
const DELETED: &[(&str, &str)] = &[("200", "OK"), ("202", "Accepted")];

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

/// Parameters of POST, PUT and PATCH; kubectl checks `fieldValidation` on PATCH.
fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid values: All.",
        ),
        query(
            "fieldManager",
            "string",
            "A name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "How the server handles unknown or duplicate fields in the request: Ignore, Warn (the default) or Strict.",
        ),
    ];
    if patch {
        params.push(query(
            "force",
            "boolean",
            "Force Apply requests: re-acquire fields owned by other managers.",
        ));
    }
    params
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "Requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue token of the previous page of a list.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        query(
            "limit",
            "integer",
            "The maximum number of responses to return for a list call.",
        ),
        query(
            "resourceVersion",
            "string",
            "A constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "How resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "With watch=true, start the watch with synthetic events of the state.",
        ),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query("watch", "boolean", "Watch for changes to the described resources."),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated: please use the PropagationPolicy.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection is done: Orphan, Background, Foreground.",
        ),
    ]
}

fn json_body(schema: &Value) -> Value {
    json!({"content": {"application/json": {"schema": schema}}})
}

fn patch_body() -> Value {
    let schema = schema_ref(PATCH);
    json!({"required": true, "content": {
        "application/apply-patch+yaml": {"schema": schema},
        "application/json-patch+json": {"schema": schema},
        "application/merge-patch+json": {"schema": schema},
        "application/strategic-merge-patch+json": {"schema": schema},
    }})
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `CoreV1` / `core_v1`, `RbacAuthorizationV1` / `rbacAuthorization_v1`.
struct OpNames {
    group_version: String,
    tag: String,
}

impl OpNames {
    fn new(r: &Resource) -> Self {
        let group = if r.group.is_empty() {
            "core"
        } else {
            r.group.trim_end_matches(".k8s.io")
        };
        let mut words = group.split('.');
        let first = words.next().unwrap_or_default();
        let rest: String = words.map(capitalize).collect();
        Self {
            group_version: format!("{}{rest}{}", capitalize(first), capitalize(r.version)),
            tag: format!("{first}{rest}_{}", r.version),
        }
    }
}

/// One operation, built up and finished by its responses.
struct Op(Map<String, Value>);

impl Op {
    /// `id_verb` + group version + `target` make the operationId (`read` `CoreV1` `NamespacedPod`).
    fn new(names: &OpNames, id_verb: &str, action: &str, target: &str, gvk: &Value) -> Self {
        let mut o = Map::new();
        o.insert("description".into(), json!(format!("{action} {target}")));
        o.insert(
            "operationId".into(),
            json!(format!("{id_verb}{}{target}", names.group_version)),
        );
        o.insert("tags".into(), json!([names.tag]));
        o.insert("x-kubernetes-action".into(), json!(action));
        o.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
        Op(o)
    }

    fn params(mut self, params: Vec<Value>) -> Self {
        self.0.insert("parameters".into(), Value::Array(params));
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.0.insert("requestBody".into(), body);
        self
    }

    fn responds(mut self, codes: &[(&str, &str)], schema: &Value) -> Value {
        let mut out = Map::new();
        for (code, description) in codes {
            let mut r = json_body(schema);
            r["description"] = json!(description);
            out.insert((*code).to_string(), r);
        }
        out.insert("401".into(), json!({"description": "Unauthorized"}));
        self.0.insert("responses".into(), Value::Object(out));
        Value::Object(self.0)
    }
}

/// Adds the paths of one resource whose kind's schema is named `item`.
pub(super) fn resource_paths(r: &Resource, item: &str, paths: &mut Map<String, Value>) {
    let names = OpNames::new(r);
    let kind_gvk = gvk(r.group, r.version, r.kind);
    let item_ref = schema_ref(item);
    let list_ref = schema_ref(&format!("{item}List"));
    let status_ref = schema_ref(STATUS);
    let delete_body = json_body(&schema_ref(DELETE_OPTIONS));
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let target = format!("{scope}{}", r.kind);
    let cluster_path = r.collection_path(None);
    let collection = if r.namespaced {
        format!(
            "{}namespaces/{{namespace}}/{}",
            cluster_path.trim_end_matches(r.plural),
            r.plural
        )
    } else {
        cluster_path.clone()
    };
    let pretty = query("pretty", "string", "If 'true', then the output is pretty printed.");
    let namespace = r.namespaced.then(|| {
        path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        )
    });

    let op = |id_verb: &str, action: &str, target: &str, gvk: &Value| Op::new(&names, id_verb, action, target, gvk);
    let mut delete_collection = delete_params();
    delete_collection.extend(list_params());
    let collection_ops = json!({
        "parameters": namespace.iter().chain([&pretty]).collect::<Vec<_>>(),
        "get": op("list", "list", &target, &kind_gvk).params(list_params()).responds(OK, &list_ref),
        "post": op("create", "post", &target, &kind_gvk)
            .params(write_params(false))
            .body(json_body(&item_ref))
            .responds(CREATED, &item_ref),
        "delete": op("delete", "deletecollection", &format!("Collection{target}"), &kind_gvk)
            .params(delete_collection)
            .body(delete_body.clone())
            .responds(OK, &status_ref),
    });
    paths.insert(collection.clone(), collection_ops);
    if r.namespaced {
        let all = format!("{}ForAllNamespaces", r.kind);
        let list_all = op("list", "list", &all, &kind_gvk)
            .params(list_params())
            .responds(OK, &list_ref);
        paths.insert(cluster_path, json!({"parameters": [pretty.clone()], "get": list_all}));
    }

    let item_path = format!("{collection}/{{name}}");
    let name_param = path_param("name", &format!("name of the {}", r.kind));
    let item_params: Vec<&Value> = [&name_param].into_iter().chain(&namespace).chain([&pretty]).collect();
    let item_ops = json!({
        "parameters": item_params,
        "get": op("read", "get", &target, &kind_gvk).responds(OK, &item_ref),
        "put": op("replace", "put", &target, &kind_gvk)
            .params(write_params(false))
            .body(json_body(&item_ref))
            .responds(UPDATED, &item_ref),
        "patch": op("patch", "patch", &target, &kind_gvk)
            .params(write_params(true))
            .body(patch_body())
            .responds(UPDATED, &item_ref),
        "delete": op("delete", "delete", &target, &kind_gvk)
            .params(delete_params())
            .body(delete_body)
            .responds(DELETED, &status_ref),
    });
    paths.insert(item_path.clone(), item_ops);

    for sub in r.subresources {
        let s = subresource(r, sub);
        let (g, v) = s.group_version.unwrap_or((r.group, r.version));
        let sub_gvk = gvk(g, v, &s.kind);
        let string = json!({"type": "string"});
        let sub_ref = kind_schema(g, v, &s.kind).map_or_else(|| string.clone(), |k| schema_ref(&(k.name)()));
        let sub_target = format!("{target}{}", capitalize(sub));
        let mut ops = Map::new();
        let mut params: Vec<Value> = [&name_param].into_iter().chain(&namespace).cloned().collect();
        match *sub {
            "log" => {
                ops.insert(
                    "get".into(),
                    op("read", "get", &sub_target, &sub_gvk).responds(OK, &string),
                );
            }
            "exec" | "attach" | "portforward" => {
                for verb in ["get", "post"] {
                    let connect = op(
                        "connect",
                        "connect",
                        &format!("{}{sub_target}", capitalize(verb)),
                        &sub_gvk,
                    );
                    ops.insert(verb.into(), connect.responds(OK, &string));
                }
            }
            "binding" | "eviction" | "token" => {
                let create = op("create", "post", &sub_target, &sub_gvk).params(write_params(false));
                ops.insert(
                    "post".into(),
                    create.body(json_body(&sub_ref)).responds(CREATED, &sub_ref),
                );
            }
            "finalize" => {
                let replace = op("replace", "put", &sub_target, &sub_gvk).params(write_params(false));
                ops.insert(
                    "put".into(),
                    replace.body(json_body(&sub_ref)).responds(UPDATED, &sub_ref),
                );
            }
            "proxy" => continue,
            // status, scale, ephemeralcontainers: read-modify-write of the subresource's kind.
            _ => {
                ops.insert(
                    "get".into(),
                    op("read", "get", &sub_target, &sub_gvk).responds(OK, &sub_ref),
                );
                let replace = op("replace", "put", &sub_target, &sub_gvk).params(write_params(false));
                ops.insert(
                    "put".into(),
                    replace.body(json_body(&sub_ref)).responds(UPDATED, &sub_ref),
                );
                let patch = op("patch", "patch", &sub_target, &sub_gvk).params(write_params(true));
                ops.insert("patch".into(), patch.body(patch_body()).responds(UPDATED, &sub_ref));
                params.push(pretty.clone());
            }
        }
        ops.insert("parameters".into(), Value::Array(params));
        paths.insert(format!("{item_path}/{sub}"), Value::Object(ops));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    #[test]
    fn operation_names_follow_kubernetes() {
        let rbac = registry::lookup("rbac.authorization.k8s.io", "v1", "roles").expect("roles");
        let names = OpNames::new(rbac);
        assert_eq!(names.group_version, "RbacAuthorizationV1");
        assert_eq!(names.tag, "rbacAuthorization_v1");
        let pods = registry::lookup("", "v1", "pods").expect("pods");
        let mut paths = Map::new();
        resource_paths(pods, "io.k8s.api.core.v1.Pod", &mut paths);
        let item = &paths["/api/v1/namespaces/{namespace}/pods/{name}"];
        assert_eq!(item["patch"]["operationId"], "patchCoreV1NamespacedPod");
        assert_eq!(item["parameters"][0]["name"], "name");
        assert_eq!(item["parameters"][1]["name"], "namespace");
        assert_eq!(
            paths["/api/v1/pods"]["get"]["operationId"],
            "listCoreV1PodForAllNamespaces"
        );
        let exec = &paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
        assert_eq!(exec["post"]["operationId"], "connectCoreV1PostNamespacedPodExec");
        assert_eq!(exec["get"]["x-kubernetes-group-version-kind"]["kind"], "PodExecOptions");
        let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
        assert_eq!(
            eviction["x-kubernetes-group-version-kind"],
            json!({"group": "policy", "kind": "Eviction", "version": "v1"})
        );
        assert_eq!(
            eviction["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.policy.v1.Eviction"
        );
        let nodes = registry::lookup("", "v1", "nodes").expect("nodes");
        resource_paths(nodes, "io.k8s.api.core.v1.Node", &mut paths);
        assert_eq!(
            paths["/api/v1/nodes/{name}"]["parameters"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            paths["/api/v1/nodes"]["delete"]["operationId"],
            "deleteCoreV1CollectionNode"
        );
    }
}

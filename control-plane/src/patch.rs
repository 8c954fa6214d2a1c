//! The PATCH bodies of the Kubernetes API, applied to an object's JSON:
//!
//! | content type                             | function                      |
//! |------------------------------------------|-------------------------------|
//! | `application/json-patch+json`            | [`json_patch()`] (RFC 6902)   |
//! | `application/merge-patch+json`           | [`merge_patch`] (RFC 7386)    |
//! | `application/strategic-merge-patch+json` | [`strategic_merge_patch`]     |
//!
//! (`application/apply-patch+yaml`, server-side apply, lives elsewhere.)
//!
//! Pure: the stored object and the request body in, the patched object or an error out.
//!
//! # Strategic merge
//!
//! A JSON merge patch in which lists are not always replaced: what happens to a field is decided
//! by the `patchStrategy`/`patchMergeKey` struct tags of its Go type in k8s.io/api. The tags are
//! transcribed into `TypeRules` tables below (from `core/v1/types.go`, `apps/v1/types.go`,
//! `batch/v1/types.go`, `policy/v1/types.go`, `autoscaling/v2/types.go` and apimachinery's
//! `meta/v1/types.go`); to support another kind or field, add its struct to the tables. Semantics,
//! after apimachinery's `strategicpatch` package as the API server runs it:
//!
//! - maps merge key by key; `null` deletes a key; a map whose patch has `$patch: replace` is
//!   replaced by the rest of the patch, and `$patch: delete` empties it;
//! - a list tagged `merge` with a merge key is merged element by element on that key: an element
//!   whose key is already present is merged recursively, a new one is appended, an element
//!   `{"$patch": "delete", <key>: v}` removes the match, and an element `{"$patch": "replace"}`
//!   makes the patch's elements the whole list; a `merge` list of scalars is a set union;
//! - any other list is replaced;
//! - `$retainKeys: [..]` drops the keys of the original map not listed;
//!   `$deleteFromPrimitiveList/<field>: [..]` removes those values from a scalar list;
//!   `$setElementOrder/<field>: [..]` orders the merged list (see `order_elements`);
//! - values new to the object are cleaned of directives and nulls before they are stored.
//!
//! Kinds without a table (custom resources, for instance) get the metadata rules and plain
//! merge semantics; Kubernetes refuses strategic merge for custom resources, which is the caller's
//! decision to make.

use serde_json::{Map, Value};
use thiserror::Error;

/// Why a patch could not be applied. Suggested statuses: `InvalidJson` and `InvalidDirective`
/// are 400 Bad Request, `InvalidPatch` 422 Unprocessable Entity (as Kubernetes answers).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatchError {
    /// The body is not JSON, or not JSON of the shape the patch type requires.
    #[error("invalid JSON in patch: {message}")]
    InvalidJson { message: String },
    /// A `$patch`, `$retainKeys`, `$setElementOrder` or `$deleteFromPrimitiveList` directive that
    /// is malformed.
    #[error("invalid strategic merge patch directive: {message}")]
    InvalidDirective { message: String },
    /// A well-formed patch that cannot apply to this object (a failing JSON patch operation,
    /// including `test`; a merge-list element without its merge key).
    #[error("{message}")]
    InvalidPatch { message: String },
}

/// Kubernetes refuses JSON patches with more operations than this.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Applies an RFC 6902 JSON patch. Atomic: on error nothing is applied.
pub fn json_patch(doc: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_slice(patch).map_err(|e| PatchError::InvalidJson { message: e.to_string() })?;
    if ops.0.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::InvalidPatch {
            message: format!(
                "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
                ops.0.len()
            ),
        });
    }
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| PatchError::InvalidPatch { message: e.to_string() })?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else replaces.
/// The patch must be an object, as the API server requires.
pub fn merge_patch(doc: &Value, patch: &[u8]) -> Result<Value, PatchError> {
    let patch = Value::Object(parse_object_patch(patch)?);
    let mut out = doc.clone();
    json_patch::merge(&mut out, &patch);
    Ok(out)
}

/// Applies a strategic merge patch to an object of the given API group (`""` for core) and kind.
pub fn strategic_merge_patch(doc: &Value, patch: &[u8], group: &str, kind: &str) -> Result<Value, PatchError> {
    let patch = parse_object_patch(patch)?;
    // A stored object is always a JSON object; anything else is treated like a missing one (as a
    // merge patch would replace it).
    let mut original = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_map(&mut original, &patch, Some(kind_rules(group, kind)))?;
    Ok(Value::Object(original))
}

fn parse_object_patch(patch: &[u8]) -> Result<Map<String, Value>, PatchError> {
    match serde_json::from_slice(patch) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(PatchError::InvalidJson {
            message: format!("patch must be a JSON object, got {other}"),
        }),
        Err(e) => Err(PatchError::InvalidJson { message: e.to_string() }),
    }
}

// ---------------------------------------------------------------------------------------------
// The strategy table.
// ---------------------------------------------------------------------------------------------

/// What a field's `patchStrategy`/`patchMergeKey` tags say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStrategy {
    /// No tag: a map merges key by key, a list is replaced.
    Default,
    /// `patchStrategy:"replace"`: the value is replaced wholesale, even a map.
    Replace,
    /// `patchStrategy:"merge"` on a list of scalars: set union.
    MergeScalars,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"` on a list of objects.
    MergeByKey(&'static str),
    /// `patchStrategy:"retainKeys"` on a struct: clients send `$retainKeys`; merging is otherwise
    /// the default (the directive is honoured wherever it appears).
    RetainKeys,
}

/// The tagged fields of one Go struct type and the struct types nested in it, by JSON name.
/// A list field's entry in `nested` is the type of its elements.
#[derive(Debug)]
struct TypeRules {
    fields: &'static [(&'static str, FieldStrategy)],
    nested: &'static [(&'static str, &'static TypeRules)],
}

impl TypeRules {
    fn strategy(&self, field: &str) -> FieldStrategy {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map_or(FieldStrategy::Default, |(_, s)| *s)
    }

    fn child(&self, field: &str) -> Option<&'static TypeRules> {
        self.nested.iter().find(|(name, _)| *name == field).map(|(_, t)| *t)
    }
}

use FieldStrategy::{MergeByKey, MergeScalars, Replace, RetainKeys};

/// metav1.ObjectMeta.
static OBJECT_META: TypeRules = TypeRules {
    fields: &[("ownerReferences", MergeByKey("uid")), ("finalizers", MergeScalars)],
    nested: &[],
};

/// core/v1 Container and EphemeralContainerCommon.
static CONTAINER: TypeRules = TypeRules {
    fields: &[
        ("ports", MergeByKey("containerPort")),
        ("env", MergeByKey("name")),
        ("volumeMounts", MergeByKey("mountPath")),
        ("volumeDevices", MergeByKey("devicePath")),
    ],
    nested: &[],
};

/// core/v1 PodSpec. `tolerations` carries no tag, so it is replaced.
static POD_SPEC: TypeRules = TypeRules {
    fields: &[
        ("volumes", MergeByKey("name")), // merge,retainKeys
        ("initContainers", MergeByKey("name")),
        ("containers", MergeByKey("name")),
        ("ephemeralContainers", MergeByKey("name")),
        ("imagePullSecrets", MergeByKey("name")),
        ("hostAliases", MergeByKey("ip")),
        ("topologySpreadConstraints", MergeByKey("topologyKey")),
        ("schedulingGates", MergeByKey("name")),
        ("resourceClaims", MergeByKey("name")), // merge,retainKeys
    ],
    nested: &[
        ("initContainers", &CONTAINER),
        ("containers", &CONTAINER),
        ("ephemeralContainers", &CONTAINER),
    ],
};

/// core/v1 PodStatus.
static POD_STATUS: TypeRules = TypeRules {
    fields: &[
        ("conditions", MergeByKey("type")),
        ("hostIPs", MergeByKey("ip")),
        ("podIPs", MergeByKey("ip")),
        ("resourceClaimStatuses", MergeByKey("name")), // merge,retainKeys
    ],
    nested: &[],
};

/// core/v1 PodTemplateSpec.
static POD_TEMPLATE_SPEC: TypeRules = TypeRules {
    fields: &[],
    nested: &[("metadata", &OBJECT_META), ("spec", &POD_SPEC)],
};

/// The status of the workload kinds whose only tagged status field is `conditions` by `type`
/// (Deployment, ReplicaSet, DaemonSet, StatefulSet, ReplicationController, Job, Namespace,
/// PersistentVolumeClaim, Service, PodDisruptionBudget, HorizontalPodAutoscaler).
static CONDITIONS_STATUS: TypeRules = TypeRules {
    fields: &[("conditions", MergeByKey("type"))],
    nested: &[],
};

/// A spec whose only nested rule is its pod `template` (ReplicaSet, DaemonSet, StatefulSet,
/// ReplicationController, Job).
static TEMPLATED_SPEC: TypeRules = TypeRules {
    fields: &[],
    nested: &[("template", &POD_TEMPLATE_SPEC)],
};

/// apps/v1 DeploymentSpec.
static DEPLOYMENT_SPEC: TypeRules = TypeRules {
    fields: &[("strategy", RetainKeys)],
    nested: &[("template", &POD_TEMPLATE_SPEC)],
};

/// batch/v1 JobTemplateSpec and CronJobSpec.
static JOB_TEMPLATE_SPEC: TypeRules = TypeRules {
    fields: &[],
    nested: &[("metadata", &OBJECT_META), ("spec", &TEMPLATED_SPEC)],
};
static CRON_JOB_SPEC: TypeRules = TypeRules {
    fields: &[],
    nested: &[("jobTemplate", &JOB_TEMPLATE_SPEC)],
};

/// core/v1 ServiceSpec.
static SERVICE_SPEC: TypeRules = TypeRules {
    fields: &[("ports", MergeByKey("port"))],
    nested: &[],
};

/// core/v1 NodeSpec (`taints` carries no tag, so it is replaced) and NodeStatus.
static NODE_SPEC: TypeRules = TypeRules {
    fields: &[("podCIDRs", MergeScalars)],
    nested: &[],
};
static NODE_STATUS: TypeRules = TypeRules {
    fields: &[("conditions", MergeByKey("type")), ("addresses", MergeByKey("type"))],
    nested: &[],
};

/// policy/v1 PodDisruptionBudgetSpec.
static PDB_SPEC: TypeRules = TypeRules {
    fields: &[("selector", Replace)],
    nested: &[],
};

/// Builds a kind's top-level rules from its spec and status types.
macro_rules! kind {
    ($name:ident, fields: $fields:expr, nested: [$($nested:tt)*]) => {
        static $name: TypeRules = TypeRules { fields: $fields, nested: &[("metadata", &OBJECT_META), $($nested)*] };
    };
}

kind!(POD, fields: &[], nested: [("spec", &POD_SPEC), ("status", &POD_STATUS)]);
kind!(POD_TEMPLATE, fields: &[], nested: [("template", &POD_TEMPLATE_SPEC)]);
kind!(DEPLOYMENT, fields: &[], nested: [("spec", &DEPLOYMENT_SPEC), ("status", &CONDITIONS_STATUS)]);
kind!(TEMPLATED_WORKLOAD, fields: &[], nested: [("spec", &TEMPLATED_SPEC), ("status", &CONDITIONS_STATUS)]);
kind!(CRON_JOB, fields: &[], nested: [("spec", &CRON_JOB_SPEC)]);
kind!(SERVICE, fields: &[], nested: [("spec", &SERVICE_SPEC), ("status", &CONDITIONS_STATUS)]);
kind!(NODE, fields: &[], nested: [("spec", &NODE_SPEC), ("status", &NODE_STATUS)]);
kind!(WITH_CONDITIONS, fields: &[], nested: [("status", &CONDITIONS_STATUS)]);
kind!(SERVICE_ACCOUNT, fields: &[("secrets", MergeByKey("name"))], nested: []);
kind!(PDB, fields: &[], nested: [("spec", &PDB_SPEC), ("status", &CONDITIONS_STATUS)]);
kind!(ANY_OBJECT, fields: &[], nested: []);

/// The rules of a kind; kinds with no tagged field beyond ObjectMeta's (ConfigMap, Secret,
/// Endpoints and EndpointSlice, whose lists are untagged and so replaced, Lease, Event, RBAC...)
/// and unknown kinds get `ANY_OBJECT`.
fn kind_rules(group: &str, kind: &str) -> &'static TypeRules {
    match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet" | "DaemonSet" | "StatefulSet") | ("", "ReplicationController") | ("batch", "Job") => {
            &TEMPLATED_WORKLOAD
        }
        ("batch", "CronJob") => &CRON_JOB,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace" | "PersistentVolumeClaim") | ("autoscaling", "HorizontalPodAutoscaler") => &WITH_CONDITIONS,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("policy", "PodDisruptionBudget") => &PDB,
        _ => &ANY_OBJECT,
    }
}

/// The strategy of the field at a dotted JSON path within a kind (`spec.template.spec.containers`;
/// list elements add no segment: `spec.containers.env`).
pub fn field_strategy(group: &str, kind: &str, path: &str) -> FieldStrategy {
    let mut rules = Some(kind_rules(group, kind));
    let mut segments = path.split('.').peekable();
    while let Some(seg) = segments.next() {
        let Some(current) = rules else { break };
        if segments.peek().is_none() {
            return current.strategy(seg);
        }
        rules = current.child(seg);
    }
    FieldStrategy::Default
}

// ---------------------------------------------------------------------------------------------
// The merge.
// ---------------------------------------------------------------------------------------------

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn directive_error(message: String) -> PatchError {
    PatchError::InvalidDirective { message }
}

/// The strings of a directive's list value.
fn directive_list<'a>(name: &str, v: &'a Value) -> Result<&'a Vec<Value>, PatchError> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(directive_error(format!("{name} must be a list, got {other}"))),
    }
}

/// Merges `patch` into `original`, `rules` describing the struct type the map is (if known).
fn merge_map(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    rules: Option<&'static TypeRules>,
) -> Result<(), PatchError> {
    if let Some(directive) = patch.get(PATCH) {
        match directive.as_str() {
            Some("replace") => original.clear(),
            Some("delete") => {
                original.clear();
                return Ok(());
            }
            Some("merge") => {}
            _ => {
                return Err(directive_error(format!(
                    "unknown patch type: {directive} in map: {}",
                    Value::Object(patch.clone())
                )))
            }
        }
    }

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keep = directive_list(RETAIN_KEYS, retain)?;
        let keep: Vec<&str> = keep
            .iter()
            .map(|k| {
                k.as_str()
                    .ok_or_else(|| directive_error(format!("{RETAIN_KEYS} must list strings, got {k}")))
            })
            .collect::<Result<_, _>>()?;
        original.retain(|k, _| keep.contains(&k.as_str()));
    }

    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = directive_list(key, value)?;
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|item| !remove.contains(item));
            }
        }
    }

    for (key, value) in patch {
        if is_directive(key) {
            continue;
        }
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let strategy = rules.map_or(FieldStrategy::Default, |r| r.strategy(key));
        let child = rules.and_then(|r| r.child(key));
        let merged = match (original.remove(key), value) {
            (_, v) if strategy == Replace => clean(v, strategy, child)?,
            (Some(Value::Object(mut o)), Value::Object(p)) => {
                merge_map(&mut o, p, child)?;
                Value::Object(o)
            }
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, strategy, child, key)?),
            (_, v) => clean(v, strategy, child)?,
        };
        original.insert(key.clone(), merged);
    }

    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
            let order = directive_list(key, value)?;
            let strategy = rules.map_or(FieldStrategy::Default, |r| r.strategy(field));
            if let Some(Value::Array(items)) = original.get_mut(field) {
                let merge_key = match strategy {
                    MergeByKey(k) => Some(k),
                    _ => None,
                };
                order_elements(items, order, merge_key);
            }
        }
    }
    Ok(())
}

/// A patch value for a field the original lacks (or holds with another type): merged into
/// nothing, which strips directives and nulls the way the merge would.
fn clean(value: &Value, strategy: FieldStrategy, rules: Option<&'static TypeRules>) -> Result<Value, PatchError> {
    Ok(match value {
        Value::Object(p) => {
            let mut out = Map::new();
            merge_map(&mut out, p, rules)?;
            Value::Object(out)
        }
        Value::Array(p) => Value::Array(merge_list(Vec::new(), p, strategy, rules, "")?),
        other => other.clone(),
    })
}

/// Merges a patch list into an original list per the field's strategy. `field` names the list in
/// error messages.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    strategy: FieldStrategy,
    rules: Option<&'static TypeRules>,
    field: &str,
) -> Result<Vec<Value>, PatchError> {
    match strategy {
        MergeByKey(merge_key) => merge_keyed_list(original, patch, merge_key, rules, field),
        MergeScalars if patch.iter().chain(&original).all(|v| !v.is_object() && !v.is_array()) => {
            let mut out = original;
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(out)
        }
        _ => {
            // Replaced. Element directives mean nothing here (`replace` is what happens anyway,
            // `delete` of an element of a list being replaced leaves it out), so such elements
            // are dropped; the rest are cleaned.
            let mut out = Vec::with_capacity(patch.len());
            for v in patch {
                if v.get(PATCH).is_some() {
                    continue;
                }
                out.push(clean(v, FieldStrategy::Default, rules)?);
            }
            Ok(out)
        }
    }
}

fn merge_keyed_list(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    rules: Option<&'static TypeRules>,
    field: &str,
) -> Result<Vec<Value>, PatchError> {
    let missing_key = |el: &Value| PatchError::InvalidPatch {
        message: format!("map: {el} does not contain declared merge key: {merge_key} (in list {field:?})"),
    };
    let mut regular = Vec::with_capacity(patch.len());
    for el in patch {
        let Some(directive) = el.get(PATCH) else {
            regular.push(el);
            continue;
        };
        match directive.as_str() {
            Some("replace") => original.clear(),
            Some("delete") => {
                let key = el.get(merge_key).ok_or_else(|| missing_key(el))?;
                original.retain(|o| o.get(merge_key) != Some(key));
            }
            Some("merge") => regular.push(el),
            _ => {
                return Err(directive_error(format!(
                    "unknown patch type: {directive} in list element: {el}"
                )));
            }
        }
    }
    for el in regular {
        let Value::Object(el_map) = el else {
            return Err(missing_key(el));
        };
        let key = el_map.get(merge_key).ok_or_else(|| missing_key(el))?;
        match original.iter_mut().find(|o| o.get(merge_key) == Some(key)) {
            Some(Value::Object(existing)) => merge_map(existing, el_map, rules)?,
            _ => original.push(clean(el, FieldStrategy::Default, rules)?),
        }
    }
    Ok(original)
}

/// Applies `$setElementOrder`: the elements named in `order` are laid out in that order in the
/// positions such elements occupy, and elements it does not name (ones the server added, which
/// the client did not know of) keep their positions. Identity is the merge key for lists of
/// objects, the value for scalars. Kubernetes interleaves unnamed elements by their original
/// index instead; the two agree whenever `order` names every element.
fn order_elements(items: &mut [Value], order: &[Value], merge_key: Option<&str>) {
    let identity = |v: &Value| -> Option<Value> {
        match merge_key {
            Some(k) => v.get(k).cloned(),
            None if !v.is_object() => Some(v.clone()),
            None => None,
        }
    };
    let wanted: Vec<Value> = order.iter().filter_map(identity).collect();
    let rank = |v: &Value| identity(v).and_then(|id| wanted.iter().position(|w| *w == id));
    let slots: Vec<usize> = (0..items.len()).filter(|&i| rank(&items[i]).is_some()).collect();
    let mut named: Vec<Value> = slots.iter().map(|&i| items[i].clone()).collect();
    named.sort_by_key(|v| rank(v).unwrap_or(usize::MAX));
    for (slot, value) in slots.into_iter().zip(named) {
        items[slot] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(doc: Value, patch: Value, group: &str, kind: &str) -> Value {
        strategic_merge_patch(&doc, patch.to_string().as_bytes(), group, kind).unwrap()
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a"]},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                            {"name": "sidecar", "image": "proxy:1", "env": [{"name": "P", "value": "x"}]}
                        ],
                        "tolerations": [{"key": "a", "operator": "Exists"}],
                        "volumes": [{"name": "data", "emptyDir": {}}]
                    }
                }
            },
            "status": {"conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
            ]}
        })
    }

    fn containers(d: &Value) -> &Vec<Value> {
        d["spec"]["template"]["spec"]["containers"].as_array().unwrap()
    }

    // --- JSON patch ---

    #[test]
    fn json_patch_applies_operations() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2]}});
        let patch = br#"[
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
            {"op": "remove", "path": "/spec/list/0"},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "test", "path": "/spec/list/0", "value": 2}
        ]"#;
        let out = json_patch(&doc, patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a": "x", "b": "2"}}, "spec": {"list": [2, 3]}})
        );
    }

    #[test]
    fn json_patch_test_failure_is_an_error_naming_the_path() {
        let doc = json!({"metadata": {"resourceVersion": "5"}});
        let patch = br#"[{"op": "test", "path": "/metadata/resourceVersion", "value": "4"},
                         {"op": "add", "path": "/x", "value": 1}]"#;
        let err = json_patch(&doc, patch).unwrap_err();
        match &err {
            PatchError::InvalidPatch { message } => assert!(message.contains("/metadata/resourceVersion"), "{message}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_patch_errors() {
        let doc = json!({"a": 1});
        assert!(matches!(json_patch(&doc, b"{"), Err(PatchError::InvalidJson { .. })));
        assert!(matches!(
            json_patch(&doc, br#"{"op": "add"}"#),
            Err(PatchError::InvalidJson { .. })
        ));
        assert!(matches!(
            json_patch(&doc, br#"[{"op": "frobnicate", "path": "/a"}]"#),
            Err(PatchError::InvalidJson { .. })
        ));
        let missing = json_patch(&doc, br#"[{"op": "remove", "path": "/nope"}]"#).unwrap_err();
        assert!(missing.to_string().contains("/nope"), "{missing}");
        assert_eq!(json_patch(&doc, b"[]").unwrap(), doc);
    }

    #[test]
    fn json_patch_operation_limit() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/a", "value": 1}))
            .collect();
        let err = json_patch(&json!({"a": 1}), Value::Array(ops).to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("maximum operations"), "{err}");
    }

    // --- merge patch ---

    #[test]
    fn merge_patch_null_deletes_a_label() {
        let doc = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let out = merge_patch(&doc, br#"{"metadata": {"labels": {"tier": null, "new": "x"}}}"#).unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"app": "web", "new": "x"}}}));
    }

    #[test]
    fn merge_patch_replaces_lists() {
        let out = merge_patch(
            &deployment(),
            br#"{"spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}}"#,
        )
        .unwrap();
        assert_eq!(containers(&out), &vec![json!({"name": "only"})]);
        assert_eq!(out["spec"]["replicas"], 2);
    }

    #[test]
    fn merge_patch_requires_an_object() {
        assert!(matches!(
            merge_patch(&json!({}), b"[1]"),
            Err(PatchError::InvalidJson { .. })
        ));
        assert!(matches!(
            merge_patch(&json!({}), b"not json"),
            Err(PatchError::InvalidJson { .. })
        ));
    }

    // --- strategic merge: the brief's cases ---

    #[test]
    fn changing_one_image_keeps_the_other_container_and_env() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}),
            "apps",
            "Deployment",
        );
        let cs = containers(&out);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["image"], "app:2");
        assert_eq!(
            cs[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(cs[0]["ports"], json!([{"containerPort": 80, "protocol": "TCP"}]));
        assert_eq!(cs[1], deployment()["spec"]["template"]["spec"]["containers"][1]);
    }

    #[test]
    fn patch_delete_removes_a_container() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}}}),
            "apps",
            "Deployment",
        );
        let names: Vec<&str> = containers(&out).iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["app"]);
    }

    #[test]
    fn patch_replace_replaces_the_list() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "new", "image": "n:1"}]}}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(containers(&out), &vec![json!({"name": "new", "image": "n:1"})]);
    }

    #[test]
    fn env_merges_by_name_and_null_deletes_inside_an_element() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}, {"$patch": "delete", "name": "A"}]},
                {"name": "sidecar", "image": null}
            ]}}}}),
            "apps",
            "Deployment",
        );
        let cs = containers(&out);
        assert_eq!(
            cs[0]["env"],
            json!([{"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(cs[1], json!({"name": "sidecar", "env": [{"name": "P", "value": "x"}]}));
    }

    #[test]
    fn new_container_is_appended_and_cleaned() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "debug", "image": "busybox", "args": null, "env": [{"name": "X", "value": "1"}]}
            ]}}}}),
            "apps",
            "Deployment",
        );
        let cs = containers(&out);
        assert_eq!(cs.len(), 3);
        assert_eq!(
            cs[2],
            json!({"name": "debug", "image": "busybox", "env": [{"name": "X", "value": "1"}]})
        );
    }

    #[test]
    fn ports_merge_by_container_port() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}
            ]}}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(
            containers(&out)[0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])
        );
    }

    #[test]
    fn untagged_lists_are_replaced() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b", "operator": "Exists"}])
        );
        let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
        let out = smp(
            node,
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
            "",
            "Node",
        );
        assert_eq!(out["spec"]["taints"], json!([{"key": "b", "effect": "NoExecute"}]));
    }

    #[test]
    fn conditions_merge_by_type() {
        let out = smp(
            deployment(),
            json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "ReplicaFailure", "status": "True"}]}}),
            "apps",
            "Deployment",
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([
                {"type": "Available", "status": "False"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                {"type": "ReplicaFailure", "status": "True"}
            ])
        );
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"tier": null, "v": "2"}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "v": "2"}));
        let cm = json!({"kind": "ConfigMap", "data": {"a": "1", "b": "2"}});
        let out = smp(cm, json!({"data": {"a": null, "c": "3"}}), "", "ConfigMap");
        assert_eq!(out["data"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn finalizers_are_a_set() {
        let out = smp(
            deployment(),
            json!({"metadata": {"finalizers": ["b", "a"]}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
        let out = smp(
            deployment(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let doc =
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs-a"}, {"uid": "2", "name": "rs-b"}]}});
        let out = smp(
            doc,
            json!({"metadata": {"ownerReferences": [{"uid": "2", "controller": true}, {"uid": "3", "name": "c"}]}}),
            "",
            "Secret",
        );
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "rs-a"}, {"uid": "2", "name": "rs-b", "controller": true}, {"uid": "3", "name": "c"}])
        );
    }

    #[test]
    fn pod_fields() {
        let pod = json!({"kind": "Pod", "spec": {
            "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "v1"}], "volumeDevices": [{"devicePath": "/dev/x", "name": "d"}]}],
            "initContainers": [{"name": "init", "image": "i:1"}],
            "volumes": [{"name": "v1", "emptyDir": {}}],
            "imagePullSecrets": [{"name": "s1"}],
            "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["a"]}]
        }, "status": {"conditions": [{"type": "Ready", "status": "False"}], "podIPs": [{"ip": "10.0.0.1"}]}});
        let out = smp(
            pod,
            json!({
                "spec": {
                    "containers": [{"name": "c", "volumeMounts": [{"mountPath": "/b", "name": "v2"}], "volumeDevices": [{"devicePath": "/dev/x", "name": "d2"}]}],
                    "initContainers": [{"name": "init", "image": "i:2"}],
                    "volumes": [{"name": "v2", "configMap": {"name": "cm"}}],
                    "imagePullSecrets": [{"name": "s2"}],
                    "hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}]
                },
                "status": {"conditions": [{"type": "Ready", "status": "True"}], "podIPs": [{"ip": "fd00::1"}]}
            }),
            "",
            "Pod",
        );
        let spec = &out["spec"];
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([{"mountPath": "/a", "name": "v1"}, {"mountPath": "/b", "name": "v2"}])
        );
        assert_eq!(
            spec["containers"][0]["volumeDevices"],
            json!([{"devicePath": "/dev/x", "name": "d2"}])
        );
        assert_eq!(spec["initContainers"], json!([{"name": "init", "image": "i:2"}]));
        assert_eq!(
            spec["volumes"],
            json!([{"name": "v1", "emptyDir": {}}, {"name": "v2", "configMap": {"name": "cm"}}])
        );
        assert_eq!(spec["imagePullSecrets"], json!([{"name": "s1"}, {"name": "s2"}]));
        assert_eq!(spec["hostAliases"], json!([{"ip": "1.1.1.1", "hostnames": ["b"]}]));
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}])
        );
        assert_eq!(out["status"]["podIPs"], json!([{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}});
        let out = smp(
            svc,
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            "",
            "Service",
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}, {"port": 443, "targetPort": 8443}])
        );
    }

    #[test]
    fn node_status_merges_by_type() {
        let node = json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}, "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}]
        }});
        let out = smp(
            node,
            json!({
                "spec": {"podCIDRs": ["fd00::/64"]},
                "status": {"conditions": [{"type": "Ready", "status": "False"}], "addresses": [{"type": "Hostname", "address": "n1"}]}
            }),
            "",
            "Node",
        );
        assert_eq!(out["spec"]["podCIDRs"], json!(["10.0.0.0/24", "fd00::/64"]));
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}])
        );
        assert_eq!(
            out["status"]["addresses"],
            json!([{"type": "InternalIP", "address": "10.1.0.1"}, {"type": "Hostname", "address": "n1"}])
        );
    }

    #[test]
    fn endpoints_subsets_and_slices_are_replaced() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]});
        let out = smp(
            ep,
            json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
            "",
            "Endpoints",
        );
        assert_eq!(out["subsets"], json!([{"addresses": [{"ip": "2.2.2.2"}]}]));
        let slice = json!({"endpoints": [{"addresses": ["1.1.1.1"]}], "ports": [{"port": 80}]});
        let out = smp(
            slice,
            json!({"endpoints": [{"addresses": ["2.2.2.2"]}]}),
            "discovery.k8s.io",
            "EndpointSlice",
        );
        assert_eq!(out["endpoints"], json!([{"addresses": ["2.2.2.2"]}]));
        assert_eq!(out["ports"], json!([{"port": 80}]));
    }

    #[test]
    fn templates_of_other_workloads() {
        let template = json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
        for (group, kind) in [
            ("apps", "ReplicaSet"),
            ("apps", "DaemonSet"),
            ("apps", "StatefulSet"),
            ("batch", "Job"),
            ("", "ReplicationController"),
        ] {
            let doc = json!({"spec": {"template": template.clone()}});
            let out = smp(
                doc,
                json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}),
                group,
                kind,
            );
            assert_eq!(
                out["spec"]["template"]["spec"]["containers"][0]["image"], "a:1",
                "{kind}"
            );
            assert_eq!(
                out["spec"]["template"]["spec"]["containers"][1]["image"], "b:2",
                "{kind}"
            );
        }
        let cron = json!({"spec": {"jobTemplate": {"spec": {"template": template.clone()}}}});
        let out = smp(
            cron,
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}}}),
            "batch",
            "CronJob",
        );
        assert_eq!(
            out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        // Unknown kinds have no merge keys: the list is replaced.
        let crd = json!({"spec": {"template": template}});
        let out = smp(
            crd,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}}),
            "example.com",
            "Widget",
        );
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "b"}]));
    }

    #[test]
    fn map_directives() {
        let out = smp(
            deployment(),
            json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out["metadata"]["labels"], json!({}));
        let out = smp(
            json!({"a": {"b": 1}}),
            json!({"$patch": "replace", "c": 2}),
            "",
            "ConfigMap",
        );
        assert_eq!(out, json!({"c": 2}));
    }

    #[test]
    fn retain_keys() {
        let out = smp(
            deployment(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let err = strategic_merge_patch(
            &deployment(),
            br#"{"spec": {"strategy": {"$retainKeys": "type"}}}"#,
            "apps",
            "Deployment",
        );
        assert!(matches!(err, Err(PatchError::InvalidDirective { .. })));
    }

    #[test]
    fn set_element_order() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "app:3"}]
            }}}}),
            "apps",
            "Deployment",
        );
        let names: Vec<&str> = containers(&out).iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["sidecar", "app"]);
        assert_eq!(containers(&out)[1]["image"], "app:3");
        assert!(out["spec"]["template"]["spec"]
            .get("$setElementOrder/containers")
            .is_none());

        let out = smp(
            deployment(),
            json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"], "finalizers": ["b"]}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
    }

    #[test]
    fn order_elements_keeps_unnamed_elements_in_place() {
        let mut items = vec![json!({"k": "a"}), json!({"k": "server"}), json!({"k": "c"})];
        order_elements(&mut items, &[json!({"k": "c"}), json!({"k": "a"})], Some("k"));
        assert_eq!(
            items,
            vec![json!({"k": "c"}), json!({"k": "server"}), json!({"k": "a"})]
        );
    }

    #[test]
    fn directives_never_reach_the_stored_object() {
        let out = smp(
            json!({"metadata": {"name": "x"}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"$patch": "delete", "name": "Z"}, {"name": "Y", "value": null}]}]}}}}),
            "apps",
            "Deployment",
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "env": [{"name": "Y"}]}])
        );
        let out = smp(
            json!({}),
            json!({"spec": {"tolerations": [{"$patch": "replace"}, {"key": "t"}]}}),
            "",
            "Pod",
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "t"}]));
    }

    #[test]
    fn pdb_selector_is_replaced_not_merged() {
        let pdb = json!({"spec": {"selector": {"matchLabels": {"app": "a", "tier": "t"}}}});
        let out = smp(
            pdb,
            json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}}),
            "policy",
            "PodDisruptionBudget",
        );
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"app": "b"}}));
    }

    #[test]
    fn type_changes_replace() {
        let out = smp(json!({"data": {"a": "1"}}), json!({"data": ["x"]}), "", "ConfigMap");
        assert_eq!(out["data"], json!(["x"]));
        let out = smp(
            json!({"data": ["x"]}),
            json!({"data": {"a": "1", "b": null}}),
            "",
            "ConfigMap",
        );
        assert_eq!(out["data"], json!({"a": "1"}));
    }

    #[test]
    fn strategic_errors() {
        let doc = deployment();
        let e = strategic_merge_patch(
            &doc,
            br#"{"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}"#,
            "apps",
            "Deployment",
        )
        .unwrap_err();
        assert!(
            matches!(&e, PatchError::InvalidPatch { message } if message.contains("does not contain declared merge key: name")),
            "{e}"
        );
        let e =
            strategic_merge_patch(&doc, br#"{"metadata": {"$patch": "explode"}}"#, "apps", "Deployment").unwrap_err();
        assert!(
            matches!(&e, PatchError::InvalidDirective { message } if message.contains("unknown patch type: \"explode\"")),
            "{e}"
        );
        let e = strategic_merge_patch(
            &doc,
            br#"{"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}"#,
            "apps",
            "Deployment",
        );
        assert!(matches!(e, Err(PatchError::InvalidPatch { .. })));
        assert!(matches!(
            strategic_merge_patch(&doc, b"[]", "apps", "Deployment"),
            Err(PatchError::InvalidJson { .. })
        ));
        assert!(matches!(
            strategic_merge_patch(&doc, b"{", "apps", "Deployment"),
            Err(PatchError::InvalidJson { .. })
        ));
        let e = strategic_merge_patch(
            &doc,
            br#"{"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}"#,
            "apps",
            "Deployment",
        );
        assert!(matches!(e, Err(PatchError::InvalidDirective { .. })));
    }

    #[test]
    fn empty_patch_is_identity() {
        assert_eq!(smp(deployment(), json!({}), "apps", "Deployment"), deployment());
        // An empty list on a merge-keyed field merges nothing (clearing needs `$patch: replace`).
        let out = smp(
            deployment(),
            json!({"status": {"conditions": []}}),
            "apps",
            "Deployment",
        );
        assert_eq!(out, deployment());
    }

    #[test]
    fn field_strategy_lookup() {
        assert_eq!(field_strategy("", "Pod", "spec.containers"), MergeByKey("name"));
        assert_eq!(field_strategy("", "Pod", "spec.containers.env"), MergeByKey("name"));
        assert_eq!(
            field_strategy("", "Pod", "spec.containers.ports"),
            MergeByKey("containerPort")
        );
        assert_eq!(
            field_strategy("", "Pod", "spec.ephemeralContainers.volumeDevices"),
            MergeByKey("devicePath")
        );
        assert_eq!(field_strategy("", "Pod", "spec.tolerations"), FieldStrategy::Default);
        assert_eq!(
            field_strategy("apps", "Deployment", "spec.template.spec.volumes"),
            MergeByKey("name")
        );
        assert_eq!(
            field_strategy("apps", "Deployment", "spec.template.metadata.finalizers"),
            MergeScalars
        );
        assert_eq!(field_strategy("apps", "Deployment", "spec.strategy"), RetainKeys);
        assert_eq!(field_strategy("", "Node", "spec.taints"), FieldStrategy::Default);
        assert_eq!(
            field_strategy("", "ConfigMap", "metadata.ownerReferences"),
            MergeByKey("uid")
        );
        assert_eq!(field_strategy("", "ServiceAccount", "secrets"), MergeByKey("name"));
        assert_eq!(
            field_strategy("policy", "PodDisruptionBudget", "spec.selector"),
            Replace
        );
        assert_eq!(field_strategy("", "Pod", "spec.nope.deeper"), FieldStrategy::Default);
    }
}

//! OpenAPI v3 documents for kubectl: the `/openapi/v3` index and one document per served group
//! version (`/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`).
//!
//! What kubectl 1.32 does with them:
//! - `apply`, `create`, `edit`, `diff`, `replace` with the default `--validate=strict` ask
//!   "does the PATCH operation of this GVK take a `fieldValidation` query parameter?" (cli-runtime
//!   `QueryParamVerifierV3`). Yes: kubectl sends `?fieldValidation=Strict` and validates nothing
//!   itself. If the v3 documents cannot be fetched or parsed it falls back to `/openapi/v2`, which it
//!   only reads as protobuf; when that fails too the command fails.
//! - client-side `apply` and `diff` build their three-way strategic merge patch from the component
//!   schema carrying the GVK in `x-kubernetes-group-version-kind` (a list), provided the PATCH
//!   operation accepts `application/strategic-merge-patch+json`; list merge keys come from
//!   `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy` on properties.
//! - `explain` finds the GVK on an operation of the resource's path, then the component schema with
//!   that GVK, and walks `properties`, `$ref`, `allOf`, `items`.
//!
//! Schemas come from k8s-openapi's `schemars` impls, whose definition names already are the
//! Kubernetes ones (`io.k8s.api.core.v1.Pod`). Documents are built once and cached as bytes.
//!
//! # Layout
//! - this file: the index, the per-group-version documents and their cache, the schemas.
//! - `paths`: the operations of each resource and subresource.
//! - `v2`: `/openapi/v2` as Swagger 2.0 JSON, for clients other than kubectl.

use std::sync::OnceLock;

use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use k8s_openapi::api::{
    apps, autoscaling, certificates, coordination, core, discovery, events, policy, rbac, scheduling,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

use crate::discovery::{subresource, GIT_VERSION};
use crate::registry::{self, Resource};

mod paths;
mod v2;

pub use v2::v2_json;

const REF_PREFIX: &str = "#/components/schemas/";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// A kind whose schema k8s-openapi provides.
struct KindSchema {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    /// Registers the schema (and all it references) and returns its definition name.
    add: fn(&mut SchemaGenerator) -> String,
    /// The definition name alone.
    name: fn() -> String,
}

fn add<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name()
}

macro_rules! kinds {
    ($($ty:ty),* $(,)?) => {
        &[$(KindSchema {
            group: <$ty as k8s_openapi::Resource>::GROUP,
            version: <$ty as k8s_openapi::Resource>::VERSION,
            kind: <$ty as k8s_openapi::Resource>::KIND,
            add: add::<$ty>,
            name: <$ty as JsonSchema>::schema_name,
        }),*]
    };
}

/// Kinds skiff can describe: the served ones, those its subresources return, and a few more so a
/// resource added to the registry later is described without touching this file.
static KINDS: &[KindSchema] = kinds![
    core::v1::Namespace,
    core::v1::Pod,
    core::v1::Node,
    core::v1::Service,
    core::v1::Endpoints,
    core::v1::ConfigMap,
    core::v1::Secret,
    core::v1::ServiceAccount,
    core::v1::Event,
    core::v1::Binding,
    core::v1::PersistentVolume,
    core::v1::PersistentVolumeClaim,
    core::v1::PodTemplate,
    core::v1::ReplicationController,
    core::v1::LimitRange,
    core::v1::ResourceQuota,
    apps::v1::Deployment,
    apps::v1::ReplicaSet,
    apps::v1::DaemonSet,
    apps::v1::StatefulSet,
    apps::v1::ControllerRevision,
    autoscaling::v1::Scale,
    policy::v1::Eviction,
    policy::v1::PodDisruptionBudget,
    coordination::v1::Lease,
    discovery::v1::EndpointSlice,
    events::v1::Event,
    rbac::v1::Role,
    rbac::v1::RoleBinding,
    rbac::v1::ClusterRole,
    rbac::v1::ClusterRoleBinding,
    scheduling::v1::PriorityClass,
    certificates::v1::CertificateSigningRequest,
];

/// Strategic-merge-patch metadata of list fields (schema, property, merge key, strategy), as
/// Kubernetes' Go struct tags publish it. kubectl's client-side apply merges these lists by key
/// instead of replacing them.
const PATCH_META: &[(&str, &str, Option<&str>, &str)] = &[
    ("io.k8s.api.core.v1.PodSpec", "containers", Some("name"), "merge"),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", Some("name"), "merge"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        Some("name"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        Some("name"),
        "merge,retainKeys",
    ),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", Some("name"), "merge"),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", Some("ip"), "merge"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        Some("name"),
        "merge,retainKeys",
    ),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", Some("name"), "merge"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        Some("topologyKey"),
        "merge",
    ),
    ("io.k8s.api.core.v1.Container", "env", Some("name"), "merge"),
    ("io.k8s.api.core.v1.Container", "ports", Some("containerPort"), "merge"),
    (
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        Some("mountPath"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        Some("devicePath"),
        "merge",
    ),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", Some("name"), "merge"),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        Some("containerPort"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        Some("mountPath"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        Some("devicePath"),
        "merge",
    ),
    ("io.k8s.api.core.v1.PodStatus", "conditions", Some("type"), "merge"),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", Some("ip"), "merge"),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", None, "merge"),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", Some("type"), "merge"),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", Some("type"), "merge"),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", Some("port"), "merge"),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", Some("type"), "merge"),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", Some("name"), "merge"),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", None, "retainKeys"),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        "conditions",
        Some("type"),
        "merge",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        None,
        "merge",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        Some("uid"),
        "merge",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        "key",
        Some("key"),
        "merge",
    ),
];

/// The `/openapi/v3` index: one entry per served group version, each URL carrying the hash of its
/// document so clients (and kubectl's disk cache) can cache it forever.
pub fn v3_root() -> Value {
    let mut paths = Map::new();
    for entry in cache() {
        let key = path_key(entry.group, entry.version);
        let hash = entry.get().1.as_str();
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// The OpenAPI v3 document of one group version, built afresh; `None` if nothing is served there.
pub fn v3_group_version(group: &str, version: &str) -> Option<Value> {
    registry::in_group_version(group, version).next()?;
    Some(build(group, version))
}

/// [`v3_group_version`] serialised, built on first use and kept for the life of the process.
/// Serve with `Content-Type: application/json`; kubectl asks for `Accept: application/json`.
pub fn v3_group_version_bytes(group: &str, version: &str) -> Option<&'static [u8]> {
    find(group, version).map(|e| e.get().0.as_slice())
}

/// Hex SHA-512 of [`v3_group_version_bytes`], as in the index's `?hash=`; usable as an ETag.
pub fn v3_group_version_hash(group: &str, version: &str) -> Option<&'static str> {
    find(group, version).map(|e| e.get().1.as_str())
}

/// The group version served at `/openapi/v3/<path>`, `path` being `api/v1` or `apis/<g>/<v>`.
pub fn v3_group_version_for_path(path: &str) -> Option<(&'static str, &'static str)> {
    let path = path.trim_matches('/');
    cache()
        .iter()
        .find(|e| path_key(e.group, e.version) == path)
        .map(|e| (e.group, e.version))
}

fn path_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

struct Cached {
    group: &'static str,
    version: &'static str,
    /// The serialised document and its hash.
    doc: OnceLock<(Vec<u8>, String)>,
}

impl Cached {
    fn get(&self) -> &(Vec<u8>, String) {
        self.doc.get_or_init(|| {
            let bytes = serde_json::to_vec(&build(self.group, self.version)).unwrap_or_default();
            let hash = Sha512::digest(&bytes).iter().map(|b| format!("{b:02X}")).collect();
            (bytes, hash)
        })
    }
}

fn cache() -> &'static [Cached] {
    static CACHE: OnceLock<Vec<Cached>> = OnceLock::new();
    CACHE.get_or_init(|| {
        registry::groups()
            .into_iter()
            .flat_map(|(group, versions)| {
                versions.into_iter().map(move |version| Cached {
                    group,
                    version,
                    doc: OnceLock::new(),
                })
            })
            .collect()
    })
}

fn find(group: &str, version: &str) -> Option<&'static Cached> {
    cache().iter().find(|e| e.group == group && e.version == version)
}

/// Definition names of the kinds a document describes, with their GVKs.
struct Described {
    /// (definition name, group, version, kind)
    kinds: Vec<(String, &'static str, &'static str, String)>,
    /// Served resource plural -> its kind's definition name.
    by_plural: Vec<(&'static str, String)>,
}

fn build(group: &str, version: &str) -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let mut described = Described {
        kinds: Vec::new(),
        by_plural: Vec::new(),
    };
    let mut fallbacks: Vec<(String, Value)> = Vec::new();
    let resources: Vec<&'static Resource> = registry::in_group_version(group, version).collect();

    for r in &resources {
        let name = match kind_schema(r.group, r.version, r.kind) {
            Some(k) => (k.add)(&mut gen),
            None => {
                // No typed schema: accept anything, so validation is the server's business.
                let name = format!(
                    "dev.skiff.{}.{}.{}",
                    if r.group.is_empty() { "core" } else { r.group },
                    r.version,
                    r.kind
                );
                fallbacks.push((
                    name.clone(),
                    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                ));
                name
            }
        };
        described
            .kinds
            .push((name.clone(), r.group, r.version, r.kind.to_string()));
        described.by_plural.push((r.plural, name));
        for sub in r.subresources {
            let s = subresource(r, sub);
            let (g, v) = s.group_version.unwrap_or((r.group, r.version));
            if let Some(k) = kind_schema(g, v, &s.kind) {
                let name = (k.add)(&mut gen);
                if !described.kinds.iter().any(|(n, ..)| *n == name) {
                    described.kinds.push((name, k.group, k.version, k.kind.to_string()));
                }
            }
        }
    }
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::DeleteOptions>();
    gen.subschema_for::<meta::Patch>();

    let mut schemas: Map<String, Value> = gen
        .take_definitions()
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
        .collect();
    for (name, schema) in fallbacks {
        schemas.insert(name, schema);
    }
    for schema in schemas.values_mut() {
        wrap_ref_siblings(schema);
    }
    for (schema, property, key, strategy) in PATCH_META {
        if let Some(Value::Object(prop)) = schemas
            .get_mut(*schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
        {
            if let Some(key) = key {
                prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
            }
            prop.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        }
    }
    for (name, g, v, kind) in &described.kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(name) {
            schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk(g, v, kind)]));
            // Rust's ObjectMeta is not optional, so k8s-openapi calls metadata required; Kubernetes does not.
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
        }
    }
    for r in &resources {
        let Some((_, item)) = described.by_plural.iter().find(|(p, _)| p == &r.plural) else {
            continue;
        };
        let list_name = format!("{item}List");
        schemas.insert(list_name, list_schema(item, r));
    }
    if let Some(Value::Object(status)) = schemas.get_mut(STATUS) {
        status.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([gvk("", "v1", "Status")]),
        );
    }

    let mut paths = Map::new();
    for r in &resources {
        let Some((_, item)) = described.by_plural.iter().find(|(p, _)| p == &r.plural) else {
            continue;
        };
        paths::resource_paths(r, item, &mut paths);
    }

    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn kind_schema(group: &str, version: &str, kind: &str) -> Option<&'static KindSchema> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

/// OpenAPI 3.0 ignores the siblings of `$ref`; Kubernetes writes `{allOf: [{$ref}], description}`.
fn wrap_ref_siblings(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.len() > 1 {
                if let Some(reference) = map.remove("$ref") {
                    map.insert("allOf".into(), json!([{"$ref": reference}]));
                }
            }
            map.values_mut().for_each(wrap_ref_siblings);
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_ref_siblings),
        _ => {}
    }
}

fn list_schema(item: &str, r: &Resource) -> Value {
    json!({
        "description": format!("{}List is a list of {}.", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "The versioned schema of this object."},
            "kind": {"type": "string", "description": "The REST resource this object represents."},
            "metadata": {
                "allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")],
                "description": "Standard list metadata.",
            },
            "items": {"type": "array", "items": schema_ref(item), "description": format!("List of {}.", r.plural)},
        },
        "x-kubernetes-group-version-kind": [gvk(r.group, r.version, &r.list_kind())],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(group: &str, version: &str) -> Value {
        let bytes = v3_group_version_bytes(group, version).expect("served group version");
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc.pointer(&format!("/components/schemas/{}", name.replace('/', "~1")))
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    /// Follows `$ref` / `allOf[0]` the way kubectl's strategic-merge lookup does.
    fn resolve<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
        if let Some(first) = s.get("allOf").and_then(|a| a.get(0)) {
            s = first;
        }
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => schema(doc, r.trim_start_matches(REF_PREFIX)),
            None => s,
        }
    }

    #[test]
    fn pod_schema_has_its_gvk_and_kubernetes_names() {
        let d = doc("", "v1");
        assert_eq!(d["openapi"], "3.0.0");
        let pod = schema(&d, "io.k8s.api.core.v1.Pod");
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert!(pod.get("required").is_none(), "metadata must not be required");
        let meta = &pod["properties"]["metadata"];
        assert_eq!(
            meta["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(meta.get("$ref").is_none());
        schema(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        let list = schema(&d, "io.k8s.api.core.v1.PodList");
        assert_eq!(list["x-kubernetes-group-version-kind"][0]["kind"], "PodList");
        assert_eq!(
            schema(&d, "io.k8s.api.policy.v1.Eviction")["x-kubernetes-group-version-kind"][0]["group"],
            "policy"
        );
    }

    #[test]
    fn patch_operations_take_field_validation_and_strategic_merge() {
        let d = doc("apps", "v1");
        let paths = d["paths"].as_object().expect("paths");
        let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"fieldValidation") && names.contains(&"dryRun"));
        assert!(patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some());
        for (path, item) in paths {
            for verb in ["post", "put", "patch"] {
                if let Some(op) = item.get(verb) {
                    let ps = op["parameters"].as_array().expect("params");
                    assert!(
                        ps.iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query"),
                        "{verb} {path}"
                    );
                }
            }
        }
        let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
        assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
        assert!(paths.contains_key("/apis/apps/v1/deployments"));
        assert_eq!(item["get"]["operationId"], "readAppsV1NamespacedDeployment");
    }

    #[test]
    fn every_served_kind_resolves_from_its_group_version() {
        for r in registry::RESOURCES {
            let d = doc(r.group, r.version);
            let want = gvk(r.group, r.version, r.kind);
            let schemas = d["components"]["schemas"].as_object().expect("schemas");
            let found = schemas.values().any(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&want))
            });
            assert!(found, "{} has no schema", r.kind);
            // explain's path lookup: a GVK'd operation on the resource's collection path.
            let path = r.collection_path(None);
            assert_eq!(
                d["paths"][&path]["get"]["x-kubernetes-group-version-kind"], want,
                "{path}"
            );
            // every $ref resolves
            let text = serde_json::to_string(&d).expect("json");
            for piece in text.split("\"$ref\":\"").skip(1) {
                let name = piece
                    .split('"')
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches(REF_PREFIX);
                assert!(schemas.contains_key(name), "dangling {name} in {}", r.kind);
            }
        }
    }

    #[test]
    fn strategic_merge_keys_on_pod_lists() {
        let d = doc("", "v1");
        let pod = schema(&d, "io.k8s.api.core.v1.Pod");
        let spec = resolve(&d, &pod["properties"]["spec"]);
        let containers = &spec["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(
            spec["properties"]["volumes"]["x-kubernetes-patch-strategy"],
            "merge,retainKeys"
        );
        let container = resolve(&d, &containers["items"]);
        assert_eq!(container["properties"]["env"]["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(
            container["properties"]["ports"]["x-kubernetes-patch-merge-key"],
            "containerPort"
        );
        let svc_spec = schema(&d, "io.k8s.api.core.v1.ServiceSpec");
        assert_eq!(svc_spec["properties"]["ports"]["x-kubernetes-patch-merge-key"], "port");
    }

    #[test]
    fn root_index_points_at_each_document() {
        let root = v3_root();
        let url = root["paths"]["api/v1"]["serverRelativeURL"].as_str().expect("api/v1");
        let hash = v3_group_version_hash("", "v1").expect("hash");
        assert_eq!(url, format!("/openapi/v3/api/v1?hash={hash}"));
        assert_eq!(hash.len(), 128);
        assert!(root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("/openapi/v3/apis/apps/v1?hash=")));
        assert_eq!(
            v3_group_version_for_path("apis/rbac.authorization.k8s.io/v1"),
            Some(("rbac.authorization.k8s.io", "v1"))
        );
        assert_eq!(v3_group_version_for_path("/api/v1"), Some(("", "v1")));
        assert_eq!(v3_group_version_for_path("apis/apps/v2"), None);
        assert!(v3_group_version("apps", "v2").is_none());
        assert!(v3_group_version_bytes("nope", "v1").is_none());
    }
}

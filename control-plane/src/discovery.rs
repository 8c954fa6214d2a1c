//! Discovery documents, built from the resource table in [`crate::registry`]: `/version`, `/api`,
//! `/apis`, `/apis/<group>`, `/api/v1` and `/apis/<group>/<version>` (unaggregated discovery), and
//! the aggregated discovery list (`apidiscovery.k8s.io/v2`) that kubectl 1.32 asks for first.
//!
//! Every function here is pure: it returns a `serde_json::Value`; the HTTP layer serialises it and
//! sets the content type. Shapes and orders follow kube-apiserver 1.32 (resources sorted by name,
//! subresources listed as `<plural>/<sub>` entries with an empty `singularName`).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::registry::{self, Resource, ALL_VERBS};

/// The version skiff reports; kubectl compares `major`/`minor` with its own for its skew warning.
pub const GIT_VERSION: &str = "v1.32.0-skiff";

/// Content type of an aggregated discovery response. kubectl 1.32 (client-go `discovery`) sends
/// `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...;v=v2beta1...,
/// application/json` to `/api` and `/apis` and decodes the body as aggregated discovery only when
/// the response `Content-Type` parses (RFC 2045 media type, any parameter order) to
/// `application/json` with `g=apidiscovery.k8s.io`, `v=v2`, `as=APIGroupDiscoveryList`; any other
/// content type makes it read the body as `APIVersions` / `APIGroupList` and then fetch every
/// group version separately.
pub const AGGREGATED_CONTENT_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": option_env!("SKIFF_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": "clean",
        "buildDate": option_env!("SKIFF_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "none (rust)",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `linux/amd64` style, as Go's `GOOS/GOARCH`.
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("{}/{}", std::env::consts::OS, arch)
}

/// `/api` (unaggregated): the core group's versions and where clients reach the server.
pub fn core_versions(server_addr: &str) -> Value {
    let versions: Vec<&str> = registry::groups()
        .into_iter()
        .find(|(g, _)| g.is_empty())
        .map(|(_, v)| v)
        .unwrap_or_default();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_addr}],
    })
}

/// `/apis` (unaggregated): every named group with its versions, the first one preferred.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_body(g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`; `None` for a group skiff does not serve (and for the core group).
pub fn api_group(group: &str) -> Option<Value> {
    let (g, versions) = registry::groups()
        .into_iter()
        .find(|(g, _)| !g.is_empty() && *g == group)?;
    let mut body = group_body(g, &versions);
    if let Value::Object(map) = &mut body {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Some(body)
}

fn group_body(group: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": gvs, "preferredVersion": preferred})
}

/// `/api/v1` and `/apis/<group>/<version>`: an `APIResourceList`; `None` if nothing is served there.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources: Vec<Value> = Vec::new();
    for r in registry::in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": verbs(r),
            "storageVersionHash": storage_version_hash(r.group, r.version, r.kind),
        });
        if let Value::Object(map) = &mut entry {
            if !r.short_names.is_empty() {
                map.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                map.insert("categories".into(), json!(r.categories));
            }
        }
        resources.push(entry);
        for sub in r.subresources {
            let s = subresource(r, sub);
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if let (Value::Object(map), Some((g, v))) = (&mut entry, s.group_version) {
                map.insert("group".into(), json!(g));
                map.insert("version".into(), json!(v));
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    resources.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut list = Map::new();
    list.insert("kind".into(), json!("APIResourceList"));
    if !group.is_empty() {
        list.insert("apiVersion".into(), json!("v1"));
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    list.insert("groupVersion".into(), json!(group_version));
    list.insert("resources".into(), Value::Array(resources));
    Some(Value::Object(list))
}

/// The aggregated discovery document for `/api` (`core`) or `/apis` (every other group). Serve it
/// only when the request's Accept header asks for it (see [`wants_aggregated`]) and with the
/// response header `Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`
/// ([`AGGREGATED_CONTENT_TYPE`]): kubectl 1.32 decides how to read the body from that header
/// alone, and falls back to unaggregated discovery (one request per group version) without it.
pub fn aggregated_discovery(core: bool) -> Value {
    let items: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let mut metadata = Map::new();
            if !group.is_empty() {
                metadata.insert("name".into(), json!(group));
            }
            metadata.insert("creationTimestamp".into(), Value::Null);
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"version": v, "resources": aggregated_resources(group, v), "freshness": "Current"}))
                .collect();
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resources(group: &str, version: &str) -> Vec<Value> {
    let mut out: Vec<Value> = registry::in_group_version(group, version)
        .map(|r| {
            let mut entry = Map::new();
            entry.insert("resource".into(), json!(r.plural));
            entry.insert(
                "responseKind".into(),
                json!({"group": "", "version": "", "kind": r.kind}),
            );
            entry.insert(
                "scope".into(),
                json!(if r.namespaced { "Namespaced" } else { "Cluster" }),
            );
            entry.insert("singularResource".into(), json!(r.singular));
            entry.insert("verbs".into(), json!(verbs(r)));
            if !r.short_names.is_empty() {
                entry.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                entry.insert("categories".into(), json!(r.categories));
            }
            let mut subs: Vec<&str> = r.subresources.to_vec();
            subs.sort_unstable();
            if !subs.is_empty() {
                let subs: Vec<Value> = subs
                    .into_iter()
                    .map(|sub| {
                        let s = subresource(r, sub);
                        let (g, v) = s.group_version.unwrap_or(("", ""));
                        json!({
                            "subresource": sub,
                            "responseKind": {"group": g, "version": v, "kind": s.kind},
                            "verbs": s.verbs,
                        })
                    })
                    .collect();
                entry.insert("subresources".into(), Value::Array(subs));
            }
            Value::Object(entry)
        })
        .collect();
    out.sort_by(|a, b| a["resource"].as_str().cmp(&b["resource"].as_str()));
    out
}

/// True when an Accept header asks for aggregated discovery v2 (kubectl 1.32 lists it first).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let mut parts = media.split(';').map(str::trim);
        let base_ok = parts.next().is_some_and(|b| b.eq_ignore_ascii_case("application/json"));
        let (mut g, mut v, mut as_) = (false, false, false);
        for p in parts {
            match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("g", "apidiscovery.k8s.io")) => g = true,
                Some(("v", "v2")) => v = true,
                Some(("as", "APIGroupDiscoveryList")) => as_ = true,
                _ => {}
            }
        }
        base_ok && g && v && as_
    })
}

/// Verbs of a resource as kube-apiserver lists them: namespaces have no `deletecollection`.
fn verbs(r: &Resource) -> Vec<&'static str> {
    if r.group.is_empty() && r.plural == "namespaces" {
        ALL_VERBS.iter().copied().filter(|v| *v != "deletecollection").collect()
    } else {
        ALL_VERBS.to_vec()
    }
}

/// What a subresource returns and accepts.
pub struct Subresource {
    /// `Some((group, version))` when the kind lives outside the parent's group version.
    pub group_version: Option<(&'static str, &'static str)>,
    pub kind: String,
    pub verbs: &'static [&'static str],
}

const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];

/// The kind and verbs of `<parent>/<sub>`, as kube-apiserver reports them.
pub fn subresource(parent: &Resource, sub: &str) -> Subresource {
    let own = |kind: &str, verbs: &'static [&'static str]| Subresource {
        group_version: None,
        kind: kind.to_string(),
        verbs,
    };
    let other = |g: &'static str, v: &'static str, kind: &str, verbs: &'static [&'static str]| {
        let same = g == parent.group && v == parent.version;
        Subresource {
            group_version: (!same).then_some((g, v)),
            kind: kind.to_string(),
            verbs,
        }
    };
    match sub {
        "scale" => other("autoscaling", "v1", "Scale", GET_PATCH_UPDATE),
        "eviction" => other("policy", "v1", "Eviction", &["create"]),
        "binding" => other("", "v1", "Binding", &["create"]),
        "token" => other("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        "log" => own(parent.kind, &["get"]),
        "finalize" => own(parent.kind, &["update"]),
        "exec" => own("PodExecOptions", &["create", "get"]),
        "attach" => own("PodAttachOptions", &["create", "get"]),
        "portforward" => own("PodPortForwardOptions", &["create", "get"]),
        "proxy" => own(
            &format!("{}ProxyOptions", parent.kind),
            &["create", "delete", "get", "patch", "update"],
        ),
        // status, ephemeralcontainers, resize and anything new: the parent kind, read-modify-write.
        _ => own(parent.kind, GET_PATCH_UPDATE),
    }
}

/// kube-apiserver's `storageVersionHash`: base64 of the first 8 bytes of sha256("group/version/kind")
/// of the storage version. skiff stores every resource in its served version, so that is the one
/// hashed (Kubernetes stores events.k8s.io events as core events; skiff keeps them apart).
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64_std(&digest[..8])
}

fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn storage_version_hashes_match_kubernetes() {
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
        assert_eq!(storage_version_hash("apps", "v1", "Deployment"), "8aSe+NMegvE=");
        assert_eq!(
            storage_version_hash("rbac.authorization.k8s.io", "v1", "Role"),
            "7FuwZcIIItM="
        );
        assert_eq!(base64_std(b"ab"), "YWI=");
        assert_eq!(base64_std(b"a"), "YQ==");
    }

    #[test]
    fn version_reports_1_32() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        assert_eq!(v["gitVersion"], "v1.32.0-skiff");
        assert!(v["platform"].as_str().is_some_and(|p| p.contains('/')));
    }

    #[test]
    fn core_and_group_lists() {
        let api = core_versions("10.0.0.1:6443");
        assert_eq!(api["versions"], json!(["v1"]));
        assert_eq!(api["serverAddressByClientCIDRs"][0]["serverAddress"], "10.0.0.1:6443");
        let apis = api_group_list();
        let names: Vec<&str> = apis["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        assert!(names.contains(&"apps") && names.contains(&"rbac.authorization.k8s.io"));
        assert!(!names.contains(&""));
        assert_eq!(apis["groups"][0]["preferredVersion"]["version"], "v1");
        assert_eq!(api_group("apps").expect("apps")["kind"], "APIGroup");
        assert!(api_group("").is_none() && api_group("nope").is_none());
    }

    #[test]
    fn core_resource_list_matches_kube_apiserver() {
        let list = api_resource_list("", "v1").expect("core");
        assert_eq!(list["groupVersion"], "v1");
        assert!(list.get("apiVersion").is_none());
        let pods = find(&list, "pods");
        assert_eq!(pods["kind"], "Pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
        assert_eq!(pods["verbs"], json!(ALL_VERBS));
        assert_eq!(find(&list, "pods/binding")["verbs"], json!(["create"]));
        assert_eq!(find(&list, "pods/binding")["kind"], "Binding");
        assert_eq!(find(&list, "pods/log")["verbs"], json!(["get"]));
        assert_eq!(find(&list, "pods/exec")["verbs"], json!(["create", "get"]));
        assert_eq!(find(&list, "pods/exec")["kind"], "PodExecOptions");
        assert_eq!(find(&list, "pods/status")["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(find(&list, "pods/status")["singularName"], "");
        let eviction = find(&list, "pods/eviction");
        assert_eq!(
            (&eviction["group"], &eviction["version"]),
            (&json!("policy"), &json!("v1"))
        );
        let ns = find(&list, "namespaces");
        assert!(!ns["verbs"]
            .as_array()
            .expect("verbs")
            .contains(&json!("deletecollection")));
        assert_eq!(find(&list, "namespaces/finalize")["verbs"], json!(["update"]));
        assert!(find(&list, "secrets").get("shortNames").is_none());
        let names: Vec<&str> = list["resources"]
            .as_array()
            .expect("r")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn scale_subresource_is_autoscaling_v1() {
        let list = api_resource_list("apps", "v1").expect("apps");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["groupVersion"], "apps/v1");
        let scale = find(&list, "deployments/scale");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        assert!(find(&list, "deployments/status").get("group").is_none());
        assert!(api_resource_list("apps", "v2").is_none());
        assert!(api_resource_list("nope", "v1").is_none());
    }

    #[test]
    fn aggregated_discovery_shapes() {
        let core = aggregated_discovery(true);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let pods = v1["resources"]
            .as_array()
            .expect("r")
            .iter()
            .find(|r| r["resource"] == "pods")
            .expect("pods");
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "", "kind": "Pod"}));
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .expect("s")
            .iter()
            .filter_map(|s| s["subresource"].as_str())
            .collect();
        assert_eq!(subs, ["binding", "eviction", "exec", "log", "status"]);

        let apis = aggregated_discovery(false);
        let groups: Vec<&str> = apis["items"]
            .as_array()
            .expect("i")
            .iter()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect();
        assert_eq!(groups.len(), registry::groups().len() - 1);
        let apps = apis["items"]
            .as_array()
            .expect("i")
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .expect("apps");
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .expect("r")
            .iter()
            .find(|r| r["resource"] == "deployments")
            .expect("d");
        let scale = deploy["subresources"]
            .as_array()
            .expect("s")
            .iter()
            .find(|s| s["subresource"] == "scale")
            .expect("scale");
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
    }

    #[test]
    fn accept_header_detection() {
        let kubectl = concat!(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,",
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        );
        assert!(wants_aggregated(kubectl));
        assert!(wants_aggregated(
            "application/json; as=APIGroupDiscoveryList; v=v2; g=apidiscovery.k8s.io"
        ));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
    }
}

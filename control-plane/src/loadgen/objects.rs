//! The objects the load generator writes, their names and paths, and what it reads back from
//! the answers. Pure functions.
//!
//! Names: pre-populated pods are `lg-pop-<i>` (the same in every run, so a second run on the
//! same namespace reuses them); pods and configmaps written during a run are `lg-<run>-<n>`,
//! `<run>` being a random hex id, so runs never collide (hex digits never spell `pop`).

use hyper::body::Bytes;
use serde::Deserialize;
use serde_json::json;

/// The image of every pod: a small, valid pod, not meant to run.
pub const IMAGE: &str = "busybox:1.36";
/// Label on everything the load generator creates (`kubectl delete pods -l app=skiff-loadgen`).
pub const LABEL: (&str, &str) = ("app", "skiff-loadgen");

const POP_PREFIX: &str = "lg-pop-";

pub fn pop_name(i: u64) -> String {
    format!("{POP_PREFIX}{i}")
}

/// `i` of a pre-populated pod's name.
pub fn pop_index(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(POP_PREFIX)?;
    // Exactly the spelling pop_name makes: no sign, no leading zeros.
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

/// Prefix of the objects run `run` writes.
pub fn run_prefix(run: &str) -> String {
    format!("lg-{run}-")
}

pub fn namespaces_path() -> &'static str {
    "/api/v1/namespaces"
}

pub fn pods_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods")
}

pub fn configmaps_path(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps")
}

pub fn namespace(name: &str) -> Bytes {
    body(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
}

pub fn pod(ns: &str, name: &str) -> Bytes {
    body(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {LABEL.0: LABEL.1}},
        "spec": {"containers": [{"name": "c", "image": IMAGE}]},
    }))
}

/// A configmap carrying its send time (ns since the run's base instant) for the watchers.
pub fn configmap(ns: &str, name: &str, sent_ns: u64) -> Bytes {
    body(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {LABEL.0: LABEL.1}},
        "data": {"sent": sent_ns.to_string()},
    }))
}

fn body(v: serde_json::Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// A query parameter value, percent-encoded (continue tokens are base64 with `=`, `+`, `/`).
pub fn query_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub resource_version: String,
    #[serde(rename = "continue", default)]
    pub continue_token: String,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    metadata: Meta,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    items: Vec<Named>,
}

/// One page of a list: item names, and the continue token ("" on the last page).
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub names: Vec<String>,
    pub resource_version: String,
    pub continue_token: String,
}

pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let l: List = serde_json::from_slice(body).map_err(|e| format!("list body: {e}"))?;
    Ok(Page {
        names: l.items.into_iter().map(|i| i.metadata.name).collect(),
        resource_version: l.metadata.resource_version,
        continue_token: l.metadata.continue_token,
    })
}

/// The resourceVersion of a written object, as the revision it is.
pub fn parse_resource_version(body: &[u8]) -> Result<i64, String> {
    let o: Named = serde_json::from_slice(body).map_err(|e| format!("object body: {e}"))?;
    rv_number(&o.metadata.resource_version)
}

pub fn rv_number(rv: &str) -> Result<i64, String> {
    rv.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("resourceVersion {rv:?} is not a positive integer"))
}

/// Is a whole paged list right? Every pre-populated pod `0..objects` exactly once (other pods
/// may be there too: earlier create runs in the same namespace).
pub fn check_list(names: &[String], objects: u64) -> Result<(), String> {
    // `objects` is at most a million (Config::validate); the cap only guards the allocation.
    let mut seen = vec![false; objects.min(1 << 24) as usize];
    let mut found = 0u64;
    let mut dup = None;
    for n in names {
        let Some(i) = pop_index(n).filter(|i| *i < objects) else {
            continue;
        };
        match seen.get_mut(i as usize) {
            Some(s) if *s => dup = dup.or(Some(n.clone())),
            Some(s) => {
                *s = true;
                found += 1;
            }
            None => {}
        }
    }
    if let Some(d) = dup {
        return Err(format!("list returned pod {d} twice"));
    }
    if found != objects {
        return Err(format!(
            "list returned {found} of the {objects} pre-populated pods ({} items in all)",
            names.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_names_round_trip_and_nothing_else_parses() {
        for i in [0, 7, 9_999, 1_000_000] {
            assert_eq!(pop_index(&pop_name(i)), Some(i));
        }
        for n in ["lg-pop-", "lg-pop-01", "lg-pop-+1", "lg-pop-1a", "lg-abc123-1", "web-0"] {
            assert_eq!(pop_index(n), None, "{n}");
        }
        assert!(!run_prefix("a1b2c3").starts_with(POP_PREFIX));
    }

    #[test]
    fn bodies_are_valid_objects() {
        let p: serde_json::Value = serde_json::from_slice(&pod("ns1", "lg-pop-3")).expect("json");
        assert_eq!(p["spec"]["containers"][0]["name"], "c");
        assert_eq!(p["spec"]["containers"][0]["image"], "busybox:1.36");
        assert_eq!(p["metadata"]["namespace"], "ns1");
        let c: serde_json::Value = serde_json::from_slice(&configmap("ns1", "lg-x-1", 42)).expect("json");
        assert_eq!(c["data"]["sent"], "42");
        let n: serde_json::Value = serde_json::from_slice(&namespace("ns1")).expect("json");
        assert_eq!(n["metadata"]["name"], "ns1");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("eyJ2Ijoi+/=="), "eyJ2Ijoi%2B%2F%3D%3D");
        assert_eq!(query_value("a-b_c.d~"), "a-b_c.d~");
    }

    #[test]
    fn pages_and_resource_versions_parse() {
        let body = br#"{"kind":"PodList","metadata":{"resourceVersion":"77","continue":"tok"},"items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}"#;
        let p = parse_page(body).expect("page");
        assert_eq!(
            p,
            Page {
                names: vec!["a".into(), "b".into()],
                resource_version: "77".into(),
                continue_token: "tok".into()
            }
        );
        let last = parse_page(br#"{"metadata":{"resourceVersion":"9"},"items":[]}"#).expect("page");
        assert_eq!(last.continue_token, "");
        assert_eq!(
            parse_resource_version(br#"{"metadata":{"name":"x","resourceVersion":"123"}}"#),
            Ok(123)
        );
        assert!(parse_resource_version(br#"{"metadata":{"name":"x"}}"#).is_err());
        assert!(parse_page(b"<html>").is_err());
    }

    #[test]
    fn list_checks_count_each_pre_populated_pod_once() {
        let mut names: Vec<String> = (0..5).map(pop_name).collect();
        names.push("lg-abc-1".into());
        names.push(pop_name(9)); // beyond `objects`: an earlier, bigger run
        assert_eq!(check_list(&names, 5), Ok(()));
        let e = check_list(&names[1..], 5).expect_err("missing");
        assert!(e.contains("4 of the 5"), "{e}");
        names.push(pop_name(2));
        let e = check_list(&names, 5).expect_err("dup");
        assert!(e.contains("lg-pop-2 twice"), "{e}");
    }
}

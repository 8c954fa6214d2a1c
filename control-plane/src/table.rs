//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Columns and cell formats follow kube-apiserver 1.32's printers. Like kube-apiserver, every row
//! carries all cells, wide ones included; kubectl shows columns with `priority` above 0 only with
//! `-o wide`. Objects are read as JSON, so a missing field reads as its zero value. The Response
//! carries `Content-Type: application/json;as=Table;v=v1;g=meta.k8s.io` ([`TABLE_CONTENT_TYPE`]).
//!
//! # Layout
//! - this file: the API, the column sets, field access and formatting helpers.
//! - `pod`: the pod printer (READY / STATUS / RESTARTS logic).
//! - `cells`: the cells of every other printed kind.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

mod cells;
mod pod;

/// Content type of a Table response.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

const NAME_DESC: &str = concat!(
    "Name must be unique within a namespace. Is required when creating resources, although some ",
    "resources may allow a client to request the generation of an appropriate name automatically. ",
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be ",
    "updated. More info: ",
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
);
const AGE_DESC: &str = concat!(
    "CreationTimestamp is a timestamp representing the server time when this object was created. It ",
    "is not guaranteed to be set in happens-before order across separate operations. Clients may ",
    "not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the ",
    "system. Read-only. Null for lists. More info: ",
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);

/// True when an Accept header asks for a `meta.k8s.io/v1` Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let mut parts = media.split(';').map(str::trim);
        let base_ok = parts.next().is_some_and(|b| b.eq_ignore_ascii_case("application/json"));
        let (mut as_, mut g, mut v) = (false, false, false);
        for p in parts {
            match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("as", "Table")) => as_ = true,
                Some(("g", "meta.k8s.io")) => g = true,
                Some(("v", "v1")) => v = true,
                _ => {}
            }
        }
        base_ok && as_ && g && v
    })
}

/// A Table of `items` (objects of `group`/`plural`). `include_object` is the request's
/// `includeObject`: `Object` (whole objects), `None`, or `Metadata` (the default:
/// `PartialObjectMetadata`). `list_meta` becomes the table's `metadata` (resourceVersion, continue).
pub fn table(
    group: &str,
    plural: &str,
    items: &[Value],
    list_meta: Value,
    include_object: &str,
    now: DateTime<Utc>,
) -> Value {
    let (columns, cells) = printer(group, plural);
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut row = json!({"cells": cells(item, now)});
            if group.is_empty() && plural == "pods" {
                if let Some(conditions) = pod::row_conditions(item) {
                    row["conditions"] = conditions;
                }
            }
            match include_object {
                "None" => {}
                "Object" => row["object"] = item.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": item.get("metadata").cloned().unwrap_or_else(|| json!({})),
                    })
                }
            }
            row
        })
        .collect();
    let columns: Vec<Value> = columns
        .iter()
        .map(|(name, ty, priority, description)| {
            let format = if *name == "Name" { "name" } else { "" };
            let description = match *description {
                "" if *name == "Name" => NAME_DESC,
                "" => AGE_DESC,
                d => d,
            };
            json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
        })
        .collect();
    let metadata = if list_meta.is_object() { list_meta } else { json!({}) };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// (name, type, priority, description); an empty description means the name / creation docs.
type Column = (&'static str, &'static str, u8, &'static str);
type Cells = fn(&Value, DateTime<Utc>) -> Vec<Value>;

const NAME: Column = ("Name", "string", 0, "");
const AGE: Column = ("Age", "string", 0, "");
const CONTAINERS: Column = ("Containers", "string", 1, "Names of each container in the template.");
const IMAGES: Column = (
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = (
    "Selector",
    "string",
    1,
    "A label query over pods managed by this object.",
);

const POD: &[Column] = &[
    NAME,
    (
        "Ready",
        "string",
        0,
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    (
        "Status",
        "string",
        0,
        "The aggregate status of the containers in this pod.",
    ),
    (
        "Restarts",
        "string",
        0,
        "The number of times the containers in this pod have been restarted.",
    ),
    AGE,
    ("IP", "string", 1, "IP address allocated to the pod."),
    ("Node", "string", 1, "The node this pod is scheduled to."),
    (
        "Nominated Node",
        "string",
        1,
        "The node this pod is nominated to after preempting other pods.",
    ),
    (
        "Readiness Gates",
        "string",
        1,
        "Readiness gates that are true, out of all the pod's readiness gates.",
    ),
];
const DEPLOYMENT: &[Column] = &[
    NAME,
    ("Ready", "string", 0, "Number of the pod with ready state"),
    (
        "Up-to-date",
        "integer",
        0,
        "Total number of non-terminated pods that have the desired template spec.",
    ),
    (
        "Available",
        "integer",
        0,
        "Total number of available pods (ready for at least minReadySeconds).",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const REPLICASET: &[Column] = &[
    NAME,
    ("Desired", "integer", 0, "The number of desired replicas."),
    (
        "Current",
        "integer",
        0,
        "The most recently observed number of replicas.",
    ),
    (
        "Ready",
        "integer",
        0,
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const DAEMONSET: &[Column] = &[
    NAME,
    (
        "Desired",
        "integer",
        0,
        "The total number of nodes that should be running the daemon pod.",
    ),
    (
        "Current",
        "integer",
        0,
        "The number of nodes running at least 1 daemon pod that are supposed to.",
    ),
    (
        "Ready",
        "integer",
        0,
        "The number of nodes running the daemon pod ready.",
    ),
    (
        "Up-to-date",
        "integer",
        0,
        "The total number of nodes that are running updated daemon pod.",
    ),
    (
        "Available",
        "integer",
        0,
        "The number of nodes running the daemon pod available.",
    ),
    (
        "Node Selector",
        "string",
        0,
        "A selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const SERVICE: &[Column] = &[
    NAME,
    ("Type", "string", 0, "How the Service is exposed."),
    ("Cluster-IP", "string", 0, "The IP address of the service."),
    (
        "External-IP",
        "string",
        0,
        "IP addresses for which nodes in the cluster also accept traffic for this service.",
    ),
    (
        "Port(s)",
        "string",
        0,
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    (
        "Selector",
        "string",
        1,
        "Route service traffic to pods with labels matching this selector.",
    ),
];
const NODE: &[Column] = &[
    NAME,
    ("Status", "string", 0, "The status of the node"),
    ("Roles", "string", 0, "The roles of the node"),
    AGE,
    ("Version", "string", 0, "Kubelet Version reported by the node."),
    ("Internal-IP", "string", 1, "List of addresses reachable to the node."),
    ("External-IP", "string", 1, "List of addresses reachable to the node."),
    (
        "OS-Image",
        "string",
        1,
        "OS Image reported by the node from /etc/os-release.",
    ),
    (
        "Kernel-Version",
        "string",
        1,
        "Kernel Version reported by the node from 'uname -r'.",
    ),
    (
        "Container-Runtime",
        "string",
        1,
        "ContainerRuntime Version reported by the node.",
    ),
];
const NAMESPACE: &[Column] = &[NAME, ("Status", "string", 0, "The status of the namespace"), AGE];
const CONFIGMAP: &[Column] = &[
    NAME,
    ("Data", "string", 0, "Data contains the configuration data."),
    AGE,
];
const SECRET: &[Column] = &[
    NAME,
    (
        "Type",
        "string",
        0,
        "Used to facilitate programmatic handling of secret data.",
    ),
    ("Data", "string", 0, "Data contains the secret data."),
    AGE,
];
const SERVICEACCOUNT: &[Column] = &[
    NAME,
    ("Secrets", "string", 0, "Secrets pods running as this account may use."),
    AGE,
];
const ENDPOINTS: &[Column] = &[
    NAME,
    (
        "Endpoints",
        "string",
        0,
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];
const EVENT: &[Column] = &[
    (
        "Last Seen",
        "string",
        0,
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    ("Type", "string", 0, "Type of this event (Normal, Warning)."),
    (
        "Reason",
        "string",
        0,
        "A short, machine understandable string: why the object is in this state.",
    ),
    ("Object", "string", 0, "The object that this event is about."),
    (
        "Subobject",
        "string",
        1,
        "The path to the part of the object the event is about.",
    ),
    ("Source", "string", 1, "The component reporting this event."),
    (
        "Message",
        "string",
        0,
        "A human-readable description of the status of this operation.",
    ),
    (
        "First Seen",
        "string",
        1,
        "The time at which the event was first recorded.",
    ),
    ("Count", "string", 1, "The number of times this event has occurred."),
    ("Name", "string", 1, ""),
];
const LEASE: &[Column] = &[
    NAME,
    ("Holder", "string", 0, "The identity of the holder of a current lease."),
    AGE,
];
const ENDPOINTSLICE: &[Column] = &[
    NAME,
    (
        "AddressType",
        "string",
        0,
        "The type of address carried by this EndpointSlice.",
    ),
    (
        "Ports",
        "string",
        0,
        "The network ports exposed by each endpoint in this slice.",
    ),
    ("Endpoints", "string", 0, "The unique endpoints in this slice."),
    AGE,
];
const ROLE: &[Column] = &[NAME, ("Created At", "date", 0, "")];
const ROLEBINDING: &[Column] = &[
    NAME,
    ("Role", "string", 0, "The Role or ClusterRole the binding grants."),
    AGE,
    ("Users", "string", 1, "Users in the roleBinding"),
    ("Groups", "string", 1, "Groups in the roleBinding"),
    ("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
];

/// Columns and cells of a resource, as kube-apiserver prints it; NAME and AGE for the rest.
fn printer(group: &str, plural: &str) -> (&'static [Column], Cells) {
    match (group, plural) {
        ("", "pods") => (POD, pod::cells),
        ("", "services") => (SERVICE, cells::service),
        ("", "nodes") => (NODE, cells::node),
        ("", "namespaces") => (NAMESPACE, cells::namespace),
        ("", "configmaps") => (CONFIGMAP, cells::configmap),
        ("", "secrets") => (SECRET, cells::secret),
        ("", "serviceaccounts") => (SERVICEACCOUNT, cells::serviceaccount),
        ("", "endpoints") => (ENDPOINTS, cells::endpoints),
        ("", "events") => (EVENT, cells::event),
        ("events.k8s.io", "events") => (EVENT, cells::events_v1),
        ("apps", "deployments") => (DEPLOYMENT, cells::deployment),
        ("apps", "replicasets") => (REPLICASET, cells::replicaset),
        ("apps", "daemonsets") => (DAEMONSET, cells::daemonset),
        ("coordination.k8s.io", "leases") => (LEASE, cells::lease),
        ("discovery.k8s.io", "endpointslices") => (ENDPOINTSLICE, cells::endpointslice),
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") => (ROLE, cells::created_at),
        ("", "limitranges") => (ROLE, cells::created_at),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => (ROLEBINDING, cells::rolebinding),
        _ => (&[NAME, AGE], cells::default),
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn time(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text(v, pointer))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn name(v: &Value) -> Value {
    json!(text(v, "/metadata/name"))
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map_or_else(|| "<unknown>".to_string(), |t| human_duration(now - t))
}

fn age(v: &Value, now: DateTime<Utc>) -> Value {
    json!(since(time(v, "/metadata/creationTimestamp"), now))
}

/// Kubernetes' `duration.HumanDuration`: "5s", "3m2s", "15m", "2h5m", "20h", "2d3h", "30d", "3y2d".
pub fn human_duration(d: TimeDelta) -> String {
    let ms = d.num_milliseconds();
    let seconds = ms / 1000;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty.
fn format_labels(v: Option<&Value>) -> String {
    let mut pairs: Vec<String> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// A `LabelSelector` rendered as `labels.Selector.String()`: requirements sorted by key.
fn format_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in list(sel, "/matchExpressions") {
        let key = text(e, "/key");
        let mut values: Vec<&str> = list(e, "/values").iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let s = match text(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key.to_string(), s));
    }
    reqs.sort();
    reqs.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(",")
}

/// Container names and images of a pod template, comma-separated.
fn containers_and_images(template_spec: &Value) -> (Value, Value) {
    let containers = list(template_spec, "/containers");
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

fn condition_true(conditions: &[Value], kind: &str) -> bool {
    conditions
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

#[cfg(test)]
mod test_util {
    use super::*;

    pub(super) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-10T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    pub(super) fn column_names(t: &Value) -> Vec<&str> {
        t["columnDefinitions"]
            .as_array()
            .expect("cols")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect()
    }

    pub(super) fn cells(t: &Value) -> &Vec<Value> {
        t["rows"][0]["cells"].as_array().expect("cells")
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn human_durations_match_kubernetes() {
        let d = |s: i64| human_duration(TimeDelta::seconds(s));
        assert_eq!(d(5), "5s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(182), "3m2s");
        assert_eq!(d(240), "4m");
        assert_eq!(d(15 * 60), "15m");
        assert_eq!(d(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(d(20 * 3600), "20h");
        assert_eq!(d(51 * 3600), "2d3h");
        assert_eq!(d(30 * 86400), "30d");
        assert_eq!(d(3 * 365 * 86400 + 2 * 86400), "3y2d");
        assert_eq!(d(-1), "0s");
        assert_eq!(d(-5), "<invalid>");
    }

    #[test]
    fn default_table_and_accept_header() {
        let t = table(
            "example.com",
            "widgets",
            &[json!({"metadata": {"name": "w", "creationTimestamp": "2025-01-10T11:59:00Z"}})],
            json!(null),
            "Metadata",
            now(),
        );
        assert_eq!(column_names(&t), ["Name", "Age"]);
        assert_eq!(*cells(&t), [json!("w"), json!("60s")]);
        assert_eq!(t["metadata"], json!({}));
        let kubectl = concat!(
            "application/json;as=Table;v=v1;g=meta.k8s.io,",
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        );
        assert!(wants_table(kubectl));
        assert!(wants_table("application/json; g=meta.k8s.io; v=v1; as=Table"));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"));
    }
}

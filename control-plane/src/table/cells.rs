//! Cells of every printed kind but pods, one function per kind, named after its resource.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, containers_and_images, format_labels, format_selector, int, list, name, since, text, time};

/// `spec.replicas`, which Kubernetes defaults to 1.
fn desired_replicas(v: &Value) -> i64 {
    v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

pub(super) fn deployment(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = containers_and_images(&d["spec"]["template"]["spec"]);
    vec![
        name(d),
        json!(format!("{}/{}", int(d, "/status/readyReplicas"), desired_replicas(d))),
        json!(int(d, "/status/updatedReplicas")),
        json!(int(d, "/status/availableReplicas")),
        age(d, now),
        containers,
        images,
        json!(format_selector(d.pointer("/spec/selector"))),
    ]
}

pub(super) fn replicaset(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = containers_and_images(&rs["spec"]["template"]["spec"]);
    vec![
        name(rs),
        json!(desired_replicas(rs)),
        json!(int(rs, "/status/replicas")),
        json!(int(rs, "/status/readyReplicas")),
        age(rs, now),
        containers,
        images,
        json!(format_selector(rs.pointer("/spec/selector"))),
    ]
}

pub(super) fn daemonset(ds: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = containers_and_images(&ds["spec"]["template"]["spec"]);
    vec![
        name(ds),
        json!(int(ds, "/status/desiredNumberScheduled")),
        json!(int(ds, "/status/currentNumberScheduled")),
        json!(int(ds, "/status/numberReady")),
        json!(int(ds, "/status/updatedNumberScheduled")),
        json!(int(ds, "/status/numberAvailable")),
        json!(format_labels(ds.pointer("/spec/template/spec/nodeSelector"))),
        age(ds, now),
        containers,
        images,
        json!(format_selector(ds.pointer("/spec/selector"))),
    ]
}

pub(super) fn service(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let kind = match text(svc, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = list(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| svc.pointer("/spec/clusterIP").and_then(Value::as_str))
        .filter(|ip| !ip.is_empty())
        .unwrap_or("<none>");
    let external: Vec<&str> = list(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match kind {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut all: Vec<&str> = list(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = list(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int(p, "/nodePort") {
                0 => format!("{}/{protocol}", int(p, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name(svc),
        json!(kind),
        json!(cluster_ip),
        json!(external_ip),
        json!(ports),
        age(svc, now),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
}

pub(super) fn node(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    if let Some(c) = list(node, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == "Ready")
    {
        status.push(if text(c, "/status") == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role),
                    Some(_) => None,
                    None if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()),
                    None => None,
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort_unstable();
    roles.dedup();
    let address = |kind: &str| {
        list(node, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map_or("<none>", |a| text(a, "/address"))
            .to_string()
    };
    let unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        name(node),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        age(node, now),
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(unknown(text(node, "/status/nodeInfo/osImage"))),
        json!(unknown(text(node, "/status/nodeInfo/kernelVersion"))),
        json!(unknown(text(node, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

pub(super) fn namespace(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Kubernetes always stores a phase; an object without one is shown as it would be defaulted.
    let phase = match text(ns, "/status/phase") {
        "" if ns.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) => "Terminating",
        "" => "Active",
        p => p,
    };
    vec![name(ns), json!(phase), age(ns, now)]
}

fn object_len(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len() as i64)
}

pub(super) fn configmap(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(cm),
        json!(object_len(cm, "/data") + object_len(cm, "/binaryData")),
        age(cm, now),
    ]
}

pub(super) fn secret(s: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let kind = match text(s, "/type") {
        "" => "Opaque",
        t => t,
    };
    vec![name(s), json!(kind), json!(object_len(s, "/data")), age(s, now)]
}

pub(super) fn serviceaccount(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(sa), json!(list(sa, "/secrets").len()), age(sa, now)]
}

/// Up to `max` entries, then "+ N more...".
fn with_more(shown: Vec<String>, count: usize, max: usize, empty: &str) -> String {
    let joined = shown.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        empty.to_string()
    } else {
        joined
    }
}

fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

pub(super) fn endpoints(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let mut shown = Vec::new();
    let mut count = 0;
    for subset in list(ep, "/subsets") {
        let addresses = list(subset, "/addresses");
        let ports = list(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            shown.extend(addresses.iter().map(|a| text(a, "/ip").to_string()));
        }
        for port in ports {
            count += addresses.len();
            shown.extend(addresses.iter().map(|a| host_port(text(a, "/ip"), int(port, "/port"))));
        }
    }
    shown.truncate(MAX);
    vec![name(ep), json!(with_more(shown, count, MAX, "<none>")), age(ep, now)]
}

pub(super) fn endpointslice(slice: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX: usize = 3;
    let ports = list(slice, "/ports");
    let port_list: Vec<String> = ports
        .iter()
        .take(MAX)
        .map(|p| {
            match (
                p.get("port").and_then(Value::as_i64),
                p.get("name").and_then(Value::as_str),
            ) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            }
        })
        .collect();
    let addresses: Vec<String> = list(slice, "/endpoints")
        .iter()
        .flat_map(|e| {
            list(e, "/addresses")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let count = addresses.len();
    let shown = addresses.into_iter().take(MAX).collect();
    vec![
        name(slice),
        json!(text(slice, "/addressType")),
        json!(with_more(port_list, ports.len(), MAX, "<unset>")),
        json!(with_more(shown, count, MAX, "<unset>")),
        age(slice, now),
    ]
}

/// The fields the event printer reads, wherever an Event version keeps them.
struct EventFields<'a> {
    involved: &'a Value,
    message: &'a str,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    count: i64,
    component: &'a str,
    host: &'a str,
}

fn event_row(ev: &Value, now: DateTime<Utc>, f: EventFields) -> Vec<Value> {
    let first_seen = since(f.first.or(time(ev, "/eventTime")), now);
    let (last_seen, count) = if ev.pointer("/series").is_some_and(Value::is_object) {
        (
            since(time(ev, "/series/lastObservedTime"), now),
            int(ev, "/series/count"),
        )
    } else {
        // Singleton events of the new API have no count.
        let last_seen = if f.last.is_some() {
            since(f.last, now)
        } else {
            first_seen.clone()
        };
        (last_seen, f.count.max(1))
    };
    let kind = text(f.involved, "/kind").to_lowercase();
    let target = match text(f.involved, "/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = match f.host {
        "" => f.component.to_string(),
        host => format!("{}, {host}", f.component),
    };
    vec![
        json!(last_seen),
        json!(text(ev, "/type")),
        json!(text(ev, "/reason")),
        json!(target),
        json!(text(f.involved, "/fieldPath")),
        json!(source),
        json!(f.message.trim()),
        json!(first_seen),
        json!(count),
        name(ev),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

pub(super) fn event(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let fields = EventFields {
        involved: &ev["involvedObject"],
        message: text(ev, "/message"),
        first: time(ev, "/firstTimestamp"),
        last: time(ev, "/lastTimestamp"),
        count: int(ev, "/count"),
        component: first_non_empty(text(ev, "/source/component"), text(ev, "/reportingComponent")),
        host: first_non_empty(text(ev, "/source/host"), text(ev, "/reportingInstance")),
    };
    event_row(ev, now, fields)
}

/// events.k8s.io/v1 names the same fields differently (`regarding`, `note`, `deprecated*`).
pub(super) fn events_v1(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let fields = EventFields {
        involved: &ev["regarding"],
        message: text(ev, "/note"),
        first: time(ev, "/deprecatedFirstTimestamp"),
        last: time(ev, "/deprecatedLastTimestamp"),
        count: int(ev, "/deprecatedCount"),
        component: first_non_empty(
            text(ev, "/deprecatedSource/component"),
            text(ev, "/reportingController"),
        ),
        host: first_non_empty(text(ev, "/deprecatedSource/host"), text(ev, "/reportingInstance")),
    };
    event_row(ev, now, fields)
}

pub(super) fn lease(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(lease), json!(text(lease, "/spec/holderIdentity")), age(lease, now)]
}

pub(super) fn created_at(v: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let created = time(v, "/metadata/creationTimestamp")
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![name(v), json!(created)]
}

pub(super) fn rolebinding(rb: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let subjects = list(rb, "/subjects");
    let of_kind = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|s| text(s, "/kind") == kind)
            .map(|s| match kind {
                "ServiceAccount" => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
                _ => text(s, "/name").to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(rb),
        json!(format!("{}/{}", text(rb, "/roleRef/kind"), text(rb, "/roleRef/name"))),
        age(rb, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

pub(super) fn default(v: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(v), age(v, now)]
}

#[cfg(test)]
mod tests {
    use super::super::table;
    use super::super::test_util::*;
    use serde_json::json;

    #[test]
    fn service_row() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2025-01-10T11:57:58Z"},
            "spec": {
                "type": "ClusterIP",
                "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}],
                "selector": {"app": "web"}
            }
        });
        let t = table("", "services", &[svc], json!({}), "Object", now());
        assert_eq!(
            column_names(&t),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(
            *cells(&t),
            [
                json!("web"),
                json!("ClusterIP"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80/TCP"),
                json!("2m2s"),
                json!("app=web")
            ]
        );
        assert_eq!(t["rows"][0]["object"]["spec"]["type"], "ClusterIP");
        let np = json!({"metadata": {"name": "np"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "UDP"}]}});
        let c = table("", "services", &[np], json!({}), "None", now());
        assert_eq!(cells(&c)[4], "80:30080/UDP");
        assert_eq!(cells(&c)[5], "<unknown>");
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": []}});
        assert_eq!(
            cells(&table("", "services", &[lb], json!({}), "None", now()))[3],
            "<pending>"
        );
    }

    #[test]
    fn workload_rows() {
        let deploy = json!({
            "metadata": {"name": "d", "creationTimestamp": "2025-01-08T09:00:00Z"},
            "spec": {
                "replicas": 3,
                "selector": {
                    "matchLabels": {"app": "d"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]
                },
                "template": {"spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]}}
            },
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        let t = table("apps", "deployments", &[deploy], json!({}), "None", now());
        assert_eq!(
            column_names(&t),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            *cells(&t),
            [
                json!("d"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d3h"),
                json!("c1,c2"),
                json!("i1,i2"),
                json!("app=d,tier in (api,web)")
            ]
        );
        let rs =
            json!({"metadata": {"name": "r"}, "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 1}});
        let t = table("apps", "replicasets", &[rs], json!({}), "None", now());
        assert_eq!(column_names(&t)[..5], ["Name", "Desired", "Current", "Ready", "Age"]);
        assert_eq!(cells(&t)[1..4], [json!(2), json!(2), json!(1)]);
        let ds = json!({"metadata": {"name": "ds"},
            "spec": {"template": {"spec": {"nodeSelector": {"b": "2", "a": "1"}}}},
            "status": {"desiredNumberScheduled": 3}});
        let t = table("apps", "daemonsets", &[ds], json!({}), "None", now());
        assert_eq!(
            column_names(&t)[..8],
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age"
            ]
        );
        assert_eq!(cells(&t)[6], "a=1,b=2");
    }

    #[test]
    fn node_namespace_config_rows() {
        let node = json!({
            "metadata": {
                "name": "n1",
                "creationTimestamp": "2025-01-10T11:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}
            },
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0-skiff", "osImage": "Debian"}}
        });
        let t = table("", "nodes", &[node], json!({}), "None", now());
        assert_eq!(column_names(&t)[..5], ["Name", "Status", "Roles", "Age", "Version"]);
        assert_eq!(
            *cells(&t),
            [
                json!("n1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,worker"),
                json!("60m"),
                json!("v1.32.0-skiff"),
                json!("192.168.1.2"),
                json!("<none>"),
                json!("Debian"),
                json!("<unknown>"),
                json!("<unknown>"),
            ]
        );
        let ns = table(
            "",
            "namespaces",
            &[json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}})],
            json!({}),
            "None",
            now(),
        );
        assert_eq!(column_names(&ns), ["Name", "Status", "Age"]);
        assert_eq!(cells(&ns)[1], "Active");
        let cm = table(
            "",
            "configmaps",
            &[json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}})],
            json!({}),
            "None",
            now(),
        );
        assert_eq!(column_names(&cm), ["Name", "Data", "Age"]);
        assert_eq!(cells(&cm)[1], 3);
        let secret = table(
            "",
            "secrets",
            &[json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}})],
            json!({}),
            "None",
            now(),
        );
        assert_eq!(column_names(&secret), ["Name", "Type", "Data", "Age"]);
        assert_eq!(cells(&secret)[1..3], [json!("kubernetes.io/tls"), json!(2)]);
        let sa = table(
            "",
            "serviceaccounts",
            &[json!({"metadata": {"name": "default"}})],
            json!({}),
            "None",
            now(),
        );
        assert_eq!(column_names(&sa), ["Name", "Secrets", "Age"]);
        assert_eq!(cells(&sa)[1], 0);
    }

    #[test]
    fn endpoints_events_leases_rbac_rows() {
        let addresses = json!([{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "fd00::4"}]);
        let ep = json!({"metadata": {"name": "e"}, "subsets": [{"addresses": addresses, "ports": [{"port": 80}]}]});
        assert_eq!(
            cells(&table("", "endpoints", &[ep], json!({}), "None", now()))[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."
        );
        let slice = json!({"metadata": {"name": "s"}, "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "dns"}], "endpoints": [{"addresses": ["10.0.0.1"]}]});
        let t = table("discovery.k8s.io", "endpointslices", &[slice], json!({}), "None", now());
        assert_eq!(column_names(&t), ["Name", "AddressType", "Ports", "Endpoints", "Age"]);
        assert_eq!(cells(&t)[1..4], [json!("IPv4"), json!("80,dns"), json!("10.0.0.1")]);
        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled", "message": "assigned ",
            "involvedObject": {"kind": "Pod", "name": "web"}, "source": {"component": "default-scheduler"},
            "firstTimestamp": "2025-01-10T11:59:00Z", "lastTimestamp": "2025-01-10T11:59:30Z", "count": 2});
        let t = table("", "events", &[ev], json!({}), "None", now());
        assert_eq!(column_names(&t)[..4], ["Last Seen", "Type", "Reason", "Object"]);
        assert_eq!(
            *cells(&t),
            [
                json!("30s"),
                json!("Normal"),
                json!("Scheduled"),
                json!("pod/web"),
                json!(""),
                json!("default-scheduler"),
                json!("assigned"),
                json!("60s"),
                json!(2),
                json!("web.1")
            ]
        );
        let ev1 = json!({"metadata": {"name": "x"}, "regarding": {"kind": "Node", "name": "n1"}, "note": "hi",
            "eventTime": "2025-01-10T11:59:50.000000Z", "reportingController": "kubelet", "reportingInstance": "n1"});
        let c = table("events.k8s.io", "events", &[ev1], json!({}), "None", now());
        assert_eq!(cells(&c)[..4], [json!("10s"), json!(""), json!(""), json!("node/n1")]);
        assert_eq!(
            cells(&c)[5..9],
            [json!("kubelet, n1"), json!("hi"), json!("10s"), json!(1)]
        );
        let lease = table(
            "coordination.k8s.io",
            "leases",
            &[json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "n1"}})],
            json!({}),
            "None",
            now(),
        );
        assert_eq!(column_names(&lease), ["Name", "Holder", "Age"]);
        assert_eq!(cells(&lease)[1], "n1");
        let role = table(
            "rbac.authorization.k8s.io",
            "clusterroles",
            &[json!({"metadata": {"name": "admin", "creationTimestamp": "2025-01-01T00:00:00Z"}})],
            json!({}),
            "None",
            now(),
        );
        assert_eq!(column_names(&role), ["Name", "Created At"]);
        assert_eq!(cells(&role)[1], "2025-01-01T00:00:00Z");
        let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"},
            {"kind": "Group", "name": "devs"}
        ]});
        let t = table(
            "rbac.authorization.k8s.io",
            "rolebindings",
            &[rb],
            json!({}),
            "None",
            now(),
        );
        assert_eq!(
            column_names(&t),
            ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        );
        assert_eq!(cells(&t)[1], "ClusterRole/view");
        assert_eq!(cells(&t)[3..], [json!("alice"), json!("devs"), json!("ns/sa")]);
    }
}

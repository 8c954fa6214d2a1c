//! The decision half of the Endpoints controller: given a Service and the pods of its namespace,
//! what its `core/v1` Endpoints should hold. The EndpointSlice controller, in `endpointslice`,
//! shares the pod and port reading below.
//!
//! Pure so the subtle parts (which pods count, named-port resolution, RepackSubsets, truncation)
//! are tested without a cluster; the runtime lists the objects and executes the result. The
//! algorithms are Kubernetes 1.32's: `pkg/controller/endpoint/endpoints_controller.go`
//! (`syncService`, `truncateEndpoints`), `pkg/api/v1/endpoints/util.go` (`RepackSubsets`) and
//! `staging/src/k8s.io/endpointslice` (`ShouldPodBeInEndpoints`, `FindPort`).
//!
//! Which pods count (both controllers): pods of the Service's namespace selected by
//! `spec.selector`, not terminal (phase Succeeded or Failed; the old restartPolicy rule went away in
//! Kubernetes 1.22), with an IP, and not being deleted unless `publishNotReadyAddresses` (here) or
//! always (the slice controller, which marks them `terminating`).
//!
//! Kubernetes 1.32 labels Endpoints with the Service's labels plus `service.kubernetes.io/headless`
//! for a headless Service; `endpoints.kubernetes.io/managed-by` only arrived in 1.33.
//!
//! Differences from Kubernetes, on purpose:
//! - RepackSubsets' `SortSubsets` orders ports and subsets by md5 hashes; here they are sorted by
//!   content, so equal inputs always give equal outputs (the same subsets, in another order).
//! - a pod with `status.podIP` but no `status.podIPs` still gets an address.
//! - [`endpoints_changed`] compares all labels, so it also adds a missing headless label (Kubernetes
//!   ignores that label when deciding whether to write).
//! - the `endpoints.kubernetes.io/last-change-trigger-time` annotation is not set (it needs a
//!   clock; the runtime may add it).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::podutil::{int_at, is_being_deleted, is_pod_ready, name_of, namespace_of, normalize, uid_of};

pub use super::endpointslice::{desired_slices, SlicePlan};

/// Set (empty) on the Endpoints and slices of a Service without a cluster IP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Set to `truncated` on an Endpoints object cut down to [`MAX_ENDPOINTS_CAPACITY`] addresses.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// The most addresses one Endpoints object carries (Kubernetes' `maxCapacity`).
pub const MAX_ENDPOINTS_CAPACITY: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Reading services and pods
// ---------------------------------------------------------------------------------------------

pub(super) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `spec.selector` when it selects something. The API server drops an empty map, so an empty one
/// counts as no selector (Kubernetes tests `Selector == nil`).
pub(super) fn service_selector(svc: &Value) -> Option<&Map<String, Value>> {
    match svc.pointer("/spec/selector") {
        Some(Value::Object(m)) if !m.is_empty() => Some(m),
        _ => None,
    }
}

/// Services that get no endpoints from these controllers.
pub(super) fn unmanaged(svc: &Value) -> bool {
    service_selector(svc).is_none() || str_at(svc, "/spec/type") == "ExternalName"
}

/// Kubernetes' `!IsServiceIPSet`.
pub(super) fn is_headless(svc: &Value) -> bool {
    matches!(str_at(svc, "/spec/clusterIP"), "" | "None")
}

pub(super) fn service_ports(svc: &Value) -> &[Value] {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(super) fn publish_not_ready(svc: &Value) -> bool {
    svc.pointer("/spec/publishNotReadyAddresses").and_then(Value::as_bool) == Some(true)
}

/// The pods of the Service's namespace its selector (a plain equality map) selects.
pub(super) fn selected_pods<'a>(svc: &Value, selector: &Map<String, Value>, pods: &'a [Value]) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| namespace_of(p) == namespace_of(svc))
        .filter(|p| {
            let labels = p.pointer("/metadata/labels").and_then(Value::as_object);
            selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .collect()
}

/// Kubernetes' `ShouldPodBeInEndpoints`.
pub(super) fn should_pod_be_in_endpoints(pod: &Value, include_terminating: bool) -> bool {
    let phase = str_at(pod, "/status/phase");
    if phase == "Succeeded" || phase == "Failed" || pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || !is_being_deleted(pod)
}

/// `status.podIPs`, or `status.podIP` when the list is absent.
pub(super) fn pod_ips(pod: &Value) -> Vec<&str> {
    let listed: Vec<&str> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| str_at(e, "/ip"))
        .filter(|ip| !ip.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    Some(str_at(pod, "/status/podIP"))
        .filter(|ip| !ip.is_empty())
        .into_iter()
        .collect()
}

/// `"IPv4"` or `"IPv6"`; an unparsable address has no family and is never published.
pub(super) fn family_of(ip: &str) -> Option<&'static str> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(_) => Some("IPv4"),
        IpAddr::V6(_) => Some("IPv6"),
    }
}

/// Kubernetes' `ShouldSetHostname`.
pub(super) fn hostname_for<'a>(pod: &'a Value, svc: &Value) -> Option<&'a str> {
    let hostname = str_at(pod, "/spec/hostname");
    let matches = str_at(pod, "/spec/subdomain") == name_of(svc) && namespace_of(pod) == namespace_of(svc);
    (!hostname.is_empty() && matches).then_some(hostname)
}

pub(super) fn target_ref(pod: &Value) -> Value {
    json!({"kind": "Pod", "namespace": namespace_of(pod), "name": name_of(pod), "uid": uid_of(pod)})
}

pub(super) fn protocol_of(port: &Value) -> &str {
    port.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
}

/// Kubernetes' `FindPort`: a numeric `targetPort` as is (absent means `port`, as the API server
/// defaults it); a named one looked up in the ports of the pod's containers and sidecars
/// (init containers with `restartPolicy: Always`) with the same name and protocol.
pub(super) fn find_port(pod: &Value, service_port: &Value) -> Option<i64> {
    let name = match service_port.get("targetPort") {
        None | Some(Value::Null) => return int_at(service_port, "/port"),
        Some(Value::String(name)) => name,
        Some(_) => return int_at(service_port, "/targetPort"),
    };
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let sidecars = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| str_at(c, "/restartPolicy") == "Always");
    containers
        .chain(sidecars)
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .find(|p| str_at(p, "/name") == name && protocol_of(p) == protocol_of(service_port))
        .and_then(|p| int_at(p, "/containerPort"))
}

/// One endpoint port: what both APIs' port entries hold, ordered for sorting and grouping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct PortKey {
    pub(super) name: String,
    pub(super) port: i64,
    pub(super) protocol: String,
    pub(super) app_protocol: String,
}

impl PortKey {
    pub(super) fn resolved(service_port: &Value, port: i64) -> Self {
        PortKey {
            name: str_at(service_port, "/name").to_string(),
            port,
            protocol: protocol_of(service_port).to_string(),
            app_protocol: str_at(service_port, "/appProtocol").to_string(),
        }
    }

    pub(super) fn from_json(p: &Value) -> Self {
        PortKey {
            port: int_at(p, "/port").unwrap_or(-1),
            ..PortKey::resolved(p, 0)
        }
    }

    /// The entry as stored; an EndpointSlice port always names itself (possibly `""`).
    pub(super) fn to_json(&self, always_name: bool) -> Value {
        let mut m = Map::new();
        if always_name || !self.name.is_empty() {
            m.insert("name".into(), json!(self.name));
        }
        m.insert("port".into(), json!(self.port));
        m.insert("protocol".into(), json!(self.protocol));
        if !self.app_protocol.is_empty() {
            m.insert("appProtocol".into(), json!(self.app_protocol));
        }
        Value::Object(m)
    }
}

pub(super) fn set_field(obj: &mut Value, key: &str, value: Value) {
    if !obj.is_object() {
        *obj = json!({});
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert(key.to_string(), value);
    }
}

pub(super) fn set_meta(obj: &mut Value, key: &str, value: Value) {
    let mut meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    set_field(&mut meta, key, value);
    set_field(obj, "metadata", meta);
}

pub(super) fn service_labels(svc: &Value) -> Map<String, Value> {
    match svc.pointer("/metadata/labels") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

/// Addresses are identified by IP and pod uid, as in RepackSubsets.
type AddrKey = (String, String);

/// One address offering one port (`None`: a headless Service without ports), ready or not.
type Entry = (AddrKey, Value, bool, Option<PortKey>);

fn addr_key(address: &Value) -> AddrKey {
    (
        str_at(address, "/ip").to_string(),
        str_at(address, "/targetRef/uid").to_string(),
    )
}

/// The family an Endpoints object publishes: the Service's primary family, or (for Services the
/// API server did not default) the family of the cluster IP, or of a headless Service's pod.
fn endpoints_family(svc: &Value, pod: &Value) -> &'static str {
    if let Some(first) = svc.pointer("/spec/ipFamilies/0").and_then(Value::as_str) {
        return if first == "IPv6" { "IPv6" } else { "IPv4" };
    }
    let ip = if is_headless(svc) {
        str_at(pod, "/status/podIP")
    } else {
        str_at(svc, "/spec/clusterIP")
    };
    family_of(ip).unwrap_or("IPv4")
}

/// The Endpoints object the Endpoints controller keeps for `service`, or `None` when it leaves the
/// Service's Endpoints alone (no selector, or type ExternalName). `pods` may be every pod the caller
/// knows; those of other namespaces or not selected are ignored. The result carries only name,
/// namespace, labels and the over-capacity annotation in its metadata: the runtime copies
/// `resourceVersion` (and annotations it keeps) from the current object when updating.
pub fn desired_endpoints(service: &Value, pods: &[Value]) -> Option<Value> {
    if str_at(service, "/spec/type") == "ExternalName" {
        return None;
    }
    let selector = service_selector(service)?;
    let tolerate_unready = publish_not_ready(service);
    // One (address, readiness, port) entry per pod and resolved port, as addEndpointSubset adds
    // one single-address subset each, then RepackSubsets regroups them.
    let mut entries: Vec<Entry> = Vec::new();
    for pod in selected_pods(service, selector, pods) {
        if !should_pod_be_in_endpoints(pod, tolerate_unready) {
            continue;
        }
        let family = endpoints_family(service, pod);
        let Some(ip) = pod_ips(pod).into_iter().find(|ip| family_of(ip) == Some(family)) else {
            continue;
        };
        let mut address = json!({"ip": ip, "targetRef": target_ref(pod)});
        let node = str_at(pod, "/spec/nodeName");
        if !node.is_empty() {
            set_field(&mut address, "nodeName", json!(node));
        }
        if let Some(hostname) = hostname_for(pod, service) {
            set_field(&mut address, "hostname", json!(hostname));
        }
        let key = addr_key(&address);
        let ready = tolerate_unready || is_pod_ready(pod);
        let ports = service_ports(service);
        if ports.is_empty() {
            // A headless Service may have no ports; its addresses are published without any.
            if str_at(service, "/spec/clusterIP") == "None" {
                entries.push((key, address, ready, None));
            }
            continue;
        }
        for sp in ports {
            if let Some(port) = find_port(pod, sp) {
                entries.push((key.clone(), address.clone(), ready, Some(PortKey::resolved(sp, port))));
            }
        }
    }

    let mut subsets = repack_subsets(entries);
    let mut annotations = Map::new();
    if truncate(&mut subsets) {
        annotations.insert(OVER_CAPACITY_ANNOTATION.into(), json!("truncated"));
    }
    let mut labels = service_labels(service);
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), json!(""));
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    let mut metadata = json!({"name": name_of(service), "namespace": namespace_of(service), "labels": labels});
    if !annotations.is_empty() {
        set_field(&mut metadata, "annotations", Value::Object(annotations));
    }
    Some(json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": metadata, "subsets": subsets}))
}

/// RepackSubsets: map each port to the addresses offering it (an address not ready on a port stays
/// not ready), then group ports by identical address sets, one subset per group.
fn repack_subsets(entries: Vec<Entry>) -> Vec<Value> {
    let mut addresses: BTreeMap<AddrKey, Value> = BTreeMap::new();
    let mut by_port: BTreeMap<Option<PortKey>, BTreeMap<AddrKey, bool>> = BTreeMap::new();
    for (key, address, ready, port) in entries {
        addresses.entry(key.clone()).or_insert(address);
        let set = by_port.entry(port).or_default();
        if set.get(&key) != Some(&false) {
            set.insert(key, ready);
        }
    }
    let mut groups: BTreeMap<Vec<(AddrKey, bool)>, Vec<PortKey>> = BTreeMap::new();
    for (port, set) in by_port {
        let ports = groups.entry(set.into_iter().collect()).or_default();
        ports.extend(port);
    }
    let subsets: Vec<Value> = groups
        .into_iter()
        .map(|(members, ports)| {
            let pick = |want: bool| -> Vec<Value> {
                members
                    .iter()
                    .filter(|(_, ready)| *ready == want)
                    .filter_map(|(k, _)| addresses.get(k).cloned())
                    .collect()
            };
            let mut subset = Map::new();
            for (field, list) in [("addresses", pick(true)), ("notReadyAddresses", pick(false))] {
                if !list.is_empty() {
                    subset.insert(field.into(), Value::Array(list));
                }
            }
            if !ports.is_empty() {
                subset.insert("ports".into(), ports.iter().map(|p| p.to_json(false)).collect());
            }
            Value::Object(subset)
        })
        .collect();
    canonical_subsets(&subsets)
}

/// Sorts addresses (by IP, then pod uid), ports, and subsets into one stable order, so two lists
/// holding the same subsets compare equal whatever order their writer used.
fn canonical_subsets(subsets: &[Value]) -> Vec<Value> {
    type SubsetKey = (Vec<AddrKey>, Vec<AddrKey>, Vec<PortKey>);
    let mut keyed: Vec<(SubsetKey, Value)> = subsets
        .iter()
        .map(|s| {
            let mut s = s.clone();
            let mut key: SubsetKey = Default::default();
            for (field, keys) in [("addresses", &mut key.0), ("notReadyAddresses", &mut key.1)] {
                if let Some(list) = s.get(field).and_then(Value::as_array) {
                    let mut list = list.clone();
                    list.sort_by_key(addr_key);
                    keys.extend(list.iter().map(addr_key));
                    set_field(&mut s, field, Value::Array(list));
                }
            }
            if let Some(list) = s.get("ports").and_then(Value::as_array) {
                let mut list = list.clone();
                list.sort_by_key(PortKey::from_json);
                key.2.extend(list.iter().map(PortKey::from_json));
                set_field(&mut s, "ports", Value::Array(list));
            }
            (key, s)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, s)| s).collect()
}

fn address_count(subsets: &[Value], field: &str) -> usize {
    subsets
        .iter()
        .filter_map(|s| s.get(field).and_then(Value::as_array))
        .map(Vec::len)
        .sum()
}

/// Kubernetes' `truncateEndpoints`: past [`MAX_ENDPOINTS_CAPACITY`] addresses, keep ready ones
/// first and spread the cut over subsets in proportion to their size. Returns whether it cut.
fn truncate(subsets: &mut [Value]) -> bool {
    let ready = address_count(subsets, "addresses");
    let not_ready = address_count(subsets, "notReadyAddresses");
    if ready + not_ready <= MAX_ENDPOINTS_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_ENDPOINTS_CAPACITY;
    let (max, total, field) = if truncate_ready {
        (MAX_ENDPOINTS_CAPACITY, ready, "addresses")
    } else {
        (MAX_ENDPOINTS_CAPACITY - ready, not_ready, "notReadyAddresses")
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let mut list = subset.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
        // ceil(len / total * max), in integers.
        let share = (list.len() * max).div_ceil(total.max(1)).min(can_be_added);
        list.truncate(share);
        can_be_added -= list.len();
        if let Some(m) = subset.as_object_mut() {
            if truncate_ready {
                m.remove("notReadyAddresses");
            }
            if list.is_empty() {
                m.remove(field);
            } else {
                m.insert(field.into(), Value::Array(list));
            }
        }
    }
    true
}

/// Comparable content of an Endpoints object: canonical subsets without the pods' resourceVersion
/// (old controllers recorded it; a pod update alone must not rewrite Endpoints), labels, and
/// whether it is marked truncated.
fn endpoints_content(ep: &Value) -> (Option<Value>, Option<Value>, bool) {
    let mut subsets = ep.get("subsets").and_then(Value::as_array).cloned().unwrap_or_default();
    for subset in &mut subsets {
        for field in ["addresses", "notReadyAddresses"] {
            if let Some(list) = subset.get_mut(field).and_then(Value::as_array_mut) {
                for address in list {
                    if let Some(r) = address.get_mut("targetRef").and_then(Value::as_object_mut) {
                        r.remove("resourceVersion");
                    }
                }
            }
        }
    }
    let subsets = normalize(&Value::Array(canonical_subsets(&subsets)));
    let labels = ep.pointer("/metadata/labels").and_then(normalize);
    let truncated = ep
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(OVER_CAPACITY_ANNOTATION))
        .is_some();
    (subsets, labels, truncated)
}

/// Whether `current` must be updated to `desired` (from [`desired_endpoints`]): subsets, labels or
/// the over-capacity mark differ. Metadata noise (resourceVersion, managedFields, other
/// annotations) and the order of addresses, ports and subsets are ignored.
pub fn endpoints_changed(current: &Value, desired: &Value) -> bool {
    endpoints_content(current) != endpoints_content(desired)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn svc(ports: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "ports": ports},
        })
    }

    pub(crate) fn http_svc() -> Value {
        svc(json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]))
    }

    pub(crate) fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": []}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" } }]},
        })
    }

    pub(crate) fn with_container_port(mut p: Value, name: &str, port: i64, protocol: &str) -> Value {
        p["spec"]["containers"][0]["ports"] = json!([{"name": name, "containerPort": port, "protocol": protocol}]);
        p
    }

    fn ips(subset: &Value, field: &str) -> Vec<String> {
        subset[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| str_at(a, "/ip").to_string())
            .collect()
    }

    fn subsets(ep: &Option<Value>) -> Vec<Value> {
        ep.as_ref()
            .and_then(|e| e["subsets"].as_array().cloned())
            .unwrap_or_default()
    }

    #[test]
    fn ready_and_not_ready_addresses_are_split() {
        let mut other_ns = pod("x", "10.0.0.9", true);
        other_ns["metadata"]["namespace"] = json!("other");
        let mut unselected = pod("y", "10.0.0.8", true);
        unselected["metadata"]["labels"] = json!({"app": "db"});
        let mut no_ip = pod("z", "", true);
        no_ip["status"]["podIPs"] = json!([]);
        let pods = [
            pod("a", "10.0.0.2", true),
            pod("b", "10.0.0.1", false),
            other_ns,
            unselected,
            no_ip,
        ];
        let ep = desired_endpoints(&http_svc(), &pods);
        let subs = subsets(&ep);
        assert_eq!(subs.len(), 1);
        assert_eq!(ips(&subs[0], "addresses"), vec!["10.0.0.2"]);
        assert_eq!(ips(&subs[0], "notReadyAddresses"), vec!["10.0.0.1"]);
        assert_eq!(
            subs[0]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(subs[0]["addresses"][0]["nodeName"], "node-1");
        assert_eq!(
            subs[0]["addresses"][0]["targetRef"],
            json!({"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"})
        );
        let ep = ep.unwrap();
        assert_eq!(ep["metadata"]["name"], "web");
        assert_eq!(ep["metadata"]["labels"], json!({"team": "a"}));
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let service = svc(json!([
            {"name": "web", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9090},
        ]));
        let pods = [
            with_container_port(pod("a", "10.0.0.1", true), "http", 8080, "TCP"),
            with_container_port(pod("b", "10.0.0.2", true), "http", 8081, "TCP"),
            pod("c", "10.0.0.3", true),
            // The name exists but for another protocol: no match.
            with_container_port(pod("d", "10.0.0.4", true), "http", 8080, "UDP"),
        ];
        let subs = subsets(&desired_endpoints(&service, &pods));
        let by_ports: Vec<(Vec<String>, Value)> =
            subs.iter().map(|s| (ips(s, "addresses"), s["ports"].clone())).collect();
        assert_eq!(by_ports.len(), 3, "{by_ports:?}");
        assert!(by_ports.contains(&(
            vec!["10.0.0.1".into()],
            json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
        )));
        assert!(by_ports.contains(&(
            vec!["10.0.0.2".into()],
            json!([{"name": "web", "port": 8081, "protocol": "TCP"}])
        )));
        let all: Vec<String> = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
            .map(String::from)
            .to_vec();
        assert!(by_ports.contains(&(all, json!([{"name": "metrics", "port": 9090, "protocol": "TCP"}]))));
    }

    #[test]
    fn terminating_and_terminal_pods() {
        let mut terminating = pod("t", "10.0.0.5", true);
        terminating["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        let mut failed = pod("f", "10.0.0.6", false);
        failed["status"]["phase"] = json!("Failed");
        let mut succeeded = pod("s", "10.0.0.7", false);
        succeeded["status"]["phase"] = json!("Succeeded");
        let pods = [
            pod("a", "10.0.0.1", true),
            pod("n", "10.0.0.2", false),
            terminating,
            failed,
            succeeded,
        ];

        let subs = subsets(&desired_endpoints(&http_svc(), &pods));
        assert_eq!(subs.len(), 1);
        assert_eq!(ips(&subs[0], "addresses"), vec!["10.0.0.1"]);
        assert_eq!(ips(&subs[0], "notReadyAddresses"), vec!["10.0.0.2"]);

        // publishNotReadyAddresses: everything not terminal is published as ready.
        let mut publish = http_svc();
        publish["spec"]["publishNotReadyAddresses"] = json!(true);
        let subs = subsets(&desired_endpoints(&publish, &pods));
        assert_eq!(subs.len(), 1);
        assert_eq!(ips(&subs[0], "addresses"), vec!["10.0.0.1", "10.0.0.2", "10.0.0.5"]);
        assert!(subs[0].get("notReadyAddresses").is_none());
    }

    #[test]
    fn selectorless_and_external_name_services_are_left_alone() {
        let mut no_selector = http_svc();
        no_selector["spec"].as_object_mut().map(|s| s.remove("selector"));
        assert_eq!(desired_endpoints(&no_selector, &[pod("a", "10.0.0.1", true)]), None);
        let mut empty_selector = http_svc();
        empty_selector["spec"]["selector"] = json!({});
        assert_eq!(desired_endpoints(&empty_selector, &[pod("a", "10.0.0.1", true)]), None);
        let mut external = http_svc();
        external["spec"]["type"] = json!("ExternalName");
        assert_eq!(desired_endpoints(&external, &[pod("a", "10.0.0.1", true)]), None);
        assert!(
            desired_endpoints(&http_svc(), &[]).is_some(),
            "a selector with no pods still has Endpoints"
        );
    }

    #[test]
    fn repacking_is_deterministic_and_comparison_ignores_noise() {
        let service = svc(json!([
            {"name": "b", "port": 81, "targetPort": 8081},
            {"name": "a", "port": 80, "targetPort": 8080},
        ]));
        let pods = vec![
            pod("p3", "10.0.0.3", true),
            pod("p1", "10.0.0.1", false),
            pod("p2", "10.0.0.2", true),
        ];
        let mut reversed = pods.clone();
        reversed.reverse();
        let first = desired_endpoints(&service, &pods).unwrap();
        assert_eq!(Some(first.clone()), desired_endpoints(&service, &reversed));
        // Both ports offered by the same addresses: one subset, ports sorted, addresses by IP.
        let subs = subsets(&Some(first.clone()));
        assert_eq!(subs.len(), 1);
        assert_eq!(ips(&subs[0], "addresses"), vec!["10.0.0.2", "10.0.0.3"]);
        assert_eq!(subs[0]["ports"][0]["name"], "a");
        assert_eq!(subs[0]["ports"][1]["name"], "b");

        let mut current = first.clone();
        current["metadata"]["resourceVersion"] = json!("42");
        current["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = json!("7");
        let reordered: Vec<Value> = current["subsets"][0]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .cloned()
            .collect();
        current["subsets"][0]["addresses"] = json!(reordered);
        assert!(!endpoints_changed(&current, &first));
        current["metadata"]["labels"]["team"] = json!("b");
        assert!(endpoints_changed(&current, &first));
        let mut fewer = first.clone();
        fewer["subsets"][0]["addresses"].as_array_mut().unwrap().pop();
        assert!(endpoints_changed(&fewer, &first));
    }

    #[test]
    fn headless_hostnames_and_portless_services() {
        let mut service = svc(json!([]));
        service["spec"]["clusterIP"] = json!("None");
        let mut p = pod("a", "10.0.0.1", true);
        p["spec"]["hostname"] = json!("a-0");
        p["spec"]["subdomain"] = json!("web");
        let mut q = pod("b", "10.0.0.2", true);
        q["spec"]["hostname"] = json!("b-0");
        q["spec"]["subdomain"] = json!("other");
        let ep = desired_endpoints(&service, &[p, q]).unwrap();
        assert_eq!(ep["metadata"]["labels"][HEADLESS_LABEL], "");
        let subs = subsets(&Some(ep));
        assert_eq!(subs.len(), 1);
        assert!(subs[0].get("ports").is_none());
        assert_eq!(subs[0]["addresses"][0]["hostname"], "a-0");
        assert!(subs[0]["addresses"][1].get("hostname").is_none(), "subdomain differs");
        // A port-less Service with a cluster IP publishes nothing.
        assert!(subsets(&desired_endpoints(&svc(json!([])), &[pod("a", "10.0.0.1", true)])).is_empty());
    }

    #[test]
    fn over_capacity_endpoints_are_truncated() {
        let pods: Vec<Value> = (0..1005)
            .map(|i| pod(&format!("p{i}"), &format!("10.1.{}.{}", i / 250, i % 250), i % 2 == 0))
            .collect();
        let ep = desired_endpoints(&http_svc(), &pods).unwrap();
        let subs = subsets(&Some(ep.clone()));
        assert_eq!(address_count(&subs, "addresses"), 503, "every ready address is kept");
        assert_eq!(address_count(&subs, "notReadyAddresses"), 497);
        assert_eq!(ep["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION], "truncated");
        let mut unmarked = ep.clone();
        unmarked["metadata"].as_object_mut().map(|m| m.remove("annotations"));
        assert!(endpoints_changed(&unmarked, &ep));
    }
}

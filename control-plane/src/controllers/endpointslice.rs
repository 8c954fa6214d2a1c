//! The decision half of the EndpointSlice controller: given a Service, the pods of its namespace
//! and the namespace's slices, which `discovery.k8s.io/v1` EndpointSlices to create, update and
//! delete.
//!
//! Pure so slice packing and reuse are tested without a cluster; the runtime executes the
//! [`SlicePlan`]. The algorithm is Kubernetes 1.32's `staging/src/k8s.io/endpointslice`
//! (`reconciler.go`: `reconcileByAddressType`, `reconcileByPortMapping`, `finalize`; `utils.go`:
//! `podToEndpoint`, `getEndpointPorts`, `setEndpointSliceLabels`), with the pod and port reading
//! shared with the Endpoints controller in `endpoints`.
//!
//! Differences from Kubernetes, on purpose:
//! - every iteration Go leaves to map order (pods, `PopAny`, the sets of slice names) is sorted,
//!   so equal inputs always give equal plans.
//! - Kubernetes leaves the slices of a Service that lost its selector alone; here the slices this
//!   controller made for it are deleted.
//! - not modelled: zones and topology hints (no node information reaches this module), skipping
//!   pods whose node does not exist, and the `endpoints.kubernetes.io/last-change-trigger-time`
//!   annotation.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::endpoints::{
    family_of, find_port, hostname_for, is_headless, pod_ips, publish_not_ready, selected_pods, service_labels,
    service_ports, service_selector, set_field, set_meta, should_pod_be_in_endpoints, str_at, target_ref, unmanaged,
    PortKey, HEADLESS_LABEL,
};
use super::podutil::{is_being_deleted, is_pod_ready, name_of, namespace_of, normalize, owner_reference, uid_of};

/// The label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages an EndpointSlice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Our value of [`MANAGED_BY_LABEL`]; slices with another value belong to someone else.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The most endpoints per EndpointSlice (kube-controller-manager's default
/// `--max-endpoints-per-slice`).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// The writes one EndpointSlice reconcile decided. `update` holds whole objects carrying the
/// `resourceVersion` they were read at (a PUT); `delete` holds slice names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlicePlan {
    pub create: Vec<Value>,
    pub update: Vec<Value>,
    pub delete: Vec<String>,
}

/// Endpoints are identified by their sorted addresses, hostname and pod (Kubernetes'
/// `hashEndpoint`); the rest of an endpoint is compared by [`equal_beyond_key`].
type EndpointKey = (Vec<String>, String, String, String);

fn endpoint_key(ep: &Value) -> EndpointKey {
    let mut addresses: Vec<String> = ep
        .get("addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    addresses.sort();
    let field = |p: &str| str_at(ep, p).to_string();
    (
        addresses,
        field("/hostname"),
        field("/targetRef/namespace"),
        field("/targetRef/name"),
    )
}

/// Kubernetes' `EndpointsEqualBeyondHash`.
fn equal_beyond_key(a: &Value, b: &Value) -> bool {
    ["nodeName", "zone", "conditions", "hints", "targetRef"]
        .iter()
        .all(|f| a.get(*f).and_then(normalize) == b.get(*f).and_then(normalize))
}

/// The address families the Service's slices are made for (`getAddressTypesForService`).
fn slice_families(svc: &Value) -> Vec<&'static str> {
    let declared: BTreeSet<&'static str> = svc
        .pointer("/spec/ipFamilies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            Some("IPv4") => Some("IPv4"),
            Some("IPv6") => Some("IPv6"),
            _ => None,
        })
        .collect();
    if !declared.is_empty() {
        return declared.into_iter().collect();
    }
    if !is_headless(svc) {
        return vec![family_of(str_at(svc, "/spec/clusterIP")).unwrap_or("IPv4")];
    }
    vec!["IPv4", "IPv6"]
}

/// Labels of the Service's slices (`setEndpointSliceLabels`): the Service's own, except the
/// reserved keys, which the controller sets itself.
fn slice_labels(svc: &Value) -> Map<String, Value> {
    let mut labels = service_labels(svc);
    labels.remove(HEADLESS_LABEL);
    if is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), json!(""));
    }
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name_of(svc)));
    labels.insert(MANAGED_BY_LABEL.into(), json!(CONTROLLER_NAME));
    labels
}

/// Slices this controller manages for a Service of this name (what its lister selects).
fn is_ours(slice: &Value, svc: &Value) -> bool {
    let ns = namespace_of(slice);
    (ns.is_empty() || ns == namespace_of(svc))
        && str_at(
            slice,
            &format!("/metadata/labels/{}", SERVICE_NAME_LABEL.replace('/', "~1")),
        ) == name_of(svc)
        && str_at(
            slice,
            &format!("/metadata/labels/{}", MANAGED_BY_LABEL.replace('/', "~1")),
        ) == CONTROLLER_NAME
}

/// Owned by this very Service (not a deleted namesake whose slices await garbage collection).
fn owned_by(slice: &Value, svc: &Value) -> bool {
    let refs = slice.pointer("/metadata/ownerReferences").and_then(Value::as_array);
    refs.into_iter().flatten().any(|r| {
        str_at(r, "/uid") == uid_of(svc) && str_at(r, "/kind") == "Service" && str_at(r, "/apiVersion") == "v1"
    })
}

fn slice_port_keys(slice: &Value) -> Vec<PortKey> {
    let mut keys: Vec<PortKey> = slice
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(PortKey::from_json)
        .collect();
    keys.sort();
    keys
}

fn new_slice(svc: &Value, ports: &[PortKey], family: &str) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": format!("{}-", name_of(svc)),
            "namespace": namespace_of(svc),
            "labels": slice_labels(svc),
            "ownerReferences": [owner_reference(svc, "v1", "Service")],
        },
        "addressType": family,
        "endpoints": [],
        "ports": ports.iter().map(|p| p.to_json(true)).collect::<Vec<_>>(),
    })
}

/// Kubernetes' `podToEndpoint`, for one address family.
fn pod_to_endpoint(pod: &Value, svc: &Value, family: &str) -> Value {
    let serving = is_pod_ready(pod);
    let terminating = is_being_deleted(pod);
    // `ready` is never true for a terminating endpoint unless the Service asks to publish all.
    let ready = publish_not_ready(svc) || (serving && !terminating);
    let addresses: Vec<&str> = pod_ips(pod)
        .into_iter()
        .filter(|ip| family_of(ip) == Some(family))
        .collect();
    let mut ep = json!({
        "addresses": addresses,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": target_ref(pod),
    });
    let node = str_at(pod, "/spec/nodeName");
    if !node.is_empty() {
        set_field(&mut ep, "nodeName", json!(node));
    }
    if let Some(hostname) = hostname_for(pod, svc) {
        set_field(&mut ep, "hostname", json!(hostname));
    }
    ep
}

/// Kubernetes' `getEndpointPorts`: the Service's ports as this pod resolves them.
fn endpoint_ports(svc: &Value, pod: &Value) -> Vec<PortKey> {
    service_ports(svc)
        .iter()
        .filter_map(|sp| find_port(pod, sp).map(|port| PortKey::resolved(sp, port)))
        .collect()
}

/// A slice being worked on: its object and endpoints (moved out to be edited).
struct Work {
    obj: Value,
    endpoints: Vec<Value>,
}

impl Work {
    fn new(obj: Value) -> Self {
        let endpoints = obj
            .get("endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Work { obj, endpoints }
    }

    fn into_value(mut self) -> Value {
        set_field(&mut self.obj, "endpoints", Value::Array(self.endpoints));
        self.obj
    }

    fn fill(&mut self, desired: &mut BTreeMap<EndpointKey, Value>) {
        while self.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
            let Some((_, ep)) = desired.pop_first() else { break };
            self.endpoints.push(ep);
        }
    }
}

#[derive(Default)]
struct Changes {
    create: Vec<Work>,
    update: Vec<Work>,
    delete: Vec<Value>,
}

impl Changes {
    fn extend(&mut self, other: Changes) {
        self.create.extend(other.create);
        self.update.extend(other.update);
        self.delete.extend(other.delete);
    }
}

/// Computes the EndpointSlices of `service` (see the module docs): `pods` may be every pod the
/// caller knows, `existing` every slice of the namespace; only slices labelled as ours for this
/// Service are ever updated or deleted. Existing slices are kept and refilled before new ones are
/// made, and a create is turned into an update of a slice that would otherwise be deleted.
pub fn desired_slices(service: &Value, pods: &[Value], existing: &[Value]) -> SlicePlan {
    let ours: Vec<&Value> = existing.iter().filter(|s| is_ours(s, service)).collect();
    let mut changes = Changes::default();
    match service_selector(service) {
        Some(selector) if !unmanaged(service) => {
            let families = slice_families(service);
            let selected = selected_pods(service, selector, pods);
            for slice in &ours {
                if !families.contains(&str_at(slice, "/addressType")) {
                    changes.delete.push((*slice).clone());
                }
            }
            for family in families {
                let of_family: Vec<&Value> = ours
                    .iter()
                    .copied()
                    .filter(|s| str_at(s, "/addressType") == family)
                    .collect();
                changes.extend(reconcile_family(service, &selected, &of_family, family));
            }
        }
        _ => changes.delete.extend(ours.iter().map(|s| (*s).clone())),
    }
    // No new slices for a Service being deleted: they would race its garbage collection.
    if is_being_deleted(service) {
        changes.create.clear();
    }
    let mut update: Vec<Value> = changes.update.into_iter().map(Work::into_value).collect();
    update.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    let delete: BTreeSet<String> = changes
        .delete
        .iter()
        .map(|s| name_of(s).to_string())
        .filter(|n| !n.is_empty())
        .collect();
    SlicePlan {
        create: changes.create.into_iter().map(Work::into_value).collect(),
        update,
        delete: delete.into_iter().collect(),
    }
}

/// Kubernetes' `reconcileByAddressType` and `finalize`, for one family.
fn reconcile_family(svc: &Value, pods: &[&Value], existing: &[&Value], family: &str) -> Changes {
    let mut changes = Changes::default();
    let mut existing_by_ports: BTreeMap<Vec<PortKey>, Vec<&Value>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, svc) {
            existing_by_ports.entry(slice_port_keys(slice)).or_default().push(slice);
        } else {
            changes.delete.push((*slice).clone());
        }
    }
    // Port set (sorted, the key) -> the ports in Service order, and the endpoints offering them.
    type Desired = (Vec<PortKey>, BTreeMap<EndpointKey, Value>);
    let mut desired_by_ports: BTreeMap<Vec<PortKey>, Desired> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let mut key = ports.clone();
        key.sort();
        let (_, set) = desired_by_ports.entry(key).or_insert_with(|| (ports, BTreeMap::new()));
        let ep = pod_to_endpoint(pod, svc, family);
        if ep
            .get("addresses")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            set.insert(endpoint_key(&ep), ep);
        }
    }
    for (key, (ports, desired)) in desired_by_ports {
        let slices = existing_by_ports.remove(&key).unwrap_or_default();
        changes.extend(reconcile_ports(svc, &slices, desired, &ports, family));
    }
    changes
        .delete
        .extend(existing_by_ports.into_values().flatten().cloned());

    // A Service without endpoints still gets one empty placeholder slice.
    if existing.len() == changes.delete.len() && changes.create.is_empty() {
        let placeholder = new_slice(svc, &[], family);
        if changes.delete.len() == 1 && same_placeholder(&changes.delete[0], &placeholder) {
            changes.delete.clear();
        } else {
            changes.create.push(Work::new(placeholder));
        }
    }

    // Rather than delete one slice and create another, rewrite the doomed one.
    let mut i = 0;
    while i < changes.delete.len() && !changes.create.is_empty() {
        let doomed = &changes.delete[i];
        if str_at(doomed, "/addressType") == family && owned_by(doomed, svc) {
            if let Some(mut work) = changes.create.pop() {
                let mut meta = work.obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.remove("generateName");
                    m.insert("name".into(), json!(name_of(doomed)));
                    if let Some(rv) = doomed.pointer("/metadata/resourceVersion") {
                        m.insert("resourceVersion".into(), rv.clone());
                    }
                }
                set_field(&mut work.obj, "metadata", meta);
                changes.update.push(work);
            }
            changes.delete.remove(i);
        } else {
            i += 1;
        }
    }
    changes
}

/// Whether an existing slice already is the placeholder (`placeholderSliceCompare`).
fn same_placeholder(slice: &Value, placeholder: &Value) -> bool {
    let same = |p: &str| slice.pointer(p).and_then(normalize) == placeholder.pointer(p).and_then(normalize);
    namespace_of(slice) == namespace_of(placeholder)
        && ["/metadata/labels", "/addressType", "/endpoints", "/ports"]
            .iter()
            .all(|p| same(p))
}

/// Kubernetes' `reconcileByPortMapping`: keeps desired endpoints where they are, drops the others,
/// refills changed slices (fullest first), then fits the rest in one unchanged slice or new ones.
fn reconcile_ports(
    svc: &Value,
    existing: &[&Value],
    mut desired: BTreeMap<EndpointKey, Value>,
    ports: &[PortKey],
    family: &str,
) -> Changes {
    let labels = Value::Object(slice_labels(svc));
    let mut by_name: BTreeMap<String, Work> = BTreeMap::new();
    let (mut unchanged, mut to_update, mut to_delete) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut sorted = existing.to_vec();
    sorted.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    for slice in sorted {
        let name = name_of(slice).to_string();
        let mut work = Work::new(slice.clone());
        let mut kept = Vec::new();
        let mut endpoint_changed = false;
        for ep in &work.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(ep)) {
                endpoint_changed |= !equal_beyond_key(&want, ep);
                kept.push(want);
            }
        }
        let labels_changed = slice.pointer("/metadata/labels").and_then(normalize) != normalize(&labels);
        if endpoint_changed || kept.len() != work.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
            } else {
                work.endpoints = kept;
                set_meta(&mut work.obj, "labels", labels.clone());
                to_update.insert(name.clone());
            }
        } else if labels_changed {
            set_meta(&mut work.obj, "labels", labels.clone());
            to_update.insert(name.clone());
        } else {
            unchanged.insert(name.clone());
        }
        by_name.insert(name, work);
    }

    if !desired.is_empty() {
        let mut fullest_first: Vec<&String> = to_update.iter().collect();
        fullest_first.sort_by_key(|n| Reverse(by_name.get(*n).map_or(0, |w| w.endpoints.len())));
        for name in fullest_first {
            if let Some(work) = by_name.get_mut(name) {
                work.fill(&mut desired);
            }
        }
    }

    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut target = None;
        if desired.len() < MAX_ENDPOINTS_PER_SLICE {
            // getSliceToFill: the unchanged slice that ends up closest to full.
            let mut best = MAX_ENDPOINTS_PER_SLICE;
            for name in &unchanged {
                let len = by_name.get(name).map_or(0, |w| w.endpoints.len());
                let total = desired.len() + len;
                if total <= MAX_ENDPOINTS_PER_SLICE && MAX_ENDPOINTS_PER_SLICE - total < best {
                    best = MAX_ENDPOINTS_PER_SLICE - total;
                    target = Some(name.clone());
                }
            }
        }
        match target.and_then(|n| by_name.remove(&n).map(|w| (n, w))) {
            Some((name, mut work)) => {
                work.fill(&mut desired);
                unchanged.remove(&name);
                to_update.insert(name.clone());
                by_name.insert(name, work);
            }
            None => {
                let mut work = Work::new(new_slice(svc, ports, family));
                work.fill(&mut desired);
                create.push(work);
            }
        }
    }

    let mut changes = Changes {
        create,
        ..Changes::default()
    };
    for name in to_update {
        changes.update.extend(by_name.remove(&name));
    }
    for name in to_delete {
        changes.delete.extend(by_name.remove(&name).map(|w| w.obj));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::endpoints::tests::{http_svc, pod, svc, with_container_port};

    // ---- EndpointSlices ----

    /// Plays the API server: creates get a name and uid, updates replace, deletes remove.
    fn apply(existing: &mut Vec<Value>, plan: &SlicePlan) {
        existing.retain(|s| !plan.delete.contains(&name_of(s).to_string()));
        for u in &plan.update {
            if let Some(slot) = existing.iter_mut().find(|s| name_of(s) == name_of(u)) {
                *slot = u.clone();
            }
        }
        for c in &plan.create {
            let mut c = c.clone();
            let name = format!("web-{}", existing.len() + 100);
            c["metadata"]["name"] = json!(name);
            c["metadata"]["resourceVersion"] = json!("1");
            existing.push(c);
        }
    }

    fn endpoint_names(slice: &Value) -> Vec<String> {
        slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| str_at(e, "/targetRef/name").to_string())
            .collect()
    }

    #[test]
    fn many_pods_are_packed_into_slices_of_at_most_100() {
        let pods: Vec<Value> = (0..250)
            .map(|i| pod(&format!("p{i:03}"), &format!("10.2.{}.{}", i / 200, i % 200), true))
            .collect();
        let plan = desired_slices(&http_svc(), &pods, &[]);
        assert!(plan.update.is_empty() && plan.delete.is_empty());
        let sizes: Vec<usize> = plan.create.iter().map(|s| endpoint_names(s).len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let mut all: Vec<String> = plan.create.iter().flat_map(endpoint_names).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 250);
        let s = &plan.create[0];
        assert_eq!(s["metadata"]["generateName"], "web-");
        assert_eq!(s["addressType"], "IPv4");
        assert_eq!(s["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(s["metadata"]["labels"][MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(s["metadata"]["labels"]["team"], "a");
        assert_eq!(s["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
        assert_eq!(s["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(s["ports"], json!([{"name": "http", "port": 8080, "protocol": "TCP"}]));
        assert_eq!(
            s["endpoints"][0]["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(
            plan,
            desired_slices(&http_svc(), &pods.iter().rev().cloned().collect::<Vec<_>>(), &[])
        );

        // Applied, the same input is a no-op.
        let mut existing = Vec::new();
        apply(&mut existing, &plan);
        assert_eq!(desired_slices(&http_svc(), &pods, &existing), SlicePlan::default());
    }

    #[test]
    fn existing_slices_are_reused() {
        let mut existing = Vec::new();
        let two = [pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", true)];
        apply(&mut existing, &desired_slices(&http_svc(), &two, &[]));
        assert_eq!(existing.len(), 1);

        // A new pod is added to the unchanged slice rather than a new one.
        let three = [two[0].clone(), two[1].clone(), pod("c", "10.0.0.3", false)];
        let plan = desired_slices(&http_svc(), &three, &existing);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(endpoint_names(&plan.update[0]), vec!["a", "b", "c"]);
        assert_eq!(plan.update[0]["metadata"]["resourceVersion"], "1");
        assert_eq!(plan.update[0]["endpoints"][2]["conditions"]["ready"], false);

        // Every pod replaced: the old slice is rewritten, not deleted and recreated.
        let fresh = [pod("d", "10.0.0.4", true)];
        let plan = desired_slices(&http_svc(), &fresh, &existing);
        assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
        assert_eq!(plan.update.len(), 1);
        assert_eq!(name_of(&plan.update[0]), name_of(&existing[0]));
        assert!(plan.update[0]["metadata"].get("generateName").is_none());
        assert_eq!(endpoint_names(&plan.update[0]), vec!["d"]);
    }

    #[test]
    fn stale_slices_are_deleted_and_foreign_ones_untouched() {
        let pods: Vec<Value> = (0..150)
            .map(|i| pod(&format!("p{i:03}"), &format!("10.3.0.{i}"), true))
            .collect();
        let mut existing = Vec::new();
        apply(&mut existing, &desired_slices(&http_svc(), &pods, &[]));
        assert_eq!(existing.len(), 2);

        let mut stale_owner = existing[0].clone();
        stale_owner["metadata"]["name"] = json!("web-old");
        stale_owner["metadata"]["ownerReferences"][0]["uid"] = json!("previous-service");
        let mut foreign = existing[0].clone();
        foreign["metadata"]["name"] = json!("web-custom");
        foreign["metadata"]["labels"][MANAGED_BY_LABEL] = json!("someone-else");
        let mut other_service = existing[0].clone();
        other_service["metadata"]["name"] = json!("api-abc");
        other_service["metadata"]["labels"][SERVICE_NAME_LABEL] = json!("api");
        existing.extend([stale_owner, foreign, other_service]);

        // Down to 10 pods of the first slice: it keeps them; the other slice and the stale one go.
        let first = endpoint_names(&existing[0]);
        let kept: Vec<Value> = pods
            .iter()
            .filter(|p| first.contains(&name_of(p).to_string()))
            .take(10)
            .cloned()
            .collect();
        let plan = desired_slices(&http_svc(), &kept, &existing);
        assert!(plan.create.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(name_of(&plan.update[0]), name_of(&existing[0]));
        assert_eq!(endpoint_names(&plan.update[0]).len(), 10);
        assert_eq!(plan.delete.len(), 2);
        assert!(plan.delete.contains(&"web-old".to_string()));
        assert!(!plan.delete.iter().any(|n| n == "web-custom" || n == "api-abc"));

        // Without a selector, all of ours go and nothing else.
        let mut selectorless = http_svc();
        selectorless["spec"].as_object_mut().map(|s| s.remove("selector"));
        let plan = desired_slices(&selectorless, &pods, &existing);
        assert!(plan.create.is_empty() && plan.update.is_empty());
        assert_eq!(plan.delete.len(), 3);
        assert!(!plan.delete.iter().any(|n| n == "web-custom" || n == "api-abc"));
    }

    #[test]
    fn slice_conditions_ports_and_placeholders() {
        let mut terminating = pod("t", "10.0.0.5", true);
        terminating["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        let service = svc(json!([{"name": "web", "port": 80, "targetPort": "http"}]));
        let pods = [
            with_container_port(terminating, "http", 8080, "TCP"),
            pod("nohttp", "10.0.0.6", true),
        ];
        let plan = desired_slices(&service, &pods, &[]);
        // Two port sets: {web:8080} and {} (the pod lacking the named port).
        assert_eq!(plan.create.len(), 2, "{plan:?}");
        let with_port = plan.create.iter().find(|s| s["ports"] != json!([])).unwrap();
        assert_eq!(
            with_port["ports"],
            json!([{"name": "web", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            with_port["endpoints"][0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        let mut publish = service.clone();
        publish["spec"]["publishNotReadyAddresses"] = json!(true);
        let plan = desired_slices(&publish, &pods, &[]);
        assert!(plan
            .create
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .all(|e| e["conditions"]["ready"] == true));

        // No pods: one empty placeholder, created once.
        let plan = desired_slices(&http_svc(), &[], &[]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0]["endpoints"], json!([]));
        assert_eq!(plan.create[0]["ports"], json!([]));
        let mut existing = Vec::new();
        apply(&mut existing, &plan);
        assert_eq!(desired_slices(&http_svc(), &[], &existing), SlicePlan::default());

        // A Service being deleted gets no new slices.
        let mut deleting = http_svc();
        deleting["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(desired_slices(&deleting, &[pod("a", "10.0.0.1", true)], &[])
            .create
            .is_empty());
    }
}

//! The scheduler's view of the cluster: pods and nodes reduced to what filters and scores read,
//! parsed once when a watch event arrives so the per-node hot loop never touches JSON.
//!
//! Mirrors kube-scheduler's cache (`pkg/scheduler/framework/types.go`, `internal/cache`):
//!
//! - a pod's requests are computed as 1.32's `resourcehelper.PodRequests` does: the sum of the app
//!   containers and restartable (sidecar) init containers, or the largest init container step if
//!   bigger, plus `spec.overhead`. A second, "non-zero" figure substitutes 100m CPU / 200Mi memory
//!   for a container that names no request, so that scoring does not pile best-effort pods on one
//!   node.
//! - a node's allocatable comes from `status.allocatable` (falling back to `status.capacity`), and it
//!   keeps running sums of its pods' requests so that a filter is O(1) per node.
//! - terminal pods (`Succeeded`/`Failed`) hold nothing: kube-scheduler's informer drops them, so
//!   [`Cluster::add_pod`] treats one as a delete.
//! - an unbound pod with `status.nominatedNodeName` (a preemptor waiting for its victims to go)
//!   is indexed under that node, so that filters keep its room reserved.
//! - a pod bound to a node the cache does not know yet is kept aside and attached when the node
//!   appears; removing a node keeps its pods aside likewise (the watch for pods and for nodes are
//!   not ordered with each other).
//!
//! Node readiness needs nothing here: the node lifecycle controller turns NotReady/Unreachable into
//! `node.kubernetes.io/not-ready` / `unreachable` taints, which TaintToleration handles.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::admission::quantity::{Format, Quantity};
use crate::scheduler::plugins::inter_pod_affinity::{self, AffinityTerm, WeightedAffinityTerm};
use crate::scheduler::plugins::node_affinity::{self, NodeSelectorTerm};
use crate::scheduler::plugins::node_ports::{self, HostPort};
use crate::scheduler::plugins::pod_topology_spread::{self, SpreadConstraint};
use crate::scheduler::plugins::taint_toleration::{self, Taint, Toleration};

/// kube-scheduler's `DefaultMilliCPURequest`, used for scoring pods that request no CPU.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// kube-scheduler's `DefaultMemoryRequest` (200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of resources, in the units the scheduler compares: milli-CPU, bytes, pod count, and
/// whole units of extended / hugepages resources.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
    pub scalar: BTreeMap<String, i64>,
}

/// Whether the scheduler tracks a resource name as a "scalar" (extended, prefixed native,
/// hugepages, attachable volumes), as `schedutil.IsScalarResourceName` does.
pub fn is_scalar_resource(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

impl Resources {
    /// From a `ResourceList` of exact amounts (nano-units); unknown non-scalar names are ignored.
    fn from_nanos(list: &BTreeMap<String, i128>) -> Resources {
        let mut r = Resources::default();
        for (name, nanos) in list {
            let q = Quantity::from_nanos(*nanos, Format::DecimalSI);
            match name.as_str() {
                "cpu" => r.milli_cpu = q.milli_value(),
                "memory" => r.memory = q.value(),
                "ephemeral-storage" => r.ephemeral_storage = q.value(),
                "pods" => r.pods = q.value(),
                other if is_scalar_resource(other) => {
                    r.scalar.insert(other.to_string(), q.value());
                }
                _ => {}
            }
        }
        r
    }

    /// Adds (`sign` = 1) or subtracts (`sign` = -1) another amount.
    pub fn add(&mut self, other: &Resources, sign: i64) {
        self.milli_cpu += sign * other.milli_cpu;
        self.memory += sign * other.memory;
        self.ephemeral_storage += sign * other.ephemeral_storage;
        self.pods += sign * other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_insert(0) += sign * v;
        }
    }
}

/// A `ResourceList` as exact nano-units; `field` names it in errors.
fn resource_list(v: Option<&Value>, field: &str) -> Result<BTreeMap<String, i128>, String> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, q) in m {
                let q = Quantity::from_json(q).ok_or_else(|| format!("{field}.{k}: invalid quantity {q}"))?;
                out.insert(k.clone(), q.nanos());
            }
        }
        Some(other) => return Err(format!("{field}: must be an object, got {other}")),
    }
    Ok(out)
}

fn add_list(into: &mut BTreeMap<String, i128>, from: &BTreeMap<String, i128>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

fn max_list(into: &mut BTreeMap<String, i128>, from: &BTreeMap<String, i128>) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(*v);
        *e = (*e).max(*v);
    }
}

/// `resourcehelper.PodRequests` (1.32, sidecar-aware). With `non_missing`, a container that names
/// no cpu / memory request counts as 100m / 200Mi.
fn pod_requests(spec: &Value, non_missing: bool) -> Result<BTreeMap<String, i128>, String> {
    let container_requests = |c: &Value, field: &str| -> Result<BTreeMap<String, i128>, String> {
        let mut r = resource_list(c.pointer("/resources/requests"), &format!("{field}.resources.requests"))?;
        if non_missing {
            r.entry("cpu".into())
                .or_insert(i128::from(DEFAULT_MILLI_CPU_REQUEST) * 1_000_000);
            r.entry("memory".into())
                .or_insert(i128::from(DEFAULT_MEMORY_REQUEST) * 1_000_000_000);
        }
        Ok(r)
    };
    let mut reqs = BTreeMap::new();
    for (i, c) in array(spec, "containers").iter().enumerate() {
        add_list(&mut reqs, &container_requests(c, &format!("spec.containers[{i}]"))?);
    }
    let mut restartable = BTreeMap::new();
    let mut init_max = BTreeMap::new();
    for (i, c) in array(spec, "initContainers").iter().enumerate() {
        let own = container_requests(c, &format!("spec.initContainers[{i}]"))?;
        let step = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add_list(&mut reqs, &own);
            add_list(&mut restartable, &own);
            restartable.clone()
        } else {
            let mut tmp = own;
            add_list(&mut tmp, &restartable);
            tmp
        };
        max_list(&mut init_max, &step);
    }
    max_list(&mut reqs, &init_max);
    add_list(&mut reqs, &resource_list(spec.get("overhead"), "spec.overhead")?);
    Ok(reqs)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn string(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn labels(v: &Value) -> Map<String, Value> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// kube-scheduler's `normalizedImageName`: an image without a tag is `:latest`.
pub fn normalized_image_name(name: &str) -> String {
    if name.rfind(':').is_none_or(|c| name.rfind('/').is_some_and(|s| c < s)) {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

/// A pod reduced to what scheduling reads.
#[derive(Clone, Debug, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub priority: i32,
    /// `PreemptLowerPriority` (default) or `Never`.
    pub preemption_policy: String,
    /// `default-scheduler` when absent.
    pub scheduler_name: String,
    /// `spec.nodeName`, `""` if unbound.
    pub node_name: String,
    pub nominated_node_name: String,
    pub creation_timestamp: String,
    /// `status.startTime` (RFC 3339), `""` if not started; preemption prefers newer victims.
    pub start_time: String,
    pub labels: Map<String, Value>,
    pub requests: Resources,
    /// CPU with the 100m default for containers that request none (scoring only).
    pub non_zero_milli_cpu: i64,
    /// Memory with the 200Mi default for containers that request none (scoring only).
    pub non_zero_memory: i64,
    pub node_selector: BTreeMap<String, String>,
    /// `requiredDuringSchedulingIgnoredDuringExecution` of the node affinity, if any.
    pub required_node_affinity: Option<Vec<NodeSelectorTerm>>,
    pub preferred_node_affinity: Vec<(i64, NodeSelectorTerm)>,
    pub required_affinity_terms: Vec<AffinityTerm>,
    pub required_anti_affinity_terms: Vec<AffinityTerm>,
    pub preferred_affinity_terms: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity_terms: Vec<WeightedAffinityTerm>,
    pub tolerations: Vec<Toleration>,
    pub host_ports: Vec<HostPort>,
    pub topology_spread_constraints: Vec<SpreadConstraint>,
    /// Normalized image names of init containers then containers (one per container).
    pub images: Vec<String>,
    /// `status.phase` is `Succeeded` or `Failed`.
    pub terminal: bool,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

impl PodInfo {
    /// Parses a core/v1 Pod. A malformed field is an error naming it.
    pub fn from_value(v: &Value) -> Result<PodInfo, String> {
        let spec = v.get("spec").unwrap_or(&Value::Null);
        let reqs = pod_requests(spec, false)?;
        let non_zero = Resources::from_nanos(&pod_requests(spec, true)?);
        let priority = match spec.get("priority") {
            None | Some(Value::Null) => 0,
            Some(p) => p
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| format!("spec.priority: invalid value {p}"))?,
        };
        let namespace = match string(v, "/metadata/namespace") {
            ns if ns.is_empty() => "default".to_string(),
            ns => ns,
        };
        let mut node_selector = BTreeMap::new();
        if let Some(sel) = spec.get("nodeSelector").and_then(Value::as_object) {
            for (k, val) in sel {
                let val = val
                    .as_str()
                    .ok_or_else(|| format!("spec.nodeSelector.{k}: must be a string"))?;
                node_selector.insert(k.clone(), val.to_string());
            }
        }
        let affinity = spec.get("affinity").unwrap_or(&Value::Null);
        let (required_node_affinity, preferred_node_affinity) = node_affinity::parse(affinity)?;
        let pod_affinity = inter_pod_affinity::parse(affinity, &namespace)?;
        let phase = string(v, "/status/phase");
        let mut images = Vec::new();
        let mut host_ports = Vec::new();
        for key in ["initContainers", "containers"] {
            for (i, c) in array(spec, key).iter().enumerate() {
                images.push(normalized_image_name(
                    c.get("image").and_then(Value::as_str).unwrap_or_default(),
                ));
                if key == "containers" {
                    host_ports.extend(node_ports::parse(c, &format!("spec.containers[{i}]"))?);
                }
            }
        }
        let labels = labels(v);
        Ok(PodInfo {
            uid: string(v, "/metadata/uid"),
            name: string(v, "/metadata/name"),
            priority,
            preemption_policy: match string(spec, "/preemptionPolicy") {
                p if p.is_empty() => "PreemptLowerPriority".into(),
                p => p,
            },
            scheduler_name: match string(spec, "/schedulerName") {
                s if s.is_empty() => "default-scheduler".into(),
                s => s,
            },
            node_name: string(spec, "/nodeName"),
            nominated_node_name: string(v, "/status/nominatedNodeName"),
            creation_timestamp: string(v, "/metadata/creationTimestamp"),
            start_time: string(v, "/status/startTime"),
            requests: Resources::from_nanos(&reqs),
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            node_selector,
            required_node_affinity,
            preferred_node_affinity,
            required_affinity_terms: pod_affinity.required_affinity,
            required_anti_affinity_terms: pod_affinity.required_anti_affinity,
            preferred_affinity_terms: pod_affinity.preferred_affinity,
            preferred_anti_affinity_terms: pod_affinity.preferred_anti_affinity,
            tolerations: taint_toleration::parse_tolerations(spec.get("tolerations"))?,
            host_ports,
            topology_spread_constraints: pod_topology_spread::parse(spec.get("topologySpreadConstraints"), &labels)?,
            images,
            terminal: phase == "Succeeded" || phase == "Failed",
            terminating: v.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()),
            labels,
            namespace,
        })
    }

    /// `namespace/name`, the cache key.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod has any (anti-)affinity terms, required or preferred.
    pub fn has_pod_affinity(&self) -> bool {
        !(self.required_affinity_terms.is_empty()
            && self.required_anti_affinity_terms.is_empty()
            && self.preferred_affinity_terms.is_empty()
            && self.preferred_anti_affinity_terms.is_empty())
    }
}

/// A node with the pods the cache places on it.
/// The key of `NodeInfo::label_counts`: a pod label within a namespace.
pub fn label_key(namespace: &str, key: &str, value: &str) -> String {
    format!("{namespace}\u{0}{key}\u{0}{value}")
}

#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    pub labels: Map<String, Value>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    /// Sum of the pods' requests (`requested.pods` is unused: see `pods.len()`).
    pub requested: Resources,
    /// Sum of the pods' non-zero CPU requests (see [`PodInfo::non_zero_milli_cpu`]).
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<Arc<PodInfo>>,
    /// Host ports in use, with how many pods use each.
    pub used_ports: BTreeMap<HostPort, u32>,
    /// Image name (every name in `status.images[].names`) to size in bytes.
    pub image_sizes: HashMap<String, i64>,
    /// How many of `pods` have pod (anti-)affinity terms, so InterPodAffinity can skip the node.
    pub pods_with_affinity: usize,
    /// Pods on the node that are not terminating, per `label_key(namespace, key, value)` of each
    /// of their labels: PodTopologySpread's counts for `matchLabels` selectors, without a scan.
    pub label_counts: HashMap<String, u32>,
}

impl NodeInfo {
    /// Parses a core/v1 Node (without pods).
    pub fn from_value(v: &Value) -> Result<NodeInfo, String> {
        let name = string(v, "/metadata/name");
        if name.is_empty() {
            return Err("metadata.name: required".into());
        }
        let status = v.get("status").unwrap_or(&Value::Null);
        let allocatable = match status.get("allocatable") {
            Some(a @ Value::Object(_)) => resource_list(Some(a), "status.allocatable")?,
            _ => resource_list(status.get("capacity"), "status.capacity")?,
        };
        let mut image_sizes = HashMap::new();
        for img in array(status, "images") {
            let size = img.get("sizeBytes").and_then(Value::as_i64).unwrap_or(0);
            for n in array(img, "names").iter().filter_map(Value::as_str) {
                image_sizes.insert(n.to_string(), size);
            }
        }
        Ok(NodeInfo {
            name,
            labels: labels(v),
            taints: taint_toleration::parse_taints(v.pointer("/spec/taints"))?,
            unschedulable: v
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            allocatable: Resources::from_nanos(&allocatable),
            image_sizes,
            ..NodeInfo::default()
        })
    }

    /// Counts a pod on this node (no check that it fits).
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests, 1);
        self.non_zero_milli_cpu += pod.non_zero_milli_cpu;
        self.non_zero_memory += pod.non_zero_memory;
        for p in &pod.host_ports {
            *self.used_ports.entry(p.clone()).or_insert(0) += 1;
        }
        if pod.has_pod_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.terminating {
            for (k, v) in &pod.labels {
                if let Some(v) = v.as_str() {
                    *self.label_counts.entry(label_key(&pod.namespace, k, v)).or_insert(0) += 1;
                }
            }
        }
        self.pods.push(pod);
    }

    /// Removes a pod by namespace/name, returning it.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let i = self
            .pods
            .iter()
            .position(|p| p.namespace == namespace && p.name == name)?;
        let pod = self.pods.swap_remove(i);
        self.requested.add(&pod.requests, -1);
        self.non_zero_milli_cpu -= pod.non_zero_milli_cpu;
        self.non_zero_memory -= pod.non_zero_memory;
        for p in &pod.host_ports {
            if let Some(n) = self.used_ports.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    self.used_ports.remove(p);
                }
            }
        }
        if pod.has_pod_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.terminating {
            for (k, v) in &pod.labels {
                if let Some(v) = v.as_str() {
                    let key = label_key(&pod.namespace, k, v);
                    if let Some(n) = self.label_counts.get_mut(&key) {
                        *n -= 1;
                        if *n == 0 {
                            self.label_counts.remove(&key);
                        }
                    }
                }
            }
        }
        Some(pod)
    }

    /// A node label's value, if it is a string.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).and_then(Value::as_str)
    }
}

/// The scheduler cache: every node (with its pods) and every known pod, indexed by name.
#[derive(Default, Debug)]
pub struct Cluster {
    /// Dense so that filtering walks a slice; removal swaps the last node in.
    nodes: Vec<NodeInfo>,
    node_index: HashMap<String, usize>,
    /// Every stored pod by `namespace/name`.
    pods: HashMap<String, Arc<PodInfo>>,
    /// Pods bound to a node the cache does not know (yet).
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Unbound pods by the node an earlier preemption nominated them for.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Image name to how many nodes have it (ImageLocality's spread).
    image_nodes: HashMap<String, usize>,
    /// Namespace labels, for affinity terms with a `namespaceSelector`.
    namespace_labels: HashMap<String, Map<String, Value>>,
}

impl Cluster {
    /// Adds or replaces a node from a core/v1 Node; its pods are kept on update.
    pub fn upsert_node(&mut self, node: &Value) -> Result<(), String> {
        let mut info = NodeInfo::from_value(node)?;
        for name in info.image_sizes.keys() {
            *self.image_nodes.entry(name.clone()).or_insert(0) += 1;
        }
        if let Some(&i) = self.node_index.get(&info.name) {
            let old = std::mem::take(&mut self.nodes[i]);
            self.forget_images(&old);
            for pod in old.pods {
                info.add_pod(pod);
            }
            self.nodes[i] = info;
        } else {
            for pod in self.orphans.remove(&info.name).unwrap_or_default() {
                info.add_pod(pod);
            }
            self.node_index.insert(info.name.clone(), self.nodes.len());
            self.nodes.push(info);
        }
        Ok(())
    }

    fn forget_images(&mut self, node: &NodeInfo) {
        for name in node.image_sizes.keys() {
            if let Some(n) = self.image_nodes.get_mut(name) {
                *n -= 1;
                if *n == 0 {
                    self.image_nodes.remove(name);
                }
            }
        }
    }

    /// Removes a node; its pods wait aside in case it comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.node_index.remove(name) else {
            return;
        };
        let node = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.node_index.insert(moved.name.clone(), i);
        }
        self.forget_images(&node);
        if !node.pods.is_empty() {
            self.orphans.insert(node.name, node.pods);
        }
    }

    /// Adds or replaces a pod (by namespace/name). A bound pod counts on its node; a terminal one
    /// is removed instead.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.remove_pod(&pod.namespace, &pod.name);
        if pod.terminal {
            return;
        }
        self.pods.insert(pod.key(), pod.clone());
        if pod.node_name.is_empty() {
            if !pod.nominated_node_name.is_empty() {
                self.nominated
                    .entry(pod.nominated_node_name.clone())
                    .or_default()
                    .push(pod);
            }
            return;
        }
        match self.node_index.get(&pod.node_name) {
            Some(&i) => self.nodes[i].add_pod(pod),
            None => self.orphans.entry(pod.node_name.clone()).or_default().push(pod),
        }
    }

    /// Removes a pod, returning what was stored.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let pod = self.pods.remove(&format!("{namespace}/{name}"))?;
        if pod.node_name.is_empty() {
            if let Some(list) = self.nominated.get_mut(&pod.nominated_node_name) {
                list.retain(|p| !(p.namespace == namespace && p.name == name));
                if list.is_empty() {
                    self.nominated.remove(&pod.nominated_node_name);
                }
            }
        } else {
            if let Some(&i) = self.node_index.get(&pod.node_name) {
                self.nodes[i].remove_pod(namespace, name);
            } else if let Some(list) = self.orphans.get_mut(&pod.node_name) {
                list.retain(|p| !(p.namespace == namespace && p.name == name));
                if list.is_empty() {
                    self.orphans.remove(&pod.node_name);
                }
            }
        }
        Some(pod)
    }

    /// Unbound pods nominated to `node` (they reserve room there, see `Filters::run_nominated`).
    pub fn nominated_pods(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A stored pod by namespace/name.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(&format!("{namespace}/{name}"))
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.node_index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Every node, in the (stable between updates) order filtering walks them.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// How many nodes have an image (by any of its names).
    pub fn image_node_count(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// Records a namespace's labels (from a core/v1 Namespace) for `namespaceSelector`s.
    pub fn upsert_namespace(&mut self, ns: &Value) {
        self.namespace_labels.insert(string(ns, "/metadata/name"), labels(ns));
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespace_labels.remove(name);
    }

    /// Every known namespace with its labels.
    pub fn namespaces(&self) -> impl Iterator<Item = (&String, &Map<String, Value>)> {
        self.namespace_labels.iter()
    }

    /// A namespace's labels, if known.
    pub fn namespace_labels(&self, name: &str) -> Option<&Map<String, Value>> {
        self.namespace_labels.get(name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A pod from JSON, for tests across the scheduler.
    pub fn pod(v: Value) -> Arc<PodInfo> {
        Arc::new(PodInfo::from_value(&v).unwrap())
    }

    /// A node with cpu (milli), memory (bytes) and pods allocatable plus labels.
    pub fn node_json(name: &str, milli_cpu: i64, memory: i64, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels},
               "status": {"allocatable": {"cpu": format!("{milli_cpu}m"), "memory": memory.to_string(), "pods": "110"}}})
    }

    /// A bound pod requesting cpu/memory.
    pub fn pod_on(name: &str, node: &str, cpu: &str, memory: &str) -> Arc<PodInfo> {
        pod(json!({"metadata": {"name": name, "namespace": "default"},
                   "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}))
    }

    #[test]
    fn label_counts_follow_pods_on_the_node() {
        let mut c = Cluster::default();
        c.upsert_node(&node_json("n1", 4000, 1 << 30, json!({}))).unwrap();
        let labelled = |name: &str, app: &str| {
            pod(
                json!({"metadata": {"name": name, "namespace": "ns", "labels": {"app": app}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}),
            )
        };
        c.add_pod(labelled("a", "web"));
        c.add_pod(labelled("b", "web"));
        c.add_pod(labelled("d", "db"));
        let n = c.node("n1").unwrap();
        assert_eq!(n.label_counts.get(&label_key("ns", "app", "web")), Some(&2));
        assert_eq!(n.label_counts.get(&label_key("other", "app", "web")), None);
        c.remove_pod("ns", "a");
        c.remove_pod("ns", "d");
        let n = c.node("n1").unwrap();
        assert_eq!(n.label_counts.get(&label_key("ns", "app", "web")), Some(&1));
        assert_eq!(n.label_counts.get(&label_key("ns", "app", "db")), None);
    }

    #[test]
    fn requests_follow_init_and_sidecar_rules() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m", "example.com/gpu": "1"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "big", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}],
            "overhead": {"cpu": "10m"}}}));
        // init step "big" = 1000m + sidecar 50m beats containers 300m + sidecar 50m.
        assert_eq!(p.requests.milli_cpu, 1060);
        assert_eq!(p.requests.memory, 1 << 30);
        assert_eq!(p.requests.scalar.get("example.com/gpu"), Some(&1));
        // Container b and the sidecar name no memory: 200Mi each for the non-zero figure.
        assert_eq!(p.non_zero_memory, (1 << 30) + 2 * DEFAULT_MEMORY_REQUEST);
        assert_eq!(p.namespace, "default");
        assert_eq!(p.scheduler_name, "default-scheduler");
        assert_eq!(p.preemption_policy, "PreemptLowerPriority");
    }

    #[test]
    fn best_effort_pod_gets_non_zero_defaults() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(p.requests, Resources::default());
        assert_eq!((p.non_zero_milli_cpu, p.non_zero_memory), (100, DEFAULT_MEMORY_REQUEST));
    }

    #[test]
    fn bad_quantity_is_an_error_naming_the_field() {
        let err = PodInfo::from_value(&json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "lots"}}}]}}))
        .unwrap_err();
        assert!(err.starts_with("spec.containers[0].resources.requests.cpu"), "{err}");
    }

    #[test]
    fn image_names_are_normalized() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.2"), "nginx:1.2");
        assert_eq!(normalized_image_name("host:5000/nginx"), "host:5000/nginx:latest");
    }

    #[test]
    fn cluster_tracks_pods_across_node_events() {
        let mut c = Cluster::default();
        c.add_pod(pod_on("early", "n1", "500m", "1Mi"));
        c.upsert_node(&node_json("n1", 2000, 1 << 30, json!({"a": "1"})))
            .unwrap();
        c.upsert_node(&node_json("n2", 2000, 1 << 30, json!({}))).unwrap();
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500, "orphan attached");
        c.add_pod(pod_on("early", "n1", "700m", "1Mi"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 700, "replaced, not added");
        c.upsert_node(&node_json("n1", 4000, 1 << 30, json!({"a": "2"})))
            .unwrap();
        let n1 = c.node("n1").unwrap();
        assert_eq!(
            (n1.allocatable.milli_cpu, n1.pods.len(), n1.label("a")),
            (4000, 1, Some("2"))
        );
        c.remove_node("n1");
        assert_eq!(c.node_count(), 1);
        assert_eq!(c.node("n2").unwrap().name, "n2", "index fixed after swap_remove");
        c.upsert_node(&node_json("n1", 4000, 1 << 30, json!({}))).unwrap();
        assert_eq!(c.node("n1").unwrap().pods.len(), 1, "pods survive node removal");
        let mut done = (*pod_on("early", "n1", "700m", "1Mi")).clone();
        done.terminal = true;
        c.add_pod(Arc::new(done));
        assert_eq!(
            c.node("n1").unwrap().requested.milli_cpu,
            0,
            "terminal pods hold nothing"
        );
        assert!(c.remove_pod("default", "early").is_none());
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let n = NodeInfo::from_value(&json!({"metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "pods": "10"}, "images": [{"names": ["a:1", "a@sha"], "sizeBytes": 5}]}}))
        .unwrap();
        assert_eq!((n.allocatable.milli_cpu, n.allocatable.pods), (4000, 10));
        assert_eq!(n.image_sizes.get("a@sha"), Some(&5));
    }
}

//! The node's view of Services and EndpointSlices, reduced to what the
//! nftables renderer needs.
//!
//! Why a separate model: the Kubernetes objects carry far more than a proxy
//! cares about, and every optional field has a defaulting rule. Parsing them
//! once into small, fully-defaulted structs keeps `rules.rs` a pure function of
//! plain data, so it can be tested without JSON and rendered deterministically.
//!
//! How parsing treats bad input:
//! - A malformed *object* (missing name, port out of range, a field of the
//!   wrong JSON type) is an error naming the field, e.g.
//!   `spec.ports[1].port: must be 1-65535`, so the caller can report it (the
//!   proxy's watcher then drops its rules: an object turned unusable must not
//!   keep routing by its old version).
//! - Things a proxy simply cannot use are dropped without failing the whole
//!   object, the way kube-proxy does: ports whose protocol is not TCP/UDP,
//!   IPv6 cluster IPs, endpoints whose address does not parse, slices of an
//!   address type other than IPv4, slice ports without a number.
//!
//! Endpoint selection (`Model::endpoints_for`) follows kube-proxy: ready
//! endpoints win; only when none is ready are serving-but-terminating ones
//! used, so connections drain instead of being refused during a rollout.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

/// Kubernetes' default for `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
/// Largest affinity timeout the API server accepts (one day).
pub const MAX_AFFINITY_TIMEOUT: u32 = 86400;
/// Label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `None` for protocols we do not proxy (SCTP and unknown values), so the
    /// caller can skip just that port.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    /// The spelling nft uses (`meta l4proto tcp`, `inet_proto` elements).
    pub fn nft_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub target_port: TargetPort,
    pub node_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// Empty for headless and ExternalName services; IPv6 entries dropped.
    pub cluster_ips: Vec<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    /// `Some(seconds)` when `spec.sessionAffinity` is `ClientIP`.
    pub affinity_timeout: Option<u32>,
    pub internal_local: bool,
    pub external_local: bool,
    /// Type NodePort or LoadBalancer: the `node_port`s are live.
    pub node_ports: bool,
    /// clusterIP "None": DNS answers with the pod IPs, no rules.
    pub headless: bool,
    /// Type ExternalName: DNS answers with a CNAME to it, no rules.
    pub external_name: Option<String>,
}

impl Endpoint {
    /// A ready (so serving, not terminating) endpoint without a hostname.
    pub fn ready(ip: Ipv4Addr, node_name: Option<String>) -> Endpoint {
        Endpoint {
            ip,
            node_name,
            hostname: None,
            ready: true,
            serving: true,
            terminating: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    /// "" when unnamed, matching an unnamed service port.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub node_name: Option<String>,
    pub hostname: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    pub namespace: String,
    pub name: String,
    /// Value of the `kubernetes.io/service-name` label ("" when absent: such
    /// a slice belongs to no Service and is never used).
    pub service: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<Endpoint>,
}

/// Cluster DNS VIP whose port 53 (udp and tcp) is sent to a node-local server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsRedirect {
    pub vip: Ipv4Addr,
    pub target: SocketAddrV4,
}

impl DnsRedirect {
    /// The conventional kube-dns ClusterIP.
    pub const DEFAULT_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

    pub fn new(target: SocketAddrV4) -> DnsRedirect {
        DnsRedirect {
            vip: Self::DEFAULT_VIP,
            target,
        }
    }
}

/// A field of a Kubernetes object that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ModelError {
    /// JSON path of the offending field, e.g. `spec.ports[1].port`.
    pub field: String,
    pub reason: String,
}

impl ModelError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> ModelError {
        ModelError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

type Result<T> = std::result::Result<T, ModelError>;

// ---- JSON access with field paths ------------------------------------------
//
// Absent and `null` mean "use the default" (that is how the API server and
// clients serialise omitted optionals); a value of the wrong JSON type means
// the object is not what we think it is, which is an error.

fn path_of(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn opt_str<'a>(v: &'a Value, key: &str, parent: &str) -> Result<Option<&'a str>> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ModelError::new(path_of(parent, key), "must be a string")),
    }
}

fn req_str<'a>(v: &'a Value, key: &str, parent: &str) -> Result<&'a str> {
    match opt_str(v, key, parent)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(ModelError::new(path_of(parent, key), "required")),
    }
}

fn opt_bool(v: &Value, key: &str, parent: &str) -> Result<Option<bool>> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ModelError::new(path_of(parent, key), "must be a boolean")),
    }
}

fn opt_array<'a>(v: &'a Value, key: &str, parent: &str) -> Result<&'a [Value]> {
    match field(v, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ModelError::new(path_of(parent, key), "must be a list")),
    }
}

fn opt_object<'a>(v: &'a Value, key: &str, parent: &str) -> Result<Option<&'a Value>> {
    match field(v, key) {
        None => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o)),
        Some(_) => Err(ModelError::new(path_of(parent, key), "must be an object")),
    }
}

/// An optional integer that must lie in `lo..=hi`; anything else (negative,
/// fractional, a string) gets the same "must be lo-hi" message.
fn opt_int_in<T: TryFrom<u64>>(v: &Value, key: &str, parent: &str, (lo, hi): (u64, u64)) -> Result<Option<T>> {
    let Some(x) = field(v, key) else {
        return Ok(None);
    };
    x.as_u64()
        .filter(|n| (lo..=hi).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| ModelError::new(path_of(parent, key), format!("must be {lo}-{hi}")))
}

fn port_value(n: u64, path: &str) -> Result<u16> {
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ModelError::new(path, "must be 1-65535")),
    }
}

fn opt_port(v: &Value, key: &str, parent: &str) -> Result<Option<u16>> {
    opt_int_in(v, key, parent, (1, 65535))
}

fn metadata(v: &Value) -> Result<(String, String, &Value)> {
    if !v.is_object() {
        return Err(ModelError::new("(object)", "must be a JSON object"));
    }
    let meta = opt_object(v, "metadata", "")?.ok_or_else(|| ModelError::new("metadata", "required"))?;
    let namespace = req_str(meta, "namespace", "metadata")?.to_string();
    let name = req_str(meta, "name", "metadata")?.to_string();
    Ok((namespace, name, meta))
}

/// Protocol defaults to TCP; `Ok(None)` means "a protocol we do not proxy".
fn protocol_of(v: &Value, parent: &str) -> Result<Option<Protocol>> {
    Ok(match opt_str(v, "protocol", parent)? {
        None => Some(Protocol::Tcp),
        Some(p) => Protocol::parse(p),
    })
}

impl Service {
    /// A ClusterIP service with Kubernetes' defaults for everything but its addresses and ports.
    pub fn cluster_ip(namespace: &str, name: &str, cluster_ips: Vec<Ipv4Addr>, ports: Vec<ServicePort>) -> Service {
        Service {
            namespace: namespace.into(),
            name: name.into(),
            cluster_ips,
            ports,
            affinity_timeout: None,
            internal_local: false,
            external_local: false,
            node_ports: false,
            headless: false,
            external_name: None,
        }
    }

    /// Parses a core/v1 Service.
    pub fn from_json(v: &Value) -> Result<Service> {
        let (namespace, name, _) = metadata(v)?;
        let spec = opt_object(v, "spec", "")?.ok_or_else(|| ModelError::new("spec", "required"))?;
        let svc_type = opt_str(spec, "type", "spec")?.unwrap_or("ClusterIP");

        let cluster_ips = if svc_type == "ExternalName" {
            // ExternalName is a DNS CNAME; a stale clusterIP must not be proxied.
            Vec::new()
        } else {
            parse_cluster_ips(spec)?
        };

        let mut ports = Vec::new();
        for (i, p) in opt_array(spec, "ports", "spec")?.iter().enumerate() {
            if let Some(port) = parse_service_port(p, &format!("spec.ports[{i}]"))? {
                ports.push(port);
            }
        }

        let affinity_timeout = match opt_str(spec, "sessionAffinity", "spec")? {
            Some("ClientIP") => Some(parse_affinity_timeout(spec)?),
            _ => None,
        };

        Ok(Service {
            namespace,
            name,
            cluster_ips,
            ports,
            affinity_timeout,
            internal_local: opt_str(spec, "internalTrafficPolicy", "spec")? == Some("Local"),
            external_local: opt_str(spec, "externalTrafficPolicy", "spec")? == Some("Local"),
            node_ports: matches!(svc_type, "NodePort" | "LoadBalancer"),
            headless: svc_type != "ExternalName" && opt_str(spec, "clusterIP", "spec")? == Some("None"),
            external_name: if svc_type == "ExternalName" {
                opt_str(spec, "externalName", "spec")?
                    .filter(|n| !n.is_empty())
                    .map(String::from)
            } else {
                None
            },
        })
    }
}

fn parse_cluster_ips(spec: &Value) -> Result<Vec<Ipv4Addr>> {
    // `clusterIPs` supersedes `clusterIP` (dual-stack); older objects only
    // have the singular field.
    let list = opt_array(spec, "clusterIPs", "spec")?;
    let mut raw: Vec<(String, &Value)> = list
        .iter()
        .enumerate()
        .map(|(i, x)| (format!("spec.clusterIPs[{i}]"), x))
        .collect();
    if raw.is_empty() {
        if let Some(ip) = field(spec, "clusterIP") {
            raw.push(("spec.clusterIP".to_string(), ip));
        }
    }
    let mut out = Vec::new();
    for (path, x) in raw {
        let s = x
            .as_str()
            .ok_or_else(|| ModelError::new(path.as_str(), "must be a string"))?;
        // "None" is headless; "" means not allocated yet. Neither is proxied.
        if s.is_empty() || s == "None" {
            continue;
        }
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if !out.contains(&ip) => out.push(ip),
            Ok(_) => {}
            Err(_) => return Err(ModelError::new(path, format!("invalid IP address {s:?}"))),
        }
    }
    Ok(out)
}

fn parse_service_port(p: &Value, path: &str) -> Result<Option<ServicePort>> {
    if !p.is_object() {
        return Err(ModelError::new(path, "must be an object"));
    }
    let Some(protocol) = protocol_of(p, path)? else {
        return Ok(None);
    };
    let name = opt_str(p, "name", path)?.unwrap_or_default().to_string();
    let port = opt_port(p, "port", path)?.ok_or_else(|| ModelError::new(path_of(path, "port"), "required"))?;
    let tp_path = path_of(path, "targetPort");
    // The API server defaults targetPort to port; we do the same so objects
    // that skipped defaulting (tests, hand-written fixtures) still work.
    let target_port = match field(p, "targetPort") {
        None => TargetPort::Number(port),
        Some(Value::String(s)) if s.is_empty() => TargetPort::Number(port),
        // IntOrString serialised as a string of digits: still a number.
        Some(Value::String(s)) => match s.parse::<u64>() {
            Ok(n) => TargetPort::Number(port_value(n, &tp_path)?),
            Err(_) => TargetPort::Name(s.clone()),
        },
        Some(n) => match n.as_u64() {
            Some(n) => TargetPort::Number(port_value(n, &tp_path)?),
            None => return Err(ModelError::new(tp_path, "must be 1-65535 or a port name")),
        },
    };
    // 0 is how an unallocated nodePort is sometimes serialised.
    let node_port = opt_int_in::<u16>(p, "nodePort", path, (0, 65535))?.filter(|n| *n != 0);
    Ok(Some(ServicePort {
        name,
        protocol,
        port,
        target_port,
        node_port,
    }))
}

fn parse_affinity_timeout(spec: &Value) -> Result<u32> {
    let client = match opt_object(spec, "sessionAffinityConfig", "spec")? {
        Some(c) => opt_object(c, "clientIP", "spec.sessionAffinityConfig")?,
        None => None,
    };
    let secs = match client {
        Some(c) => opt_int_in(
            c,
            "timeoutSeconds",
            "spec.sessionAffinityConfig.clientIP",
            (1, u64::from(MAX_AFFINITY_TIMEOUT)),
        )?,
        None => None,
    };
    Ok(secs.unwrap_or(DEFAULT_AFFINITY_TIMEOUT))
}

impl EndpointSlice {
    /// Parses a discovery.k8s.io/v1 EndpointSlice.
    pub fn from_json(v: &Value) -> Result<EndpointSlice> {
        let (namespace, name, meta) = metadata(v)?;
        let service = match opt_object(meta, "labels", "metadata")? {
            Some(labels) => match labels.get(SERVICE_NAME_LABEL) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(ModelError::new(
                        format!("metadata.labels[{SERVICE_NAME_LABEL}]"),
                        "must be a string",
                    ))
                }
            },
            None => String::new(),
        };
        let address_type = req_str(v, "addressType", "")?;

        let mut ports = Vec::new();
        for (i, p) in opt_array(v, "ports", "")?.iter().enumerate() {
            let path = format!("ports[{i}]");
            if !p.is_object() {
                return Err(ModelError::new(path, "must be an object"));
            }
            let Some(protocol) = protocol_of(p, &path)? else {
                continue;
            };
            // A nil port means "all ports" to some consumers; a proxy cannot
            // DNAT to that, so the port is unusable rather than an error.
            let Some(port) = opt_port(p, "port", &path)? else {
                continue;
            };
            let name = opt_str(p, "name", &path)?.unwrap_or_default().to_string();
            ports.push(SlicePort { name, protocol, port });
        }

        // Other address types (IPv6, FQDN) are not proxied by an IPv4 table;
        // the slice is kept so its ports still resolve, just empty.
        let endpoints = if address_type == "IPv4" {
            opt_array(v, "endpoints", "")?
                .iter()
                .filter_map(parse_endpoint)
                .collect()
        } else {
            Vec::new()
        };
        Ok(EndpointSlice {
            namespace,
            name,
            service,
            ports,
            endpoints,
        })
    }
}

/// `None` for an endpoint we cannot use. Anything wrong inside one endpoint
/// (unparsable address, garbled conditions) drops only that endpoint: the
/// rest of the slice still carries traffic.
fn parse_endpoint(e: &Value) -> Option<Endpoint> {
    // All addresses of an endpoint are fungible; consumers use the first.
    let ip = opt_array(e, "addresses", "")
        .ok()?
        .first()?
        .as_str()?
        .parse::<Ipv4Addr>()
        .ok()?;
    let (ready, serving, terminating) = match opt_object(e, "conditions", "").ok()? {
        Some(c) => {
            let ready = opt_bool(c, "ready", "").ok()?.unwrap_or(true);
            let serving = opt_bool(c, "serving", "").ok()?.unwrap_or(ready);
            let terminating = opt_bool(c, "terminating", "").ok()?.unwrap_or(false);
            (ready, serving, terminating)
        }
        None => (true, true, false),
    };
    Some(Endpoint {
        ip,
        node_name: opt_str(e, "nodeName", "").ok()?.map(str::to_string),
        hostname: opt_str(e, "hostname", "").ok()?.map(str::to_string),
        ready,
        serving,
        terminating,
    })
}

/// One usable backend: address, port from the slice, node it runs on.
pub type EndpointTarget = (Ipv4Addr, u16, Option<String>);

/// Everything this node knows; `rules::render` turns it into a ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Keyed by (namespace, name).
    pub services: BTreeMap<(String, String), Service>,
    /// Keyed by (namespace, slice name).
    pub slices: BTreeMap<(String, String), EndpointSlice>,
    /// Compared with `Endpoint::node_name` for the Local traffic policies.
    pub node_name: String,
    /// The node's own addresses. Not used by `render` (node ports match any
    /// local address via `fib`), kept for callers that report or filter.
    pub node_ips: Vec<Ipv4Addr>,
    /// Pod network; traffic to a cluster IP from outside it is masqueraded.
    pub cluster_cidr: (Ipv4Addr, u8),
    /// The service CIDR: what is still addressed into it after DNAT is refused, so nothing
    /// for it is ever routed off the node.
    pub service_cidr: Option<(Ipv4Addr, u8)>,
    pub dns: Option<DnsRedirect>,
}

impl Model {
    pub fn new(node_name: impl Into<String>, cluster_cidr: (Ipv4Addr, u8)) -> Model {
        Model {
            services: BTreeMap::new(),
            slices: BTreeMap::new(),
            node_name: node_name.into(),
            node_ips: Vec::new(),
            cluster_cidr,
            service_cidr: None,
            dns: None,
        }
    }

    pub fn upsert_service(&mut self, svc: Service) {
        self.services.insert((svc.namespace.clone(), svc.name.clone()), svc);
    }

    pub fn delete_service(&mut self, namespace: &str, name: &str) -> Option<Service> {
        self.services.remove(&(namespace.to_string(), name.to_string()))
    }

    pub fn upsert_slice(&mut self, slice: EndpointSlice) {
        self.slices.insert((slice.namespace.clone(), slice.name.clone()), slice);
    }

    pub fn delete_slice(&mut self, namespace: &str, name: &str) -> Option<EndpointSlice> {
        self.slices.remove(&(namespace.to_string(), name.to_string()))
    }

    /// The EndpointSlices of one service.
    pub fn slices_of<'a>(
        &'a self,
        namespace: &'a str,
        service: &'a str,
    ) -> impl Iterator<Item = &'a EndpointSlice> + 'a {
        self.slices
            .range((namespace.to_string(), String::new())..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, s)| s)
            .filter(move |s| s.service == service)
    }

    /// Backends for one service port, over all nodes. Ready endpoints if any,
    /// else serving+terminating ones; deduplicated by (ip, port) and sorted.
    pub fn endpoints_for(&self, svc: &Service, port: &ServicePort) -> Vec<EndpointTarget> {
        self.select_endpoints(svc, port, false)
    }

    /// Backends on this node only, for the Local traffic policies. The
    /// ready/terminating fallback is decided among local endpoints alone, as
    /// kube-proxy does: a remote ready endpoint does not hide a local
    /// terminating one that could still serve.
    pub fn local_endpoints_for(&self, svc: &Service, port: &ServicePort) -> Vec<EndpointTarget> {
        self.select_endpoints(svc, port, true)
    }

    fn select_endpoints(&self, svc: &Service, port: &ServicePort, only_local: bool) -> Vec<EndpointTarget> {
        // BTreeMap gives both dedupe and order; when two slices list the same
        // address, the slice with the smaller name decides the node.
        let mut ready: BTreeMap<(Ipv4Addr, u16), Option<String>> = BTreeMap::new();
        let mut fallback: BTreeMap<(Ipv4Addr, u16), Option<String>> = BTreeMap::new();
        for slice in self.slices_of(&svc.namespace, &svc.name) {
            let Some(sp) = slice
                .ports
                .iter()
                .find(|p| p.name == port.name && p.protocol == port.protocol)
            else {
                continue;
            };
            for ep in &slice.endpoints {
                if only_local && ep.node_name.as_deref() != Some(self.node_name.as_str()) {
                    continue;
                }
                let bucket = if ep.ready {
                    &mut ready
                } else if ep.serving && ep.terminating {
                    &mut fallback
                } else {
                    continue;
                };
                bucket.entry((ep.ip, sp.port)).or_insert_with(|| ep.node_name.clone());
            }
        }
        let chosen = if ready.is_empty() { fallback } else { ready };
        chosen.into_iter().map(|((ip, p), node)| (ip, p, node)).collect()
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;

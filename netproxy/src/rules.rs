//! Renders a [`Model`] into nftables scripts for `nft -f -`: the whole table
//! ([`Desired::full_script`]) or the difference from the table last applied
//! ([`Desired::delta_script`]).
//!
//! Why scripts: nft runs a file as a single kernel transaction, so the old
//! and the new ruleset are swapped atomically (no window where a Service is
//! missing). The full script deletes and recreates `table ip skiff`, so it
//! needs no knowledge of kernel state (first sync, resync, after a failure);
//! a delta trusts that the kernel holds what was last applied, and only
//! touches the chains and elements that changed. The leading `add table` makes the
//! `delete` valid when the table does not exist yet; `nft` expands the table
//! block into chains, then sets/maps with their elements, then rules, so the
//! order of declarations inside the block does not matter to it.
//!
//! Layout (after kube-proxy's nftables mode, IPv4 only):
//! - `nat-prerouting` / `nat-output` jump to `services`, which first applies
//!   the DNS redirect, then looks up `daddr . l4proto . dport` in the verdict
//!   map `service-ips`, then (for local, non-loopback destinations) `l4proto .
//!   dport` in `service-nodeports`.
//! - Each service port has an entry chain: `svc-*` for cluster IPs, `ext-*`
//!   for its node port. Both pick an endpoint chain `ep-*` (per service port
//!   and endpoint) with `numgen random`, after the ClientIP affinity checks.
//!   The two entry chains are separate because the Local traffic policies give
//!   them different endpoint lists and different masquerade rules.
//! - Service ports with no usable endpoint are elements of `no-endpoint-*`
//!   maps that the filter hooks send to `reject-chain`: clients get an ICMP
//!   port-unreachable at once instead of a timeout. Traffic that still carries
//!   a cluster IP after DNAT (a port the Service does not have) is rejected
//!   via the `cluster-ips` set.
//! - Masquerading is decided in the nat chains by setting mark 0x4000 and
//!   carried out in `nat-postrouting`, as kube-proxy does. Marked: cluster-IP
//!   traffic from outside the cluster CIDR, node-port traffic (unless
//!   externalTrafficPolicy is Local, whose point is keeping the client
//!   address), and hairpin traffic (a pod reaching itself via its Service).
//!
//! Hook priorities, and one deliberate difference from a literal reading of
//! kube-proxy: `filter-output` runs at priority -90, *after* `nat-output`
//! (-100). Only there does "daddr is still a cluster IP" mean "not DNATed";
//! at -110 every host-originated connection to a healthy Service would still
//! carry its cluster IP and be rejected (kube-proxy needs an extra
//! `filter-output-post-dnat` chain for that). The no-endpoint lookup gives the
//! same answer before or after DNAT, because such ports are never DNATed.
//! Traffic from pods is checked in `filter-prerouting`, at -90 too (after
//! nat-prerouting), rather than in the forward hook: on a node with no route
//! for the service range the kernel would discard it as unroutable before
//! forward, and the client would wait or see "network unreachable" instead of
//! "connection refused". Anything else for the service range is refused there
//! as well, so it is never routed off the node. In the input hook, prerouting
//! DNAT has always happened already.
//!
//! Choices where Kubernetes leaves room:
//! - externalTrafficPolicy Local with no local endpoint rejects the node port
//!   (kube-proxy drops). Rejecting is simpler and fails fast; it also applies
//!   to connections from the node itself, which kube-proxy would instead send
//!   to any endpoint.
//! - When two Services claim the same `ip . proto . port` or node port (the
//!   API server prevents this; a stale cache may not), the first in
//!   (namespace, name) order wins, so the maps never hold duplicate keys,
//!   which would make nft refuse the whole transaction.
//! - The DNS VIP's port 53 belongs to the redirect, so the kube-dns Service's
//!   own elements for it are left out of the maps.
//!
//! Everything is iterated from `BTreeMap`s and sorted vectors, so the same
//! model always yields a byte-identical script.

use crate::model::{EndpointTarget, Model, Protocol, Service, ServicePort};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

// Writing into a String cannot fail; discarding the fmt::Result once here
// keeps the emitters readable.
macro_rules! out {
    ($dst:expr, $($arg:tt)*) => {
        let _ = writeln!($dst, $($arg)*);
    };
}

pub const TABLE: &str = "skiff";
/// Packet mark bit meaning "masquerade this connection in postrouting".
pub const MASQUERADE_MARK: u32 = 0x4000;
/// Chain names stay well under the kernel's 256-byte limit.
const MAX_NAME_LEN: usize = 200;
/// kube-proxy does not serve node ports on loopback (route_localnet hazards).
const LOOPBACK: &str = "127.0.0.0/8";

/// Chains every render writes: three nat, three filter, `services`,
/// `endpoints-check`, `masquerading`, `mark-for-masquerade`, `reject-chain`.
const FIXED_CHAINS: usize = 11;

/// A rendered script plus counts for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub script: String,
    /// Services with at least one IPv4 cluster IP (headless ones render nothing).
    pub services: usize,
    /// Endpoint chains, i.e. distinct (service port, endpoint) pairs.
    pub endpoints: usize,
    /// All chains in the table, fixed ones included.
    pub chains: usize,
}

/// Removes our table; succeeds whether or not it exists.
pub fn teardown_script() -> &'static str {
    "add table ip skiff\ndelete table ip skiff\n"
}

/// Builds the full replacement script for `nft -f -`.
pub fn render(model: &Model) -> Ruleset {
    let desired = Desired::of(model);
    Ruleset {
        script: desired.full_script(),
        services: desired.services,
        endpoints: desired.endpoints,
        chains: desired.chains(),
    }
}

/// Everything our table should hold, in a form two versions of which can be compared: the
/// proxy keeps the last one it applied and sends the kernel only the difference
/// ([`Desired::delta_script`]), so a changed EndpointSlice costs a few chains and elements,
/// not the whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Base chains and the fixed chains, as text: they change only with the node's
    /// configuration, and then the whole table is rewritten.
    fixed: String,
    cluster_ips: BTreeSet<String>,
    /// `service-ips`, `service-nodeports`, `no-endpoint-services`, `no-endpoint-nodeports`:
    /// key -> verdict.
    maps: [BTreeMap<String, String>; 4],
    /// Affinity sets: name -> timeout.
    sets: Vec<(String, u32)>,
    /// Per service port and endpoint chains, in render order.
    chains: Vec<(String, Vec<String>)>,
    pub services: usize,
    pub endpoints: usize,
}

const MAP_NAMES: [&str; 4] = [
    "service-ips",
    "service-nodeports",
    "no-endpoint-services",
    "no-endpoint-nodeports",
];
const SVC_KEY: &str = "ipv4_addr . inet_proto . inet_service : verdict";
const NP_KEY: &str = "inet_proto . inet_service : verdict";

impl Desired {
    pub fn of(model: &Model) -> Desired {
        let mut plan = Plan::default();
        if let Some(dns) = &model.dns {
            for proto in [Protocol::Udp, Protocol::Tcp] {
                plan.service_ips.insert((dns.vip, proto, 53), Verdict::Redirected);
            }
        }
        let cidr = cidr_text(model.cluster_cidr);
        for svc in model.services.values() {
            if svc.cluster_ips.is_empty() {
                continue;
            }
            plan.services += 1;
            plan.cluster_ips.extend(svc.cluster_ips.iter().copied());
            for port in &svc.ports {
                plan.add_service_port(model, svc, port, &cidr);
            }
        }
        let mut maps: [BTreeMap<String, String>; 4] = Default::default();
        for ((ip, proto, port), v) in &plan.service_ips {
            let Some(verdict) = v.element() else { continue };
            let i = if matches!(v, Verdict::Reject) { 2 } else { 0 };
            maps[i].insert(format!("{ip} . {} . {port}", proto.nft_name()), verdict);
        }
        for ((proto, port), v) in &plan.node_ports {
            let Some(verdict) = v.element() else { continue };
            let i = if matches!(v, Verdict::Reject) { 3 } else { 1 };
            maps[i].insert(format!("{} . {port}", proto.nft_name()), verdict);
        }
        let mut fixed = String::new();
        write_fixed(&mut fixed, model);
        Desired {
            fixed,
            cluster_ips: plan.cluster_ips.iter().map(|ip| ip.to_string()).collect(),
            maps,
            sets: plan.sets.iter().map(|s| (s.name.clone(), s.timeout)).collect(),
            chains: plan.chains.into_iter().map(|c| (c.name, c.rules)).collect(),
            services: plan.services,
            endpoints: plan.endpoints,
        }
    }

    /// All chains in the table, fixed ones included.
    pub fn chains(&self) -> usize {
        FIXED_CHAINS + self.chains.len()
    }

    /// The script that replaces the table wholesale.
    pub fn full_script(&self) -> String {
        let mut out = String::with_capacity(4096 + self.chains.len() * 256);
        out!(out, "add table ip {TABLE}");
        out!(out, "delete table ip {TABLE}");
        out!(out, "table ip {TABLE} {{");
        let ips: Vec<String> = self.cluster_ips.iter().cloned().collect();
        write_collection(&mut out, "set", "cluster-ips", "ipv4_addr", &ips);
        for (i, name) in MAP_NAMES.iter().enumerate() {
            let key = if i % 2 == 0 { SVC_KEY } else { NP_KEY };
            let elements: Vec<String> = self.maps[i].iter().map(|(k, v)| format!("{k} : {v}")).collect();
            write_collection(&mut out, "map", name, key, &elements);
        }
        for (name, timeout) in &self.sets {
            out!(out, "\tset {name} {{");
            out!(out, "\t\ttype ipv4_addr");
            out!(out, "\t\tflags dynamic,timeout");
            out!(out, "\t\ttimeout {timeout}s");
            out!(out, "\t}}");
        }
        out.push_str(&self.fixed);
        for (name, rules) in &self.chains {
            write_chain(&mut out, name, rules);
        }
        out!(out, "}}");
        out
    }

    /// The commands that turn the table `prev` describes into this one, as one transaction;
    /// empty when nothing changed. None when the difference is not worth expressing (the
    /// node's configuration or an affinity timeout changed): write [`Self::full_script`].
    ///
    /// Order matters inside the transaction: map elements that point at chains about to go
    /// are deleted first; new sets and chains are declared before rules use them; changed
    /// chains are flushed and refilled; stale chains are flushed (they may point at each
    /// other) and only then deleted, with their sets last.
    pub fn delta_script(&self, prev: &Desired) -> Option<String> {
        if self.fixed != prev.fixed {
            return None;
        }
        let prev_sets: BTreeMap<&str, u32> = prev.sets.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let next_sets: BTreeMap<&str, u32> = self.sets.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        if next_sets.iter().any(|(n, t)| prev_sets.get(n).is_some_and(|p| p != t)) {
            return None;
        }
        let prev_chains: BTreeMap<&str, &Vec<String>> = prev.chains.iter().map(|(n, r)| (n.as_str(), r)).collect();
        let next_chains: BTreeMap<&str, &Vec<String>> = self.chains.iter().map(|(n, r)| (n.as_str(), r)).collect();
        let mut out = String::new();
        // 1. Elements that go or change, and cluster IPs that go.
        for (i, name) in MAP_NAMES.iter().enumerate() {
            let stale: Vec<&str> = prev.maps[i]
                .iter()
                .filter(|(k, v)| self.maps[i].get(*k) != Some(*v))
                .map(|(k, _)| k.as_str())
                .collect();
            elements_command(&mut out, "delete", name, &stale);
        }
        let gone: Vec<&str> = prev
            .cluster_ips
            .difference(&self.cluster_ips)
            .map(String::as_str)
            .collect();
        elements_command(&mut out, "delete", "cluster-ips", &gone);
        // 2. New sets and chains, empty.
        for (name, timeout) in self.sets.iter().filter(|(n, _)| !prev_sets.contains_key(n.as_str())) {
            out!(
                out,
                "add set ip {TABLE} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
            );
        }
        for (name, _) in self
            .chains
            .iter()
            .filter(|(n, _)| !prev_chains.contains_key(n.as_str()))
        {
            out!(out, "add chain ip {TABLE} {name}");
        }
        // 3. Changed and stale chains emptied, new and changed ones filled.
        for (name, rules) in &prev.chains {
            if next_chains.get(name.as_str()) != Some(&rules) {
                out!(out, "flush chain ip {TABLE} {name}");
            }
        }
        for (name, rules) in &self.chains {
            if prev_chains.get(name.as_str()) != Some(&rules) {
                for rule in rules {
                    out!(out, "add rule ip {TABLE} {name} {rule}");
                }
            }
        }
        // 4. Elements that are new or changed, and new cluster IPs.
        for (i, name) in MAP_NAMES.iter().enumerate() {
            let fresh: Vec<String> = self.maps[i]
                .iter()
                .filter(|(k, v)| prev.maps[i].get(*k) != Some(*v))
                .map(|(k, v)| format!("{k} : {v}"))
                .collect();
            let fresh: Vec<&str> = fresh.iter().map(String::as_str).collect();
            elements_command(&mut out, "add", name, &fresh);
        }
        let new_ips: Vec<&str> = self
            .cluster_ips
            .difference(&prev.cluster_ips)
            .map(String::as_str)
            .collect();
        elements_command(&mut out, "add", "cluster-ips", &new_ips);
        // 5. Stale chains and sets deleted.
        for (name, _) in prev
            .chains
            .iter()
            .filter(|(n, _)| !next_chains.contains_key(n.as_str()))
        {
            out!(out, "delete chain ip {TABLE} {name}");
        }
        for (name, _) in prev.sets.iter().filter(|(n, _)| !next_sets.contains_key(n.as_str())) {
            out!(out, "delete set ip {TABLE} {name}");
        }
        Some(out)
    }
}

/// `add element ip skiff NAME { a, b }` (or delete); nothing for no elements.
fn elements_command(out: &mut String, verb: &str, name: &str, elements: &[&str]) {
    if !elements.is_empty() {
        out!(out, "{verb} element ip {TABLE} {name} {{ {} }}", elements.join(", "));
    }
}

#[derive(Clone)]
enum Verdict {
    Goto(String),
    Reject,
    /// Owned by the DNS redirect rule: no element is written.
    Redirected,
}

struct Chain {
    name: String,
    rules: Vec<String>,
}

struct AffinitySet {
    name: String,
    timeout: u32,
}

/// An endpoint chain as seen by the entry chains that balance over it.
struct EpRef {
    chain: String,
    affinity: Option<String>,
}

#[derive(Default)]
struct Plan {
    cluster_ips: BTreeSet<Ipv4Addr>,
    service_ips: BTreeMap<(Ipv4Addr, Protocol, u16), Verdict>,
    node_ports: BTreeMap<(Protocol, u16), Verdict>,
    chains: Vec<Chain>,
    sets: Vec<AffinitySet>,
    used_names: BTreeSet<String>,
    services: usize,
    endpoints: usize,
}

impl Plan {
    fn add_service_port(&mut self, model: &Model, svc: &Service, port: &ServicePort, cidr: &str) {
        let node_port = port.node_port.filter(|_| svc.node_ports);
        let all = model.endpoints_for(svc, port);
        let wants_local = svc.internal_local || (svc.external_local && node_port.is_some());
        let local = if wants_local {
            model.local_endpoints_for(svc, port)
        } else {
            Vec::new()
        };
        let cluster_eps = if svc.internal_local { &local } else { &all };
        let external_eps: &[EndpointTarget] = match node_port {
            None => &[],
            Some(_) if svc.external_local => &local,
            Some(_) => &all,
        };

        let label = PortLabel::new(svc, port);
        let mut eps: BTreeMap<(Ipv4Addr, u16), EpRef> = BTreeMap::new();
        for (ip, target, _) in cluster_eps.iter().chain(external_eps) {
            if let Entry::Vacant(slot) = eps.entry((*ip, *target)) {
                slot.insert(self.add_endpoint(svc, port, &label, *ip, *target));
            }
        }
        let pick = |list: &[EndpointTarget]| -> Vec<&EpRef> {
            list.iter().filter_map(|(ip, p, _)| eps.get(&(*ip, *p))).collect()
        };

        let verdict = if cluster_eps.is_empty() {
            Verdict::Reject
        } else {
            // Sources outside the pod network (the node, routed clients) are
            // masqueraded so replies come back through this node's conntrack.
            let mut rules = vec![format!("ip saddr != {cidr} jump mark-for-masquerade")];
            rules.extend(balance(&pick(cluster_eps)));
            Verdict::Goto(self.add_chain(format!("svc-{}", label.text), rules))
        };
        for ip in &svc.cluster_ips {
            let key = (*ip, port.protocol, port.port);
            self.service_ips.entry(key).or_insert_with(|| verdict.clone());
        }

        let Some(node_port) = node_port else {
            return;
        };
        let verdict = if external_eps.is_empty() {
            Verdict::Reject
        } else {
            let mut rules = Vec::new();
            // Local policy keeps the client address, which is the point of it;
            // otherwise replies must return via this node, so masquerade.
            if !svc.external_local {
                rules.push("jump mark-for-masquerade".to_string());
            }
            rules.extend(balance(&pick(external_eps)));
            Verdict::Goto(self.add_chain(format!("ext-{}", label.text), rules))
        };
        self.node_ports.entry((port.protocol, node_port)).or_insert(verdict);
    }

    fn add_endpoint(
        &mut self,
        svc: &Service,
        port: &ServicePort,
        label: &PortLabel,
        ip: Ipv4Addr,
        target: u16,
    ) -> EpRef {
        self.endpoints += 1;
        let hash = short_hash(&[
            &svc.namespace,
            &svc.name,
            port.protocol.nft_name(),
            &port.name,
            &format!("{ip}:{target}"),
        ]);
        let suffix = format!("{hash}-{}__{ip}_{target}", label.readable);
        let affinity = svc.affinity_timeout.map(|timeout| {
            let name = self.unique_name(format!("affinity-{suffix}"));
            self.sets.push(AffinitySet {
                name: name.clone(),
                timeout,
            });
            name
        });
        // Hairpin: when a pod reaches itself through its Service, source and
        // DNAT destination are the same address, so its reply would stay
        // inside the pod and never be un-DNATed. Masquerading routes it via
        // the node.
        let mut rules = vec![format!("ip saddr {ip} jump mark-for-masquerade")];
        if let Some(set) = &affinity {
            rules.push(format!("update @{set} {{ ip saddr }}"));
        }
        rules.push(format!(
            "meta l4proto {} dnat to {ip}:{target}",
            port.protocol.nft_name()
        ));
        let chain = self.add_chain(format!("ep-{suffix}"), rules);
        EpRef { chain, affinity }
    }

    fn add_chain(&mut self, name: String, rules: Vec<String>) -> String {
        let name = self.unique_name(name);
        self.chains.push(Chain {
            name: name.clone(),
            rules,
        });
        name
    }

    /// nft keeps chains and sets in separate namespaces; one pool here is
    /// simpler and costs nothing. A clash needs a hash collision on top of
    /// equal readable parts, so the numbered fallback practically never
    /// fires; it exists so nft never sees a duplicate name.
    fn unique_name(&mut self, base: String) -> String {
        let base = truncate(base, MAX_NAME_LEN - 4);
        let mut name = base.clone();
        let mut n = 2u32;
        while self.used_names.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.used_names.insert(name.clone());
        name
    }
}

impl Verdict {
    fn element(&self) -> Option<String> {
        match self {
            Verdict::Goto(chain) => Some(format!("goto {chain}")),
            Verdict::Reject => Some("goto reject-chain".to_string()),
            Verdict::Redirected => None,
        }
    }
}

/// ClientIP affinity first (a known client returns to its endpoint), then a
/// uniform random pick. `goto` rather than `jump`: the endpoint chain's DNAT
/// is final, nothing after it in the entry chain may run. With a single
/// endpoint the affinity lookups could only choose it anyway; its chain
/// still records the client, so affinity holds once others appear.
fn balance(eps: &[&EpRef]) -> Vec<String> {
    match eps {
        [] => Vec::new(),
        [only] => vec![format!("goto {}", only.chain)],
        many => {
            let mut rules: Vec<String> = many
                .iter()
                .filter_map(|ep| {
                    let set = ep.affinity.as_ref()?;
                    Some(format!("ip saddr @{set} goto {}", ep.chain))
                })
                .collect();
            let arms: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, ep)| format!("{i} : goto {}", ep.chain))
                .collect();
            rules.push(format!(
                "numgen random mod {} vmap {{ {} }}",
                many.len(),
                arms.join(", ")
            ));
            rules
        }
    }
}

/// Identity and display name of a service port, shared by its chains.
struct PortLabel {
    /// `<hash>-<readable>`: the hash keeps names unique, the rest makes
    /// `nft list` output legible.
    text: String,
    readable: String,
}

impl PortLabel {
    fn new(svc: &Service, port: &ServicePort) -> PortLabel {
        let proto = port.protocol.nft_name();
        let hash = short_hash(&[&svc.namespace, &svc.name, proto, &port.name]);
        let port_text = if port.name.is_empty() {
            port.port.to_string()
        } else {
            port.name.clone()
        };
        let readable = format!(
            "{}_{}_{proto}_{}",
            sanitize(&svc.namespace),
            sanitize(&svc.name),
            sanitize(&port_text)
        );
        PortLabel {
            text: format!("{hash}-{readable}"),
            readable,
        }
    }
}

/// FNV-1a, written out because std's hasher is not stable across releases
/// and chain names should survive a proxy upgrade. Parts are separated by a
/// byte that cannot occur in UTF-8, so ("ab","c") and ("a","bc") differ.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// 8 characters of RFC 4648 base32 (40 bits), like kube-proxy's chain hashes.
fn short_hash(parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let h = fnv1a(parts);
    (0..8)
        .map(|i| char::from(ALPHABET[((h >> (59 - 5 * i)) & 31) as usize]))
        .collect()
}

/// Kubernetes names are already `[a-z0-9-]`; anything else is mapped to '-'
/// so a malformed name can never break the nft syntax.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn truncate(mut s: String, max: usize) -> String {
    // Names are ASCII after sanitising, but stay safe for any input.
    while s.len() > max {
        s.pop();
    }
    s
}

/// Host bits are cleared so the rule reads as the network it matches.
fn cidr_text((ip, prefix): (Ipv4Addr, u8)) -> String {
    let prefix = prefix.min(32);
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    format!("{}/{prefix}", Ipv4Addr::from(u32::from(ip) & mask))
}

// ---- text output -------------------------------------------------------------

/// The base chains (hooks) and the fixed chains every table has.
fn write_fixed(out: &mut String, model: &Model) {
    let base = |out: &mut String, name: &str, hook: &str, rules: &[&str]| {
        out!(out, "\tchain {name} {{");
        out!(out, "\t\t{hook}");
        for r in rules {
            out!(out, "\t\t{r}");
        }
        out!(out, "\t}}");
    };
    base(
        out,
        "nat-prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &["jump services"],
    );
    base(
        out,
        "nat-output",
        "type nat hook output priority -100; policy accept;",
        &["jump services"],
    );
    base(
        out,
        "nat-postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        &["jump masquerading"],
    );
    let nodeport_reject = format!(
        "ct state new ip daddr != {LOOPBACK} fib daddr type local \
         meta l4proto . th dport vmap @no-endpoint-nodeports"
    );
    // The cluster DNS server listens on a node address and forwards what is not ours: it
    // answers pods (through the redirect) and the node itself, not the world (an open
    // resolver on a public address is an amplifier).
    let dns_guard = model.dns.as_ref().map(|dns| {
        let mut allowed: Vec<String> = vec![cidr_text(model.cluster_cidr), LOOPBACK.to_string()];
        allowed.extend(model.node_ips.iter().chain([dns.target.ip()]).map(|ip| ip.to_string()));
        allowed.dedup();
        format!(
            "ip daddr {} meta l4proto {{ tcp, udp }} th dport {} ip saddr != {{ {} }} drop",
            dns.target.ip(),
            dns.target.port(),
            allowed.join(", ")
        )
    });
    let mut input: Vec<&str> = dns_guard.iter().map(String::as_str).collect();
    // Node ports are local destinations, so only the input hook sees them.
    input.extend([nodeport_reject.as_str(), "ct state new jump endpoints-check"]);
    base(
        out,
        "filter-input",
        "type filter hook input priority -110; policy accept;",
        &input,
    );
    // Prerouting, not forward: a node without a route for the service range (no default
    // route) would drop the packet as unroutable before the forward hook, and the client
    // would see "network unreachable" rather than "connection refused". -90: after
    // nat-prerouting's DNAT (-100), so only untranslated packets still carry a cluster IP.
    base(
        out,
        "filter-prerouting",
        "type filter hook prerouting priority -90; policy accept;",
        &["ct state new jump endpoints-check"],
    );
    // -90: after nat-output's DNAT (-100); see the module doc.
    base(
        out,
        "filter-output",
        "type filter hook output priority -90; policy accept;",
        &["ct state new jump endpoints-check"],
    );

    let mut services = Vec::new();
    if let Some(dns) = &model.dns {
        for proto in ["udp", "tcp"] {
            services.push(format!("ip daddr {} {proto} dport 53 dnat to {}", dns.vip, dns.target));
        }
    }
    services.push("ip daddr . meta l4proto . th dport vmap @service-ips".to_string());
    services.push(format!(
        "ip daddr != {LOOPBACK} fib daddr type local meta l4proto . th dport vmap @service-nodeports"
    ));
    write_chain(out, "services", &services);
    write_chain(
        out,
        "endpoints-check",
        &[
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".to_string(),
            // Still a cluster IP after DNAT: a port the Service does not have.
            "ip daddr @cluster-ips reject".to_string(),
        ]
        .into_iter()
        .chain(model.service_cidr.map(|(net, len)| {
            // Any other address of the service range: never routed off the node (the
            // architecture's blackhole, as a rule: a blackhole route would also swallow the
            // rejects above, which are decided after routing).
            format!("ip daddr {net}/{len} reject")
        }))
        .collect::<Vec<_>>(),
    );
    write_chain(
        out,
        "masquerading",
        &[
            format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"),
            // Clear the bit so it does not leak to anything after us.
            format!("meta mark set meta mark xor {MASQUERADE_MARK:#x}"),
            "masquerade fully-random".to_string(),
        ],
    );
    write_chain(
        out,
        "mark-for-masquerade",
        &[format!("meta mark set meta mark or {MASQUERADE_MARK:#x}")],
    );
    // TCP gets a reset, the others ICMP port unreachable: either way "connection refused".
    write_chain(
        out,
        "reject-chain",
        &[
            "meta l4proto tcp reject with tcp reset".to_string(),
            "reject".to_string(),
        ],
    );
}

fn write_chain(out: &mut String, name: &str, rules: &[String]) {
    out!(out, "\tchain {name} {{");
    for r in rules {
        out!(out, "\t\t{r}");
    }
    out!(out, "\t}}");
}

fn write_elements(out: &mut String, elements: &[String]) {
    // nft rejects `elements = { }`, so an empty set simply has no line.
    if elements.is_empty() {
        return;
    }
    out!(out, "\t\telements = {{");
    let last = elements.len() - 1;
    for (i, e) in elements.iter().enumerate() {
        let sep = if i == last { "" } else { "," };
        out!(out, "\t\t\t{e}{sep}");
    }
    out!(out, "\t\t}}");
}

/// `kind` is "set" or "map"; the two differ only in the key type text.
fn write_collection(out: &mut String, kind: &str, name: &str, key: &str, elements: &[String]) {
    out!(out, "\t{kind} {name} {{");
    out!(out, "\t\ttype {key}");
    write_elements(out, elements);
    out!(out, "\t}}");
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;

//! Cluster DNS answers, computed from a snapshot of Services and EndpointSlices.
//!
//! Why: every node's `netproxy` answers the cluster domain itself, the way CoreDNS's
//! kubernetes plugin would, so pods resolve `<svc>.<ns>.svc.<domain>` without a
//! separate DNS deployment. This module is the pure half: no sockets, no clock beyond
//! the SOA serial, so every rule can be unit-tested with hand-built `Message`s.
//!
//! How: [`Zone::new`] indexes the services once (namespace -> name -> entry, plus an
//! IP -> name map for reverse lookups) so that answering is a couple of hash lookups.
//! A zone is immutable; the server swaps in a new one whenever a Service or
//! EndpointSlice changes, which keeps readers lock-free in the answering path.
//!
//! Deliberate simplifications, each a difference from CoreDNS:
//! - SRV weight is always 100 (CoreDNS divides 100 among the records of a priority).
//! - A headless SRV uses the service port (the caller may put the EndpointSlice port in
//!   `DnsPort::port` for headless services, which is what CoreDNS reports).
//! - An endpoint is named by its hostname when it has one, otherwise by its dashed IP,
//!   exactly one label per endpoint as CoreDNS does.
//! - `<ns>.svc.<domain>` "exists" when the namespace has at least one service.
//! - No `pod.<domain>` records, no wildcards, no IPv6 (the inputs are IPv4 only).
//! - An ExternalName service answers every type with its CNAME, SRV included.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// CoreDNS's default for the kubernetes plugin; short because services churn.
pub const TTL: u32 = 5;
/// What `dns-version.<domain>` TXT reports: the Kubernetes DNS schema version we follow.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The UDP payload size we advertise back to EDNS clients (the DNS flag day value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// A longer in-zone CNAME chain is almost certainly a loop between ExternalNames.
const MAX_CNAME_CHAIN: usize = 8;

/// One Kubernetes Service as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsService {
    pub namespace: String,
    pub name: String,
    /// `None` means headless: the name resolves to the ready endpoints instead.
    pub cluster_ip: Option<Ipv4Addr>,
    /// Set for `type: ExternalName`; the name then answers with a CNAME.
    pub external_name: Option<String>,
    pub ports: Vec<DnsPort>,
    /// Only consulted for headless services.
    pub endpoints: Vec<DnsEndpoint>,
}

/// A service port; an empty `name` gets no SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPort {
    pub name: String,
    /// "TCP", "UDP" or "SCTP", matched case-insensitively against `_<proto>`.
    pub protocol: String,
    pub port: u16,
}

/// One EndpointSlice address. Callers should mark endpoints of a service with
/// `publishNotReadyAddresses` as ready, as the EndpointSlice controller does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoint {
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    pub ready: bool,
}

/// What to do with a query.
#[derive(Debug)]
pub enum Answer {
    /// Send this message back.
    Reply(Message),
    /// Not ours: relay it to the upstream resolvers.
    Forward,
}

/// Why a zone could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("invalid cluster domain {domain:?}: {reason}")]
    InvalidDomain { domain: String, reason: String },
}

#[derive(Debug)]
struct Port {
    name: Box<[u8]>,
    proto: Box<[u8]>,
    port: u16,
}

#[derive(Debug)]
struct Endpoint {
    ip: Ipv4Addr,
    label: Box<[u8]>,
}

#[derive(Debug)]
enum Target {
    ClusterIp(Ipv4Addr),
    /// Ready endpoints only, one per IP.
    Headless(Vec<Endpoint>),
    External(Name),
}

#[derive(Debug)]
struct Entry {
    fqdn: Name,
    target: Target,
    ports: Vec<Port>,
}

/// One namespace's services, keyed by lowercased name.
type Services = HashMap<Box<[u8]>, Entry>;

/// The outcome of looking a name up inside the cluster domain.
enum Lookup {
    NxDomain,
    NoData,
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    Cname(Name),
}

/// An immutable, indexed snapshot of the cluster domain.
#[derive(Debug)]
pub struct Zone {
    domain: String,
    /// Lowercased labels of `origin`, to test suffixes without building names.
    origin_labels: Vec<Box<[u8]>>,
    soa: Record,
    namespaces: HashMap<Box<[u8]>, Services>,
    ptr: HashMap<Ipv4Addr, Name>,
    /// Rotates headless A answers so clients that take the first address spread out,
    /// like CoreDNS's `loadbalance` plugin in the default Corefile.
    rotation: AtomicUsize,
}

impl Zone {
    /// Builds the zone; an unusable domain falls back to `cluster.local` (logged),
    /// because a DNS server for the wrong domain is better than none at all.
    pub fn new(domain: &str, services: impl IntoIterator<Item = DnsService>) -> Zone {
        match Self::try_new(domain, services) {
            Ok(zone) => zone,
            Err(err) => {
                tracing::error!(%err, "falling back to cluster.local");
                // "cluster.local" always parses, so this cannot recurse further.
                Self::new("cluster.local", std::iter::empty())
            }
        }
    }

    /// Builds the zone, refusing a domain that is not a valid DNS name.
    pub fn try_new(domain: &str, services: impl IntoIterator<Item = DnsService>) -> Result<Zone, ZoneError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let invalid = |reason: String| ZoneError::InvalidDomain {
            domain: domain.clone(),
            reason,
        };
        if domain.is_empty() {
            return Err(invalid("empty".into()));
        }
        let origin = Name::from_ascii(format!("{domain}."))
            .map_err(|e| invalid(e.to_string()))?
            .to_lowercase();
        let origin_labels = origin.iter().map(Box::from).collect();
        let svc_origin = origin.prepend_label(&b"svc"[..]).map_err(|e| invalid(e.to_string()))?;
        let soa = soa_record(&origin).map_err(|e| invalid(e.to_string()))?;

        let mut zone = Zone {
            domain,
            origin_labels,
            soa,
            namespaces: HashMap::new(),
            ptr: HashMap::new(),
            rotation: AtomicUsize::new(0),
        };
        let mut endpoint_ptr: HashMap<Ipv4Addr, Name> = HashMap::new();
        for svc in services {
            match build_entry(&svc, &svc_origin) {
                Ok(entry) => {
                    match &entry.target {
                        Target::ClusterIp(ip) => {
                            zone.ptr.insert(*ip, entry.fqdn.clone());
                        }
                        Target::Headless(eps) => {
                            for ep in eps {
                                let Ok(name) = entry.fqdn.prepend_label(&*ep.label) else {
                                    continue;
                                };
                                // A pod in several headless services gets one stable name,
                                // whatever order the caller listed the services in.
                                match endpoint_ptr.get(&ep.ip) {
                                    Some(have) if *have <= name => {}
                                    _ => {
                                        endpoint_ptr.insert(ep.ip, name);
                                    }
                                }
                            }
                        }
                        Target::External(_) => {}
                    }
                    zone.namespaces
                        .entry(lower_bytes(&svc.namespace))
                        .or_default()
                        .insert(lower_bytes(&svc.name), entry);
                }
                Err(err) => {
                    tracing::warn!(namespace = %svc.namespace, name = %svc.name, %err,
                        "service left out of cluster DNS");
                }
            }
        }
        // Cluster IPs win over pod IPs: a service name is the better reverse answer.
        for (ip, name) in endpoint_ptr {
            zone.ptr.entry(ip).or_insert(name);
        }
        Ok(zone)
    }

    /// The cluster domain, lowercase, without the trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// How many services the zone answers for.
    pub fn service_count(&self) -> usize {
        self.namespaces.values().map(HashMap::len).sum()
    }

    /// Answers one query, or says it belongs upstream.
    pub fn answer(&self, query: &Message) -> Answer {
        if query.message_type() != MessageType::Query {
            return Answer::Reply(error_reply(query, ResponseCode::FormErr, false));
        }
        if query.op_code() != OpCode::Query {
            return Answer::Reply(error_reply(query, ResponseCode::NotImp, true));
        }
        let [question] = query.queries() else {
            return Answer::Reply(error_reply(query, ResponseCode::FormErr, false));
        };
        if query.extensions().as_ref().is_some_and(|e| e.version() > 0) {
            return Answer::Reply(error_reply(query, ResponseCode::BADVERS, true));
        }
        let qtype = question.query_type();
        let lower = question.name().to_lowercase();
        let labels: Vec<&[u8]> = lower.iter().collect();

        if let Some(ip) = parse_reverse(&labels) {
            return match self.ptr.get(&ip) {
                Some(target) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                    let mut reply = reply_to(query);
                    reply.set_authoritative(true);
                    reply.add_answer(Record::from_rdata(
                        question.name().clone(),
                        TTL,
                        RData::PTR(PTR(target.clone())),
                    ));
                    Answer::Reply(reply)
                }
                _ => Answer::Forward,
            };
        }
        let Some(rel) = self.relative(&labels) else {
            return Answer::Forward;
        };
        if !matches!(question.query_class(), DNSClass::IN | DNSClass::ANY)
            || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
        {
            return Answer::Reply(error_reply(query, ResponseCode::Refused, true));
        }

        let mut reply = reply_to(query);
        reply.set_authoritative(true);
        let mut owner = question.name().clone();
        let mut rel_owned: Vec<Box<[u8]>> = rel.iter().map(|l| Box::from(*l)).collect();
        for _ in 0..MAX_CNAME_CHAIN {
            let rel: Vec<&[u8]> = rel_owned.iter().map(|l| &**l).collect();
            match self.lookup(&rel, qtype, &owner) {
                Lookup::NxDomain => return Answer::Reply(self.negative(reply, true)),
                Lookup::NoData => return Answer::Reply(self.negative(reply, false)),
                Lookup::Records { answers, additionals } => {
                    reply.add_answers(answers);
                    reply.add_additionals(additionals);
                    return Answer::Reply(reply);
                }
                Lookup::Cname(target) => {
                    reply.add_answer(Record::from_rdata(owner, TTL, RData::CNAME(CNAME(target.clone()))));
                    if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
                        return Answer::Reply(reply);
                    }
                    let lower = target.to_lowercase();
                    let labels: Vec<&[u8]> = lower.iter().collect();
                    match self.relative(&labels) {
                        Some(next) => rel_owned = next.iter().map(|l| Box::from(*l)).collect(),
                        // Outside the domain: the server may chase it upstream.
                        None => return Answer::Reply(reply),
                    }
                    owner = target;
                }
            }
        }
        Answer::Reply(error_reply(query, ResponseCode::ServFail, true))
    }

    /// For a reply ending in a CNAME that leaves the cluster domain (an ExternalName),
    /// the question to ask upstream so the client gets addresses too, as CoreDNS does:
    /// stub resolvers such as glibc's do not chase CNAMEs themselves.
    pub fn upstream_chase(&self, reply: &Message) -> Option<Query> {
        let question = reply.queries().first()?;
        let qtype = question.query_type();
        if reply.response_code() != ResponseCode::NoError || matches!(qtype, RecordType::CNAME | RecordType::ANY) {
            return None;
        }
        let RData::CNAME(CNAME(target)) = reply.answers().last()?.data() else {
            return None;
        };
        let lower = target.to_lowercase();
        let labels: Vec<&[u8]> = lower.iter().collect();
        if self.relative(&labels).is_some() {
            return None;
        }
        let mut chase = Query::query(target.clone(), qtype);
        chase.set_query_class(question.query_class());
        Some(chase)
    }

    /// The labels left of the cluster domain, or `None` outside it.
    fn relative<'a>(&self, labels: &'a [&'a [u8]]) -> Option<&'a [&'a [u8]]> {
        let split = labels.len().checked_sub(self.origin_labels.len())?;
        let (rel, suffix) = labels.split_at(split);
        let inside = suffix
            .iter()
            .zip(&self.origin_labels)
            .all(|(a, b)| a.eq_ignore_ascii_case(b));
        inside.then_some(rel)
    }

    fn negative(&self, mut reply: Message, nxdomain: bool) -> Message {
        if nxdomain {
            reply.set_response_code(ResponseCode::NXDomain);
        }
        reply.add_name_server(self.soa.clone());
        reply
    }

    fn lookup(&self, rel: &[&[u8]], qtype: RecordType, owner: &Name) -> Lookup {
        match rel {
            [] => match qtype {
                RecordType::SOA | RecordType::ANY => only(self.soa.clone()),
                _ => Lookup::NoData,
            },
            [b"dns-version"] => match qtype {
                RecordType::TXT | RecordType::ANY => only(Record::from_rdata(
                    owner.clone(),
                    TTL,
                    RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
                )),
                _ => Lookup::NoData,
            },
            [rest @ .., b"svc"] => self.lookup_svc(rest, qtype, owner),
            _ => Lookup::NxDomain,
        }
    }

    fn lookup_svc(&self, rel: &[&[u8]], qtype: RecordType, owner: &Name) -> Lookup {
        match rel {
            [] => Lookup::NoData,
            [ns] => match self.namespaces.contains_key(*ns) {
                true => Lookup::NoData,
                false => Lookup::NxDomain,
            },
            [svc, ns] => match self.entry(ns, svc) {
                Some(entry) => self.service(entry, qtype, owner),
                None => Lookup::NxDomain,
            },
            [label, svc, ns] => match self.entry(ns, svc) {
                Some(entry) => endpoint(entry, label, qtype, owner),
                None => Lookup::NxDomain,
            },
            [port, proto, svc, ns] => {
                let (Some(port), Some(proto)) = (port.strip_prefix(b"_"), proto.strip_prefix(b"_")) else {
                    return Lookup::NxDomain;
                };
                match self.entry(ns, svc) {
                    Some(entry) => srv(entry, Some((port, proto)), qtype, owner),
                    None => Lookup::NxDomain,
                }
            }
            _ => Lookup::NxDomain,
        }
    }

    fn entry(&self, ns: &[u8], svc: &[u8]) -> Option<&Entry> {
        self.namespaces.get(ns)?.get(svc)
    }

    fn service(&self, entry: &Entry, qtype: RecordType, owner: &Name) -> Lookup {
        match &entry.target {
            Target::External(target) => Lookup::Cname(target.clone()),
            Target::Headless(eps) if eps.is_empty() => Lookup::NxDomain,
            Target::ClusterIp(ip) => match qtype {
                RecordType::A | RecordType::ANY => only(a_record(owner, *ip)),
                // A bare-name SRV lists every port, as CoreDNS does.
                RecordType::SRV => srv(entry, None, qtype, owner),
                _ => Lookup::NoData,
            },
            Target::Headless(eps) => match qtype {
                RecordType::A | RecordType::ANY => {
                    let start = self.rotation.fetch_add(1, Ordering::Relaxed) % eps.len();
                    let (head, tail) = eps.split_at(start);
                    let answers = tail.iter().chain(head).map(|ep| a_record(owner, ep.ip)).collect();
                    Lookup::Records {
                        answers,
                        additionals: Vec::new(),
                    }
                }
                RecordType::SRV => srv(entry, None, qtype, owner),
                _ => Lookup::NoData,
            },
        }
    }
}

/// A reply with no data and the given code, for queries we can't serve at all
/// (e.g. when there is no upstream to forward to).
pub fn nxdomain_for(query: &Message) -> Message {
    error_reply(query, ResponseCode::NXDomain, true)
}

/// A SERVFAIL reply, for when forwarding failed.
pub fn servfail_for(query: &Message) -> Message {
    error_reply(query, ResponseCode::ServFail, true)
}

/// FORMERR for a packet whose header parsed but whose body did not: the header is
/// all we can trust, so nothing else is echoed.
pub fn formerr_for_header(header: &Header) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(header.id())
        .set_message_type(MessageType::Response)
        .set_op_code(header.op_code())
        .set_recursion_desired(header.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(ResponseCode::FormErr);
    reply
}

fn endpoint(entry: &Entry, label: &[u8], qtype: RecordType, owner: &Name) -> Lookup {
    let Target::Headless(eps) = &entry.target else {
        return Lookup::NxDomain;
    };
    let answers: Vec<Record> = eps
        .iter()
        .filter(|ep| &*ep.label == label)
        .map(|ep| a_record(owner, ep.ip))
        .collect();
    if answers.is_empty() {
        return Lookup::NxDomain;
    }
    match qtype {
        RecordType::A | RecordType::ANY => Lookup::Records {
            answers,
            additionals: Vec::new(),
        },
        _ => Lookup::NoData,
    }
}

/// SRV records for the ports matching `filter` (all ports when `None`, named ports only
/// when filtered because `_<name>` cannot name an unnamed port).
fn srv(entry: &Entry, filter: Option<(&[u8], &[u8])>, qtype: RecordType, owner: &Name) -> Lookup {
    let ports: Vec<&Port> = entry
        .ports
        .iter()
        .filter(|p| match filter {
            Some((name, proto)) => !p.name.is_empty() && *p.name == *name && *p.proto == *proto,
            None => true,
        })
        .collect();
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    match &entry.target {
        Target::ClusterIp(ip) => {
            for p in &ports {
                answers.push(srv_record(owner, p.port, entry.fqdn.clone()));
            }
            if !answers.is_empty() {
                additionals.push(a_record(&entry.fqdn, *ip));
            }
        }
        Target::Headless(eps) => {
            for ep in eps {
                let Ok(target) = entry.fqdn.prepend_label(&*ep.label) else {
                    continue;
                };
                for p in &ports {
                    answers.push(srv_record(owner, p.port, target.clone()));
                }
                if !ports.is_empty() {
                    additionals.push(a_record(&target, ep.ip));
                }
            }
        }
        Target::External(_) => return Lookup::NxDomain,
    }
    if answers.is_empty() {
        // An explicit `_port._proto` that matches nothing does not exist; a bare-name
        // SRV on a service without ports is just a name without SRV data.
        return if filter.is_some() {
            Lookup::NxDomain
        } else {
            Lookup::NoData
        };
    }
    match qtype {
        RecordType::SRV | RecordType::ANY => Lookup::Records { answers, additionals },
        _ => Lookup::NoData,
    }
}

fn build_entry(svc: &DnsService, svc_origin: &Name) -> Result<Entry, String> {
    let fqdn = Name::from_labels([svc.name.as_bytes(), svc.namespace.as_bytes()])
        .and_then(|n| n.append_domain(svc_origin))
        .map_err(|e| e.to_string())?
        .to_lowercase();
    let target = if let Some(external) = &svc.external_name {
        let mut name = Name::from_ascii(external).map_err(|e| e.to_string())?;
        name.set_fqdn(true);
        Target::External(name)
    } else if let Some(ip) = svc.cluster_ip {
        Target::ClusterIp(ip)
    } else {
        let mut seen = HashSet::new();
        let eps = svc
            .endpoints
            .iter()
            .filter(|ep| ep.ready && seen.insert(ep.ip))
            .map(|ep| Endpoint {
                ip: ep.ip,
                label: match &ep.hostname {
                    Some(h) if !h.is_empty() => lower_bytes(h),
                    _ => dashed(ep.ip).into_bytes().into_boxed_slice(),
                },
            })
            .collect();
        Target::Headless(eps)
    };
    let ports = svc
        .ports
        .iter()
        .map(|p| Port {
            name: lower_bytes(&p.name),
            proto: lower_bytes(&p.protocol),
            port: p.port,
        })
        .collect();
    Ok(Entry { fqdn, target, ports })
}

fn soa_record(origin: &Name) -> Result<Record, hickory_proto::ProtoError> {
    let mname = origin.prepend_label(&b"dns"[..])?.prepend_label(&b"ns"[..])?;
    let rname = origin.prepend_label(&b"hostmaster"[..])?;
    // Like CoreDNS, the serial is the time of the last change; nothing transfers
    // this zone, so it only has to move forward.
    let serial = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1);
    let soa = SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL);
    Ok(Record::from_rdata(origin.clone(), TTL, RData::SOA(soa)))
}

fn only(record: Record) -> Lookup {
    Lookup::Records {
        answers: vec![record],
        additionals: Vec::new(),
    }
}

fn a_record(owner: &Name, ip: Ipv4Addr) -> Record {
    Record::from_rdata(owner.clone(), TTL, RData::A(A(ip)))
}

fn srv_record(owner: &Name, port: u16, target: Name) -> Record {
    Record::from_rdata(owner.clone(), TTL, RData::SRV(SRV::new(0, 100, port, target)))
}

fn lower_bytes(s: &str) -> Box<[u8]> {
    s.to_ascii_lowercase().into_bytes().into_boxed_slice()
}

fn dashed(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{a}-{b}-{c}-{d}")
}

/// `d.c.b.a.in-addr.arpa` (lowercased labels) to the address; shorter reverse names
/// are delegations we do not own, so they stay `None` and get forwarded.
fn parse_reverse(labels: &[&[u8]]) -> Option<Ipv4Addr> {
    let [d, c, b, a, b"in-addr", b"arpa"] = labels else {
        return None;
    };
    let octet = |l: &[u8]| -> Option<u8> {
        if l.is_empty() || l.len() > 3 || !l.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(l).ok()?.parse().ok()
    };
    Some(Ipv4Addr::new(octet(a)?, octet(b)?, octet(c)?, octet(d)?))
}

/// The response skeleton every answer shares: same id, opcode and RD/CD bits, RA set
/// because we do forward, the question echoed, and EDNS answered with EDNS.
fn reply_to(query: &Message) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_checking_disabled(query.checking_disabled())
        .set_recursion_available(true);
    reply.add_queries(query.queries().iter().cloned());
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD).set_version(0);
        reply.set_edns(edns);
    }
    reply
}

fn error_reply(query: &Message, code: ResponseCode, echo_question: bool) -> Message {
    let mut reply = reply_to(query);
    if !echo_question {
        reply.take_queries();
    }
    reply.set_response_code(code);
    reply
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;

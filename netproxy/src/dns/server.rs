//! The node-local cluster DNS server: UDP and TCP listeners in front of a [`Zone`].
//!
//! Why: `netproxy` runs this on every node so pods get CoreDNS-compatible answers for
//! the cluster domain and have everything else relayed to the node's own resolvers.
//!
//! How:
//! - The zone sits behind `RwLock<Arc<Zone>>`; a query clones the `Arc` and answers
//!   without holding the lock, so [`DnsServer::set_zone`] is an O(1) swap that never
//!   waits for in-flight answers.
//! - Local answers are computed inline in the UDP receive loop (microseconds); only
//!   queries that must go upstream get a task, and those tasks are bounded by a
//!   semaphore: when it is exhausted the client gets SERVFAIL at once instead of the
//!   server queueing without limit.
//! - Each forward uses a fresh connected UDP socket and a fresh random id, so the
//!   kernel only hands us datagrams from that upstream and a blind spoofer must guess
//!   both port and id. Replies are checked for id and question before being relayed.
//! - With no upstreams at all, foreign names get NXDOMAIN (so search-list expansion
//!   carries on); when upstreams exist but none answers, SERVFAIL.
//! - A packet whose header does not parse is dropped; one whose header parses but whose
//!   body does not gets FORMERR. Responses (QR=1) are never answered, which keeps two
//!   misconfigured servers from bouncing packets between each other forever.
//! - Nothing here panics on input: every slice access on network data is checked.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, MessageType, Query, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use hickory_proto::ProtoError;
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::records::{self, Answer, Zone, EDNS_PAYLOAD};

/// Plain DNS over UDP without EDNS (RFC 1035).
const MIN_UDP_PAYLOAD: usize = 512;
/// Larger EDNS sizes than this only invite fragmentation; clients may ask for less.
const MAX_UDP_PAYLOAD: usize = 4096;
/// The largest message either transport can carry.
const MAX_MESSAGE: usize = u16::MAX as usize;
/// Smallest encodings of a question (root name + type + class) and of a resource
/// record (root name + type + class + ttl + rdlength), to refuse absurd counts
/// before the parser preallocates for them.
const MIN_QUESTION_LEN: usize = 5;
const MIN_RECORD_LEN: usize = 11;
/// How long to back off after a failed accept/recv (e.g. EMFILE) so the loop cannot spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Limits and timeouts; the defaults are the production values.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Per upstream, per attempt.
    pub forward_timeout: Duration,
    /// A TCP connection with no complete message for this long is closed.
    pub tcp_idle_timeout: Duration,
    pub max_tcp_connections: usize,
    pub max_in_flight_forwards: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            forward_timeout: Duration::from_secs(2),
            tcp_idle_timeout: Duration::from_secs(10),
            max_tcp_connections: 256,
            max_in_flight_forwards: 256,
        }
    }
}

/// Counters since the server was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Every message received, well-formed or not.
    pub queries: u64,
    /// NXDOMAIN responses sent, local or relayed.
    pub nxdomain: u64,
    /// Queries sent upstream (forwards and ExternalName chases).
    pub forwarded: u64,
    /// Malformed packets, IO failures, failed forwards, refused for lack of capacity.
    pub errors: u64,
}

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("no upstream resolvers")]
    NoUpstreams,
    #[error("upstream {0} timed out")]
    Timeout(SocketAddr),
    #[error("upstream {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
}

/// What the server decided for one incoming message.
enum Step {
    Drop,
    Done { reply: Message, udp_limit: usize },
    Upstream(Box<Pending>),
}

/// A query that needs an upstream round trip; it owns a forward slot until done.
struct Pending {
    query: Message,
    raw: Vec<u8>,
    udp_limit: usize,
    kind: PendingKind,
    _slot: OwnedSemaphorePermit,
}

enum PendingKind {
    Forward,
    /// Our reply ends in a CNAME leaving the domain; ask upstream for the target.
    Chase(Box<Chase>),
}

struct Chase {
    reply: Message,
    target: Query,
}

/// How an incoming datagram or frame parsed.
enum Parsed {
    Query(Message),
    /// The header parsed, the rest did not.
    FormErr(Message),
    /// Not even a header, or not a query at all.
    Drop,
}

/// A response ready to encode: ours, or an upstream's bytes with the client's id.
enum Outcome {
    Message(Message),
    Raw(Vec<u8>),
}

/// The cluster DNS server. Create with [`DnsServer::new`], run with [`DnsServer::serve`].
pub struct DnsServer {
    zone: RwLock<Arc<Zone>>,
    upstreams: Vec<SocketAddr>,
    config: ServerConfig,
    forward_slots: Arc<Semaphore>,
    tcp_slots: Arc<Semaphore>,
    queries: AtomicU64,
    nxdomain: AtomicU64,
    forwarded: AtomicU64,
    errors: AtomicU64,
    id_seq: AtomicU64,
    id_keys: RandomState,
}

impl DnsServer {
    pub fn new(zone: Zone, upstreams: Vec<SocketAddr>) -> Arc<Self> {
        Self::with_config(zone, upstreams, ServerConfig::default())
    }

    pub fn with_config(zone: Zone, upstreams: Vec<SocketAddr>, config: ServerConfig) -> Arc<Self> {
        Arc::new(DnsServer {
            zone: RwLock::new(Arc::new(zone)),
            upstreams,
            forward_slots: Arc::new(Semaphore::new(config.max_in_flight_forwards)),
            tcp_slots: Arc::new(Semaphore::new(config.max_tcp_connections)),
            config,
            queries: AtomicU64::new(0),
            nxdomain: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            id_seq: AtomicU64::new(0),
            id_keys: RandomState::new(),
        })
    }

    /// Replaces the zone; queries already being answered finish with the old one.
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.write() = Arc::new(zone);
    }

    pub fn zone(&self) -> Arc<Zone> {
        self.zone.read().clone()
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    pub fn stats(&self) -> DnsStats {
        DnsStats {
            queries: self.queries.load(Ordering::Relaxed),
            nxdomain: self.nxdomain.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Serves both sockets until `stop` is cancelled, then waits for every task it
    /// started (they all watch `stop` too) before returning.
    pub async fn serve(self: Arc<Self>, udp: UdpSocket, tcp: TcpListener, stop: CancellationToken) {
        let tracker = TaskTracker::new();
        tokio::join!(
            self.clone().serve_udp(Arc::new(udp), stop.clone(), tracker.clone()),
            self.clone().serve_tcp(tcp, stop.clone(), tracker.clone()),
        );
        tracker.close();
        tracker.wait().await;
    }

    async fn serve_udp(self: Arc<Self>, socket: Arc<UdpSocket>, stop: CancellationToken, tracker: TaskTracker) {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => return,
                r = socket.recv_from(&mut buf) => r,
            };
            let (len, peer) = match received {
                Ok(got) => got,
                Err(err) => {
                    self.count_error();
                    tracing::debug!(%err, "dns udp recv failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            };
            self.queries.fetch_add(1, Ordering::Relaxed);
            let raw = buf.get(..len).unwrap_or_default();
            match self.begin(raw) {
                Step::Drop => {}
                Step::Done { reply, udp_limit } => {
                    self.send_udp(&socket, peer, Outcome::Message(reply), udp_limit).await
                }
                Step::Upstream(pending) => {
                    let server = self.clone();
                    let socket = socket.clone();
                    let stop = stop.clone();
                    tracker.spawn(async move {
                        let limit = pending.udp_limit;
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            outcome = server.complete(pending) => {
                                server.send_udp(&socket, peer, outcome, limit).await
                            }
                        }
                    });
                }
            }
        }
    }

    async fn send_udp(&self, socket: &UdpSocket, peer: SocketAddr, outcome: Outcome, limit: usize) {
        let Some(bytes) = self.encode(outcome, limit) else {
            return;
        };
        if let Err(err) = socket.send_to(&bytes, peer).await {
            self.count_error();
            tracing::debug!(%err, %peer, "dns udp send failed");
        }
    }

    async fn serve_tcp(self: Arc<Self>, listener: TcpListener, stop: CancellationToken, tracker: TaskTracker) {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                r = listener.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(got) => got,
                Err(err) => {
                    self.count_error();
                    tracing::debug!(%err, "dns tcp accept failed");
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
            };
            let Ok(slot) = self.tcp_slots.clone().try_acquire_owned() else {
                // Closing at once tells the client to go elsewhere instead of hanging.
                self.count_error();
                tracing::debug!(%peer, "dns tcp connection limit reached");
                drop(stream);
                continue;
            };
            let server = self.clone();
            let stop = stop.clone();
            tracker.spawn(async move {
                let _slot = slot;
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = server.tcp_connection(stream) => {}
                }
            });
        }
    }

    /// Serves length-prefixed messages in order until the client goes quiet or away.
    async fn tcp_connection(&self, mut stream: TcpStream) {
        let idle = self.config.tcp_idle_timeout;
        let mut buf = Vec::new();
        loop {
            let mut prefix = [0u8; 2];
            if !matches!(timeout(idle, stream.read_exact(&mut prefix)).await, Ok(Ok(_))) {
                return;
            }
            buf.resize(usize::from(u16::from_be_bytes(prefix)), 0);
            if !matches!(timeout(idle, stream.read_exact(&mut buf)).await, Ok(Ok(_))) {
                return;
            }
            self.queries.fetch_add(1, Ordering::Relaxed);
            let outcome = match self.begin(&buf) {
                Step::Drop => continue,
                Step::Done { reply, .. } => Outcome::Message(reply),
                Step::Upstream(pending) => self.complete(pending).await,
            };
            let Some(bytes) = self.encode(outcome, MAX_MESSAGE) else {
                continue;
            };
            let Ok(len) = u16::try_from(bytes.len()) else {
                continue;
            };
            let mut frame = Vec::with_capacity(bytes.len() + 2);
            frame.extend_from_slice(&len.to_be_bytes());
            frame.extend_from_slice(&bytes);
            if !matches!(timeout(idle, stream.write_all(&frame)).await, Ok(Ok(()))) {
                return;
            }
        }
    }

    /// Everything that can be decided without waiting: parse, answer from the zone,
    /// or reserve a forward slot.
    fn begin(&self, raw: &[u8]) -> Step {
        let query = match parse_query(raw) {
            Parsed::Query(query) => query,
            Parsed::FormErr(reply) => {
                self.count_error();
                return Step::Done {
                    reply,
                    udp_limit: MIN_UDP_PAYLOAD,
                };
            }
            Parsed::Drop => {
                self.count_error();
                return Step::Drop;
            }
        };
        let udp_limit = udp_limit(&query);
        let zone = self.zone();
        let kind = match zone.answer(&query) {
            Answer::Reply(reply) => match zone.upstream_chase(&reply) {
                Some(target) if !self.upstreams.is_empty() => PendingKind::Chase(Box::new(Chase { reply, target })),
                _ => return Step::Done { reply, udp_limit },
            },
            Answer::Forward if self.upstreams.is_empty() => {
                return Step::Done {
                    reply: records::nxdomain_for(&query),
                    udp_limit,
                }
            }
            Answer::Forward => PendingKind::Forward,
        };
        let Ok(slot) = self.forward_slots.clone().try_acquire_owned() else {
            self.count_error();
            let reply = match kind {
                // The CNAME alone is still a correct, if less helpful, answer.
                PendingKind::Chase(chase) => chase.reply,
                PendingKind::Forward => records::servfail_for(&query),
            };
            return Step::Done { reply, udp_limit };
        };
        Step::Upstream(Box::new(Pending {
            raw: raw.to_vec(),
            query,
            udp_limit,
            kind,
            _slot: slot,
        }))
    }

    async fn complete(&self, pending: Box<Pending>) -> Outcome {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let Pending { query, raw, kind, .. } = *pending;
        match kind {
            PendingKind::Forward => {
                let Some(question) = query.queries().first() else {
                    return Outcome::Message(records::servfail_for(&query));
                };
                match self.forward(&raw, question).await {
                    Ok(mut bytes) => {
                        if let Some(id) = bytes.get_mut(..2) {
                            id.copy_from_slice(&query.id().to_be_bytes());
                        }
                        Outcome::Raw(bytes)
                    }
                    Err(err) => {
                        self.count_error();
                        tracing::debug!(%err, "dns forward failed");
                        Outcome::Message(records::servfail_for(&query))
                    }
                }
            }
            PendingKind::Chase(chase) => {
                let Chase { mut reply, target } = *chase;
                self.chase(&mut reply, target).await;
                Outcome::Message(reply)
            }
        }
    }

    /// Appends the upstream's answer for an ExternalName target; on failure the reply
    /// keeps just the CNAME, which a caching resolver can still follow.
    async fn chase(&self, reply: &mut Message, target: Query) {
        let mut ask = Message::new();
        ask.set_recursion_desired(true);
        ask.add_query(target.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        ask.set_edns(edns);
        let Ok(raw) = ask.to_vec() else {
            return;
        };
        let parsed = match self.forward(&raw, &target).await {
            Ok(bytes) => Message::from_vec(&bytes).map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        match parsed {
            Ok(upstream) => {
                reply.add_answers(upstream.answers().iter().cloned());
                if upstream.response_code() == ResponseCode::NXDomain {
                    reply.set_response_code(ResponseCode::NXDomain);
                }
            }
            Err(err) => {
                self.count_error();
                tracing::debug!(%err, "dns external-name chase failed");
            }
        }
    }

    /// Tries each upstream in order; the first acceptable reply wins.
    async fn forward(&self, raw: &[u8], question: &Query) -> Result<Vec<u8>, ForwardError> {
        let mut last = ForwardError::NoUpstreams;
        for &upstream in &self.upstreams {
            match self.exchange(upstream, raw, question).await {
                Ok(reply) => return Ok(reply),
                Err(err) => {
                    tracing::debug!(%err, "dns upstream attempt failed");
                    last = err;
                }
            }
        }
        Err(last)
    }

    async fn exchange(&self, upstream: SocketAddr, raw: &[u8], question: &Query) -> Result<Vec<u8>, ForwardError> {
        let io_err = |source| ForwardError::Io { addr: upstream, source };
        let local: SocketAddr = match upstream {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.map_err(io_err)?;
        socket.connect(upstream).await.map_err(io_err)?;
        let id = self.next_id();
        let mut out = raw.to_vec();
        let Some(id_bytes) = out.get_mut(..2) else {
            return Err(io_err(io::ErrorKind::InvalidInput.into()));
        };
        id_bytes.copy_from_slice(&id.to_be_bytes());
        socket.send(&out).await.map_err(io_err)?;

        let deadline = Instant::now() + self.config.forward_timeout;
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let len = match timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => return Err(ForwardError::Timeout(upstream)),
                Ok(r) => r.map_err(io_err)?,
            };
            let reply = buf.get(..len).unwrap_or_default();
            if is_reply_to(reply, id, question) {
                return Ok(reply.to_vec());
            }
            tracing::debug!(%upstream, "ignoring mismatched upstream reply");
        }
    }

    /// Encodes a response within `limit` bytes, truncating (TC) when it does not fit,
    /// and counts NXDOMAINs on the way out.
    fn encode(&self, outcome: Outcome, limit: usize) -> Option<Vec<u8>> {
        let encoded = match outcome {
            Outcome::Raw(bytes) if bytes.len() <= limit => Ok(bytes),
            Outcome::Raw(bytes) => Message::from_vec(&bytes).and_then(|m| encode_limited(&m, limit)),
            Outcome::Message(m) => encode_limited(&m, limit),
        };
        match encoded {
            Ok(bytes) => {
                if bytes.get(3).is_some_and(|b| b & 0x0f == ResponseCode::NXDomain.low()) {
                    self.nxdomain.fetch_add(1, Ordering::Relaxed);
                }
                Some(bytes)
            }
            Err(err) => {
                self.count_error();
                tracing::debug!(%err, "dns response could not be encoded");
                None
            }
        }
    }

    fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Unpredictable ids without a rand dependency: SipHash with per-process random
    /// keys over a counter.
    fn next_id(&self) -> u16 {
        let mut h = self.id_keys.build_hasher();
        h.write_u64(self.id_seq.fetch_add(1, Ordering::Relaxed));
        h.finish() as u16
    }
}

/// Nameservers from resolv.conf text: port 53, first three usable ones (resolv.conf's
/// own limit, and it bounds how long a failing forward takes), skipping `exclude`
/// (the cluster DNS addresses themselves, to avoid forwarding loops) and unspecified
/// addresses. Loopback is kept: a node using systemd-resolved lists 127.0.0.53.
/// Scoped IPv6 addresses (`fe80::1%eth0`) are skipped.
pub fn upstreams_from_resolv_conf(text: &str, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    // The agent's own parser (the one that writes pods' resolv.conf files).
    for server in node_agent::spec::resolv_conf_nameservers(text) {
        let Ok(ip) = server.parse::<IpAddr>() else {
            continue;
        };
        let addr = SocketAddr::new(ip, 53);
        if ip.is_unspecified() || exclude.contains(&ip) || out.contains(&addr) {
            continue;
        }
        out.push(addr);
        if out.len() == 3 {
            break;
        }
    }
    out
}

fn parse_query(raw: &[u8]) -> Parsed {
    let Ok(header) = Header::read(&mut BinDecoder::new(raw)) else {
        return Parsed::Drop;
    };
    if header.message_type() != MessageType::Query {
        return Parsed::Drop;
    }
    let body = raw.len().saturating_sub(Header::len());
    let records = usize::from(header.answer_count())
        + usize::from(header.name_server_count())
        + usize::from(header.additional_count());
    let needed = usize::from(header.query_count()) * MIN_QUESTION_LEN + records * MIN_RECORD_LEN;
    if needed > body {
        return Parsed::FormErr(records::formerr_for_header(&header));
    }
    match Message::from_vec(raw) {
        Ok(query) => Parsed::Query(query),
        Err(_) => Parsed::FormErr(records::formerr_for_header(&header)),
    }
}

/// The largest UDP response this client accepts.
fn udp_limit(query: &Message) -> usize {
    query
        .extensions()
        .as_ref()
        .map_or(MIN_UDP_PAYLOAD, |e| usize::from(e.max_payload()))
        .clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD)
}

/// An upstream datagram is ours if it is a response with our id for our question.
/// Error responses may omit the question (some servers do for FORMERR).
fn is_reply_to(reply: &[u8], id: u16, question: &Query) -> bool {
    let Ok(msg) = Message::from_vec(reply) else {
        return false;
    };
    if msg.id() != id || msg.message_type() != MessageType::Response {
        return false;
    }
    match msg.queries() {
        [] => msg.response_code() != ResponseCode::NoError,
        [q] => {
            q.name() == question.name()
                && q.query_type() == question.query_type()
                && q.query_class() == question.query_class()
        }
        _ => false,
    }
}

/// Encodes `msg`, or if it exceeds `limit`, the largest prefix of its answers that
/// fits, with TC set and authority/additional dropped. Keeping some answers (as
/// CoreDNS does) matters for resolvers that never retry over TCP, e.g. older musl.
fn encode_limited(msg: &Message, limit: usize) -> Result<Vec<u8>, ProtoError> {
    if let Ok(full) = msg.to_vec() {
        if full.len() <= limit {
            return Ok(full);
        }
    }
    let mut base = msg.clone();
    base.set_truncated(true);
    base.take_name_servers();
    base.take_additionals();
    let answers = base.take_answers();
    let with = |n: usize| -> Result<Option<Vec<u8>>, ProtoError> {
        let mut m = base.clone();
        m.add_answers(answers.iter().take(n).cloned());
        let bytes = m.to_vec()?;
        Ok((bytes.len() <= limit).then_some(bytes))
    };
    let mut best = with(0)?.ok_or_else(|| ProtoError::from("question alone exceeds size limit"))?;
    // Largest n that fits: lo always fits, hi never does.
    let (mut lo, mut hi) = (0, answers.len() + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match with(mid)? {
            Some(bytes) => {
                lo = mid;
                best = bytes;
            }
            None => hi = mid,
        }
    }
    Ok(best)
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

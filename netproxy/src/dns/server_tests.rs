//! Every socket here is bound to 127.0.0.1 port 0; nothing leaves loopback.

use super::*;
use crate::dns::records::{DnsEndpoint, DnsPort, DnsService};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(3);

fn service(ns: &str, name: &str, ip: [u8; 4]) -> DnsService {
    DnsService {
        namespace: ns.into(),
        name: name.into(),
        cluster_ip: Some(ip.into()),
        external_name: None,
        ports: vec![DnsPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 80,
        }],
        endpoints: Vec::new(),
    }
}

fn big_headless(count: u8) -> DnsService {
    let mut s = service("default", "big", [0, 0, 0, 0]);
    s.cluster_ip = None;
    s.endpoints = (1..=count)
        .map(|i| DnsEndpoint {
            ip: Ipv4Addr::new(10, 9, 0, i),
            hostname: None,
            ready: true,
        })
        .collect();
    s
}

fn test_zone() -> Zone {
    let mut ext = service("default", "ext", [0, 0, 0, 0]);
    ext.cluster_ip = None;
    ext.external_name = Some("external.example.".into());
    Zone::new(
        "cluster.local",
        [service("default", "web", [10, 96, 0, 10]), big_headless(100), ext],
    )
}

struct Running {
    server: Arc<DnsServer>,
    udp: SocketAddr,
    tcp: SocketAddr,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

async fn start(zone: Zone, upstreams: Vec<SocketAddr>, config: ServerConfig) -> Running {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let server = DnsServer::with_config(zone, upstreams, config);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(server.clone().serve(udp, tcp, stop.clone()));
    Running {
        server,
        udp: udp_addr,
        tcp: tcp_addr,
        stop,
        handle,
    }
}

async fn start_default(zone: Zone) -> Running {
    start(zone, Vec::new(), ServerConfig::default()).await
}

fn query(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::new();
    msg.set_id(id).set_recursion_desired(true);
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends raw bytes and waits for the reply carrying `id`, skipping any others
/// (e.g. FORMERRs for garbage sent earlier from the same socket).
async fn udp_exchange(sock: &UdpSocket, to: SocketAddr, bytes: &[u8], id: u16) -> Message {
    sock.send_to(bytes, to).await.unwrap();
    let mut buf = vec![0u8; 65535];
    timeout(WAIT, async {
        loop {
            let (n, _) = sock.recv_from(&mut buf).await.unwrap();
            let msg = Message::from_vec(&buf[..n]).unwrap();
            if msg.id() == id {
                return msg;
            }
        }
    })
    .await
    .expect("udp reply")
}

async fn udp_ask(to: SocketAddr, msg: &Message) -> Message {
    udp_exchange(&client().await, to, &msg.to_vec().unwrap(), msg.id()).await
}

async fn tcp_send(stream: &mut TcpStream, bytes: &[u8]) {
    let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).await.unwrap();
}

async fn tcp_recv(stream: &mut TcpStream) -> Message {
    timeout(WAIT, async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    })
    .await
    .expect("tcp reply")
}

async fn tcp_ask(stream: &mut TcpStream, msg: &Message) -> Message {
    tcp_send(stream, &msg.to_vec().unwrap()).await;
    tcp_recv(stream).await
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect()
}

/// Expects the connection to be closed by the server within WAIT.
async fn assert_closed(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let read = timeout(WAIT, stream.read(&mut byte)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "connection still open: {read:?}");
}

#[derive(Clone, Copy)]
enum Upstream {
    Silent,
    /// Answers with this A record, after first sending a reply with the wrong id.
    Answer(Ipv4Addr),
}

struct FakeUpstream {
    addr: SocketAddr,
    seen: Arc<parking_lot::Mutex<Vec<Message>>>,
    task: JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_upstream(behaviour: Upstream) -> FakeUpstream {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let q = Message::from_vec(&buf[..n]).unwrap();
            log.lock().push(q.clone());
            let Upstream::Answer(ip) = behaviour else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id().wrapping_add(1))
                .set_message_type(MessageType::Response)
                .set_recursion_available(true);
            r.add_queries(q.queries().iter().cloned());
            r.add_answer(Record::from_rdata(q.queries()[0].name().clone(), 60, RData::A(A(ip))));
            sock.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
            r.set_id(q.id());
            sock.send_to(&r.to_vec().unwrap(), peer).await.unwrap();
        }
    });
    FakeUpstream { addr, seen, task }
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        forward_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn udp_a_query_is_answered() {
    let s = start_default(test_zone()).await;
    let m = udp_ask(s.udp, &query(11, "web.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(m.id(), 11);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    let m = udp_ask(s.udp, &query(12, "nope.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    let stats = s.server.stats();
    assert_eq!((stats.queries, stats.nxdomain, stats.errors), (2, 1, 0));
}

#[tokio::test]
async fn tcp_serves_several_queries_per_connection() {
    let s = start_default(test_zone()).await;
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    for id in 1..=3 {
        let m = tcp_ask(&mut stream, &query(id, "web.default.svc.cluster.local.", RecordType::A)).await;
        assert_eq!(m.id(), id);
        assert_eq!(a_records(&m), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    }
    // Pipelined: two frames in one write, answered in order.
    let mut both = Vec::new();
    for id in [21u16, 22] {
        let b = query(id, "web.default.svc.cluster.local.", RecordType::A)
            .to_vec()
            .unwrap();
        both.extend_from_slice(&(b.len() as u16).to_be_bytes());
        both.extend_from_slice(&b);
    }
    stream.write_all(&both).await.unwrap();
    assert_eq!(tcp_recv(&mut stream).await.id(), 21);
    assert_eq!(tcp_recv(&mut stream).await.id(), 22);
}

#[tokio::test]
async fn malformed_packets_do_not_stop_the_server() {
    let s = start_default(test_zone()).await;
    let sock = client().await;
    // Deterministic junk of many lengths, including ones with a parseable header.
    let mut x: u32 = 0x1234_5678;
    for len in [0usize, 1, 5, 11, 12, 13, 40, 300, 1500] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        sock.send_to(&junk, s.udp).await.unwrap();
    }
    // A header claiming 65535 questions with no body: FORMERR, not a big allocation.
    let mut lying = vec![0xAB, 0xCD, 0x01, 0x00, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0];
    let formerr = udp_exchange(&sock, s.udp, &lying, 0xABCD).await;
    assert_eq!(formerr.response_code(), ResponseCode::FormErr);
    assert!(formerr.recursion_desired());
    // A valid query cut off mid-question: header parses, body does not.
    lying = query(0x0102, "web.default.svc.cluster.local.", RecordType::A)
        .to_vec()
        .unwrap();
    lying.truncate(20);
    let formerr = udp_exchange(&sock, s.udp, &lying, 0x0102).await;
    assert_eq!(formerr.response_code(), ResponseCode::FormErr);
    // A response (QR=1) is never answered; the next query still is.
    let mut resp = query(0x0203, "web.default.svc.cluster.local.", RecordType::A);
    resp.set_message_type(MessageType::Response);
    sock.send_to(&resp.to_vec().unwrap(), s.udp).await.unwrap();
    let ok = query(0x0304, "web.default.svc.cluster.local.", RecordType::A);
    let m = udp_exchange(&sock, s.udp, &ok.to_vec().unwrap(), 0x0304).await;
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    assert!(s.server.stats().errors >= 3);

    // The same over TCP: a garbage frame, then a valid one on the same connection.
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    tcp_send(&mut stream, &[1, 2, 3]).await;
    let m = tcp_ask(&mut stream, &ok).await;
    assert_eq!(m.id(), 0x0304);
    assert!(!s.handle.is_finished());
}

#[tokio::test]
async fn set_zone_changes_the_answer() {
    let s = start_default(test_zone()).await;
    let q = query(5, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a_records(&udp_ask(s.udp, &q).await), vec![Ipv4Addr::new(10, 96, 0, 10)]);
    s.server
        .set_zone(Zone::new("cluster.local", [service("default", "web", [10, 96, 7, 7])]));
    assert_eq!(a_records(&udp_ask(s.udp, &q).await), vec![Ipv4Addr::new(10, 96, 7, 7)]);
    s.server.set_zone(Zone::new("cluster.local", []));
    assert_eq!(udp_ask(s.udp, &q).await.response_code(), ResponseCode::NXDomain);
}

#[tokio::test]
async fn forwards_to_upstream_with_fresh_id_and_relays_answer() {
    let up = fake_upstream(Upstream::Answer(Ipv4Addr::new(203, 0, 113, 7))).await;
    let s = start(test_zone(), vec![up.addr], short_timeouts()).await;
    let m = udp_ask(s.udp, &query(999, "example.com.", RecordType::A)).await;
    // The wrong-id decoy was ignored; the real answer came back under the client's id.
    assert_eq!(m.id(), 999);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(203, 0, 113, 7)]);
    {
        let seen = up.seen.lock();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].queries()[0].name().to_ascii(), "example.com.");
        assert!(seen[0].recursion_desired());
    }
    // Over TCP the same relay happens.
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    let m = tcp_ask(&mut stream, &query(1000, "example.org.", RecordType::A)).await;
    assert_eq!((m.id(), a_records(&m)), (1000, vec![Ipv4Addr::new(203, 0, 113, 7)]));
    assert_eq!(s.server.stats().forwarded, 2);
}

#[tokio::test]
async fn silent_upstream_gives_servfail_and_next_upstream_is_tried() {
    let silent = fake_upstream(Upstream::Silent).await;
    let s = start(test_zone(), vec![silent.addr], short_timeouts()).await;
    let t0 = std::time::Instant::now();
    let m = udp_ask(s.udp, &query(7, "example.com.", RecordType::A)).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert_eq!(m.id(), 7);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(silent.seen.lock().len(), 1);
    assert_eq!(s.server.stats().errors, 1);

    let good = fake_upstream(Upstream::Answer(Ipv4Addr::new(203, 0, 113, 9))).await;
    let s = start(test_zone(), vec![silent.addr, good.addr], short_timeouts()).await;
    let m = udp_ask(s.udp, &query(8, "example.com.", RecordType::A)).await;
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(203, 0, 113, 9)]);
}

#[tokio::test]
async fn without_upstreams_foreign_names_are_nxdomain() {
    let s = start_default(test_zone()).await;
    let m = udp_ask(s.udp, &query(3, "example.com.", RecordType::A)).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert_eq!(s.server.stats().forwarded, 0);
}

#[tokio::test]
async fn forward_slots_are_bounded() {
    let silent = fake_upstream(Upstream::Silent).await;
    let config = ServerConfig {
        forward_timeout: Duration::from_secs(2),
        max_in_flight_forwards: 1,
        ..ServerConfig::default()
    };
    let s = start(test_zone(), vec![silent.addr], config).await;
    let first = client().await;
    first
        .send_to(&query(1, "example.com.", RecordType::A).to_vec().unwrap(), s.udp)
        .await
        .unwrap();
    // Let the first forward take the only slot.
    timeout(WAIT, async {
        while silent.seen.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let t0 = std::time::Instant::now();
    let m = udp_ask(s.udp, &query(2, "example.net.", RecordType::A)).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "refused at once, not after a timeout"
    );
    // Local answers do not need a slot.
    let m = udp_ask(s.udp, &query(3, "web.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
}

#[tokio::test]
async fn external_name_target_is_resolved_upstream() {
    let up = fake_upstream(Upstream::Answer(Ipv4Addr::new(203, 0, 113, 20))).await;
    let s = start(test_zone(), vec![up.addr], short_timeouts()).await;
    let m = udp_ask(s.udp, &query(40, "ext.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(m.answers().len(), 2, "{m}");
    match m.answers()[0].data() {
        RData::CNAME(CNAME(t)) => assert_eq!(t.to_ascii(), "external.example."),
        other => panic!("{other:?}"),
    }
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(203, 0, 113, 20)]);
    assert_eq!(up.seen.lock()[0].queries()[0].name().to_ascii(), "external.example.");
}

#[tokio::test]
async fn big_answers_truncate_over_udp_and_are_complete_over_tcp() {
    let s = start_default(test_zone()).await;
    let q = query(50, "big.default.svc.cluster.local.", RecordType::A);
    let sock = client().await;
    let bytes = q.to_vec().unwrap();
    sock.send_to(&bytes, s.udp).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = timeout(WAIT, sock.recv_from(&mut buf)).await.unwrap().unwrap();
    assert!(n <= 512, "udp reply of {n} bytes");
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert!(m.truncated());
    assert!(
        !m.answers().is_empty() && m.answers().len() < 100,
        "{}",
        m.answers().len()
    );

    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    let m = tcp_ask(&mut stream, &q).await;
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), 100);

    // A client advertising a large EDNS buffer gets everything over UDP.
    let mut q = query(51, "big.default.svc.cluster.local.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    q.set_edns(edns);
    let m = udp_ask(s.udp, &q).await;
    assert!(!m.truncated());
    assert_eq!(m.answers().len(), 100);
}

#[tokio::test]
async fn tcp_connections_are_limited_and_idle_ones_closed() {
    let config = ServerConfig {
        max_tcp_connections: 1,
        tcp_idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let s = start(test_zone(), Vec::new(), config).await;
    let q = query(60, "web.default.svc.cluster.local.", RecordType::A);
    let mut first = TcpStream::connect(s.tcp).await.unwrap();
    assert_eq!(tcp_ask(&mut first, &q).await.id(), 60);
    let mut second = TcpStream::connect(s.tcp).await.unwrap();
    assert_closed(&mut second).await;
    // The first connection goes idle and is closed, which frees its slot.
    assert_closed(&mut first).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut third = TcpStream::connect(s.tcp).await.unwrap();
    assert_eq!(tcp_ask(&mut third, &q).await.id(), 60);
}

#[tokio::test]
async fn cancelling_stop_ends_serve_and_open_connections() {
    let s = start_default(test_zone()).await;
    let mut stream = TcpStream::connect(s.tcp).await.unwrap();
    let q = query(70, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(tcp_ask(&mut stream, &q).await.id(), 70);
    s.stop.cancel();
    timeout(WAIT, s.handle).await.expect("serve returned").unwrap();
    assert_closed(&mut stream).await;
}

#[test]
fn resolv_conf_parsing() {
    let text = "\
# generated
search example.internal
nameserver 10.96.0.10
nameserver 127.0.0.53  # systemd-resolved
;nameserver 192.0.2.1
nameserver fe80::1%eth0
nameserver 0.0.0.0
nameserver 2001:db8::53
nameserver 127.0.0.53
nameserver 192.0.2.2
nameserver 192.0.2.3
";
    let got = upstreams_from_resolv_conf(text, &["10.96.0.10".parse().unwrap()]);
    let want: Vec<SocketAddr> = vec![
        "127.0.0.53:53".parse().unwrap(),
        "[2001:db8::53]:53".parse().unwrap(),
        "192.0.2.2:53".parse().unwrap(),
    ];
    assert_eq!(got, want);
    assert!(upstreams_from_resolv_conf("", &[]).is_empty());
}

#[test]
fn encode_limited_keeps_what_fits() {
    let zone = test_zone();
    let Answer::Reply(m) = zone.answer(&query(1, "big.default.svc.cluster.local.", RecordType::A)) else {
        panic!("expected a reply");
    };
    let full = m.to_vec().unwrap();
    assert!(full.len() > 512);
    for limit in [512usize, 700, 1000] {
        let bytes = encode_limited(&m, limit).unwrap();
        assert!(bytes.len() <= limit);
        let t = Message::from_vec(&bytes).unwrap();
        assert!(t.truncated());
        // One more answer would not have fitted (each A here is 16 bytes compressed).
        assert!(bytes.len() + 16 > limit, "{limit}: {}", bytes.len());
    }
    assert_eq!(encode_limited(&m, 65535).unwrap(), full);
}

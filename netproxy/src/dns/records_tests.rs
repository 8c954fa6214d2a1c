use super::*;
use std::collections::BTreeSet;
use std::time::Instant;

fn port(name: &str, protocol: &str, port: u16) -> DnsPort {
    DnsPort {
        name: name.into(),
        protocol: protocol.into(),
        port,
    }
}

fn ep(ip: [u8; 4], hostname: Option<&str>, ready: bool) -> DnsEndpoint {
    DnsEndpoint {
        ip: ip.into(),
        hostname: hostname.map(Into::into),
        ready,
    }
}

fn svc(ns: &str, name: &str, ip: Option<[u8; 4]>) -> DnsService {
    DnsService {
        namespace: ns.into(),
        name: name.into(),
        cluster_ip: ip.map(Into::into),
        external_name: None,
        ports: vec![port("http", "TCP", 80), port("", "TCP", 8080)],
        endpoints: Vec::new(),
    }
}

fn zone() -> Zone {
    let mut headless = svc("default", "db", None);
    headless.ports = vec![port("pg", "TCP", 5432)];
    headless.endpoints = vec![
        ep([10, 1, 0, 1], Some("db-0"), true),
        ep([10, 1, 0, 2], None, true),
        ep([10, 1, 0, 3], Some("db-2"), false),
        // A second slice listing the same address must not double the answer.
        ep([10, 1, 0, 1], Some("db-0"), true),
    ];
    let mut empty = svc("default", "empty", None);
    empty.endpoints = vec![ep([10, 1, 0, 9], None, false)];
    let mut ext = svc("default", "ext", None);
    ext.external_name = Some("Example.COM".into());
    let mut alias = svc("other", "alias", None);
    alias.external_name = Some("web.default.svc.cluster.local".into());
    Zone::new(
        "Cluster.Local.",
        [
            svc("default", "web", Some([10, 96, 0, 10])),
            svc("kube-system", "kube-dns", Some([10, 96, 0, 53])),
            headless,
            empty,
            ext,
            alias,
        ],
    )
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::new();
    msg.set_id(4321).set_recursion_desired(true);
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg
}

fn reply(zone: &Zone, msg: &Message) -> Message {
    match zone.answer(msg) {
        Answer::Reply(m) => m,
        Answer::Forward => panic!("unexpected Forward for {:?}", msg.queries()),
    }
}

fn ask(name: &str, qtype: RecordType) -> Message {
    reply(&zone(), &query(name, qtype))
}

fn a_set(records: &[Record]) -> BTreeSet<Ipv4Addr> {
    records
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect()
}

fn srvs(records: &[Record]) -> Vec<(u16, u16, u16, String)> {
    let mut v: Vec<_> = records
        .iter()
        .filter_map(|r| match r.data() {
            RData::SRV(s) => Some((s.priority(), s.weight(), s.port(), s.target().to_ascii())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn assert_soa_authority(m: &Message) {
    assert_eq!(m.name_servers().len(), 1, "{m}");
    let soa = &m.name_servers()[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert_eq!(soa.name().to_ascii(), "cluster.local.");
    assert_eq!(soa.ttl(), TTL);
}

fn assert_nodata(m: &Message) {
    assert_eq!(m.response_code(), ResponseCode::NoError, "{m}");
    assert!(m.answers().is_empty(), "{m}");
    assert!(m.authoritative());
    assert_soa_authority(m);
}

fn assert_nxdomain(m: &Message) {
    assert_eq!(m.response_code(), ResponseCode::NXDomain, "{m}");
    assert!(m.answers().is_empty(), "{m}");
    assert!(m.authoritative());
    assert_soa_authority(m);
}

#[test]
fn cluster_ip_a_record_with_header_flags() {
    let m = ask("web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.id(), 4321);
    assert_eq!(m.message_type(), MessageType::Response);
    assert!(m.recursion_desired());
    assert!(m.recursion_available());
    assert!(m.authoritative());
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(m.queries().len(), 1);
    assert_eq!(m.answers().len(), 1);
    assert_eq!(m.answers()[0].ttl(), 5);
    assert_eq!(a_set(m.answers()), BTreeSet::from([Ipv4Addr::new(10, 96, 0, 10)]));
}

#[test]
fn rd_flag_is_copied_not_forced() {
    let mut q = query("web.default.svc.cluster.local.", RecordType::A);
    q.set_recursion_desired(false);
    let m = reply(&zone(), &q);
    assert!(!m.recursion_desired());
    assert!(m.recursion_available());
}

#[test]
fn names_are_case_insensitive_and_owner_keeps_the_asked_case() {
    let m = ask("WEB.Default.SVC.cluster.LOCAL.", RecordType::A);
    assert_eq!(a_set(m.answers()), BTreeSet::from([Ipv4Addr::new(10, 96, 0, 10)]));
    assert_eq!(m.answers()[0].name().to_ascii(), "WEB.Default.SVC.cluster.LOCAL.");
}

#[test]
fn headless_returns_each_ready_endpoint_once() {
    let m = ask("db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.answers().len(), 2, "{m}");
    assert_eq!(
        a_set(m.answers()),
        BTreeSet::from([Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 2)])
    );
}

#[test]
fn headless_answers_rotate() {
    let z = zone();
    let q = query("db.default.svc.cluster.local.", RecordType::A);
    let first = |m: &Message| match m.answers()[0].data() {
        RData::A(A(ip)) => *ip,
        other => panic!("{other:?}"),
    };
    let a = first(&reply(&z, &q));
    let b = first(&reply(&z, &q));
    assert_ne!(a, b);
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    assert_nxdomain(&ask("empty.default.svc.cluster.local.", RecordType::A));
}

#[test]
fn external_name_is_a_cname() {
    let m = ask("ext.default.svc.cluster.local.", RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(m.answers().len(), 1);
    match m.answers()[0].data() {
        RData::CNAME(CNAME(t)) => assert_eq!(t.to_ascii().to_lowercase(), "example.com."),
        other => panic!("{other:?}"),
    }
    let chase = zone().upstream_chase(&m).expect("external target is chased");
    assert_eq!(chase.name().to_ascii().to_lowercase(), "example.com.");
    assert_eq!(chase.query_type(), RecordType::A);
    // Asking for the CNAME itself needs nothing more.
    let m = ask("ext.default.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(m.answers().len(), 1);
    assert!(zone().upstream_chase(&m).is_none());
}

#[test]
fn in_zone_cname_is_followed() {
    let m = ask("alias.other.svc.cluster.local.", RecordType::A);
    assert_eq!(m.answers().len(), 2, "{m}");
    assert_eq!(m.answers()[0].record_type(), RecordType::CNAME);
    assert_eq!(a_set(m.answers()), BTreeSet::from([Ipv4Addr::new(10, 96, 0, 10)]));
    assert_eq!(m.answers()[1].name().to_ascii(), "web.default.svc.cluster.local.");
    assert!(zone().upstream_chase(&m).is_none());
}

#[test]
fn cname_loop_is_servfail() {
    let mut a = svc("ns", "a", None);
    a.external_name = Some("b.ns.svc.cluster.local".into());
    let mut b = svc("ns", "b", None);
    b.external_name = Some("a.ns.svc.cluster.local".into());
    let z = Zone::new("cluster.local", [a, b]);
    let m = reply(&z, &query("a.ns.svc.cluster.local.", RecordType::A));
    assert_eq!(m.response_code(), ResponseCode::ServFail);
}

#[test]
fn endpoint_by_hostname_and_by_dashed_ip() {
    let m = ask("db-0.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a_set(m.answers()), BTreeSet::from([Ipv4Addr::new(10, 1, 0, 1)]));
    let m = ask("10-1-0-2.db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a_set(m.answers()), BTreeSet::from([Ipv4Addr::new(10, 1, 0, 2)]));
    // Not-ready endpoints have no name.
    assert_nxdomain(&ask("db-2.db.default.svc.cluster.local.", RecordType::A));
    // An endpoint with a hostname is known by that name only, as in CoreDNS.
    assert_nxdomain(&ask("10-1-0-1.db.default.svc.cluster.local.", RecordType::A));
    // Endpoint names exist only for headless services.
    assert_nxdomain(&ask("10-96-0-10.web.default.svc.cluster.local.", RecordType::A));
    assert_nodata(&ask("db-0.db.default.svc.cluster.local.", RecordType::AAAA));
}

#[test]
fn srv_for_cluster_ip_service() {
    let m = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        srvs(m.answers()),
        vec![(0, 100, 80, "web.default.svc.cluster.local.".to_string())]
    );
    assert_eq!(m.additionals().len(), 1);
    assert_eq!(m.additionals()[0].name().to_ascii(), "web.default.svc.cluster.local.");
    assert_eq!(a_set(m.additionals()), BTreeSet::from([Ipv4Addr::new(10, 96, 0, 10)]));
}

#[test]
fn srv_protocol_and_port_name_must_match() {
    assert_nxdomain(&ask("_http._udp.web.default.svc.cluster.local.", RecordType::SRV));
    assert_nxdomain(&ask("_https._tcp.web.default.svc.cluster.local.", RecordType::SRV));
    // The unnamed port 8080 cannot be named.
    assert_nxdomain(&ask("_._tcp.web.default.svc.cluster.local.", RecordType::SRV));
    // Without the underscores it is not an SRV name.
    assert_nxdomain(&ask("http.tcp.web.default.svc.cluster.local.", RecordType::SRV));
    // The SRV name exists, so A on it is NODATA.
    assert_nodata(&ask("_http._tcp.web.default.svc.cluster.local.", RecordType::A));
}

#[test]
fn bare_srv_lists_all_ports() {
    let m = ask("web.default.svc.cluster.local.", RecordType::SRV);
    let ports: Vec<u16> = srvs(m.answers()).iter().map(|s| s.2).collect();
    assert_eq!(ports, vec![80, 8080]);
    assert_eq!(m.additionals().len(), 1);
}

#[test]
fn srv_for_headless_service_per_ready_endpoint() {
    let m = ask("_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        srvs(m.answers()),
        vec![
            (0, 100, 5432, "10-1-0-2.db.default.svc.cluster.local.".to_string()),
            (0, 100, 5432, "db-0.db.default.svc.cluster.local.".to_string()),
        ]
    );
    let mut adds: Vec<(String, Ipv4Addr)> = m
        .additionals()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(A(ip)) => Some((r.name().to_ascii(), *ip)),
            _ => None,
        })
        .collect();
    adds.sort();
    assert_eq!(
        adds,
        vec![
            (
                "10-1-0-2.db.default.svc.cluster.local.".to_string(),
                Ipv4Addr::new(10, 1, 0, 2)
            ),
            (
                "db-0.db.default.svc.cluster.local.".to_string(),
                Ipv4Addr::new(10, 1, 0, 1)
            ),
        ]
    );
}

#[test]
fn other_types_on_existing_names_are_nodata() {
    assert_nodata(&ask("web.default.svc.cluster.local.", RecordType::AAAA));
    assert_nodata(&ask("web.default.svc.cluster.local.", RecordType::TXT));
    assert_nodata(&ask("db.default.svc.cluster.local.", RecordType::AAAA));
    assert_nodata(&ask("default.svc.cluster.local.", RecordType::A));
    assert_nodata(&ask("svc.cluster.local.", RecordType::A));
    assert_nodata(&ask("cluster.local.", RecordType::A));
}

#[test]
fn missing_names_are_nxdomain() {
    assert_nxdomain(&ask("nope.default.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("web.nope.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("nope.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("web.default.pod.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("a.b.c.web.default.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask("x.cluster.local.", RecordType::AAAA));
}

#[test]
fn apex_soa_and_schema_version() {
    let m = ask("cluster.local.", RecordType::SOA);
    assert_eq!(m.answers().len(), 1);
    match m.answers()[0].data() {
        RData::SOA(soa) => {
            assert_eq!(soa.mname().to_ascii(), "ns.dns.cluster.local.");
            assert_eq!(soa.rname().to_ascii(), "hostmaster.cluster.local.");
            assert_eq!(soa.minimum(), TTL);
        }
        other => panic!("{other:?}"),
    }
    let m = ask("dns-version.cluster.local.", RecordType::TXT);
    match m.answers()[0].data() {
        RData::TXT(txt) => assert_eq!(&*txt.txt_data()[0], SCHEMA_VERSION.as_bytes()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ptr_for_cluster_ip_and_headless_endpoint() {
    let m = ask("10.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert!(m.authoritative());
    match m.answers()[0].data() {
        RData::PTR(PTR(t)) => assert_eq!(t.to_ascii(), "web.default.svc.cluster.local."),
        other => panic!("{other:?}"),
    }
    let m = ask("2.0.1.10.IN-ADDR.ARPA.", RecordType::PTR);
    match m.answers()[0].data() {
        RData::PTR(PTR(t)) => assert_eq!(t.to_ascii(), "10-1-0-2.db.default.svc.cluster.local."),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_reverse_and_foreign_names_are_forwarded() {
    let z = zone();
    for (name, qtype) in [
        ("8.8.8.8.in-addr.arpa.", RecordType::PTR),
        ("96.10.in-addr.arpa.", RecordType::PTR),
        ("300.0.96.10.in-addr.arpa.", RecordType::PTR),
        ("example.com.", RecordType::A),
        ("cluster.local.example.com.", RecordType::A),
        ("local.", RecordType::A),
        (".", RecordType::NS),
    ] {
        assert!(
            matches!(z.answer(&query(name, qtype)), Answer::Forward),
            "{name} should be forwarded"
        );
    }
}

#[test]
fn question_count_must_be_one() {
    let z = zone();
    let mut none = Message::new();
    none.set_id(7);
    let m = reply(&z, &none);
    assert_eq!(m.response_code(), ResponseCode::FormErr);
    assert_eq!(m.id(), 7);

    let mut two = query("web.default.svc.cluster.local.", RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii("db.default.svc.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let m = reply(&z, &two);
    assert_eq!(m.response_code(), ResponseCode::FormErr);
    assert!(m.answers().is_empty());
}

#[test]
fn other_opcodes_are_notimp() {
    let mut q = query("web.default.svc.cluster.local.", RecordType::A);
    q.set_op_code(OpCode::Update);
    let m = reply(&zone(), &q);
    assert_eq!(m.response_code(), ResponseCode::NotImp);
    assert_eq!(m.op_code(), OpCode::Update);
    assert_eq!(m.id(), 4321);
}

#[test]
fn edns_is_answered_and_unknown_versions_rejected() {
    let mut q = query("web.default.svc.cluster.local.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    q.set_edns(edns.clone());
    let m = reply(&zone(), &q);
    assert_eq!(m.extensions().as_ref().map(|e| e.max_payload()), Some(EDNS_PAYLOAD));
    assert_eq!(m.answers().len(), 1);

    edns.set_version(1);
    q.set_edns(edns);
    let bytes = reply(&zone(), &q).to_vec().unwrap();
    let m = Message::from_vec(&bytes).unwrap();
    // BADVERS shares code 16 with BADSIG, which is what a decoder names it.
    assert_eq!(u16::from(m.response_code()), u16::from(ResponseCode::BADVERS));
    assert_eq!(u16::from(ResponseCode::BADVERS), 16);
}

#[test]
fn zone_transfer_and_foreign_class_are_refused() {
    let m = ask("cluster.local.", RecordType::AXFR);
    assert_eq!(m.response_code(), ResponseCode::Refused);
    let mut q = query("web.default.svc.cluster.local.", RecordType::A);
    q.queries_mut()[0].set_query_class(DNSClass::CH);
    assert_eq!(reply(&zone(), &q).response_code(), ResponseCode::Refused);
}

#[test]
fn error_helpers_keep_id_and_question() {
    let q = query("example.com.", RecordType::A);
    let nx = nxdomain_for(&q);
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert_eq!(nx.id(), 4321);
    assert_eq!(nx.queries(), q.queries());
    let sf = servfail_for(&q);
    assert_eq!(sf.response_code(), ResponseCode::ServFail);
    assert!(sf.recursion_available());
}

#[test]
fn invalid_input_is_skipped_not_fatal() {
    let long = "x".repeat(64);
    let mut bad_ext = svc("ns", "bad", None);
    bad_ext.external_name = Some("a..b".into());
    let z = Zone::new(
        "cluster.local",
        [
            svc("ns", &long, Some([10, 0, 0, 1])),
            bad_ext,
            svc("ns", "ok", Some([10, 0, 0, 2])),
        ],
    );
    assert_eq!(z.service_count(), 1);
    assert!(Zone::try_new("", []).is_err());
    assert!(Zone::try_new("a..b", []).is_err());
    assert_eq!(Zone::new("a..b", []).domain(), "cluster.local");
}

#[test]
fn other_domains_work() {
    let z = Zone::new("k8s.example.internal", [svc("a", "b", Some([10, 0, 0, 7]))]);
    let m = reply(&z, &query("b.a.svc.k8s.example.internal.", RecordType::A));
    assert_eq!(a_set(m.answers()), BTreeSet::from([Ipv4Addr::new(10, 0, 0, 7)]));
    assert!(matches!(
        z.answer(&query("b.a.svc.cluster.local.", RecordType::A)),
        Answer::Forward
    ));
}

/// Not an assertion on speed: prints the figure the brief asks for.
#[test]
fn timing_10k_services_100k_queries() {
    let services: Vec<DnsService> = (0..10_000u32)
        .map(|i| {
            let mut s = svc(
                &format!("ns-{}", i % 100),
                &format!("svc-{i}"),
                Some([10, 96, (i >> 8) as u8, i as u8]),
            );
            if i % 10 == 0 {
                s.cluster_ip = None;
                s.endpoints = (0..3u8).map(|k| ep([10, 2, (i % 250) as u8, k], None, true)).collect();
            }
            s
        })
        .collect();
    let t0 = Instant::now();
    let z = Zone::new("cluster.local", services);
    let build = t0.elapsed();
    assert_eq!(z.service_count(), 10_000);

    let queries: Vec<Message> = (0..1000u32)
        .map(|i| {
            let i = i * 10 + (i % 10);
            query(&format!("svc-{i}.ns-{}.svc.cluster.local.", i % 100), RecordType::A)
        })
        .collect();
    let t1 = Instant::now();
    let mut answered = 0usize;
    for n in 0..100_000 {
        if let Answer::Reply(m) = z.answer(&queries[n % queries.len()]) {
            answered += m.answers().len();
        }
    }
    let elapsed = t1.elapsed();
    assert!(answered >= 100_000);
    println!(
        "zone build (10k services): {build:?}; 100k A answers in {elapsed:?} = {:.0} q/s",
        100_000.0 / elapsed.as_secs_f64()
    );
}

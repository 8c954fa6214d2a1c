use super::*;
use crate::model::{DnsRedirect, Endpoint, EndpointSlice, SlicePort, TargetPort};
use std::io::Write as _;
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn model() -> Model {
    Model::new("n1", (ip("10.244.0.0"), 16))
}

fn port(name: &str, protocol: Protocol, port: u16, node_port: Option<u16>) -> ServicePort {
    ServicePort {
        name: name.into(),
        protocol,
        port,
        target_port: TargetPort::Number(port),
        node_port,
    }
}

fn svc(ns: &str, name: &str, cluster_ip: &str, ports: Vec<ServicePort>) -> Service {
    let ips = if cluster_ip.is_empty() {
        vec![]
    } else {
        vec![ip(cluster_ip)]
    };
    Service::cluster_ip(ns, name, ips, ports)
}

/// One slice carrying every port name of `ports` at `target`.
fn slice_for(s: &Service, target: u16, eps: &[(&str, &str)]) -> EndpointSlice {
    EndpointSlice {
        namespace: s.namespace.clone(),
        name: format!("{}-x", s.name),
        service: s.name.clone(),
        ports: s
            .ports
            .iter()
            .map(|p| SlicePort {
                name: p.name.clone(),
                protocol: p.protocol,
                port: target,
            })
            .collect(),
        endpoints: eps
            .iter()
            .map(|(a, node)| Endpoint::ready(ip(a), Some((*node).into())))
            .collect(),
    }
}

/// Body lines of a `chain`, `set` or `map` block, trimmed.
fn block<'a>(script: &'a str, header: &str) -> Vec<&'a str> {
    let open = format!("\t{header} {{");
    let mut lines = script.lines().skip_while(|l| *l != open);
    assert!(lines.next().is_some(), "no block {header:?} in:\n{script}");
    lines.take_while(|l| *l != "\t}").map(str::trim).collect()
}

/// Chain names whose name starts with `prefix`, in script order.
fn chains_with_prefix<'a>(script: &'a str, prefix: &str) -> Vec<&'a str> {
    script
        .lines()
        .filter_map(|l| l.strip_prefix("\tchain "))
        .filter_map(|l| l.strip_suffix(" {"))
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn web_model() -> (Model, Service) {
    let mut m = model();
    let s = svc(
        "default",
        "web",
        "10.96.0.20",
        vec![port("http", Protocol::Tcp, 80, None)],
    );
    m.upsert_slice(slice_for(
        &s,
        8080,
        &[("10.244.1.7", "n1"), ("10.244.2.5", "n2"), ("10.244.1.5", "n1")],
    ));
    m.upsert_service(s.clone());
    (m, s)
}

#[test]
fn cluster_ip_with_three_endpoints() {
    let (m, _) = web_model();
    let r = render(&m);
    let svc_chains = chains_with_prefix(&r.script, "svc-");
    assert_eq!(svc_chains.len(), 1);
    let svc_chain = svc_chains[0];
    assert!(svc_chain.ends_with("-default_web_tcp_http"), "{svc_chain}");

    let map = block(&r.script, "map service-ips");
    assert!(
        map.contains(&format!("10.96.0.20 . tcp . 80 : goto {svc_chain}").as_str()),
        "{map:?}"
    );
    assert_eq!(
        block(&r.script, "set cluster-ips"),
        vec!["type ipv4_addr", "elements = {", "10.96.0.20", "}"]
    );

    let eps = chains_with_prefix(&r.script, "ep-");
    assert_eq!(eps.len(), 3);
    let body = block(&r.script, &format!("chain {svc_chain}"));
    assert_eq!(
        body,
        vec![
            "ip saddr != 10.244.0.0/16 jump mark-for-masquerade".to_string(),
            format!(
                "numgen random mod 3 vmap {{ 0 : goto {}, 1 : goto {}, 2 : goto {} }}",
                eps[0], eps[1], eps[2]
            ),
        ]
    );
    // Endpoints are balanced in address order: .1.5, .1.7, .2.5.
    let ep0 = block(&r.script, &format!("chain {}", eps[0]));
    assert_eq!(
        ep0,
        vec![
            "ip saddr 10.244.1.5 jump mark-for-masquerade",
            "meta l4proto tcp dnat to 10.244.1.5:8080"
        ]
    );
    assert!(eps[2].ends_with("__10.244.2.5_8080"), "{}", eps[2]);
    assert_eq!((r.services, r.endpoints, r.chains), (1, 3, FIXED_CHAINS + 4));
    assert!(block(&r.script, "map no-endpoint-services")
        .iter()
        .all(|l| !l.contains("10.96.0.20")));
}

#[test]
fn single_endpoint_uses_plain_goto_and_udp_dnat() {
    let mut m = model();
    let s = svc(
        "kube-system",
        "dns",
        "10.96.0.11",
        vec![port("dns", Protocol::Udp, 53, None)],
    );
    m.upsert_slice(slice_for(&s, 5353, &[("10.244.1.2", "n1")]));
    m.upsert_service(s);
    let r = render(&m);
    let ep = chains_with_prefix(&r.script, "ep-")[0];
    let svc_chain = chains_with_prefix(&r.script, "svc-")[0];
    assert_eq!(block(&r.script, &format!("chain {svc_chain}"))[1], format!("goto {ep}"));
    assert!(!r.script.contains("numgen"));
    assert!(block(&r.script, &format!("chain {ep}")).contains(&"meta l4proto udp dnat to 10.244.1.2:5353"));
    assert!(block(&r.script, "map service-ips").contains(&format!("10.96.0.11 . udp . 53 : goto {svc_chain}").as_str()));
}

#[test]
fn no_endpoints_goes_to_reject() {
    let mut m = model();
    m.upsert_service(svc(
        "default",
        "empty",
        "10.96.0.21",
        vec![port("", Protocol::Tcp, 80, None)],
    ));
    let r = render(&m);
    assert_eq!(
        block(&r.script, "map no-endpoint-services"),
        vec![
            "type ipv4_addr . inet_proto . inet_service : verdict",
            "elements = {",
            "10.96.0.21 . tcp . 80 : goto reject-chain",
            "}"
        ]
    );
    assert_eq!(
        block(&r.script, "map service-ips"),
        vec!["type ipv4_addr . inet_proto . inet_service : verdict"]
    );
    assert!(chains_with_prefix(&r.script, "svc-").is_empty());
    assert_eq!(
        block(&r.script, "chain reject-chain"),
        vec!["meta l4proto tcp reject with tcp reset", "reject"]
    );
    assert_eq!((r.services, r.endpoints, r.chains), (1, 0, FIXED_CHAINS));
}

#[test]
fn fixed_chains_and_hooks() {
    let r = render(&model());
    assert!(r
        .script
        .starts_with("add table ip skiff\ndelete table ip skiff\ntable ip skiff {\n"));
    assert!(r.script.ends_with("\n}\n"));
    assert_eq!(
        block(&r.script, "chain nat-output"),
        vec!["type nat hook output priority -100; policy accept;", "jump services"]
    );
    assert_eq!(
        block(&r.script, "chain filter-output"),
        vec![
            "type filter hook output priority -90; policy accept;",
            "ct state new jump endpoints-check"
        ]
    );
    assert_eq!(
        block(&r.script, "chain filter-input")[1],
        "ct state new ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports"
    );
    assert_eq!(
        block(&r.script, "chain endpoints-check"),
        vec![
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
            "ip daddr @cluster-ips reject"
        ]
    );
    assert_eq!(
        block(&r.script, "chain services"),
        vec![
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @service-nodeports"
        ]
    );
    assert_eq!(
        block(&r.script, "chain masquerading"),
        vec![
            "meta mark & 0x4000 == 0 return",
            "meta mark set meta mark xor 0x4000",
            "masquerade fully-random"
        ]
    );
    assert_eq!(r.script.matches("\tchain ").count(), FIXED_CHAINS);
    assert_eq!(teardown_script(), "add table ip skiff\ndelete table ip skiff\n");
}

fn nodeport_model(external_local: bool, eps: &[(&str, &str)]) -> Model {
    let mut m = model();
    let mut s = svc(
        "shop",
        "front",
        "10.96.0.40",
        vec![port("web", Protocol::Tcp, 80, Some(30080))],
    );
    s.node_ports = true;
    s.external_local = external_local;
    m.upsert_slice(slice_for(&s, 8080, eps));
    m.upsert_service(s);
    m
}

#[test]
fn node_port_goes_to_external_chain_with_masquerade() {
    let r = render(&nodeport_model(false, &[("10.244.1.5", "n1"), ("10.244.2.5", "n2")]));
    let ext = chains_with_prefix(&r.script, "ext-");
    assert_eq!(ext.len(), 1);
    assert!(block(&r.script, "map service-nodeports").contains(&format!("tcp . 30080 : goto {}", ext[0]).as_str()));
    let body = block(&r.script, &format!("chain {}", ext[0]));
    assert_eq!(body[0], "jump mark-for-masquerade");
    assert!(body[1].starts_with("numgen random mod 2 vmap"), "{body:?}");
    // The cluster IP path exists too, with its own entry chain.
    assert_eq!(chains_with_prefix(&r.script, "svc-").len(), 1);
    assert_eq!(r.endpoints, 2, "endpoint chains shared by both paths");
}

#[test]
fn node_port_ignored_unless_service_type_has_node_ports() {
    let mut m = nodeport_model(false, &[("10.244.1.5", "n1")]);
    for s in m.services.values_mut() {
        s.node_ports = false;
    }
    let r = render(&m);
    assert!(chains_with_prefix(&r.script, "ext-").is_empty());
    assert!(!r.script.contains("30080"));
}

#[test]
fn external_local_uses_local_endpoints_without_masquerade() {
    let r = render(&nodeport_model(true, &[("10.244.1.5", "n1"), ("10.244.2.5", "n2")]));
    let ext = chains_with_prefix(&r.script, "ext-")[0];
    let body = block(&r.script, &format!("chain {ext}"));
    assert_eq!(body.len(), 1, "{body:?}");
    assert!(
        body[0].starts_with("goto ep-") && body[0].ends_with("__10.244.1.5_8080"),
        "{body:?}"
    );
    // The cluster IP path still balances over both.
    let svc_chain = chains_with_prefix(&r.script, "svc-")[0];
    assert!(block(&r.script, &format!("chain {svc_chain}"))[1].starts_with("numgen random mod 2"));

    let none = render(&nodeport_model(true, &[("10.244.2.5", "n2")]));
    assert!(chains_with_prefix(&none.script, "ext-").is_empty());
    assert!(block(&none.script, "map no-endpoint-nodeports").contains(&"tcp . 30080 : goto reject-chain"));
    assert!(block(&none.script, "map service-ips")
        .iter()
        .any(|l| l.starts_with("10.96.0.40 . tcp . 80 : goto svc-")));
}

#[test]
fn node_port_without_endpoints_is_rejected() {
    let r = render(&nodeport_model(false, &[]));
    assert!(block(&r.script, "map no-endpoint-nodeports").contains(&"tcp . 30080 : goto reject-chain"));
    assert!(block(&r.script, "map no-endpoint-services").contains(&"10.96.0.40 . tcp . 80 : goto reject-chain"));
    assert_eq!(block(&r.script, "map service-nodeports").len(), 1);
}

#[test]
fn session_affinity_sets_and_rules() {
    let (mut m, mut s) = web_model();
    s.affinity_timeout = Some(600);
    m.upsert_service(s);
    let r = render(&m);
    let sets: Vec<&str> = r
        .script
        .lines()
        .filter_map(|l| l.strip_prefix("\tset affinity-"))
        .collect();
    assert_eq!(sets.len(), 3);
    let eps = chains_with_prefix(&r.script, "ep-");
    for ep in &eps {
        // The set shares the endpoint chain's hash and suffix.
        let set = format!("affinity-{}", &ep[3..]);
        assert_eq!(
            block(&r.script, &format!("set {set}")),
            vec!["type ipv4_addr", "flags dynamic,timeout", "timeout 600s"]
        );
        let body = block(&r.script, &format!("chain {ep}"));
        assert_eq!(body[1], format!("update @{set} {{ ip saddr }}"));
        assert!(body[2].contains("dnat to"), "update must precede dnat: {body:?}");
    }
    let svc_chain = chains_with_prefix(&r.script, "svc-")[0];
    let body = block(&r.script, &format!("chain {svc_chain}"));
    assert_eq!(body.len(), 5);
    for (i, ep) in eps.iter().enumerate() {
        assert_eq!(body[1 + i], format!("ip saddr @affinity-{} goto {ep}", &ep[3..]));
    }
    assert!(body[4].starts_with("numgen random mod 3"));
}

#[test]
fn internal_local_uses_only_local_endpoints() {
    let (mut m, mut s) = web_model();
    s.internal_local = true;
    m.upsert_service(s.clone());
    let r = render(&m);
    let svc_chain = chains_with_prefix(&r.script, "svc-")[0];
    let body = block(&r.script, &format!("chain {svc_chain}"));
    assert!(body[1].starts_with("numgen random mod 2"), "{body:?}");
    assert!(!body[1].contains("10.244.2.5"));
    assert_eq!(r.endpoints, 2);

    m.node_name = "n9".into();
    let r = render(&m);
    assert!(block(&r.script, "map no-endpoint-services").contains(&"10.96.0.20 . tcp . 80 : goto reject-chain"));
    assert!(chains_with_prefix(&r.script, "svc-").is_empty());
    assert_eq!(r.endpoints, 0);
}

#[test]
fn headless_and_unsupported_render_nothing() {
    let mut m = model();
    let h = svc("default", "headless", "", vec![port("http", Protocol::Tcp, 80, None)]);
    m.upsert_slice(slice_for(&h, 8080, &[("10.244.1.5", "n1")]));
    m.upsert_service(h);
    let r = render(&m);
    assert_eq!(r, render(&model()));
    assert_eq!((r.services, r.endpoints, r.chains), (0, 0, FIXED_CHAINS));
    assert_eq!(block(&r.script, "set cluster-ips"), vec!["type ipv4_addr"]);
}

#[test]
fn deterministic_regardless_of_insertion_order() {
    let build = |reverse: bool| {
        let mut m = model();
        let mut items = Vec::new();
        for i in 0..20u8 {
            let s = svc(
                &format!("ns{}", i % 3),
                &format!("s{i}"),
                &format!("10.96.1.{i}"),
                vec![port("a", Protocol::Tcp, 80, None), port("b", Protocol::Udp, 53, None)],
            );
            let eps: Vec<(String, &str)> = (0..4).map(|e| (format!("10.244.{i}.{e}"), "n1")).collect();
            let eps: Vec<(&str, &str)> = eps.iter().map(|(a, n)| (a.as_str(), *n)).collect();
            items.push((s.clone(), slice_for(&s, 8000, &eps)));
        }
        if reverse {
            items.reverse();
        }
        for (s, sl) in items {
            m.upsert_slice(sl);
            m.upsert_service(s);
        }
        render(&m)
    };
    let a = build(false);
    assert_eq!(a, build(true));
    assert_eq!(a, build(false));
    assert_eq!((a.services, a.endpoints), (20, 160));
}

#[test]
fn dns_redirect_comes_first_and_owns_port_53() {
    let mut m = model();
    m.dns = Some(DnsRedirect::new(SocketAddrV4::new(ip("10.0.0.1"), 53)));
    // kube-dns Service without endpoints: the redirect must not be undone by
    // a reject element for the same VIP and port.
    m.upsert_service(svc(
        "kube-system",
        "kube-dns",
        "10.96.0.10",
        vec![
            port("dns", Protocol::Udp, 53, None),
            port("dns-tcp", Protocol::Tcp, 53, None),
            port("metrics", Protocol::Tcp, 9153, None),
        ],
    ));
    let r = render(&m);
    let body = block(&r.script, "chain services");
    assert_eq!(body[0], "ip daddr 10.96.0.10 udp dport 53 dnat to 10.0.0.1:53");
    assert_eq!(body[1], "ip daddr 10.96.0.10 tcp dport 53 dnat to 10.0.0.1:53");
    assert_eq!(body[2], "ip daddr . meta l4proto . th dport vmap @service-ips");
    let none = block(&r.script, "map no-endpoint-services");
    assert!(none.contains(&"10.96.0.10 . tcp . 9153 : goto reject-chain"));
    assert!(none.iter().all(|l| !l.contains(". 53 :")), "{none:?}");
    // The DNS server answers pods and the node only.
    assert_eq!(
        block(&r.script, "chain filter-input")[1],
        "ip daddr 10.0.0.1 meta l4proto { tcp, udp } th dport 53 ip saddr != { 10.244.0.0/16, 127.0.0.0/8, 10.0.0.1 } drop"
    );
}

#[test]
fn duplicate_claims_keep_the_first_service() {
    let mut m = model();
    let a = svc("a", "one", "10.96.0.50", vec![port("", Protocol::Tcp, 80, Some(30000))]);
    let mut b = svc("b", "two", "10.96.0.50", vec![port("", Protocol::Tcp, 80, Some(30000))]);
    b.node_ports = true;
    let mut a = a;
    a.node_ports = true;
    m.upsert_slice(slice_for(&a, 1, &[("10.244.1.1", "n1")]));
    m.upsert_service(a);
    m.upsert_service(b);
    let r = render(&m);
    let svc_map = block(&r.script, "map service-ips");
    assert_eq!(r.script.matches("10.96.0.50 . tcp . 80 :").count(), 1);
    assert!(svc_map
        .iter()
        .any(|l| l.starts_with("10.96.0.50 . tcp . 80 : goto svc-") && l.ends_with("a_one_tcp_80")));
    assert_eq!(r.script.matches("tcp . 30000 :").count(), 1);
    assert_eq!(
        block(&r.script, "set cluster-ips"),
        vec!["type ipv4_addr", "elements = {", "10.96.0.50", "}"]
    );
}

#[test]
fn cluster_cidr_host_bits_are_masked() {
    let (mut m, _) = web_model();
    m.cluster_cidr = (ip("10.244.7.9"), 16);
    assert!(render(&m).script.contains("ip saddr != 10.244.0.0/16 jump"));
    m.cluster_cidr = (ip("10.1.2.3"), 0);
    assert!(render(&m).script.contains("ip saddr != 0.0.0.0/0 jump"));
    m.cluster_cidr = (ip("10.1.2.3"), 40);
    assert!(render(&m).script.contains("ip saddr != 10.1.2.3/32 jump"));
}

#[test]
fn names_are_valid_bounded_and_stable() {
    let mut m = model();
    let long = "x".repeat(63);
    let s = svc(
        &long,
        &long,
        "10.96.0.60",
        vec![port("averyveryverylongname", Protocol::Tcp, 80, None)],
    );
    m.upsert_slice(slice_for(&s, 65535, &[("10.244.255.255", "n1")]));
    m.upsert_service(s);
    // Malformed names must not break the syntax either.
    let odd = svc(
        "we ird",
        "na{me}",
        "10.96.0.61",
        vec![port("p;1", Protocol::Tcp, 81, None)],
    );
    m.upsert_slice(slice_for(&odd, 1, &[("10.244.0.1", "n1")]));
    m.upsert_service(odd);
    let r = render(&m);
    let names: Vec<&str> = r
        .script
        .lines()
        .filter_map(|l| l.strip_prefix("\tchain ").or_else(|| l.strip_prefix("\tset ")))
        .filter_map(|l| l.strip_suffix(" {"))
        .collect();
    assert_eq!(names.len(), FIXED_CHAINS + 1 + 4);
    for n in &names {
        assert!(n.len() <= 200, "{n}");
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{n}");
        assert!(n.starts_with(|c: char| c.is_ascii_alphabetic()), "{n}");
    }
    // The hash is a fixed function of the identity (FNV-1a), not of the run.
    assert_eq!(
        short_hash(&["default", "web", "tcp", "http"]),
        short_hash(&["default", "web", "tcp", "http"])
    );
    assert_ne!(short_hash(&["ab", "c"]), short_hash(&["a", "bc"]));
    assert_eq!(short_hash(&[]).len(), 8);
    assert_eq!(fnv1a(&[""]), 0xaf64_724c_8602_eb6e, "FNV-1a of the single byte 0xff");
}

#[test]
fn unique_name_disambiguates() {
    let mut p = Plan::default();
    assert_eq!(p.unique_name("svc-a".into()), "svc-a");
    assert_eq!(p.unique_name("svc-a".into()), "svc-a-2");
    assert_eq!(p.unique_name("svc-a".into()), "svc-a-3");
    assert_eq!(p.unique_name("y".repeat(300)).len(), MAX_NAME_LEN - 4);
}

// ---- the real nft ----------------------------------------------------------------

/// A model touching every feature: cluster IPs with several, one and no
/// endpoints, UDP, node ports (Cluster and Local), affinity, internal Local,
/// headless, DNS redirect.
fn feature_model() -> Model {
    let mut m = model();
    m.node_ips = vec![ip("192.168.1.10")];
    m.dns = Some(DnsRedirect::new(SocketAddrV4::new(ip("10.244.1.5"), 5300)));
    let mut web = svc(
        "default",
        "web",
        "10.96.0.20",
        vec![
            port("http", Protocol::Tcp, 80, Some(30080)),
            port("dns", Protocol::Udp, 53, Some(30053)),
        ],
    );
    web.node_ports = true;
    web.affinity_timeout = Some(10800);
    m.upsert_slice(slice_for(
        &web,
        8080,
        &[("10.244.1.5", "n1"), ("10.244.2.5", "n2"), ("10.244.1.7", "n1")],
    ));
    m.upsert_service(web);
    let mut local = svc(
        "default",
        "local",
        "10.96.0.22",
        vec![port("", Protocol::Tcp, 80, Some(30081))],
    );
    local.node_ports = true;
    local.internal_local = true;
    local.external_local = true;
    m.upsert_slice(slice_for(&local, 8080, &[("10.244.2.9", "n2")]));
    m.upsert_service(local);
    let mut np_local = svc(
        "default",
        "np-local",
        "10.96.0.23",
        vec![port("", Protocol::Tcp, 80, Some(30082))],
    );
    np_local.node_ports = true;
    np_local.external_local = true;
    m.upsert_slice(slice_for(
        &np_local,
        8080,
        &[("10.244.1.5", "n1"), ("10.244.2.9", "n2")],
    ));
    m.upsert_service(np_local);
    let solo = svc("default", "solo", "10.96.0.24", vec![port("", Protocol::Tcp, 80, None)]);
    m.upsert_slice(slice_for(&solo, 8080, &[("10.244.1.5", "n1")]));
    m.upsert_service(solo);
    m.upsert_service(svc(
        "default",
        "empty",
        "10.96.0.21",
        vec![port("", Protocol::Tcp, 80, None)],
    ));
    m.upsert_service(svc("default", "headless", "", vec![port("", Protocol::Tcp, 80, None)]));
    m.upsert_service(svc(
        "kube-system",
        "kube-dns",
        "10.96.0.10",
        vec![
            port("dns", Protocol::Udp, 53, None),
            port("dns-tcp", Protocol::Tcp, 53, None),
        ],
    ));
    m
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> std::io::Result<std::process::Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    child.wait_with_output()
}

/// The tool's output. These tests need root, nftables, unshare and python3, as CI has
/// (scripts/test.sh installs them): a missing tool fails the test rather than skipping it.
fn tool_output(cmd: &mut Command, input: &str) -> Option<std::process::Output> {
    match run_with_stdin(cmd, input) {
        Ok(out) => Some(out),
        Err(e) => panic!("{cmd:?}: {e} (these tests need nftables and root)"),
    }
}

/// Runs `sh -ec <shell>` in a fresh network namespace that vanishes with
/// it. The ruleset arrives on stdin (the shell keeps it in `$rules`), so
/// the test writes no files and never touches the host's own ruleset.
fn in_netns(shell: &str, rules: &str, env: &[(&str, &str)]) -> std::process::Output {
    let script = format!("rules=$(cat)\n{shell}");
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "sh", "-ec", &script]).envs(env.iter().copied());
    run_with_stdin(&mut cmd, rules).unwrap()
}

fn netns_available() -> bool {
    Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn nft_check_accepts_script() {
    let r = render(&feature_model());
    let Some(out) = tool_output(Command::new("nft").args(["-c", "-f", "-"]), &r.script) else {
        return;
    };
    assert!(
        out.status.success(),
        "nft -c failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.script
    );
    let Some(out) = tool_output(Command::new("nft").args(["-c", "-f", "-"]), teardown_script()) else {
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `nft -c` skips the kernel's commit-time validation (e.g. a `dnat` reachable
/// from a filter chain is only refused at commit), so also apply for real,
/// twice, in a throwaway network namespace.
#[test]
fn nft_applies_twice_in_private_netns() {
    assert!(netns_available(), "cannot create a network namespace (run as root)");
    let r = render(&feature_model());
    // Separate nft invocations, so the second really replaces a live table.
    let out = in_netns(
        "printf '%s\\n' \"$rules\" | nft -f -
         printf '%s\\n' \"$rules\" | nft -f -
         nft list table ip skiff
         printf '%s' \"$TEARDOWN\" | nft -f -
         ! nft list table ip skiff 2>/dev/null",
        &r.script,
        &[("TEARDOWN", teardown_script())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.script
    );
    let web = chains_with_prefix(&r.script, "svc-")
        .into_iter()
        .find(|c| c.ends_with("default_web_tcp_http"))
        .unwrap();
    assert!(stdout.contains(&format!("chain {web} {{")), "{stdout}");
    assert!(stdout.contains("numgen random mod 3 vmap"));
    assert!(stdout.contains("flags dynamic,timeout"));
}

/// End to end in a namespace: a host process connects to cluster IPs and
/// must be DNATed, refused at once (no endpoints, unknown port) or
/// redirected (DNS). This is what pins down the filter-output priority:
/// were it before DNAT, the first connection would be refused too.
#[test]
fn traffic_behaves_in_private_netns() {
    assert!(netns_available(), "cannot create a network namespace (run as root)");
    assert!(
        Command::new("python3").arg("-c").arg("1").status().is_ok(),
        "python3 is needed"
    );
    let r = render(&feature_model());
    let py = r#"
import socket
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.244.1.5", port)); s.listen(8); return s
ls = [listen(8080), listen(5300)]
def probe(addr):
    c = socket.socket(); c.settimeout(2)
    try:
        c.connect(addr); return "ok"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return type(e).__name__
    finally:
        c.close()
res = [probe(("10.96.0.24", 80)), probe(("10.244.1.5", 30082)), probe(("10.96.0.21", 80)),
       probe(("10.96.0.20", 81)), probe(("10.96.0.22", 80)), probe(("10.96.0.10", 53))]
print(" ".join(res))
"#;
    let out = in_netns(
        "ip link set lo up
         ip link add v0 type veth peer name v1
         ip link set v0 up
         ip link set v1 up
         ip addr add 10.244.1.5/32 dev v0
         ip route add 10.96.0.0/12 dev v0
         printf '%s\\n' \"$rules\" | nft -f -
         python3 -c \"$PROBE\"",
        &r.script,
        &[("PROBE", py)],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // solo's cluster IP and np-local's node port reach the local listener;
    // empty, a missing port and internal-Local-without-local-endpoint are
    // refused at once (without the rules: a timeout, as nobody answers ARP
    // on the veth);
    // DNS goes to the redirect target although kube-dns has no endpoints.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok ok refused refused refused ok"
    );
}

/// 1,000 services with 10 endpoints each: the kernel accepts the table and its wholesale
/// replacement (size and times printed with `--nocapture`; `bench/netproxy.sh` measures).
#[test]
fn a_table_of_ten_thousand_endpoints_applies_and_replaces() {
    let mut m = model();
    for i in 0..1000u32 {
        let mut s = svc(
            "load",
            &format!("svc-{i}"),
            &format!("10.96.{}.{}", 10 + i / 250, i % 250 + 1),
            vec![port("http", Protocol::Tcp, 80, Some(30000 + i as u16))],
        );
        s.node_ports = true;
        let eps: Vec<String> = (0..10)
            .map(|e| format!("10.244.{}.{}", i / 25, (i % 25) * 10 + e))
            .collect();
        let eps: Vec<(&str, &str)> = eps
            .iter()
            .map(|a| (a.as_str(), if a.ends_with('0') { "n1" } else { "n2" }))
            .collect();
        m.upsert_slice(slice_for(&s, 8080, &eps));
        m.upsert_service(s);
    }
    let t = std::time::Instant::now();
    let r = render(&m);
    let render_time = t.elapsed();
    assert_eq!((r.services, r.endpoints), (1000, 10_000));
    // Both applies in one namespace, each timed by the shell, so the second
    // measures the real replace path (delete 12k chains, create 12k).
    let out = in_netns(
        "t0=$(date +%s%N)
         printf '%s\\n' \"$rules\" | nft -f -
         t1=$(date +%s%N)
         printf '%s\\n' \"$rules\" | nft -f -
         t2=$(date +%s%N)
         echo $(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 ))",
        &r.script,
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ms = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!(
        "scale: {} bytes, {} lines, {} chains, render {:?}, nft -f create/replace ms: {ms}",
        r.script.len(),
        r.script.lines().count(),
        r.chains,
        render_time
    );
}

#[test]
fn affinity_with_one_endpoint_still_records_clients() {
    let mut m = model();
    let mut s = svc("default", "one", "10.96.0.70", vec![port("", Protocol::Tcp, 80, None)]);
    s.affinity_timeout = Some(30);
    m.upsert_slice(slice_for(&s, 8080, &[("10.244.1.5", "n1")]));
    m.upsert_service(s);
    let r = render(&m);
    let ep = chains_with_prefix(&r.script, "ep-")[0];
    let svc_chain = chains_with_prefix(&r.script, "svc-")[0];
    assert_eq!(
        block(&r.script, &format!("chain {svc_chain}"))[1..],
        [format!("goto {ep}")]
    );
    let set = format!("affinity-{}", &ep[3..]);
    assert_eq!(
        block(&r.script, &format!("chain {ep}"))[1],
        format!("update @{set} {{ ip saddr }}")
    );
    assert!(block(&r.script, &format!("set {set}")).contains(&"timeout 30s"));
}

#[path = "delta_tests.rs"]
mod delta;

use super::*;
use serde_json::json;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn err_of(r: Result<impl std::fmt::Debug>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn service_defaults_are_applied() {
    let svc = Service::from_json(&json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}
    }))
    .unwrap();
    assert_eq!(svc.namespace, "default");
    assert_eq!(svc.name, "web");
    assert_eq!(svc.cluster_ips, vec![ip("10.96.0.20")]);
    assert_eq!(
        svc.ports,
        vec![ServicePort {
            name: String::new(),
            protocol: Protocol::Tcp,
            port: 80,
            target_port: TargetPort::Number(80),
            node_port: None,
        }]
    );
    assert_eq!(svc.affinity_timeout, None);
    assert!(!svc.internal_local && !svc.external_local && !svc.node_ports);
}

#[test]
fn service_full_spec() {
    let svc = Service::from_json(&json!({
        "metadata": {"namespace": "shop", "name": "api"},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.30",
            "clusterIPs": ["fd00::30", "10.96.0.30"],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "internalTrafficPolicy": "Local",
            "externalTrafficPolicy": "Local",
            "ports": [
                {"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
                {"name": "sctp", "protocol": "SCTP", "port": 9000},
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "5353", "nodePort": 0}
            ]
        }
    }))
    .unwrap();
    assert_eq!(svc.cluster_ips, vec![ip("10.96.0.30")], "IPv6 dropped");
    assert_eq!(svc.affinity_timeout, Some(60));
    assert!(svc.internal_local && svc.external_local && svc.node_ports);
    assert_eq!(svc.ports.len(), 2, "SCTP port skipped, others kept");
    assert_eq!(svc.ports[0].target_port, TargetPort::Name("web".into()));
    assert_eq!(svc.ports[0].node_port, Some(30080));
    assert_eq!(svc.ports[1].protocol, Protocol::Udp);
    assert_eq!(svc.ports[1].target_port, TargetPort::Number(5353));
    assert_eq!(svc.ports[1].node_port, None, "nodePort 0 means unset");
}

#[test]
fn affinity_default_timeout_and_load_balancer_type() {
    let svc = Service::from_json(&json!({
        "metadata": {"namespace": "a", "name": "b"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1",
                 "sessionAffinity": "ClientIP", "ports": []}
    }))
    .unwrap();
    assert_eq!(svc.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
    assert!(svc.node_ports);
    let none = Service::from_json(&json!({
        "metadata": {"namespace": "a", "name": "b"},
        "spec": {"clusterIP": "10.96.0.1", "sessionAffinity": "None"}
    }))
    .unwrap();
    assert_eq!(none.affinity_timeout, None);
}

#[test]
fn headless_and_external_name_have_no_cluster_ips() {
    let headless = Service::from_json(&json!({
        "metadata": {"namespace": "a", "name": "h"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}
    }))
    .unwrap();
    assert!(headless.cluster_ips.is_empty());
    assert_eq!(headless.ports.len(), 1);
    let ext = Service::from_json(&json!({
        "metadata": {"namespace": "a", "name": "e"},
        "spec": {"type": "ExternalName", "externalName": "example.com", "clusterIP": "10.96.0.9"}
    }))
    .unwrap();
    assert!(ext.cluster_ips.is_empty());
}

#[test]
fn service_errors_name_the_field() {
    let base = |ports: serde_json::Value| {
        json!({"metadata": {"namespace": "a", "name": "b"},
               "spec": {"clusterIP": "10.96.0.1", "ports": ports}})
    };
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"port": 80}, {"port": 70000}])))),
        "spec.ports[1].port: must be 1-65535"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"port": 0}])))),
        "spec.ports[0].port: must be 1-65535"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"name": "x"}])))),
        "spec.ports[0].port: required"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"port": "80"}])))),
        "spec.ports[0].port: must be 1-65535"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"port": 80, "targetPort": 0}])))),
        "spec.ports[0].targetPort: must be 1-65535"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"port": 80, "nodePort": 99999}])))),
        "spec.ports[0].nodePort: must be 0-65535"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"port": 80, "nodePort": -1}])))),
        "spec.ports[0].nodePort: must be 0-65535"
    );
    assert_eq!(
        err_of(Service::from_json(&json!({"metadata": {"namespace": "a", "name": "b"},
            "spec": {"clusterIP": "10.96.0.1", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": "60"}}}}))),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be 1-86400"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!([{"port": 80, "protocol": 6}])))),
        "spec.ports[0].protocol: must be a string"
    );
    assert_eq!(
        err_of(Service::from_json(&base(json!({"port": 80})))),
        "spec.ports: must be a list"
    );
    assert_eq!(
        err_of(Service::from_json(&json!({"metadata": {"namespace": "a"}, "spec": {}}))),
        "metadata.name: required"
    );
    assert_eq!(
        err_of(Service::from_json(&json!({"metadata": {"name": "b"}, "spec": {}}))),
        "metadata.namespace: required"
    );
    assert_eq!(
        err_of(Service::from_json(
            &json!({"metadata": {"namespace": "a", "name": "b"}})
        )),
        "spec: required"
    );
    assert_eq!(
        err_of(Service::from_json(&json!({"metadata": {"namespace": "a", "name": "b"},
            "spec": {"clusterIP": "10.96.0.300"}}))),
        "spec.clusterIP: invalid IP address \"10.96.0.300\""
    );
    assert_eq!(
        err_of(Service::from_json(&json!({"metadata": {"namespace": "a", "name": "b"},
            "spec": {"clusterIPs": ["10.96.0.1", "nope"]}}))),
        "spec.clusterIPs[1]: invalid IP address \"nope\""
    );
    assert_eq!(
        err_of(Service::from_json(&json!({"metadata": {"namespace": "a", "name": "b"},
            "spec": {"clusterIP": "10.96.0.1", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}}}))),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be 1-86400"
    );
    assert_eq!(
        err_of(Service::from_json(&json!([1]))),
        "(object): must be a JSON object"
    );
}

fn slice_json(endpoints: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"namespace": "shop", "name": "api-abc",
                     "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": "s", "protocol": "SCTP", "port": 1},
                  {"name": "all"}, {"protocol": "UDP", "port": 53}],
        "endpoints": endpoints
    })
}

#[test]
fn slice_defaults_and_conditions() {
    let s = EndpointSlice::from_json(&slice_json(json!([
        {"addresses": ["10.244.1.5"], "nodeName": "n1", "hostname": "api-0"},
        {"addresses": ["10.244.1.6"], "conditions": {"ready": false}},
        {"addresses": ["10.244.1.7"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        {"addresses": ["10.244.1.8"], "conditions": {}}
    ])))
    .unwrap();
    assert_eq!(s.service, "api");
    assert_eq!(
        s.ports,
        vec![
            SlicePort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 8080
            },
            SlicePort {
                name: String::new(),
                protocol: Protocol::Udp,
                port: 53
            },
        ],
        "SCTP and number-less ports skipped"
    );
    let e = &s.endpoints;
    assert_eq!(e.len(), 4);
    assert_eq!(
        e[0],
        Endpoint {
            ip: ip("10.244.1.5"),
            node_name: Some("n1".into()),
            hostname: Some("api-0".into()),
            ready: true,
            serving: true,
            terminating: false,
        }
    );
    assert_eq!((e[1].ready, e[1].serving, e[1].terminating), (false, false, false));
    assert_eq!((e[2].ready, e[2].serving, e[2].terminating), (false, true, true));
    assert_eq!((e[3].ready, e[3].serving, e[3].terminating), (true, true, false));
}

#[test]
fn slice_skips_bad_endpoints() {
    let s = EndpointSlice::from_json(&slice_json(json!([
        {"addresses": ["10.244.1.300"]},
        {"addresses": []},
        {"addresses": ["fd00::1"]},
        {"addresses": "10.244.1.9"},
        {"addresses": ["10.244.1.10"], "conditions": {"ready": "yes"}},
        "garbage",
        {"addresses": ["10.244.1.11", "10.244.1.12"]}
    ])))
    .unwrap();
    let ips: Vec<Ipv4Addr> = s.endpoints.iter().map(|e| e.ip).collect();
    assert_eq!(ips, vec![ip("10.244.1.11")], "only the good one, first address");
}

#[test]
fn slice_other_address_types_have_no_endpoints() {
    let mut v = slice_json(json!([{"addresses": ["10.244.1.5"]}]));
    v["addressType"] = json!("IPv6");
    let s = EndpointSlice::from_json(&v).unwrap();
    assert!(s.endpoints.is_empty());
    assert_eq!(s.ports.len(), 2);
    v["addressType"] = json!("FQDN");
    assert!(EndpointSlice::from_json(&v).unwrap().endpoints.is_empty());
}

#[test]
fn slice_errors_name_the_field() {
    let mut v = slice_json(json!([]));
    v.as_object_mut().unwrap().remove("addressType");
    assert_eq!(err_of(EndpointSlice::from_json(&v)), "addressType: required");
    let mut v = slice_json(json!([]));
    v["ports"][2] = json!({"name": "x", "port": 65536});
    assert_eq!(err_of(EndpointSlice::from_json(&v)), "ports[2].port: must be 1-65535");
    let mut v = slice_json(json!([]));
    v["endpoints"] = json!({});
    assert_eq!(err_of(EndpointSlice::from_json(&v)), "endpoints: must be a list");
    let mut v = slice_json(json!([]));
    v["metadata"]["labels"]["kubernetes.io/service-name"] = json!(5);
    assert_eq!(
        err_of(EndpointSlice::from_json(&v)),
        "metadata.labels[kubernetes.io/service-name]: must be a string"
    );
    let mut v = slice_json(json!([]));
    v["metadata"].as_object_mut().unwrap().remove("labels");
    assert_eq!(EndpointSlice::from_json(&v).unwrap().service, "");
}

// ---- endpoints_for -------------------------------------------------------------

fn service(ports: Vec<ServicePort>) -> Service {
    Service::cluster_ip("shop", "api", vec![ip("10.96.0.30")], ports)
}

fn sport(name: &str, protocol: Protocol, port: u16) -> ServicePort {
    ServicePort {
        name: name.into(),
        protocol,
        port,
        target_port: TargetPort::Name(name.into()),
        node_port: None,
    }
}

fn endpoint(ip_s: &str, node: &str, ready: bool, serving: bool, terminating: bool) -> Endpoint {
    Endpoint {
        ip: ip(ip_s),
        node_name: Some(node.into()),
        hostname: None,
        ready,
        serving,
        terminating,
    }
}

fn slice(ns: &str, name: &str, svc: &str, ports: &[(&str, Protocol, u16)], eps: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        namespace: ns.into(),
        name: name.into(),
        service: svc.into(),
        ports: ports
            .iter()
            .map(|(n, p, port)| SlicePort {
                name: (*n).into(),
                protocol: *p,
                port: *port,
            })
            .collect(),
        endpoints: eps,
    }
}

fn targets(v: &[EndpointTarget]) -> Vec<(String, u16)> {
    v.iter().map(|(i, p, _)| (i.to_string(), *p)).collect()
}

#[test]
fn endpoints_prefers_ready_and_falls_back_to_serving_terminating() {
    let http = sport("http", Protocol::Tcp, 80);
    let svc = service(vec![http.clone()]);
    let mut m = Model::new("n1", (ip("10.244.0.0"), 16));
    m.upsert_slice(slice(
        "shop",
        "a",
        "api",
        &[("http", Protocol::Tcp, 8080)],
        vec![
            endpoint("10.244.1.9", "n1", false, true, true),
            endpoint("10.244.1.5", "n1", true, true, false),
            endpoint("10.244.1.7", "n2", false, false, false),
        ],
    ));
    assert_eq!(
        targets(&m.endpoints_for(&svc, &http)),
        vec![("10.244.1.5".into(), 8080)]
    );

    // Once the ready one is gone, the terminating-but-serving one drains;
    // the not-serving one is never used.
    m.upsert_slice(slice(
        "shop",
        "a",
        "api",
        &[("http", Protocol::Tcp, 8080)],
        vec![
            endpoint("10.244.1.9", "n1", false, true, true),
            endpoint("10.244.1.8", "n2", false, true, false),
            endpoint("10.244.1.7", "n2", false, false, true),
        ],
    ));
    assert_eq!(
        targets(&m.endpoints_for(&svc, &http)),
        vec![("10.244.1.9".into(), 8080)]
    );
}

#[test]
fn endpoints_match_port_by_name_and_protocol_across_slices() {
    let http = sport("http", Protocol::Tcp, 80);
    let dns = sport("dns", Protocol::Udp, 53);
    let svc = service(vec![http.clone(), dns.clone()]);
    let mut m = Model::new("n1", (ip("10.244.0.0"), 16));
    let ports_a = [
        ("http", Protocol::Tcp, 8080),
        ("metrics", Protocol::Tcp, 9090),
        ("dns", Protocol::Tcp, 53),
    ];
    m.upsert_slice(slice(
        "shop",
        "a",
        "api",
        &ports_a,
        vec![
            endpoint("10.244.2.1", "n2", true, true, false),
            endpoint("10.244.1.1", "n1", true, true, false),
        ],
    ));
    // Same named port resolves to a different number in another slice.
    m.upsert_slice(slice(
        "shop",
        "b",
        "api",
        &[("http", Protocol::Tcp, 8081)],
        vec![
            endpoint("10.244.3.1", "n3", true, true, false),
            endpoint("10.244.1.1", "n1", true, true, false),
        ],
    ));
    // Duplicate of slice a's endpoint, as during slice reshuffles.
    m.upsert_slice(slice(
        "shop",
        "c",
        "api",
        &[("http", Protocol::Tcp, 8080)],
        vec![endpoint("10.244.2.1", "n2", true, true, false)],
    ));
    // Wrong service, wrong namespace: ignored.
    m.upsert_slice(slice(
        "shop",
        "d",
        "other",
        &[("http", Protocol::Tcp, 1)],
        vec![endpoint("10.244.9.1", "n1", true, true, false)],
    ));
    m.upsert_slice(slice(
        "zoo",
        "a",
        "api",
        &[("http", Protocol::Tcp, 1)],
        vec![endpoint("10.244.9.2", "n1", true, true, false)],
    ));
    assert_eq!(
        targets(&m.endpoints_for(&svc, &http)),
        vec![
            ("10.244.1.1".into(), 8080),
            ("10.244.1.1".into(), 8081),
            ("10.244.2.1".into(), 8080),
            ("10.244.3.1".into(), 8081),
        ]
    );
    // "dns" exists only as TCP in the slice: the UDP service port has none.
    assert!(m.endpoints_for(&svc, &dns).is_empty());
    let local = m.local_endpoints_for(&svc, &http);
    assert_eq!(
        targets(&local),
        vec![("10.244.1.1".into(), 8080), ("10.244.1.1".into(), 8081)]
    );
    assert!(local.iter().all(|(_, _, n)| n.as_deref() == Some("n1")));
}

#[test]
fn unnamed_port_matches_unnamed_slice_port() {
    let p = sport("", Protocol::Tcp, 80);
    let svc = service(vec![p.clone()]);
    let mut m = Model::new("n1", (ip("10.244.0.0"), 16));
    m.upsert_slice(slice(
        "shop",
        "a",
        "api",
        &[("", Protocol::Tcp, 8080), ("x", Protocol::Tcp, 1)],
        vec![endpoint("10.244.1.1", "n1", true, true, false)],
    ));
    assert_eq!(targets(&m.endpoints_for(&svc, &p)), vec![("10.244.1.1".into(), 8080)]);
}

#[test]
fn local_fallback_is_decided_among_local_endpoints() {
    let http = sport("http", Protocol::Tcp, 80);
    let svc = service(vec![http.clone()]);
    let mut m = Model::new("n1", (ip("10.244.0.0"), 16));
    m.upsert_slice(slice(
        "shop",
        "a",
        "api",
        &[("http", Protocol::Tcp, 8080)],
        vec![
            endpoint("10.244.2.1", "n2", true, true, false),
            endpoint("10.244.1.1", "n1", false, true, true),
        ],
    ));
    assert_eq!(
        targets(&m.endpoints_for(&svc, &http)),
        vec![("10.244.2.1".into(), 8080)]
    );
    assert_eq!(
        targets(&m.local_endpoints_for(&svc, &http)),
        vec![("10.244.1.1".into(), 8080)]
    );
}

#[test]
fn upsert_and_delete() {
    let mut m = Model::new("n1", (ip("10.244.0.0"), 16));
    let svc = service(vec![]);
    m.upsert_service(svc.clone());
    let mut changed = svc.clone();
    changed.cluster_ips = vec![ip("10.96.0.31")];
    m.upsert_service(changed.clone());
    assert_eq!(m.services.len(), 1);
    assert_eq!(m.services[&("shop".into(), "api".into())], changed);
    assert_eq!(m.delete_service("shop", "api"), Some(changed));
    assert_eq!(m.delete_service("shop", "api"), None);
    m.upsert_slice(slice("shop", "a", "api", &[], vec![]));
    assert!(m.delete_slice("shop", "a").is_some());
    assert!(m.slices.is_empty());
}

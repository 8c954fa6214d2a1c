//! Unit tests of `PodNetwork` against `FakeNetlink` and the in-memory IPAM store.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test cidr")
}
fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test ip")
}

struct Fixture {
    host: FakeNetlink,
    store: MemStore,
    pods: Vec<PathBuf>,
}

impl Fixture {
    fn new() -> Self {
        let host = FakeNetlink::new();
        let pods: Vec<PathBuf> = (0..3)
            .map(|i| PathBuf::from(format!("/run/skiff-test/pod{i}/net")))
            .collect();
        for p in &pods {
            host.add_netns(p);
        }
        Self {
            host,
            store: MemStore::default(),
            pods,
        }
    }

    fn config() -> PodNetworkConfig {
        let mut config = PodNetworkConfig::new(net("10.244.1.0/24"));
        config.cluster_cidr = Some(net("10.244.0.0/16"));
        config
    }

    /// A `PodNetwork` as a (re)started agent would build it: same kernel, same IPAM state.
    fn network(&self) -> PodNetwork<FakeNetlink, MemStore> {
        let ipam = Ipam::open(net("10.244.1.0/24"), self.store.clone()).expect("ipam");
        PodNetwork::new(Self::config(), self.host.clone(), ipam).expect("network")
    }

    fn pod_nl(&self, i: usize) -> FakeNetlink {
        self.host.open_netns(&self.pods[i]).expect("pod ns")
    }

    /// Asserts everything `setup` promises for pod `i` with the returned `PodIp`.
    fn assert_wired(&self, i: usize, pod: &PodIp) {
        let (bridge, bridge_addrs) = self.host.link_state("skiff0").expect("bridge");
        assert_eq!(bridge.kind, LinkKind::Bridge);
        assert!(bridge.up);
        assert!(bridge_addrs.contains(&net("10.244.1.1/24")));

        let (host, _) = self.host.link_state(&pod.host_veth).expect("host veth");
        assert_eq!(host.kind, LinkKind::Veth);
        assert!(host.up, "host veth up");
        assert_eq!(host.master, Some(bridge.index), "host veth on the bridge");

        let mut pod_nl = self.pod_nl(i);
        let (eth0, addrs) = pod_nl.link_state(POD_IFNAME).expect("eth0");
        assert_eq!(host.peer_index, Some(eth0.index), "the two ends are a pair");
        assert!(eth0.up);
        assert_eq!(addrs, vec![Ipv4Net::new(pod.ip, 24).expect("addr")]);
        assert!(pod_nl.link_state("lo").expect("lo").0.up, "lo up");
        assert_eq!(
            pod_nl.list_routes().expect("routes"),
            vec![Route::via(Ipv4Net::default_route(), ip("10.244.1.1"))]
        );
        assert!(net("10.244.1.0/24").contains(pod.ip));
        assert_eq!(pod.gateway, ip("10.244.1.1"));
        assert_eq!(pod.prefix, 24);
    }
}

#[test]
fn veth_names_are_short_stable_and_distinct() {
    let a = host_veth_name("default/web-0/uid-1");
    assert_eq!(a, host_veth_name("default/web-0/uid-1"));
    assert_ne!(a, host_veth_name("default/web-0/uid-2"));
    assert!(a.len() <= 15 && a.starts_with("vskf"), "{a}");
    assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn setup_wires_pods_to_the_bridge() {
    let fx = Fixture::new();
    let mut network = fx.network();
    let a = network.setup("pod-a", &fx.pods[0]).expect("setup a");
    let b = network.setup("pod-b", &fx.pods[1]).expect("setup b");
    fx.assert_wired(0, &a);
    fx.assert_wired(1, &b);
    assert_ne!(a.ip, b.ip);
    assert_ne!(a.host_veth, b.host_veth);
    assert_eq!(a.ip, ip("10.244.1.2"), "first pod address after the gateway");
}

#[test]
fn second_setup_changes_nothing() {
    let fx = Fixture::new();
    let mut network = fx.network();
    let first = network.setup("pod-a", &fx.pods[0]).expect("setup");
    let index = fx.host.link_state(&first.host_veth).expect("veth").0.index;
    fx.host.clear_log();
    let again = network.setup("pod-a", &fx.pods[0]).expect("setup again");
    assert_eq!(first, again);
    assert_eq!(fx.host.log(), Vec::<String>::new(), "no mutation on a healthy pod");
    assert_eq!(fx.host.link_state(&first.host_veth).expect("veth").0.index, index);
}

#[test]
fn setup_after_a_crash_at_any_step_repairs() {
    // How many mutating steps a clean setup takes.
    let clean = {
        let fx = Fixture::new();
        fx.network().setup("pod-a", &fx.pods[0]).expect("setup");
        fx.host.log().len()
    };
    assert!(clean >= 8, "setup should take several steps, took {clean}");
    for crash_at in 0..clean {
        let fx = Fixture::new();
        fx.host.fail_after(crash_at);
        let err = fx.network().setup("pod-a", &fx.pods[0]);
        assert!(err.is_err(), "step {crash_at} should have failed");
        // The agent restarts: new PodNetwork, IPAM reopened from its store.
        let pod = fx
            .network()
            .setup("pod-a", &fx.pods[0])
            .unwrap_or_else(|e| panic!("repair after crash at step {crash_at}: {e}"));
        fx.assert_wired(0, &pod);
        assert_eq!(pod.ip, ip("10.244.1.2"), "crash at {crash_at} leaked an address");
    }
}

#[test]
fn setup_replaces_foreign_or_half_built_pieces() {
    let fx = Fixture::new();
    let mut network = fx.network();
    // A stale eth0 in the pod whose host end is gone (e.g. a bridge created by hand).
    fx.pod_nl(0).create_bridge(POD_IFNAME, 1500).expect("junk eth0");
    let pod = network.setup("pod-a", &fx.pods[0]).expect("setup");
    fx.assert_wired(0, &pod);
    // The host end deleted behind our back: the pod's eth0 goes with it, setup recreates both.
    fx.host.clone().delete_link(&pod.host_veth).expect("delete");
    let again = network.setup("pod-a", &fx.pods[0]).expect("setup again");
    assert_eq!(pod, again);
    fx.assert_wired(0, &again);
    // A stray address on eth0 is removed.
    fx.pod_nl(0)
        .add_address(POD_IFNAME, net("10.244.1.200/24"))
        .expect("stray");
    network.setup("pod-a", &fx.pods[0]).expect("setup 3");
    fx.assert_wired(0, &again);
}

#[test]
fn a_link_called_like_the_bridge_that_is_no_bridge_is_an_error() {
    let fx = Fixture::new();
    fx.host
        .clone()
        .create_veth("skiff0", "x", &fx.pods[2], 1500)
        .expect("veth");
    let err = fx.network().setup("pod-a", &fx.pods[0]).expect_err("not a bridge");
    assert!(matches!(err, NetworkError::WrongKind { .. }), "{err}");
}

#[test]
fn setup_in_a_missing_namespace_fails_cleanly() {
    let fx = Fixture::new();
    let err = fx
        .network()
        .setup("pod-a", Path::new("/run/skiff-test/nope/net"))
        .expect_err("no such netns");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn teardown_removes_both_ends_and_frees_the_ip() {
    let fx = Fixture::new();
    let mut network = fx.network();
    let pod = network.setup("pod-a", &fx.pods[0]).expect("setup");
    assert_eq!(network.teardown("pod-a").expect("teardown"), Some(pod.ip));
    assert!(fx.host.link_state(&pod.host_veth).is_none());
    assert!(fx.pod_nl(0).link_state(POD_IFNAME).is_none());
    assert!(network.ipam().lookup("pod-a").is_none());
    // Again, and for a pod never set up: nothing to do, no error.
    assert_eq!(network.teardown("pod-a").expect("teardown twice"), None);
    assert_eq!(network.teardown("never-seen").expect("unknown"), None);
}

#[test]
fn teardown_after_the_namespace_is_gone() {
    let fx = Fixture::new();
    let mut network = fx.network();
    let pod = network.setup("pod-a", &fx.pods[0]).expect("setup");
    fx.host.remove_netns(&fx.pods[0]);
    assert!(fx.host.link_state(&pod.host_veth).is_none(), "kernel removed the pair");
    assert_eq!(network.teardown("pod-a").expect("teardown"), Some(pod.ip));
}

#[test]
fn gc_removes_dead_pods_only() {
    let fx = Fixture::new();
    let mut network = fx.network();
    let a = network.setup("pod-a", &fx.pods[0]).expect("a");
    let b = network.setup("pod-b", &fx.pods[1]).expect("b");
    // Not ours: must survive.
    fx.host
        .clone()
        .create_veth("veth-other", "o", &fx.pods[2], 1500)
        .expect("foreign veth");
    let live: HashSet<String> = ["pod-a".to_owned()].into();
    let report = fx.network().gc(&live).expect("gc");
    assert_eq!(report.deleted_veths, vec![b.host_veth.clone()]);
    assert_eq!(report.released_ips, vec![(b.ip, "pod-b".to_owned())]);
    assert!(fx.host.link_state(&a.host_veth).is_some());
    assert!(fx.host.link_state("veth-other").is_some());
}

#[test]
fn init_host_enables_forwarding_bridge_and_blackhole() {
    let fx = Fixture::new();
    let mut network = fx.network();
    network.init_host().expect("init");
    assert!(fx.host.ip_forward());
    assert!(fx.host.link_state("skiff0").is_some());
    assert_eq!(
        fx.host.clone().list_routes().expect("routes"),
        vec![Route::blackhole(net("10.244.0.0/16"))]
    );
}

#[test]
fn sync_routes_converges_and_keeps_the_blackhole() {
    let fx = Fixture::new();
    // Gateways of other nodes must be on a connected subnet, as in the kernel.
    let mut host = fx.host.clone();
    host.create_bridge("uplink", 1500).expect("uplink");
    host.add_address("uplink", net("192.168.1.1/24")).expect("addr");
    host.set_up("uplink").expect("up");
    let mut network = fx.network();
    network.init_host().expect("init");

    let peers = [
        (net("10.244.2.0/24"), ip("192.168.1.2")),
        (net("10.244.3.0/24"), ip("192.168.1.3")),
        (net("10.244.1.0/24"), ip("192.168.1.1")), // ourselves: skipped
    ];
    let plan = network.sync_routes(&peers).expect("sync");
    assert_eq!(plan.replace.len(), 2);
    let mut routes = host.list_routes().expect("routes");
    routes.sort();
    let mut want = vec![
        Route::via(net("10.244.2.0/24"), ip("192.168.1.2")),
        Route::via(net("10.244.3.0/24"), ip("192.168.1.3")),
        Route::blackhole(net("10.244.0.0/16")),
    ];
    want.sort();
    assert_eq!(routes, want);
    assert!(network.sync_routes(&peers).expect("again").is_empty());

    // Node 3 left, node 2 moved.
    let plan = network
        .sync_routes(&[(net("10.244.2.0/24"), ip("192.168.1.22"))])
        .expect("sync 2");
    assert_eq!(plan.delete.len(), 1);
    let mut routes = host.list_routes().expect("routes");
    routes.sort();
    let mut want = vec![
        Route::via(net("10.244.2.0/24"), ip("192.168.1.22")),
        Route::blackhole(net("10.244.0.0/16")),
    ];
    want.sort();
    assert_eq!(routes, want);
}

#[test]
fn sync_routes_applies_what_it_can() {
    let fx = Fixture::new();
    let mut host = fx.host.clone();
    host.create_bridge("uplink", 1500).expect("uplink");
    host.add_address("uplink", net("192.168.1.1/24")).expect("addr");
    host.set_up("uplink").expect("up");
    let mut network = fx.network();
    let err = network
        .sync_routes(&[
            (net("10.244.2.0/24"), ip("172.16.0.2")), // unreachable gateway
            (net("10.244.3.0/24"), ip("192.168.1.3")),
        ])
        .expect_err("one unreachable");
    assert!(matches!(err, NetworkError::RouteSync { failed: 1, .. }), "{err}");
    assert!(host
        .list_routes()
        .expect("routes")
        .contains(&Route::via(net("10.244.3.0/24"), ip("192.168.1.3"))));
}

#[test]
fn config_must_match_ipam() {
    let ipam = Ipam::open(net("10.244.9.0/24"), MemStore::default()).expect("ipam");
    let err = PodNetwork::new(Fixture::config(), FakeNetlink::new(), ipam).expect_err("mismatch");
    assert!(matches!(err, NetworkError::Config { .. }));
}

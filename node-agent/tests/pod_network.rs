//! The pod network against the real kernel. Needs root (CI runs as root).
//!
//! Safety: everything happens inside network namespaces these tests create (`skf-*-<pid>`):
//! the "host" of the pod network is itself a namespace, opened with `RtNetlink::in_netns`, so the
//! machine's own links, addresses, routes and sysctls are never touched (the tests check that
//! the real host's `ip_forward` and link list are unchanged). A Drop guard deletes the
//! namespaces, and with them every veth, bridge and route, also when an assertion fails.
//!
//! Reachability is checked with TCP connections made from threads that `setns` into the pods'
//! namespaces, so the tests need no `ping` binary; `ip` is used only to inspect and to build
//! the link between the two fake nodes.

use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use skiff_node_agent::network::{host_veth_name, DirStore, Ipam, Ipv4Net, PodNetwork, PodNetworkConfig, RtNetlink};

/// Namespaces created by a test, deleted on drop (pass or fail).
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    fn new() -> Self {
        Self { names: Vec::new() }
    }

    /// Creates `skf-<tag>-<pid>` and returns its name.
    fn add(&mut self, tag: &str) -> String {
        let name = format!("skf-{tag}-{}", std::process::id());
        // Registered before creation so even a half-made namespace is removed.
        self.names.push(name.clone());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

fn path(ns: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(ns)
}

/// Runs `ip` with `args`, panics on failure, returns stdout.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ip args` succeeds.
fn ip_ok(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(path(ns)).expect("open netns");
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("namespace thread")
}

/// A TCP connection from namespace `from` to a listener on `addr` in namespace `to`.
fn tcp_reachable(from: &str, to: &str, addr: Ipv4Addr) -> bool {
    let listener = in_ns(to, move || TcpListener::bind((addr, 0)).expect("listen"));
    let target = listener.local_addr().expect("addr");
    let accepted = std::thread::spawn(move || listener.accept().is_ok());
    // Retries absorb ARP and bridge port start-up on a freshly wired pod.
    let connected = in_ns(from, move || {
        (0..3).any(|_| TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_ok())
    });
    if !connected {
        // Unblock the accepting thread so it can be joined.
        let _ = in_ns(to, move || TcpStream::connect(target));
        let _ = accepted.join();
        return false;
    }
    accepted.join().expect("accept thread")
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("cidr")
}

fn config(pod_cidr: &str) -> PodNetworkConfig {
    PodNetworkConfig {
        bridge: "skft0".into(),
        pod_cidr: net(pod_cidr),
        cluster_cidr: Some(net("10.244.0.0/16")),
        mtu: 1500,
    }
}

fn network(host_ns: &str, pod_cidr: &str, ipam_dir: &std::path::Path) -> PodNetwork<RtNetlink, DirStore> {
    let nl = RtNetlink::in_netns(&path(host_ns)).expect("netlink in host ns");
    let ipam = Ipam::open(net(pod_cidr), DirStore::open(ipam_dir).expect("store")).expect("ipam");
    PodNetwork::new(config(pod_cidr), nl, ipam).expect("pod network")
}

/// The machine's own `ip_forward`, and whether any of our link names shows up in its
/// namespace (they must not).
fn real_host_state() -> (String, bool) {
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("sysctl");
    let links = ip(&["-o", "link", "show"]);
    let ours = ["vskf", "skft0", "skfup"].iter().any(|n| links.contains(n));
    (forward, ours)
}

#[test]
fn pods_on_two_nodes_talk_through_bridge_and_host_routes() {
    let before = real_host_state();
    assert!(!before.1, "links named like ours already in the host namespace");
    let mut nss = Namespaces::new();
    let host = nss.add("h");
    let node = nss.add("n");
    let p1 = nss.add("p1");
    let p2 = nss.add("p2");
    let p3 = nss.add("p3");
    let tmp = tempfile::tempdir().expect("tempdir");

    // Node 1 (namespace `host`): two pods.
    let mut net1 = network(&host, "10.244.1.0/24", &tmp.path().join("ipam1"));
    net1.init_host().expect("init node 1");
    let a = net1.setup("pod-a", &path(&p1)).expect("setup a");
    let b = net1.setup("pod-b", &path(&p2)).expect("setup b");
    assert_ne!(a.ip, b.ip);
    assert!(ip(&["-n", &p1, "-4", "-o", "addr", "show", "dev", "eth0"]).contains(&format!("{}/24", a.ip)));
    assert!(ip(&["-n", &p2, "-4", "-o", "addr", "show", "dev", "eth0"]).contains(&format!("{}/24", b.ip)));
    assert!(ip(&["-n", &p1, "route", "show", "default"]).contains("via 10.244.1.1"));
    assert!(ip(&["-n", &host, "-o", "link", "show", &a.host_veth]).contains("master skft0"));
    assert_eq!(
        ip(&["netns", "exec", &host, "cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );

    assert!(tcp_reachable(&p1, &p2, b.ip), "pod a -> pod b");
    assert!(tcp_reachable(&p2, &p1, a.ip), "pod b -> pod a");
    assert!(tcp_reachable(&p1, &host, a.gateway), "pod a -> gateway");

    // Node 2 (namespace `node`), linked to node 1 over 192.168.251.0/30, with one pod.
    ip(&[
        "-n", &host, "link", "add", "skfup0", "type", "veth", "peer", "name", "skfup1", "netns", &node,
    ]);
    ip(&["-n", &host, "addr", "add", "192.168.251.1/30", "dev", "skfup0"]);
    ip(&["-n", &node, "addr", "add", "192.168.251.2/30", "dev", "skfup1"]);
    ip(&["-n", &host, "link", "set", "skfup0", "up"]);
    ip(&["-n", &node, "link", "set", "skfup1", "up"]);
    let mut net2 = network(&node, "10.244.2.0/24", &tmp.path().join("ipam2"));
    net2.init_host().expect("init node 2");
    let c = net2.setup("pod-c", &path(&p3)).expect("setup c");

    assert!(
        !tcp_reachable(&p1, &p3, c.ip),
        "without host routes node 2's pods must be unreachable"
    );

    let node1_addr = Ipv4Addr::new(192, 168, 251, 1);
    let node2_addr = Ipv4Addr::new(192, 168, 251, 2);
    let peers1 = [(net("10.244.2.0/24"), node2_addr), (net("10.244.1.0/24"), node1_addr)];
    let peers2 = [(net("10.244.1.0/24"), node1_addr)];
    let plan = net1.sync_routes(&peers1).expect("sync node 1");
    assert_eq!(plan.replace.len(), 1, "only the other node's CIDR: {plan:?}");
    net2.sync_routes(&peers2).expect("sync node 2");
    assert!(net1.sync_routes(&peers1).expect("resync").is_empty());

    let route = ip(&["-n", &host, "route", "show", "10.244.2.0/24"]);
    assert!(route.contains("via 192.168.251.2"), "{route}");
    assert!(route.contains("proto 91"), "{route}");
    let blackhole = ip(&["-n", &host, "route", "show", "10.244.0.0/16"]);
    assert!(
        blackhole.contains("blackhole") && blackhole.contains("proto 91"),
        "{blackhole}"
    );

    assert!(tcp_reachable(&p1, &p3, c.ip), "pod a (node 1) -> pod c (node 2)");
    assert!(tcp_reachable(&p3, &p2, b.ip), "pod c (node 2) -> pod b (node 1)");

    // An unknown node's pod CIDR hits the blackhole instead of the default route: the local
    // lookup fails at once rather than timing out.
    let err = in_ns(&host, || {
        TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::new(10, 244, 7, 9), 80)),
            Duration::from_secs(2),
        )
    })
    .expect_err("blackholed");
    assert_ne!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");

    // A route somebody else made survives a resync that drops ours.
    ip(&["-n", &host, "route", "add", "10.244.9.0/24", "via", "192.168.251.2"]);
    let plan = net1.sync_routes(&[]).expect("sync to nothing");
    assert_eq!(plan.delete.len(), 1, "{plan:?}");
    assert_eq!(ip(&["-n", &host, "route", "show", "10.244.2.0/24"]).trim(), "");
    assert!(ip(&["-n", &host, "route", "show", "10.244.9.0/24"]).contains("via 192.168.251.2"));
    assert!(ip(&["-n", &host, "route", "show", "10.244.0.0/16"]).contains("blackhole"));

    // Nothing leaked into the machine's own namespace.
    assert_eq!(real_host_state(), before);
}

#[test]
fn crash_recovery_teardown_and_gc() {
    let before = real_host_state();
    assert!(!before.1, "links named like ours already in the host namespace");
    let mut nss = Namespaces::new();
    let host = nss.add("h2");
    let p1 = nss.add("q1");
    let p2 = nss.add("q2");
    let tmp = tempfile::tempdir().expect("tempdir");
    let ipam_dir = tmp.path().join("ipam");

    let first = {
        let mut net = network(&host, "10.244.1.0/24", &ipam_dir);
        net.init_host().expect("init");
        net.setup("pod-a", &path(&p1)).expect("setup")
    };
    assert_eq!(first.host_veth, host_veth_name("pod-a"));

    // The agent "crashed" after the veth existed but before the pod side was complete.
    ip(&["-n", &p1, "route", "del", "default"]);
    ip(&["-n", &p1, "addr", "flush", "dev", "eth0"]);
    ip(&["-n", &host, "link", "set", &first.host_veth, "nomaster"]);

    let mut net = network(&host, "10.244.1.0/24", &ipam_dir);
    let again = net.setup("pod-a", &path(&p1)).expect("setup after crash");
    assert_eq!(again, first, "same IP and veth after IPAM reopened");
    assert!(ip(&["-n", &p1, "-4", "-o", "addr", "show", "dev", "eth0"]).contains(&format!("{}/24", first.ip)));
    assert!(
        tcp_reachable(&p1, &host, first.gateway),
        "repaired pod reaches its gateway"
    );

    // The host end deleted outright: setup rebuilds the pair.
    ip(&["-n", &host, "link", "del", &first.host_veth]);
    assert!(!ip_ok(&["-n", &p1, "link", "show", "eth0"]), "peer went with it");
    assert_eq!(net.setup("pod-a", &path(&p1)).expect("rebuild"), first);
    assert!(
        tcp_reachable(&p1, &host, first.gateway),
        "rebuilt pod reaches its gateway"
    );

    // Teardown removes both ends and frees the IP (on disk too).
    assert_eq!(net.teardown("pod-a").expect("teardown"), Some(first.ip));
    assert!(!ip_ok(&["-n", &host, "link", "show", &first.host_veth]));
    assert!(!ip_ok(&["-n", &p1, "link", "show", "eth0"]));
    assert!(!ipam_dir.join(first.ip.to_string()).exists());
    assert_eq!(net.teardown("pod-a").expect("teardown twice"), None);

    // Start-up GC: a pod the agent no longer knows about loses its veth and IP.
    let ghost = net.setup("ghost", &path(&p2)).expect("ghost");
    assert_ne!(ghost.ip, first.ip, "round-robin: the freed IP is not reused at once");
    let mut net = network(&host, "10.244.1.0/24", &ipam_dir);
    let report = net.gc(&HashSet::new()).expect("gc");
    assert_eq!(report.deleted_veths, vec![ghost.host_veth.clone()]);
    assert_eq!(report.released_ips, vec![(ghost.ip, "ghost".to_owned())]);
    assert!(!ip_ok(&["-n", &p2, "link", "show", "eth0"]));
    assert!(net.ipam().owners().is_empty());

    // Entering a namespace that does not exist is an error, not a panic.
    let missing = path(&format!("skf-missing-{}", std::process::id()));
    let err = RtNetlink::in_netns(&missing).expect_err("no such namespace");
    assert!(err.to_string().contains("skf-missing"), "{err}");

    assert_eq!(real_host_state(), before);
}

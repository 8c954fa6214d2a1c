//! `PodNetwork`: wires pods to the node bridge and keeps host-gw routes, over a [`Netlink`].
//!
//! Every step checks before it acts, so `setup` run again after a crash at any point finishes
//! the job instead of failing on what the first run left behind (the unit tests crash it at
//! every step). The IP is reserved first: a failed setup keeps its address for the retry, and
//! `teardown` or start-up `gc` frees it if the pod is gone for good.
//!
//! Methods take `&mut self`; the agent keeps one `PodNetwork` behind a mutex and calls it from
//! `spawn_blocking`, which also serialises IPAM.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::ipam::{Ipam, IpamStore};
use super::ipnet::Ipv4Net;
use super::netlink::{Link, LinkKind, Netlink, NetlinkError, Route, MAX_IFNAME_LEN};
use super::routes::{desired_routes, plan_routes, RoutePlan};
use super::NetworkError;

/// Name of the pod's interface inside its namespace.
pub const POD_IFNAME: &str = "eth0";

/// Prefix of the host-side veth names, so `gc` can tell ours from anyone else's.
pub const HOST_VETH_PREFIX: &str = "vskf";

/// Static settings of a node's pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkConfig {
    /// Bridge the pods' host veths are attached to ("skiff0").
    pub bridge: String,
    /// The node's `spec.podCIDR`; its first host address is the gateway, set on the bridge.
    pub pod_cidr: Ipv4Net,
    /// The whole cluster's pod CIDR; blackholed so traffic for pods of unknown nodes is dropped
    /// here instead of leaving by the default route.
    pub cluster_cidr: Option<Ipv4Net>,
    pub mtu: u32,
}

impl PodNetworkConfig {
    /// Defaults: bridge `skiff0`, MTU 1500, no cluster blackhole.
    pub fn new(pod_cidr: Ipv4Net) -> Self {
        Self {
            bridge: "skiff0".into(),
            pod_cidr,
            cluster_cidr: None,
            mtu: 1500,
        }
    }
}

/// What a pod got from `setup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIp {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub host_veth: String,
}

/// What start-up garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deleted_veths: Vec<String>,
    pub released_ips: Vec<(Ipv4Addr, String)>,
}

/// The host-side veth name of a pod: `vskf` + 8 hex digits of SHA-256(pod id), 12 characters,
/// stable across restarts and versions (unlike std's `DefaultHasher`).
pub fn host_veth_name(pod_id: &str) -> String {
    let digest = Sha256::digest(pod_id.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{HOST_VETH_PREFIX}{hex}")
}

/// A node's pod network.
#[derive(Debug)]
pub struct PodNetwork<N, S> {
    config: PodNetworkConfig,
    gateway: Ipv4Net,
    nl: N,
    ipam: Ipam<S>,
}

impl<N: Netlink, S: IpamStore> PodNetwork<N, S> {
    /// `nl` works on the namespace the node's bridge lives in; `ipam` must manage
    /// `config.pod_cidr`.
    pub fn new(config: PodNetworkConfig, nl: N, ipam: Ipam<S>) -> Result<Self, NetworkError> {
        let cidr = config.pod_cidr.trunc();
        if ipam.cidr() != cidr {
            return Err(NetworkError::Config {
                reason: format!("IPAM manages {} but the pod CIDR is {cidr}", ipam.cidr()),
            });
        }
        if config.bridge.is_empty() || config.bridge.len() > MAX_IFNAME_LEN {
            return Err(NetworkError::Config {
                reason: format!("bridge name {:?} is not a valid interface name", config.bridge),
            });
        }
        let gateway =
            Ipv4Net::new(ipam.gateway(), cidr.prefix()).map_err(|e| NetworkError::Config { reason: e.to_string() })?;
        Ok(Self {
            config,
            gateway,
            nl,
            ipam,
        })
    }

    pub fn config(&self) -> &PodNetworkConfig {
        &self.config
    }

    /// The gateway address of the pods (on the bridge).
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway.addr()
    }

    pub fn ipam(&self) -> &Ipam<S> {
        &self.ipam
    }

    /// Node start-up: IP forwarding on, bridge present, cluster blackhole in place.
    pub fn init_host(&mut self) -> Result<u32, NetworkError> {
        self.nl.enable_ip_forward()?;
        let index = self.ensure_bridge()?;
        if let Some(cluster) = self.config.cluster_cidr {
            self.ensure_blackhole(cluster)?;
        }
        Ok(index)
    }

    /// Creates the bridge if absent, gives it the gateway address, brings it up; returns its
    /// index.
    pub fn ensure_bridge(&mut self) -> Result<u32, NetworkError> {
        let name = self.config.bridge.clone();
        let link = match self.nl.link(&name)? {
            Some(link) => link,
            None => {
                self.nl.create_bridge(&name, self.config.mtu)?;
                self.nl
                    .link(&name)?
                    .ok_or_else(|| NetlinkError::NoSuchLink { name: name.clone() })?
            }
        };
        if link.kind != LinkKind::Bridge {
            return Err(NetworkError::WrongKind {
                name,
                expected: "bridge",
                found: link.kind,
            });
        }
        if !self.nl.addresses(&name)?.contains(&self.gateway) {
            self.nl.add_address(&name, self.gateway)?;
        }
        if !link.up {
            self.nl.set_up(&name)?;
        }
        Ok(link.index)
    }

    /// Installs the blackhole route for the cluster CIDR and remembers it, so `sync_routes`
    /// keeps it.
    pub fn ensure_blackhole(&mut self, cluster_cidr: Ipv4Net) -> Result<(), NetworkError> {
        self.config.cluster_cidr = Some(cluster_cidr);
        let route = Route::blackhole(cluster_cidr);
        if !self.nl.list_routes()?.contains(&route) {
            self.nl.replace_route(&route)?;
        }
        Ok(())
    }

    /// Connects the pod whose network namespace is bind-mounted at `netns_path`.
    pub fn setup(&mut self, pod_id: &str, netns_path: &Path) -> Result<PodIp, NetworkError> {
        let ip = self.ipam.allocate(pod_id)?;
        let bridge = self.ensure_bridge()?;
        let host_veth = host_veth_name(pod_id);
        let mut pod_nl = self.nl.open_netns(netns_path)?;

        self.ensure_veth(&mut pod_nl, &host_veth, netns_path)?;
        let host = self.nl.link(&host_veth)?.ok_or_else(|| NetlinkError::NoSuchLink {
            name: host_veth.clone(),
        })?;
        if host.master != Some(bridge) {
            self.nl.set_master(&host_veth, bridge)?;
        }
        if !host.up {
            self.nl.set_up(&host_veth)?;
        }

        let prefix = self.gateway.prefix();
        let addr = Ipv4Net::new(ip, prefix).map_err(|e| NetworkError::Config { reason: e.to_string() })?;
        configure_pod_side(&mut pod_nl, addr, self.gateway.addr())?;
        Ok(PodIp {
            ip,
            prefix,
            gateway: self.gateway.addr(),
            host_veth,
        })
    }

    /// Makes sure `host_veth` here and `eth0` in the pod are the two ends of one veth pair,
    /// replacing whatever half-built or foreign pieces are in the way.
    fn ensure_veth(&mut self, pod_nl: &mut N, host_veth: &str, netns_path: &Path) -> Result<(), NetworkError> {
        let host = self.nl.link(host_veth)?;
        let pod = pod_nl.link(POD_IFNAME)?;
        if let (Some(host), Some(pod)) = (&host, &pod) {
            if is_pair(host, pod) {
                return Ok(());
            }
        }
        if host.is_some() {
            self.nl.delete_link(host_veth)?;
        }
        // Deleting the host end may already have removed a paired eth0.
        if pod_nl.link(POD_IFNAME)?.is_some() {
            pod_nl.delete_link(POD_IFNAME)?;
        }
        self.nl
            .create_veth(host_veth, POD_IFNAME, netns_path, self.config.mtu)?;
        Ok(())
    }

    /// Disconnects a pod and frees its IP; pieces already gone are fine. Returns the freed IP.
    pub fn teardown(&mut self, pod_id: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        // Deleting the host end deletes the pod's eth0 with it, wherever that namespace is.
        self.nl.delete_link(&host_veth_name(pod_id))?;
        Ok(self.ipam.release(pod_id)?)
    }

    /// Start-up garbage collection: deletes our host veths and frees IPs of pods not in `live`.
    pub fn gc(&mut self, live: &HashSet<String>) -> Result<GcReport, NetworkError> {
        let keep: HashSet<String> = live.iter().map(|p| host_veth_name(p)).collect();
        let mut report = GcReport::default();
        for link in self.nl.links()? {
            if link.kind == LinkKind::Veth
                && link.name.starts_with(HOST_VETH_PREFIX)
                && !keep.contains(&link.name)
                && self.nl.delete_link(&link.name)?
            {
                report.deleted_veths.push(link.name);
            }
        }
        report.released_ips = self.ipam.release_all_except(live)?;
        Ok(report)
    }

    /// Makes the main table hold exactly our routes: each other node's pod CIDR via that node's
    /// address (`peers`), plus the cluster blackhole. Routes of other programs are never
    /// touched. Every change is attempted even if one fails; the first failure is returned.
    pub fn sync_routes(&mut self, peers: &[(Ipv4Net, Ipv4Addr)]) -> Result<RoutePlan, NetworkError> {
        let desired = desired_routes(self.config.pod_cidr, self.config.cluster_cidr, peers);
        let current = self.nl.list_routes()?;
        let plan = plan_routes(&desired, &current);
        let mut failures = Vec::new();
        for route in &plan.delete {
            if let Err(e) = self.nl.delete_route(route) {
                failures.push(e);
            }
        }
        for route in &plan.replace {
            if let Err(e) = self.nl.replace_route(route) {
                failures.push(e);
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(plan),
            Some(first) => Err(NetworkError::RouteSync { failed, first }),
        }
    }
}

/// True if `host` (in the host namespace) and `pod` (in the pod's) are the ends of one veth.
/// `IFLA_LINK` of a veth names its peer's index in the peer's namespace.
fn is_pair(host: &Link, pod: &Link) -> bool {
    host.kind == LinkKind::Veth
        && pod.kind == LinkKind::Veth
        && host.peer_index == Some(pod.index)
        && pod.peer_index == Some(host.index)
}

/// Inside the pod: `lo` up, `eth0` with exactly `addr`, up, default route via the gateway.
fn configure_pod_side<N: Netlink>(pod_nl: &mut N, addr: Ipv4Net, gateway: Ipv4Addr) -> Result<(), NetworkError> {
    if pod_nl.link("lo")?.is_some_and(|lo| !lo.up) {
        pod_nl.set_up("lo")?;
    }
    for stale in pod_nl.addresses(POD_IFNAME)? {
        if stale != addr {
            pod_nl.delete_address(POD_IFNAME, stale)?;
        }
    }
    if !pod_nl.addresses(POD_IFNAME)?.contains(&addr) {
        pod_nl.add_address(POD_IFNAME, addr)?;
    }
    let eth0 = pod_nl.link(POD_IFNAME)?.ok_or_else(|| NetlinkError::NoSuchLink {
        name: POD_IFNAME.into(),
    })?;
    if !eth0.up {
        pod_nl.set_up(POD_IFNAME)?;
    }
    let default = Route::via(Ipv4Net::default_route(), gateway);
    if !pod_nl.list_routes()?.contains(&default) {
        pod_nl.replace_route(&default)?;
    }
    Ok(())
}

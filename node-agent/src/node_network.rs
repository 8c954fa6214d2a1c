//! The node's side of the pod network, fed by the Node objects: this node's `spec.podCIDR`
//! configures the bridge and the IP allocator (the node IPAM controller assigns it shortly
//! after registration), and the other nodes' pod CIDRs become host-gw routes via their
//! InternalIP. Netlink calls are quick but blocking: they run on tokio's blocking pool.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;

use crate::network::{DirStore, Ipam, Ipv4Net, PodNetwork, PodNetworkConfig, RtNetlink};
use crate::AgentError;

type Net = PodNetwork<RtNetlink, DirStore>;

/// How long (in 100 ms steps) a pod's network setup waits for the node's podCIDR.
const CONFIGURE_WAIT_STEPS: u32 = 100;

pub struct NodeNetwork {
    dir: PathBuf,
    /// Pod directories: the pods that may own an address or a veth (the rest are collected).
    pods_dir: PathBuf,
    cluster_cidr: Ipv4Net,
    inner: Arc<Mutex<Option<Net>>>,
}

fn node_ip(n: &Node) -> Option<Ipv4Addr> {
    n.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()
}

fn pod_cidr(n: &Node) -> Option<Ipv4Net> {
    n.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()
}

impl NodeNetwork {
    pub fn new(dir: PathBuf, pods_dir: PathBuf, cluster_cidr: &str) -> Result<NodeNetwork, AgentError> {
        let cluster_cidr = cluster_cidr
            .parse()
            .map_err(|e| AgentError::Config(format!("--cluster-cidr {cluster_cidr}: {e}")))?;
        Ok(NodeNetwork {
            dir,
            pods_dir,
            cluster_cidr,
            inner: Arc::new(Mutex::new(None)),
        })
    }

    fn open(dir: &Path, cidr: Ipv4Net, cluster: Ipv4Net) -> Result<Net, String> {
        let store_dir = dir.join("ipam").join(cidr.to_string().replace('/', "_"));
        let store = DirStore::open(store_dir).map_err(|e| e.to_string())?;
        let ipam = Ipam::open(cidr, store).map_err(|e| e.to_string())?;
        let mut config = PodNetworkConfig::new(cidr);
        config.cluster_cidr = Some(cluster);
        let nl = RtNetlink::new().map_err(|e| e.to_string())?;
        let mut net = PodNetwork::new(config, nl, ipam).map_err(|e| e.to_string())?;
        net.init_host().map_err(|e| e.to_string())?;
        Ok(net)
    }

    /// Applies the current set of Nodes (called after every change).
    pub async fn apply_nodes(&self, me: &str, nodes: &BTreeMap<String, Node>) {
        let mine = nodes.get(me).and_then(pod_cidr);
        let peers: Vec<(Ipv4Net, Ipv4Addr)> = nodes
            .iter()
            .filter(|(name, _)| name.as_str() != me)
            .filter_map(|(_, n)| Some((pod_cidr(n)?, node_ip(n)?)))
            .collect();
        let (inner, dir, cluster, pods_dir) = (
            self.inner.clone(),
            self.dir.clone(),
            self.cluster_cidr,
            self.pods_dir.clone(),
        );
        let done = tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            match (guard.as_ref(), mine) {
                (None, Some(cidr)) => match NodeNetwork::open(&dir, cidr, cluster) {
                    Ok(mut net) => {
                        tracing::info!(pod_cidr = %cidr, "pod network configured");
                        // Addresses and veths of pods deleted while the agent was down.
                        let live: HashSet<String> = std::fs::read_dir(&pods_dir)
                            .map(|d| {
                                d.flatten()
                                    .map(|e| e.file_name().to_string_lossy().into_owned())
                                    .collect()
                            })
                            .unwrap_or_default();
                        match net.gc(&live) {
                            Ok(r) if !r.released_ips.is_empty() || !r.deleted_veths.is_empty() => tracing::info!(
                                ips = r.released_ips.len(),
                                veths = r.deleted_veths.len(),
                                "collected the network leftovers of deleted pods"
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "collecting network leftovers"),
                        }
                        *guard = Some(net);
                    }
                    Err(e) => tracing::warn!(error = %e, "configuring the pod network"),
                },
                (Some(net), Some(cidr)) if net.config().pod_cidr != cidr => {
                    tracing::warn!(configured = %net.config().pod_cidr, node = %cidr, "the node's podCIDR changed; keeping the configured one until restart");
                }
                _ => {}
            }
            if let Some(net) = guard.as_mut() {
                if let Err(e) = net.sync_routes(&peers) {
                    tracing::warn!(error = %e, "syncing routes to other nodes");
                }
            }
        });
        let _ = done.await;
    }

    /// Connects a pod's network namespace; its IP. Waits a while for the node's podCIDR: at
    /// start-up the pods' list can arrive before the Nodes' (a restarted agent's workers would
    /// otherwise fail the sandbox of pods whose containers they just adopted).
    pub async fn setup(&self, uid: &str, netns: &Path) -> Result<Ipv4Addr, String> {
        for _ in 0..CONFIGURE_WAIT_STEPS {
            if self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (inner, uid, netns) = (self.inner.clone(), uid.to_string(), netns.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            let net = guard
                .as_mut()
                .ok_or("the node has no podCIDR yet (waiting for the node IPAM controller)")?;
            net.setup(&uid, &netns)
                .map(|ip| ip.ip)
                .map_err(|e| format!("setting up the pod network: {e}"))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    pub async fn teardown(&self, uid: &str) {
        let (inner, uid) = (self.inner.clone(), uid.to_string());
        let _ = tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(net) = guard.as_mut() {
                if let Err(e) = net.teardown(&uid) {
                    tracing::warn!(%uid, error = %e, "tearing down the pod network");
                }
            }
        })
        .await;
    }
}

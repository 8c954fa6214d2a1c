//! Hollow mode (`skiff agent --hollow N`): N simulated nodes in one process, for scale tests of
//! the control plane in the manner of Kubernetes' kubemark. Each node registers and renews its
//! Lease exactly as a real agent does (`node`); a pod bound to one goes Running at once, its
//! status computed by the real agent's code (`pod::status`) from containers that "started" the
//! moment the pod arrived (init containers completed); a pod being deleted is confirmed at once.
//! Nothing runs: no runtime, no images, no network. Pod IPs come from each node's podCIDR.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::List;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::kube::{KubeClient, Kubeconfig};
use crate::node::{self, NodeConfig};
use crate::pod::record::{Record, State, Terminated};
use crate::pod::status::{pod_status, Observed};
use crate::AgentError;

/// Requests in flight at once (registrations, status writes, deletions).
const CONCURRENCY: usize = 16;

/// What `skiff agent --hollow N` is given.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    /// Nodes are named `PREFIX-0` .. `PREFIX-(N-1)`.
    pub prefix: String,
    pub count: u32,
    pub kubeconfig: PathBuf,
    pub servers: Vec<String>,
    /// Every hollow node's InternalIP (and its pods' hostIP).
    pub address: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub max_pods: u32,
    /// Each node's Lease duration in seconds (renewed every quarter of it).
    pub lease_duration_seconds: i32,
    /// For the capacity the nodes report (the disk it is on).
    pub data_dir: PathBuf,
}

pub fn node_names(prefix: &str, count: u32) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Registers the nodes, keeps their Leases, and answers for their pods until cancelled.
pub async fn run(cfg: HollowConfig, stop: CancellationToken) -> Result<(), AgentError> {
    if cfg.count == 0 {
        return Err(AgentError::Config("--hollow needs at least one node".into()));
    }
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| AgentError::Io {
        path: cfg.data_dir.clone(),
        source: e,
    })?;
    let kubeconfig = Kubeconfig::load(&cfg.kubeconfig)?;
    let client = Arc::new(KubeClient::new(&kubeconfig, &cfg.servers)?);
    let names = node_names(&cfg.prefix, cfg.count);
    let mut labels = cfg.labels.clone();
    labels.insert("skiff.io/hollow".into(), "true".into());
    let configs: Vec<NodeConfig> = names
        .iter()
        .map(|name| NodeConfig {
            name: name.clone(),
            address: cfg.address,
            labels: labels.clone(),
            max_pods: cfg.max_pods,
            data_dir: cfg.data_dir.clone(),
            agent_port: 0,
            lease_duration_seconds: cfg.lease_duration_seconds,
        })
        .collect();
    let registered: Vec<Result<Node, _>> = futures::stream::iter(configs.iter())
        .map(|c| node::register(&client, c))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for (c, r) in configs.iter().zip(registered) {
        r.map_err(AgentError::Kube)?;
        tokio::spawn(node::heartbeat(client.clone(), c.clone(), stop.clone()));
    }
    tracing::info!(nodes = cfg.count, first = %names[0], "hollow nodes registered");
    let mut pods = HollowPods::new(client.clone(), names.into_iter().collect(), cfg.address.to_string());
    loop {
        // List, then watch from the list's revision; a broken watch lists again.
        let list: List<Pod> = match client.get("/api/v1/pods").await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing pods");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        for p in list.items {
            pods.seen(p).await;
        }
        let mut events = match client.watch::<Pod>("/api/v1/pods", &rv).await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, "watching pods");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                ev = events.recv() => {
                    let Some(Ok(ev)) = ev else { break };
                    match ev.kind.as_str() {
                        "BOOKMARK" => {}
                        "DELETED" => pods.forget(&ev.object),
                        _ => pods.seen(ev.object).await,
                    }
                }
            }
        }
    }
}

/// The pods of the hollow nodes: which were reported Running, which deletions confirmed.
struct HollowPods {
    client: Arc<KubeClient>,
    nodes: HashSet<String>,
    host_ip: String,
    /// Pod uids whose Running status was written (or found written).
    reported: Arc<parking_lot::Mutex<HashSet<String>>>,
    confirmed: HashSet<String>,
    /// Per node: its podCIDR (network address, size) and the next host number handed out.
    ips: HashMap<String, ((Ipv4Addr, u32), u32)>,
    limit: Arc<Semaphore>,
}

impl HollowPods {
    fn new(client: Arc<KubeClient>, nodes: HashSet<String>, host_ip: String) -> HollowPods {
        HollowPods {
            client,
            nodes,
            host_ip,
            reported: Default::default(),
            confirmed: HashSet::new(),
            ips: HashMap::new(),
            limit: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }

    fn forget(&mut self, pod: &Pod) {
        if let Some(uid) = &pod.metadata.uid {
            self.reported.lock().remove(uid);
            self.confirmed.remove(uid);
        }
    }

    async fn seen(&mut self, pod: Pod) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return;
        };
        if !self.nodes.contains(&node) {
            return;
        }
        let Some(uid) = pod.metadata.uid.clone() else { return };
        let (ns, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        if pod.metadata.deletion_timestamp.is_some() {
            if !self.confirmed.insert(uid.clone()) {
                return;
            }
            let client = self.client.clone();
            let permit = self.limit.clone().acquire_owned().await;
            tokio::spawn(async move {
                let _permit = permit;
                let body = json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
                match client
                    .delete(&format!("/api/v1/namespaces/{ns}/pods/{name}"), &body)
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() || e.is_conflict() => {}
                    Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "confirming deletion"),
                }
            });
            return;
        }
        // Written (or found written) once per pod; a failed write is forgotten, to be retried.
        if !self.reported.lock().insert(uid.clone()) || already_running(&pod) {
            return;
        }
        let pod_ip = self.next_ip(&node).await.unwrap_or_else(|| self.host_ip.clone());
        let status = running_status(&pod, &uid, pod_ip, &self.host_ip);
        let client = self.client.clone();
        let reported = self.reported.clone();
        let permit = self.limit.clone().acquire_owned().await;
        tokio::spawn(async move {
            let _permit = permit;
            let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
            if let Err(e) = client.merge_patch::<_, Pod>(&path, &json!({ "status": status })).await {
                // Tried again when the pod is seen next (its next event or the next list).
                reported.lock().remove(&uid);
                if !e.is_not_found() {
                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "posting status");
                }
            }
        });
    }

    /// The next address in the node's podCIDR (from .2 on, as the real agent's IPAM leaves .1 to
    /// the bridge); `None` while the node has none.
    async fn next_ip(&mut self, node: &str) -> Option<String> {
        if !self.ips.contains_key(node) {
            let n: Node = self.client.get(&format!("/api/v1/nodes/{node}")).await.ok()?;
            let base = n.spec.and_then(|s| s.pod_cidr).and_then(|c| network_of(&c))?;
            self.ips.insert(node.to_string(), (base, 2));
        }
        let (base, next) = self.ips.get_mut(node)?;
        let (net, size) = *base;
        let host = *next;
        // Wraps within the range: a simulation, not an allocator (a /24 holds 253 at once).
        *next = if host + 2 >= size { 2 } else { host + 1 };
        Some(Ipv4Addr::from(u32::from(net) + host).to_string())
    }
}

/// A CIDR's network address and its number of addresses ("10.244.3.0/24" -> 10.244.3.0, 256).
fn network_of(cidr: &str) -> Option<(Ipv4Addr, u32)> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| (8..=30).contains(l))?;
    let mask = u32::MAX << (32 - len);
    Some((Ipv4Addr::from(u32::from(addr) & mask), 1u32 << (32 - len)))
}

/// Whether the pod's status already shows it running on its node (a restarted hollow agent
/// leaves it be).
fn already_running(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running") && s.container_statuses.as_ref().is_some_and(|c| !c.is_empty())
    })
}

/// The status a real agent would post for this pod with every container started now (init
/// containers run and exited 0 first) and ready.
fn running_status(pod: &Pod, uid: &str, pod_ip: String, host_ip: &str) -> k8s_openapi::api::core::v1::PodStatus {
    let now = Utc::now();
    let spec = pod.spec.as_ref();
    let id = |name: &str| format!("hollow-{uid}_{name}");
    let mut records = Vec::new();
    for c in spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten() {
        let mut r = Record::new(&c.name, c.image.as_deref().unwrap_or(""), true);
        r.state = State::Terminated(Terminated {
            container_id: Some(id(&c.name)),
            exit_code: 0,
            signal: None,
            reason: "Completed".into(),
            message: None,
            started_at: Some(now),
            finished_at: now,
        });
        records.push(r);
    }
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        let mut r = Record::new(&c.name, c.image.as_deref().unwrap_or(""), false);
        r.state = State::Running {
            container_id: id(&c.name),
            started_at: now,
        };
        r.ready = true;
        records.push(r);
    }
    pod_status(&Observed {
        pod,
        sandbox_ready: true,
        records: &records,
        pod_ip: Some(pod_ip),
        host_ip: host_ip.to_string(),
        start_time: now,
        now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(init: &[&str], main: &[&str]) -> Pod {
        let c = |n: &&str| json!({"name": n, "image": "busybox"});
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"nodeName": "hollow-0",
                     "initContainers": init.iter().map(c).collect::<Vec<_>>(),
                     "containers": main.iter().map(c).collect::<Vec<_>>()},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn a_hollow_pod_is_running_and_ready_as_a_real_agent_reports_it() {
        let p = pod(&["setup"], &["web", "side"]);
        let st = running_status(&p, "u1", "10.244.3.2".into(), "10.0.0.1");
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.3.2"));
        assert_eq!(st.host_ip.as_deref(), Some("10.0.0.1"));
        let ready = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.clone());
        assert_eq!(ready.as_deref(), Some("True"));
        let cs = st.container_statuses.unwrap_or_default();
        assert_eq!(cs.len(), 2);
        assert!(cs
            .iter()
            .all(|c| c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some())));
        assert_eq!(cs[0].container_id.as_deref(), Some("skiff://hollow-u1_web"));
        let init = st.init_container_statuses.unwrap_or_default();
        assert_eq!(
            init.first()
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.terminated.as_ref())
                .map(|t| (t.exit_code, t.reason.clone())),
            Some((0, Some("Completed".into())))
        );
        assert!(already_running(&Pod {
            status: Some(running_status(&p, "u1", "10.244.3.2".into(), "10.0.0.1")),
            ..p.clone()
        }));
        assert!(!already_running(&p));
    }

    #[test]
    fn pod_ips_come_from_the_node_cidr() {
        assert_eq!(network_of("10.244.3.0/24"), Some((Ipv4Addr::new(10, 244, 3, 0), 256)));
        assert_eq!(network_of("10.244.3.77/24"), Some((Ipv4Addr::new(10, 244, 3, 0), 256)));
        assert_eq!(network_of("10.244.3.0/31"), None);
        assert_eq!(network_of("nonsense"), None);
        assert_eq!(node_names("hollow", 3), vec!["hollow-0", "hollow-1", "hollow-2"]);
    }
}

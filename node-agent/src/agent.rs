//! `skiff agent`: registers the node, keeps its Lease, follows the pods bound to it (and the
//! static manifests), runs one worker per pod, routes container exits to their workers, and
//! keeps the node's pod network and routes in step with the Node objects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::List;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::image::ImageStore;
use crate::kube::{KubeClient, Kubeconfig};
use crate::node::{self, NodeConfig};
use crate::node_network::NodeNetwork;
use crate::pod::{Context, Worker};
use crate::runtime::{rootfs, sandbox, ContainerInfo, RuntimeClient};
use crate::server::{self, ExecSource, LogSource, PodIndex, RunningFn, ServerConfig};
use crate::static_pods;
use crate::AgentError;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Other API servers to fail over to (the kubeconfig names one).
    pub servers: Vec<String>,
    pub static_pods: Option<PathBuf>,
    pub node_ip: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub max_pods: u32,
    /// kubelet's `--node-lease-duration-seconds` (40); the Lease is renewed every quarter of it.
    pub lease_duration_seconds: i32,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub cluster_cidr: String,
    pub insecure_registries: Vec<String>,
    /// This binary (`skiff agent-shim` is the runtime shim).
    pub exe: PathBuf,
    /// Where the agent server (container logs for the API server) listens; `None`: nowhere.
    pub listen_kubelet: Option<std::net::SocketAddr>,
}

struct Handle {
    pod: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

/// Where container exits go: the worker of the container's pod. Exits nobody claims yet (a
/// worker about to start) wait in `unrouted` and are handed to the worker when it starts.
#[derive(Default)]
struct ExitRoutes {
    routes: HashMap<String, mpsc::Sender<ContainerInfo>>,
    unrouted: HashMap<String, ContainerInfo>,
}

const MAX_UNROUTED: usize = 4096;

fn pod_uid_of(container_id: &str) -> &str {
    container_id.split('_').next().unwrap_or("")
}

/// Routes exit events to workers, in a task of its own so exits are handled even while the
/// API is unreachable; re-subscribes (starting a new shim if the old one died) when the
/// event stream ends, and then reports the exits it may have missed.
async fn route_exits(
    runtime: Arc<RuntimeClient>,
    routes: Arc<parking_lot::Mutex<ExitRoutes>>,
    mut exits: mpsc::Receiver<ContainerInfo>,
    stop: CancellationToken,
) {
    loop {
        let info = tokio::select! {
            _ = stop.cancelled() => return,
            i = exits.recv() => i,
        };
        let batch = match info {
            Some(i) => vec![i],
            None => {
                tracing::warn!("lost the runtime shim's event stream; reconnecting");
                loop {
                    if stop.is_cancelled() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Err(e) = runtime.revive().await {
                        tracing::warn!(error = %e, "restarting the runtime shim");
                        continue;
                    }
                    let Ok(rx) = runtime.subscribe().await else { continue };
                    exits = rx;
                    break;
                }
                runtime
                    .list()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.phase == crate::runtime::Phase::Exited)
                    .collect()
            }
        };
        for info in batch {
            let tx = {
                let mut r = routes.lock();
                match r.routes.get(pod_uid_of(&info.id)).cloned() {
                    Some(tx) => tx,
                    None => {
                        if r.unrouted.len() < MAX_UNROUTED {
                            r.unrouted.insert(info.id.clone(), info);
                        }
                        continue;
                    }
                }
            };
            let _ = tx.send(info).await;
        }
    }
}

/// Runs the agent until `stop` is cancelled. Containers keep running when it stops (as with
/// kubelet); the next agent adopts them.
pub async fn run(cfg: AgentConfig, stop: CancellationToken) -> Result<(), AgentError> {
    for d in ["runtime", "images", "pods", "network"] {
        let p = cfg.data_dir.join(d);
        std::fs::create_dir_all(&p).map_err(|e| AgentError::Io {
            path: p.clone(),
            source: e,
        })?;
    }
    let runtime = Arc::new(RuntimeClient::connect(&cfg.data_dir.join("runtime"), &cfg.exe).await?);
    let images = Arc::new(ImageStore::open(&cfg.data_dir.join("images"))?);
    let kubeconfig = Kubeconfig::load(&cfg.kubeconfig)?;
    let client = Arc::new(KubeClient::new(&kubeconfig, &cfg.servers)?);
    let node_cfg = NodeConfig {
        name: cfg.name.clone(),
        address: cfg.node_ip,
        labels: cfg.labels.clone(),
        max_pods: cfg.max_pods,
        data_dir: cfg.data_dir.clone(),
        agent_port: cfg.listen_kubelet.map_or(0, |a| a.port()),
        lease_duration_seconds: cfg.lease_duration_seconds,
    };
    let pods = PodIndex::default();
    if let Some(listen) = cfg.listen_kubelet {
        let ca_pem = kubeconfig.ca_pem.clone().ok_or_else(|| {
            AgentError::Config(
                "the agent server needs the cluster CA in the kubeconfig (or --listen-kubelet off)".into(),
            )
        })?;
        let listing = runtime.clone();
        let running: RunningFn = Arc::new(move |prefix: String| {
            let runtime = listing.clone();
            Box::pin(async move {
                match runtime.list().await {
                    Ok(all) => all
                        .iter()
                        .any(|c| c.id.starts_with(&prefix) && c.phase != crate::runtime::Phase::Exited),
                    // Unknown: the follower keeps going until its client leaves.
                    Err(_) => true,
                }
            })
        });
        let src = LogSource {
            pods: pods.clone(),
            pods_dir: cfg.data_dir.join("pods"),
            running,
            stop: stop.clone(),
        };
        let exec = ExecSource {
            pods: pods.clone(),
            runtime: runtime.clone(),
            stop: stop.clone(),
        };
        let server_cfg = ServerConfig {
            listen,
            node_ip: cfg.node_ip,
            ca_pem,
        };
        server::start(&server_cfg, src, exec).await?;
    }
    loop {
        match node::register(&client, &node_cfg).await {
            Ok(_) => break,
            Err(e) => tracing::warn!(error = %e, "registering the node; retrying"),
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    tracing::info!(node = %cfg.name, "node registered");
    tokio::spawn(node::heartbeat(client.clone(), node_cfg.clone(), stop.clone()));
    let network = Arc::new(NodeNetwork::new(
        cfg.data_dir.join("network"),
        cfg.data_dir.join("pods"),
        &cfg.cluster_cidr,
    )?);
    tokio::spawn(follow_nodes(
        client.clone(),
        network.clone(),
        cfg.name.clone(),
        stop.clone(),
    ));

    let cap = node::capacity(&node_cfg);
    let memory = cap
        .get("memory")
        .and_then(|m| m.trim_end_matches("Ki").parse::<i64>().ok())
        .unwrap_or(0)
        * 1024;
    let cpu_milli = cap.get("cpu").and_then(|c| c.parse::<i64>().ok()).unwrap_or(1) * 1000;
    let node_resources = crate::spec::NodeResources {
        allocatable_cpu_milli: cpu_milli,
        allocatable_memory_bytes: memory,
        memory_capacity_bytes: memory,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        runtime: runtime.clone(),
        images,
        network,
        node_name: cfg.name.clone(),
        node_ip: cfg.node_ip.to_string(),
        pods_dir: cfg.data_dir.join("pods"),
        cluster_dns: cfg.cluster_dns.clone(),
        cluster_domain: cfg.cluster_domain.clone(),
        insecure_registries: cfg.insecure_registries.clone(),
        node_resources,
        ca_pem: kubeconfig
            .ca_pem
            .as_ref()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default(),
    });
    let exits = runtime.subscribe().await?;
    let routes = Arc::new(parking_lot::Mutex::new(ExitRoutes::default()));
    let mut manager = Manager {
        ctx: ctx.clone(),
        workers: HashMap::new(),
        routes: routes.clone(),
        found: group_by_pod(runtime.list().await?),
        pods,
    };
    tokio::spawn(route_exits(runtime.clone(), routes, exits, stop.clone()));
    let mut statics = static_pods::StaticPods::new(cfg.static_pods.clone(), &cfg.name);
    for (uid, pod) in statics.scan() {
        manager.update(&uid, pod, false);
    }
    let selector = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{}", cfg.name);
    let mut first = true;
    loop {
        // List, then watch from the list's revision; a broken watch lists again.
        let list: List<Pod> = match client.get(&selector).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "listing this node's pods");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let rv = list.metadata.resource_version.clone().unwrap_or_default();
        let mut current: HashMap<String, Pod> = HashMap::new();
        for p in list.items.into_iter().filter(|p| !static_pods::is_mirror(p)) {
            if let Some(uid) = p.metadata.uid.clone() {
                current.insert(uid, p);
            }
        }
        manager.reconcile_api(&current);
        if first {
            manager.collect_orphans(&current, &statics.uids()).await;
            first = false;
        }
        let mut events = match client.watch::<Pod>(&selector, &rv).await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, "watching this node's pods");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut tick = tokio::time::interval(static_pods::RESCAN);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                ev = events.recv() => {
                    let Some(ev) = ev else { break };
                    let Ok(ev) = ev else { break };
                    if static_pods::is_mirror(&ev.object) || ev.kind == "BOOKMARK" {
                        continue;
                    }
                    let Some(uid) = ev.object.metadata.uid.clone() else { continue };
                    if ev.kind == "DELETED" {
                        manager.update(&uid, None, true);
                    } else {
                        manager.update(&uid, Some(ev.object), true);
                    }
                }
                _ = tick.tick() => {
                    for (uid, pod) in statics.scan() {
                        manager.update(&uid, pod, false);
                    }
                    statics.sync_mirrors(&client).await;
                    manager.reap();
                }
            }
        }
    }
}

struct Manager {
    ctx: Arc<Context>,
    workers: HashMap<String, Handle>,
    routes: Arc<parking_lot::Mutex<ExitRoutes>>,
    /// Containers found in the runtime at start, by pod uid, handed to their workers.
    found: HashMap<String, Vec<ContainerInfo>>,
    /// Every pod this manager was told of and has not forgotten, for the log endpoint (a
    /// finished pod's logs stay readable until it is deleted).
    pods: PodIndex,
}

fn group_by_pod(all: Vec<ContainerInfo>) -> HashMap<String, Vec<ContainerInfo>> {
    let mut m: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
    for c in all {
        let uid = pod_uid_of(&c.id).to_string();
        m.entry(uid).or_default().push(c);
    }
    m
}

impl Manager {
    fn update(&mut self, uid: &str, pod: Option<Pod>, from_api: bool) {
        match &pod {
            Some(p) => self.pods.set(uid, p),
            None => self.pods.remove_uid(uid),
        }
        if let Some(h) = self.workers.get(uid) {
            if !h.task.is_finished() {
                let _ = h.pod.send(pod);
                return;
            }
            self.workers.remove(uid);
            self.routes.lock().routes.remove(uid);
        }
        let Some(pod) = pod else {
            // Gone without a worker (say, a finished pod force-deleted): its leftovers go now.
            if self.ctx.pods_dir.join(uid).exists() {
                let (ctx, uid) = (self.ctx.clone(), uid.to_string());
                tokio::spawn(async move { cleanup_pod_dir(&ctx, &uid).await });
            }
            return;
        };
        // A pod already finished and cleaned up is not started again.
        if pod.metadata.deletion_timestamp.is_none()
            && matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            )
            && !self.found.contains_key(uid)
        {
            return;
        }
        let (pod_tx, pod_rx) = watch::channel(Some(pod.clone()));
        let (exit_tx, exit_rx) = mpsc::channel(64);
        let mut found = self.found.remove(uid).unwrap_or_default();
        {
            let mut r = self.routes.lock();
            r.routes.insert(uid.to_string(), exit_tx);
            // Exits that arrived before this worker: newer than what the list said.
            let early: Vec<String> = r.unrouted.keys().filter(|id| pod_uid_of(id) == uid).cloned().collect();
            for id in early {
                if let Some(info) = r.unrouted.remove(&id) {
                    found.retain(|c| c.id != info.id);
                    found.push(info);
                }
            }
        }
        let worker = Worker::new(self.ctx.clone(), pod, from_api);
        let task = tokio::spawn(worker.run(pod_rx, exit_rx, found));
        self.workers.insert(uid.to_string(), Handle { pod: pod_tx, task });
    }

    /// After a (re)list: every listed pod to its worker, and workers of pods no longer listed
    /// told their pod is gone.
    fn reconcile_api(&mut self, current: &HashMap<String, Pod>) {
        for (uid, pod) in current {
            self.update(uid, Some(pod.clone()), true);
        }
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|u| !current.contains_key(*u) && !u.starts_with(static_pods::UID_PREFIX))
            .cloned()
            .collect();
        for uid in gone {
            self.update(&uid, None, true);
        }
    }

    fn reap(&mut self) {
        let done: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(u, _)| u.clone())
            .collect();
        let mut r = self.routes.lock();
        for uid in done {
            self.workers.remove(&uid);
            r.routes.remove(&uid);
            self.pods.remove_uid(&uid);
        }
    }

    /// Containers and pod directories of pods that no longer exist (deleted while the agent
    /// was down) are removed, with their network, namespaces and cgroups.
    async fn collect_orphans(&mut self, current: &HashMap<String, Pod>, statics: &HashSet<String>) {
        let mut uids: HashSet<String> = self.found.keys().cloned().collect();
        if let Ok(dirs) = std::fs::read_dir(&self.ctx.pods_dir) {
            uids.extend(dirs.flatten().map(|d| d.file_name().to_string_lossy().into_owned()));
        }
        for uid in uids {
            if current.contains_key(&uid) || statics.contains(&uid) || self.workers.contains_key(&uid) {
                continue;
            }
            tracing::info!(%uid, "removing the leftovers of a deleted pod");
            for c in self.found.remove(&uid).unwrap_or_default() {
                let _ = self.ctx.runtime.delete(&c.id, true).await;
            }
            cleanup_pod_dir(&self.ctx, &uid).await;
        }
    }
}

/// Everything a pod left on the node, from its directory and uid alone.
pub async fn cleanup_pod_dir(ctx: &Context, uid: &str) {
    let dir = ctx.pods_dir.join(uid);
    if let Ok(dirs) = std::fs::read_dir(dir.join("containers")) {
        for d in dirs.flatten() {
            let _ = rootfs::remove(&d.path());
        }
    }
    ctx.teardown_network(uid).await;
    sandbox::unpin(&dir.join("ns"));
    crate::runtime::cgroups::remove_pod(uid);
    let _ = crate::volumes::cleanup(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Follows all Nodes: this node's podCIDR configures the pod network, the others' podCIDRs and
/// addresses become routes (host-gw).
async fn follow_nodes(client: Arc<KubeClient>, network: Arc<NodeNetwork>, me: String, stop: CancellationToken) {
    loop {
        let list: Result<List<Node>, _> = client.get("/api/v1/nodes").await;
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let rv = match list {
            Ok(l) => {
                for n in l.items {
                    nodes.insert(n.metadata.name.clone().unwrap_or_default(), n);
                }
                l.metadata.resource_version.unwrap_or_default()
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing nodes");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        network.apply_nodes(&me, &nodes).await;
        let Ok(mut events) = client.watch::<Node>("/api/v1/nodes", &rv).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                ev = events.recv() => {
                    let Some(Ok(ev)) = ev else { break };
                    let name = ev.object.metadata.name.clone().unwrap_or_default();
                    match ev.kind.as_str() {
                        "DELETED" => { nodes.remove(&name); }
                        "BOOKMARK" => continue,
                        _ => { nodes.insert(name, ev.object); }
                    }
                    network.apply_nodes(&me, &nodes).await;
                }
            }
        }
    }
}

/// The data directory's path for a subsystem (for `skiff image` commands sharing the store).
pub fn images_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("images")
}

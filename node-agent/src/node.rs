//! The agent's Node: registration with the host's capacity and facts, the heartbeat Lease in
//! kube-node-lease (renewed every 10 s), and conditions posted when they change.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::kube::{KubeClient, KubeError};

/// How long the node's Lease is valid (kubelet's `nodeLeaseDurationSeconds` default); it is
/// renewed every quarter of that, as kubelet does (10 s).
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Conditions are re-posted at least this often even when unchanged.
const STATUS_REFRESH: Duration = Duration::from_secs(60);

/// What the agent tells the API about its node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub address: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub max_pods: u32,
    pub data_dir: std::path::PathBuf,
    pub agent_port: u16,
    /// The Lease's duration in seconds; renewed every quarter of it.
    pub lease_duration_seconds: i32,
}

impl NodeConfig {
    fn lease_renew(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lease_duration_seconds.max(1)).unwrap_or(1) * 250)
    }
}

/// Host capacity as the Node reports it (quantities as strings).
pub fn capacity(cfg: &NodeConfig) -> BTreeMap<String, String> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_kib = meminfo("MemTotal").unwrap_or(0);
    let storage = nix::sys::statvfs::statvfs(&cfg.data_dir)
        .map(|s| s.blocks() * s.fragment_size())
        .unwrap_or(0);
    BTreeMap::from([
        ("cpu".to_string(), cpus.to_string()),
        ("memory".to_string(), format!("{mem_kib}Ki")),
        ("pods".to_string(), cfg.max_pods.to_string()),
        ("ephemeral-storage".to_string(), storage.to_string()),
    ])
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The pressure conditions from the host's state: memory below 100Mi available, the data
/// directory's filesystem below 10% free, or more than 90% of pid_max in use.
fn pressures(cfg: &NodeConfig) -> [(&'static str, bool, &'static str, &'static str); 3] {
    let mem = meminfo("MemAvailable").is_some_and(|kib| kib < 100 * 1024);
    let disk = nix::sys::statvfs::statvfs(&cfg.data_dir)
        .is_ok_and(|s| s.blocks() > 0 && s.blocks_available() * 10 < s.blocks());
    let pid_max: u64 = read_trim("/proc/sys/kernel/pid_max").parse().unwrap_or(u64::MAX);
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
                .count() as u64
        })
        .unwrap_or(0);
    let pid = procs * 10 > pid_max * 9;
    [
        (
            "MemoryPressure",
            mem,
            "KubeletHasInsufficientMemory",
            "KubeletHasSufficientMemory",
        ),
        (
            "DiskPressure",
            disk,
            "KubeletHasDiskPressure",
            "KubeletHasNoDiskPressure",
        ),
        (
            "PIDPressure",
            pid,
            "KubeletHasInsufficientPID",
            "KubeletHasSufficientPID",
        ),
    ]
}

/// The conditions as (type, status) pairs, to notice a change.
fn conditions(cfg: &NodeConfig) -> Vec<(String, String, String, String)> {
    let mut v: Vec<(String, String, String, String)> = pressures(cfg)
        .iter()
        .map(|(t, on, yes, no)| {
            let (status, reason) = if *on { ("True", *yes) } else { ("False", *no) };
            (
                t.to_string(),
                status.to_string(),
                reason.to_string(),
                format!("kubelet has {}", reason.trim_start_matches("KubeletHas").to_lowercase()),
            )
        })
        .collect();
    v.push((
        "Ready".into(),
        "True".into(),
        "KubeletReady".into(),
        "kubelet is posting ready status".into(),
    ));
    v
}

fn status(
    cfg: &NodeConfig,
    conds: &[(String, String, String, String)],
    transitions: &BTreeMap<String, String>,
) -> Value {
    let cap = capacity(cfg);
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let uname = nix::sys::utsname::uname().ok();
    let kernel = uname
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "capacity": cap,
        "allocatable": cap,
        "addresses": [
            {"type": "InternalIP", "address": cfg.address.to_string()},
            {"type": "Hostname", "address": cfg.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.agent_port}},
        "nodeInfo": {
            "machineID": read_trim("/etc/machine-id"),
            "systemUUID": read_trim("/sys/class/dmi/id/product_uuid"),
            "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": kernel,
            "osImage": os_image(),
            "containerRuntimeVersion": concat!("skiff://", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": "v1.32.0",
            "kubeProxyVersion": "v1.32.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "conditions": conds.iter().map(|(t, s, reason, message)| json!({
            "type": t, "status": s, "reason": reason, "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": transitions.get(t).cloned().unwrap_or_else(|| now.clone()),
        })).collect::<Vec<_>>(),
    })
}

fn labels(cfg: &NodeConfig) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]);
    l.extend(cfg.labels.clone());
    l
}

/// Creates the Node, or updates an existing one's labels; then posts its status. Returns the
/// Node as stored.
pub async fn register(client: &KubeClient, cfg: &NodeConfig) -> Result<Node, KubeError> {
    let path = format!("/api/v1/nodes/{}", cfg.name);
    let conds = conditions(cfg);
    let st = status(cfg, &conds, &BTreeMap::new());
    if client.get_opt::<Node>(&path).await?.is_none() {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": cfg.name, "labels": labels(cfg)}, "spec": {}, "status": st});
        match client.create::<_, Node>("/api/v1/nodes", &node).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(e),
        }
    } else {
        client
            .merge_patch::<_, Node>(&path, &json!({"metadata": {"labels": labels(cfg)}}))
            .await?;
    }
    client
        .merge_patch::<_, Node>(&format!("{path}/status"), &json!({ "status": st }))
        .await
}

/// Renews the Lease and re-posts conditions until cancelled. Errors are logged and retried:
/// the node goes NotReady on the masters' side if they persist, which is the point.
pub async fn heartbeat(client: Arc<KubeClient>, cfg: NodeConfig, stop: CancellationToken) {
    let mut last: Vec<(String, String, String, String)> = conditions(&cfg);
    // Transition times start at the agent's start and move only on a change.
    let started = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut transitions: BTreeMap<String, String> = last.iter().map(|c| (c.0.clone(), started.clone())).collect();
    let mut last_post = tokio::time::Instant::now();
    loop {
        if let Err(e) = renew_lease(&client, &cfg).await {
            tracing::warn!(error = %e, "renewing the node lease");
        }
        let now_conds = conditions(&cfg);
        if now_conds != last || last_post.elapsed() >= STATUS_REFRESH {
            let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            for (c, old) in now_conds.iter().zip(last.iter()) {
                if c.1 != old.1 {
                    transitions.insert(c.0.clone(), now.clone());
                }
            }
            let path = format!("/api/v1/nodes/{}/status", cfg.name);
            match client
                .merge_patch::<_, Node>(&path, &json!({ "status": status(&cfg, &now_conds, &transitions) }))
                .await
            {
                Ok(_) => {
                    last = now_conds;
                    last_post = tokio::time::Instant::now();
                }
                Err(e) => tracing::warn!(error = %e, "posting node status"),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(cfg.lease_renew()) => {}
        }
    }
}

async fn renew_lease(client: &KubeClient, cfg: &NodeConfig) -> Result<(), KubeError> {
    let path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{}",
        cfg.name
    );
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    match client.get_opt::<Lease>(&path).await? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some(cfg.name.clone());
            spec.lease_duration_seconds = Some(cfg.lease_duration_seconds);
            let mut v = serde_json::to_value(&lease).map_err(|e| KubeError::Decode {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            v["spec"]["renewTime"] = json!(now);
            client.replace::<_, Lease>(&path, &v).await.map(drop)
        }
        None => {
            let node: Option<Node> = client.get_opt(&format!("/api/v1/nodes/{}", cfg.name)).await?;
            let owner = node
                .and_then(|n| n.metadata.uid)
                .map(|uid| json!([{"apiVersion": "v1", "kind": "Node", "name": cfg.name, "uid": uid}]));
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": "kube-node-lease", "ownerReferences": owner},
                "spec": {"holderIdentity": cfg.name, "leaseDurationSeconds": cfg.lease_duration_seconds, "renewTime": now},
            });
            match client
                .create::<_, Lease>("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", &lease)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.is_conflict() => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

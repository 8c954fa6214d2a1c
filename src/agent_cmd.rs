//! `skiff agent`, its hidden helper subcommands, and `skiff image`: flags to configs.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use node_agent::image::{ImageStore, Progress, ProgressState, PullOptions, Reference};
use tokio_util::sync::CancellationToken;

/// Flags of `skiff agent`.
#[derive(Args)]
pub struct AgentArgs {
    /// The node's name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    data_dir: PathBuf,
    /// Kubeconfig with the node's credentials (e.g. `skiff kubeconfig --user system:node:NAME
    /// --group system:nodes`).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// More API servers to fail over to, comma-separated (https://host:port).
    #[arg(long, value_delimiter = ',')]
    server: Vec<String>,
    /// A directory of static pod manifests (like kubelet's --pod-manifest-path).
    #[arg(long)]
    static_pods: Option<PathBuf>,
    /// The node's address (InternalIP; other nodes route pod traffic to it) [default: the
    /// source address of the default route, else 127.0.0.1].
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Extra node labels, comma-separated k=v.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// How long the node's Lease is valid; it is renewed every quarter of this (kubelet's flag).
    /// Keep it at or under the masters' --node-monitor-grace-period.
    #[arg(long, default_value_t = node_agent::node::LEASE_DURATION_SECONDS,
          value_parser = clap::value_parser!(i32).range(4..=3600))]
    node_lease_duration_seconds: i32,
    #[arg(long, value_delimiter = ',', default_value = "10.96.0.10")]
    cluster_dns: Vec<IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The cluster's pod CIDR (blackholed on the node; each node's /24 comes from its Node).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Registries spoken to over plain HTTP (loopback ones always are), repeatable.
    #[arg(long)]
    insecure_registry: Vec<String>,
    /// Where the agent serves container logs to the API servers over HTTPS (kubelet's
    /// `/containerLogs/...` on :10250), `off` for nowhere [default: NODE_IP:10250].
    #[arg(long, value_name = "ADDR")]
    listen_kubelet: Option<String>,
    /// Do not run the service proxy and cluster DNS in this process (run `skiff proxy`
    /// separately, or none).
    #[arg(long)]
    no_proxy: bool,
    /// Simulate N nodes named NAME-0 .. NAME-(N-1) instead of being one (kubemark's hollow
    /// nodes, for scale tests): each registers and keeps its Lease, and the pods bound to them
    /// are reported Running at once; nothing runs. Needs a kubeconfig that may write any node
    /// and pod status (e.g. the admin one); no runtime, network or service proxy.
    #[arg(long, value_name = "N")]
    hollow: Option<u32>,
    #[command(flatten)]
    proxy: crate::proxy_cmd::ProxyFlags,
}

/// Flags of the hidden `skiff agent-shim`.
#[derive(Args)]
pub struct ShimArgs {
    #[arg(long)]
    root: PathBuf,
}

/// Flags of the hidden `skiff agent-exec` (started by the agent for `kubectl exec`).
#[derive(Args)]
pub struct ExecArgs {
    #[arg(long)]
    root: PathBuf,
    #[arg(long)]
    id: String,
    #[arg(long)]
    status: PathBuf,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry into the agent's store.
    Pull {
        reference: String,
        #[arg(long)]
        username: Option<String>,
        /// Password (or set SKIFF_REGISTRY_PASSWORD).
        #[arg(long, env = "SKIFF_REGISTRY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long)]
        insecure_registry: Vec<String>,
        #[arg(long, default_value = "/var/lib/skiff/agent")]
        data_dir: PathBuf,
    },
    /// Import an OCI image layout directory under a name.
    Import {
        dir: PathBuf,
        reference: String,
        #[arg(long, default_value = "/var/lib/skiff/agent")]
        data_dir: PathBuf,
    },
    /// List the images in the store.
    Ls {
        #[arg(long, default_value = "/var/lib/skiff/agent")]
        data_dir: PathBuf,
    },
    /// Remove an image (its layers go when no other image uses them).
    Rm {
        reference: String,
        #[arg(long, default_value = "/var/lib/skiff/agent")]
        data_dir: PathBuf,
    },
}

pub fn default_node_ip() -> IpAddr {
    // The source address the kernel would use towards the outside world; nothing is sent.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    probe.map(|a| a.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Kubelet's default port, where the agent server listens unless told otherwise.
const KUBELET_PORT: u16 = 10250;

/// `--listen-kubelet`: an address, a port alone (on the node's address), or `off`.
fn listen_kubelet(flag: Option<&str>, node_ip: IpAddr) -> Result<Option<SocketAddr>> {
    match flag.map(str::trim) {
        None | Some("") => Ok(Some(SocketAddr::new(node_ip, KUBELET_PORT))),
        Some("off") => Ok(None),
        Some(s) => {
            if let Ok(port) = s.trim_start_matches(':').parse::<u16>() {
                return Ok(Some(SocketAddr::new(node_ip, port)));
            }
            s.parse()
                .map(Some)
                .with_context(|| format!("--listen-kubelet {s:?}: expected ADDR:PORT, PORT or off"))
        }
    }
}

pub async fn run_agent(a: AgentArgs) -> Result<()> {
    let name = match a.name {
        Some(n) => n,
        None => nix_hostname()?,
    };
    let mut labels = BTreeMap::new();
    for l in &a.node_labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--node-labels: {l:?} is not k=v")
        };
        labels.insert(k.to_string(), v.to_string());
    }
    let node_ip = a.node_ip.unwrap_or_else(default_node_ip);
    if let Some(count) = a.hollow {
        let cfg = node_agent::hollow::HollowConfig {
            prefix: name,
            count,
            kubeconfig: a.kubeconfig,
            servers: a.server,
            address: node_ip,
            labels,
            max_pods: a.max_pods,
            lease_duration_seconds: a.node_lease_duration_seconds,
            data_dir: a.data_dir,
        };
        node_agent::hollow::run(cfg, stop_on_signals()).await?;
        return Ok(());
    }
    let proxy = if a.no_proxy {
        None
    } else {
        let facts = crate::proxy_cmd::NodeFacts {
            name: name.clone(),
            node_ip,
            kubeconfig: a.kubeconfig.clone(),
            servers: a.server.clone(),
            cluster_cidr: a.cluster_cidr.clone(),
            cluster_dns: a.cluster_dns.clone(),
            cluster_domain: a.cluster_domain.clone(),
        };
        Some(crate::proxy_cmd::config(facts, &a.proxy)?)
    };
    let cfg = node_agent::AgentConfig {
        name,
        data_dir: a.data_dir,
        kubeconfig: a.kubeconfig,
        servers: a.server,
        static_pods: a.static_pods,
        node_ip,
        labels,
        max_pods: a.max_pods,
        lease_duration_seconds: a.node_lease_duration_seconds,
        cluster_dns: a.cluster_dns,
        cluster_domain: a.cluster_domain,
        cluster_cidr: a.cluster_cidr,
        insecure_registries: a.insecure_registry,
        exe: std::env::current_exe().context("locating this binary")?,
        listen_kubelet: listen_kubelet(a.listen_kubelet.as_deref(), node_ip)?,
    };
    let stop = stop_on_signals();
    let Some(proxy) = proxy else {
        node_agent::run(cfg, stop).await?;
        return Ok(());
    };
    // The proxy failing (e.g. its DNS port taken) stops the agent too: a node that runs pods
    // its services cannot reach is worse than a clear error.
    let proxy_stop = stop.clone();
    let proxy_task = tokio::spawn(async move {
        let res = netproxy::run(proxy, proxy_stop.clone()).await;
        proxy_stop.cancel();
        res
    });
    let agent = node_agent::run(cfg, stop.clone()).await;
    stop.cancel();
    let proxied = proxy_task.await.context("the service proxy task")?;
    agent?;
    proxied?;
    Ok(())
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn stop_on_signals() -> CancellationToken {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        on_signal.cancel();
    });
    stop
}

pub fn nix_hostname() -> Result<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").context("reading the host name")?;
    Ok(h.trim().to_lowercase())
}

/// The shim: runs without a tokio runtime (libcontainer forks from it).
pub fn run_shim(a: ShimArgs) -> Result<()> {
    node_agent::runtime::shim::run(&a.root)?;
    Ok(())
}

/// Runs one exec and exits with 0 once its status file is written (see runtime::exec).
pub fn run_exec(a: ExecArgs) -> ! {
    let args = node_agent::runtime::exec::ExecArgs {
        root: a.root,
        id: a.id,
        command: a.command,
        console_socket: a.console_socket,
        status: a.status,
    };
    std::process::exit(node_agent::runtime::exec::run(&args))
}

fn open_store(data_dir: &std::path::Path) -> Result<ImageStore> {
    Ok(ImageStore::open(&data_dir.join("images"))?)
}

pub async fn run_image(cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Pull {
            reference,
            username,
            password,
            insecure_registry,
            data_dir,
        } => {
            let store = open_store(&data_dir)?;
            let r = Reference::parse(&reference)?;
            let auth = match (username, password) {
                (Some(username), Some(password)) => Some(node_agent::image::Credentials { username, password }),
                (None, None) => None,
                _ => bail!("--username and --password go together"),
            };
            let bar = Arc::new(ProgressBar::default());
            let b = bar.clone();
            let opts = PullOptions {
                auth,
                insecure_registries: insecure_registry,
                progress: Some(Arc::new(move |p: &Progress| b.update(p))),
            };
            let img = store.pull(&r, &opts).await?;
            bar.finish();
            println!("{} {}", img.reference, img.digest);
        }
        ImageCommand::Import {
            dir,
            reference,
            data_dir,
        } => {
            let store = open_store(&data_dir)?;
            let img = store.import_layout(&dir, &Reference::parse(&reference)?).await?;
            println!("{} {}", img.reference, img.digest);
        }
        ImageCommand::Ls { data_dir } => {
            let store = open_store(&data_dir)?;
            println!("{:<60} {:<73} {:>12}", "IMAGE", "DIGEST", "SIZE");
            for i in store.list().await? {
                println!("{:<60} {:<73} {:>12}", i.name, i.digest, i.size);
            }
        }
        ImageCommand::Rm { reference, data_dir } => {
            let store = open_store(&data_dir)?;
            store.remove(&Reference::parse(&reference)?).await?;
            println!("removed {reference}");
        }
    }
    Ok(())
}

/// A one-line progress display on stderr: layers done and bytes downloaded.
#[derive(Default)]
struct ProgressBar {
    layers: std::sync::Mutex<BTreeMap<String, (u64, u64, bool)>>,
}

impl ProgressBar {
    fn update(&self, p: &Progress) {
        let mut l = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let done = matches!(p.state, ProgressState::Done | ProgressState::Cached);
        l.insert(p.layer.clone(), (p.done, p.total, done));
        let (got, total): (u64, u64) = l.values().fold((0, 0), |(g, t), (d, tt, _)| (g + d, t + tt));
        let finished = l.values().filter(|v| v.2).count();
        let width = 30usize;
        let filled = if total > 0 {
            (got.min(total) as usize * width) / total as usize
        } else {
            width
        };
        eprint!(
            "\r[{}{}] {}/{} layers, {:.1}/{:.1} MiB ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            finished,
            l.len(),
            got as f64 / 1048576.0,
            total as f64 / 1048576.0
        );
    }

    fn finish(&self) {
        eprintln!();
    }
}

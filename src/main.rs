//! The `skiff` command: wires the crates into subcommands. No logic of its own.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use raft_store::{loadgen, Member, NodeConfig};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

mod agent_cmd;
mod down_cmd;
mod member_cmd;
mod proxy_cmd;
mod snapshot_cmd;
mod status_cmd;
mod up_cmd;

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "A Kubernetes-compatible control plane with its own Raft store"
)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info,openraft=warn`.
    #[arg(long, global = true, env = "SKIFF_LOG", default_value = "info,openraft=warn")]
    log: String,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster on this machine: 3 masters and 2 agents, each in its own network
    /// namespace, a kubeconfig and a sample image (`skiff down` removes it).
    Up(Box<up_cmd::UpArgs>),
    /// Stop and remove the cluster `skiff up` started, and check that nothing is left.
    Down(down_cmd::DownArgs),
    /// The masters (leader, term, applied index) and the nodes (readiness) of a cluster.
    Status(status_cmd::StatusArgs),
    /// Run a master: a member of the replicated store (etcd v3 API on the client port).
    Master(Box<MasterArgs>),
    /// The store's members: list, add, remove, promote (any master answers).
    Member {
        #[command(subcommand)]
        command: member_cmd::MemberCommand,
    },
    /// Backups of the store and disaster recovery: save, status, restore into a new cluster.
    Snapshot {
        #[command(subcommand)]
        command: snapshot_cmd::SnapshotCommand,
    },
    /// Print a kubeconfig with a client certificate signed by the cluster CA.
    Kubeconfig(KubeconfigArgs),
    /// Run the node agent: registers the node and runs the pods bound to it as containers.
    Agent(Box<agent_cmd::AgentArgs>),
    /// Run the service proxy and cluster DNS alone (`skiff agent` runs them too).
    Proxy(Box<proxy_cmd::ProxyArgs>),
    /// The agent's image store: pull, import, list, remove.
    Image {
        #[command(subcommand)]
        command: agent_cmd::ImageCommand,
    },
    /// The agent's runtime shim (started by `skiff agent`).
    #[command(hide = true)]
    AgentShim(agent_cmd::ShimArgs),
    /// One command in a running container (started by `skiff agent` for exec).
    #[command(hide = true)]
    AgentExec(agent_cmd::ExecArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

/// Flags of `skiff kubeconfig`.
#[derive(Args)]
struct KubeconfigArgs {
    /// A master's data dir (its pki/ holds the cluster CA).
    #[arg(long, default_value = "/var/lib/skiff/master")]
    data_dir: PathBuf,
    /// The user (certificate CN).
    #[arg(long, default_value = "admin")]
    user: String,
    /// Groups (certificate O), repeatable [default: system:masters for admin, none otherwise].
    #[arg(long)]
    group: Vec<String>,
    /// API server URL [default: https://127.0.0.1:6443].
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    server: String,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Drive an etcd v3 API (skiff or etcd) with a workload; print throughput and latency.
    Store(StoreBenchArgs),
    /// Drive the Kubernetes API over HTTPS (create, get, list, watch); print throughput and latency.
    Api(ApiBenchArgs),
    /// Scheduler throughput and creation-to-bind latency (Node objects without agents, pods
    /// created through the API), in the manner of Kubernetes' scheduler_perf.
    Scheduler(SchedulerBenchArgs),
    /// The service proxy: sync latency with many services, connection rate through a VIP.
    Proxy {
        #[command(subcommand)]
        command: proxy_cmd::ProxyBench,
    },
}

/// Flags of `skiff bench scheduler`.
#[derive(Args)]
struct SchedulerBenchArgs {
    /// API server URLs (https://host:port), comma-separated [default: the kubeconfig's server].
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Kubeconfig with a client certificate (e.g. a master's admin.kubeconfig).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Node objects created first.
    #[arg(long, default_value_t = 1000)]
    nodes: u64,
    /// Pods created, as fast as the clients go.
    #[arg(long, default_value_t = 10_000)]
    pods: u64,
    /// Concurrent clients creating nodes and pods.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// basic | taints | affinity | spread
    #[arg(long, default_value = "basic")]
    shape: control_plane::loadgen::Shape,
    /// Longest wait in seconds for every pod to be bound after the last create (at most 600).
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Name of the run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The decisions alone, in this process (no API, no store): an upper bound of the loop.
    #[arg(long)]
    core: bool,
}

/// Flags of `skiff bench api`.
#[derive(Args)]
struct ApiBenchArgs {
    /// API server URLs (https://host:port), comma-separated [default: the kubeconfig's server].
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Kubeconfig with a client certificate (e.g. a master's admin.kubeconfig).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// create | get | list | watch
    #[arg(long, default_value = "create")]
    workload: control_plane::loadgen::Workload,
    /// Concurrent clients (writers for `watch`).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Offer only HTTP/1.1 (default: HTTP/2 when the server agrees).
    #[arg(long)]
    http1: bool,
    /// Stop after this many ops [default: 10000000].
    #[arg(long)]
    total: Option<u64>,
    /// Stop after this many seconds (at most 600).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Target ops/s over all clients, open-loop; 0 = unbounded.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Namespace the workload works in (created if missing).
    #[arg(long, default_value = "skiff-bench")]
    namespace: String,
    /// Pods pre-created for get and list.
    #[arg(long, default_value_t = 10_000)]
    objects: u64,
    /// Watches for the watch workload.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// An op slower than this many seconds counts as an error.
    #[arg(long, default_value_t = 30.0)]
    op_timeout: f64,
    /// Name of the run in the report.
    #[arg(long, default_value = "")]
    label: String,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Flags of `skiff bench store`.
#[derive(Args)]
struct StoreBenchArgs {
    /// Client endpoints, host:port, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// put | range | txn-cas | list | watch | mixed
    #[arg(long, default_value = "put")]
    workload: loadgen::Workload,
    /// Concurrent clients (writers for `watch`).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// gRPC connections, spread over the endpoints and shared round-robin by the clients.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Stop after this many ops [default: 10000000].
    #[arg(long)]
    total: Option<u64>,
    /// Stop after this many seconds (at most 600).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Target ops/s over all clients, open-loop; 0 = unbounded.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Hex digits of a key after the workload's prefix.
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    val_size: usize,
    /// Distinct keys (pre-populated for range, txn-cas, list, mixed).
    #[arg(long, default_value_t = 10_000)]
    key_space: u64,
    /// Keys in order (n mod key-space) instead of uniformly random.
    #[arg(long)]
    sequential: bool,
    /// Serializable reads (range, list, the read of txn-cas).
    #[arg(long)]
    serializable: bool,
    /// Watchers for the watch workload.
    #[arg(long, default_value_t = 10)]
    watchers: usize,
    /// An op slower than this many seconds counts as an error.
    #[arg(long, default_value_t = 10.0)]
    op_timeout: f64,
    /// Name of the run in the report (e.g. etcd, skiff).
    #[arg(long, default_value = "")]
    label: String,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl StoreBenchArgs {
    fn into_config(self) -> Result<loadgen::Config> {
        let secs = |what: &str, s: f64| {
            if s.is_finite() && s > 0.0 && s <= loadgen::MAX_DURATION.as_secs_f64() {
                Ok(Duration::from_secs_f64(s))
            } else {
                bail!(
                    "--{what} {s}: must be above 0 and at most {}",
                    loadgen::MAX_DURATION.as_secs()
                )
            }
        };
        Ok(loadgen::Config {
            label: self.label,
            endpoints: self.endpoints,
            workload: self.workload,
            clients: self.clients,
            conns: self.conns,
            total: self.total.unwrap_or(loadgen::DEFAULT_TOTAL),
            duration: secs("duration", self.duration)?,
            rate: self.rate,
            key_size: self.key_size,
            val_size: self.val_size,
            key_space: self.key_space,
            sequential: self.sequential,
            serializable: self.serializable,
            watchers: self.watchers,
            op_timeout: secs("op-timeout", self.op_timeout)?,
        })
    }
}

/// Flags of `skiff master`. Every flag may also come from `--config FILE` (TOML, same names
/// with dashes); flags given on the command line win.
#[derive(Args, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct MasterArgs {
    /// TOML file with any of these flags.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// This member's name, unique in the cluster.
    #[arg(long)]
    name: Option<String>,
    /// Where the member keeps its store [default: /var/lib/skiff/master].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// host:port for raft traffic between members [default: 127.0.0.1:2380].
    #[arg(long)]
    listen_peer: Option<String>,
    /// host:port for the etcd v3 client API [default: 127.0.0.1:2379].
    #[arg(long)]
    listen_client: Option<String>,
    /// host:port for the Kubernetes API over HTTPS, or `off` [default: 127.0.0.1:6443].
    #[arg(long)]
    listen_api: Option<String>,
    /// host:port clients reach the API at (kubeconfig server, certificate SAN) [default: --listen-api].
    #[arg(long)]
    advertise_api: Option<String>,
    /// Bearer tokens for the API, kube-apiserver's --token-auth-file format (token,user,uid,"groups").
    #[arg(long)]
    api_token_file: Option<PathBuf>,
    /// Append an audit event (JSON line) per API request to this file.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Audit policy (kube-apiserver's audit.k8s.io/v1 Policy) [default: everything at Metadata].
    #[arg(long)]
    audit_policy: Option<PathBuf>,
    /// kube-scheduler's KubeSchedulerConfiguration (YAML): profiles, plugins, weights
    /// [default: Kubernetes' default profile].
    #[arg(long)]
    scheduler_config: Option<PathBuf>,
    /// host:port for /metrics and /healthz (none when unset).
    #[arg(long)]
    listen_metrics: Option<String>,
    /// Peer address other members use to reach this one [default: --listen-peer].
    #[arg(long)]
    advertise_peer: Option<String>,
    /// Client address published to clients [default: --listen-client].
    #[arg(long)]
    advertise_client: Option<String>,
    /// The first members: name=host:port,name=host:port,...
    #[arg(long)]
    initial_cluster: Option<String>,
    /// Join a running cluster through this member's client address (host:port).
    #[arg(long)]
    join: Option<String>,
    /// Snapshot after this many applied entries [default: 100000, as etcd].
    #[arg(long)]
    snapshot_count: Option<u64>,
    /// Log entries kept behind a snapshot for lagging members [default: 5000, as etcd].
    #[arg(long)]
    snapshot_catchup_entries: Option<u64>,
    /// Raft heartbeat interval in ms [default: 100].
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Raft election timeout in ms [default: 1000].
    #[arg(long)]
    election_timeout_ms: Option<u64>,
    /// Seconds a node's heartbeat may be missing before the node is unreachable and its pods'
    /// eviction clocks start [default: 40, as kube-controller-manager].
    #[arg(long)]
    node_monitor_grace_period: Option<u64>,
    /// The range nodes' pod CIDRs are allocated from [default: 10.244.0.0/16].
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Prefix length of each node's pod CIDR [default: 24].
    #[arg(long)]
    node_cidr_mask_size: Option<u8>,
    /// For failure tests' negative control only, on every master of a throwaway cluster: leader-only
    /// writes are no longer fenced and a deposed leader's components run on for 5 s.
    #[arg(long, hide = true)]
    #[serde(skip)]
    unsafe_no_fencing: bool,
}

macro_rules! merge {
    ($cli:ident, $file:ident, $($f:ident),*) => { $( if $cli.$f.is_none() { $cli.$f = $file.$f.take(); } )* };
}

impl MasterArgs {
    /// The API server's configuration; None when `--listen-api off`.
    fn api_config(&self, data_dir: &std::path::Path) -> Option<control_plane::ApiConfig> {
        let listen = self.listen_api.clone().unwrap_or_else(|| "127.0.0.1:6443".into());
        if listen == "off" {
            return None;
        }
        Some(control_plane::ApiConfig {
            advertise: self.advertise_api.clone().unwrap_or_else(|| listen.clone()),
            listen,
            data_dir: data_dir.to_path_buf(),
            token_file: self.api_token_file.clone(),
            sans: Vec::new(),
            audit_log: self.audit_log.clone(),
            audit_policy: self.audit_policy.clone(),
            controllers: self.controller_settings(),
        })
    }

    fn controller_settings(&self) -> control_plane::controllers::Settings {
        let d = control_plane::controllers::Settings::default();
        control_plane::controllers::Settings {
            node_grace: self.node_monitor_grace_period.map_or(d.node_grace, Duration::from_secs),
            cluster_cidr: self.cluster_cidr.clone().unwrap_or(d.cluster_cidr),
            node_mask: self.node_cidr_mask_size.unwrap_or(d.node_mask),
        }
    }

    fn into_config(mut self) -> Result<(NodeConfig, Option<control_plane::ApiConfig>, Option<PathBuf>)> {
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading --config {}", path.display()))?;
            let mut file: MasterArgs =
                toml::from_str(&text).with_context(|| format!("parsing --config {}", path.display()))?;
            merge!(
                self,
                file,
                name,
                data_dir,
                listen_peer,
                listen_client,
                listen_api,
                advertise_api,
                api_token_file,
                audit_log,
                audit_policy,
                scheduler_config,
                listen_metrics,
                advertise_peer,
                advertise_client,
                initial_cluster,
                join,
                snapshot_count,
                snapshot_catchup_entries,
                heartbeat_ms,
                election_timeout_ms,
                node_monitor_grace_period,
                cluster_cidr,
                node_cidr_mask_size
            );
        }
        self.controller_settings().validate().map_err(anyhow::Error::msg)?;
        let d = NodeConfig::default();
        let api = self.api_config(self.data_dir.as_deref().unwrap_or(&d.data_dir));
        let initial_cluster = match &self.initial_cluster {
            None => Vec::new(),
            Some(s) => parse_initial_cluster(s)?,
        };
        let node = NodeConfig {
            name: self.name.unwrap_or(d.name),
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            listen_peer: self.listen_peer.unwrap_or(d.listen_peer),
            listen_client: self.listen_client.unwrap_or(d.listen_client),
            listen_metrics: self.listen_metrics,
            advertise_peer: self.advertise_peer,
            advertise_client: self.advertise_client,
            initial_cluster,
            join: self.join,
            snapshot_count: self.snapshot_count.unwrap_or(d.snapshot_count),
            snapshot_catchup_entries: self.snapshot_catchup_entries.unwrap_or(d.snapshot_catchup_entries),
            heartbeat_ms: self.heartbeat_ms.unwrap_or(d.heartbeat_ms),
            election_timeout_ms: self.election_timeout_ms.unwrap_or(d.election_timeout_ms),
            unsafe_no_fencing: self.unsafe_no_fencing,
        };
        Ok((node, api, self.scheduler_config.clone()))
    }
}

pub(crate) fn parse_initial_cluster(s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, addr)) = part.split_once('=') else {
            bail!("--initial-cluster: {part:?} is not name=host:port");
        };
        let addr = addr.trim_start_matches("http://").trim_end_matches('/');
        if name.is_empty() || !addr.contains(':') {
            bail!("--initial-cluster: {part:?} is not name=host:port");
        }
        out.push((name.to_string(), addr.to_string()));
    }
    Ok(out)
}

fn init_logging(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run_master(args: MasterArgs) -> Result<()> {
    let (config, api, scheduler_config) = args.into_config()?;
    let shutdown = CancellationToken::new();
    let member = Member::start(config, shutdown.clone()).await?;
    let leader_task =
        control_plane::start_leader_components(member.handle.clone(), scheduler_config.as_deref(), shutdown.clone())?;
    let api_task = match api {
        Some(cfg) => {
            // The API server needs a store with a leader; start it beside the member so that
            // the member keeps serving peers while the cluster forms.
            let handle = member.handle.clone();
            let stop = shutdown.clone();
            Some(tokio::spawn(async move {
                match control_plane::start(handle, cfg, stop.clone()).await {
                    Ok(serving) => {
                        let _ = serving.await;
                    }
                    Err(_) if stop.is_cancelled() => {}
                    Err(e) => {
                        tracing::error!(error = %e, "API server failed to start; stopping");
                        stop.cancel();
                    }
                }
            }))
        }
        None => None,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut failed = false;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        _ = shutdown.cancelled() => failed = true,
    }
    shutdown.cancel();
    if let Some(t) = api_task {
        let _ = t.await;
    }
    let _ = leader_task.await;
    member.wait().await;
    tracing::info!("stopped");
    if failed {
        bail!("stopped after a fatal error (see the log above)");
    }
    Ok(())
}

/// `skiff bench api`: exits non-zero when the run failed.
async fn run_api_bench(a: ApiBenchArgs) -> Result<()> {
    let secs = |what: &str, s: f64| {
        if s.is_finite() && s > 0.0 && s <= control_plane::loadgen::MAX_DURATION.as_secs_f64() {
            Ok(Duration::from_secs_f64(s))
        } else {
            bail!(
                "--{what} {s}: must be above 0 and at most {}",
                control_plane::loadgen::MAX_DURATION.as_secs()
            )
        }
    };
    let config = control_plane::loadgen::Config {
        label: a.label,
        endpoints: a.endpoints,
        kubeconfig: a.kubeconfig,
        workload: a.workload,
        clients: a.clients,
        http2: !a.http1,
        total: a.total.unwrap_or(control_plane::loadgen::DEFAULT_TOTAL),
        duration: secs("duration", a.duration)?,
        rate: a.rate,
        namespace: a.namespace,
        objects: a.objects,
        watchers: a.watchers,
        op_timeout: secs("op-timeout", a.op_timeout)?,
    };
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    let report = control_plane::loadgen::run(config, cancel).await?;
    print!("{}", report.table());
    if let Some(path) = a.json {
        std::fs::write(&path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if report.failed() {
        bail!("the API benchmark failed (see the errors above)");
    }
    Ok(())
}

/// `skiff bench scheduler`: exits non-zero when a created pod was never seen bound.
async fn run_scheduler_bench(a: SchedulerBenchArgs) -> Result<()> {
    if a.core {
        let report =
            control_plane::loadgen::run_scheduler_core(a.shape, a.nodes, a.pods).map_err(anyhow::Error::msg)?;
        print!("{}", report.table());
        if let Some(path) = a.json {
            std::fs::write(&path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let max = control_plane::loadgen::MAX_DURATION.as_secs_f64();
    if !(a.timeout.is_finite() && a.timeout > 0.0 && a.timeout <= max) {
        bail!("--timeout {}: must be above 0 and at most {max}", a.timeout);
    }
    let Some(kubeconfig) = a.kubeconfig else {
        bail!("--kubeconfig is required (except with --core)");
    };
    let config = control_plane::loadgen::SchedConfig {
        label: a.label,
        kubeconfig,
        endpoints: a.endpoints,
        http2: true,
        nodes: a.nodes,
        pods: a.pods,
        clients: a.clients,
        shape: a.shape,
        timeout: Duration::from_secs_f64(a.timeout),
    };
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    let report = control_plane::loadgen::run_scheduler(config, cancel).await?;
    print!("{}", report.table());
    if let Some(path) = a.json {
        std::fs::write(&path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if report.failed() {
        bail!(
            "the scheduler benchmark failed: {} of {} created pods bound",
            report.bound,
            report.created
        );
    }
    Ok(())
}

/// `skiff bench store`: exits non-zero when the run failed (nothing succeeded, or events lost).
async fn run_store_bench(args: StoreBenchArgs) -> Result<()> {
    let json = args.json.clone();
    let config = args.into_config()?;
    let cancel = CancellationToken::new();
    let on_interrupt = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_interrupt.cancel();
        }
    });
    let report = loadgen::run(config, cancel).await?;
    print!("{}", report.table());
    if let Some(path) = json {
        std::fs::write(&path, report.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if report.failed() {
        bail!("{} failed: {}", report.workload, report.failures.join("; "));
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let filter = match cli.command {
        // libcontainer's container init process logs through this subscriber after it has put
        // the container's stdio in place: its warnings ("seccomp not available", ...) would land
        // in the container's log, which `kubectl logs` shows. Only its errors may.
        Command::AgentShim(_) => format!("{},libcontainer::process::init=error", cli.log),
        // The helper's stderr is the command's: its failures go to its status file instead.
        Command::AgentExec(_) => "off".to_string(),
        // `skiff up`/`down` report their own progress; library logs only when something is wrong.
        Command::Up(_) | Command::Down(_) | Command::Status(_) | Command::Member { .. } | Command::Snapshot { .. }
            if cli.log == "info,openraft=warn" =>
        {
            "warn".to_string()
        }
        _ => cli.log.clone(),
    };
    init_logging(&filter, cli.log_json);
    // The shim forks (libcontainer) and unshares: it must run before any runtime thread exists.
    let command = match cli.command {
        Command::AgentShim(a) => return agent_cmd::run_shim(a),
        Command::AgentExec(a) => agent_cmd::run_exec(a),
        c => c,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        match command {
            Command::AgentShim(_) | Command::AgentExec(_) => Ok(()),
            Command::Agent(a) => agent_cmd::run_agent(*a).await,
            Command::Proxy(a) => proxy_cmd::run_proxy(*a).await,
            Command::Image { command } => agent_cmd::run_image(command).await,
            Command::Master(a) => run_master(*a).await,
            Command::Up(a) => up_cmd::run_up(*a).await,
            Command::Down(a) => down_cmd::run_down(a),
            Command::Status(a) => status_cmd::run_status(a).await,
            Command::Member { command } => member_cmd::run_member(command).await,
            Command::Snapshot { command } => snapshot_cmd::run_snapshot(command).await,
            Command::Kubeconfig(a) => {
                let groups = if a.group.is_empty() && a.user == "admin" {
                    vec!["system:masters".to_string()]
                } else {
                    a.group
                };
                let text = control_plane::kubeconfig_for(&a.data_dir, &a.server, &a.user, &groups)?;
                print!("{text}");
                Ok(())
            }
            Command::Bench {
                command: BenchCommand::Store(a),
            } => run_store_bench(a).await,
            Command::Bench {
                command: BenchCommand::Api(a),
            } => run_api_bench(a).await,
            Command::Bench {
                command: BenchCommand::Scheduler(a),
            } => run_scheduler_bench(a).await,
            Command::Bench {
                command: BenchCommand::Proxy { command },
            } => proxy_cmd::run_bench(command).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_and_rejects_garbage() {
        let v = parse_initial_cluster("m1=127.0.0.1:2380, m2=http://127.0.0.2:2380").expect("parse");
        assert_eq!(
            v,
            vec![
                ("m1".into(), "127.0.0.1:2380".into()),
                ("m2".into(), "127.0.0.2:2380".into())
            ]
        );
        assert!(parse_initial_cluster("m1").is_err());
        assert!(parse_initial_cluster("=1.2.3.4:5").is_err());
    }

    #[test]
    fn controller_settings_come_from_flags_and_are_checked() {
        let args = MasterArgs {
            node_monitor_grace_period: Some(8),
            cluster_cidr: Some("10.50.0.0/16".into()),
            node_cidr_mask_size: Some(26),
            ..Default::default()
        };
        let (_, api, _) = args.into_config().expect("config");
        let c = api.expect("api").controllers;
        assert_eq!(c.node_grace, Duration::from_secs(8));
        assert_eq!((c.cluster_cidr.as_str(), c.node_mask), ("10.50.0.0/16", 26));
        let narrow = MasterArgs {
            cluster_cidr: Some("10.50.0.0/26".into()),
            ..Default::default()
        };
        let e = narrow
            .into_config()
            .expect_err("a /24 per node cannot come from a /26")
            .to_string();
        assert!(e.contains("--cluster-cidr 10.50.0.0/26"), "{e}");
        let zero = MasterArgs {
            node_monitor_grace_period: Some(0),
            ..Default::default()
        };
        let e = zero.into_config().expect_err("a grace of 0 s").to_string();
        assert!(e.contains("--node-monitor-grace-period"), "{e}");
    }

    #[test]
    fn the_shipped_config_files_parse() {
        let master = MasterArgs {
            config: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/master.toml").into()),
            ..Default::default()
        };
        let (c, api, _) = master.into_config().expect("deploy/master.toml");
        assert_eq!(c.name, "m1");
        assert_eq!(c.initial_cluster.len(), 3);
        assert_eq!(c.election_timeout_ms, 1000);
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        assert_eq!(api.map(|a| a.listen), Some("10.0.0.1:6443".to_string()));

        let env = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/agent.env")).expect("agent.env");
        let flags = env
            .lines()
            .find_map(|l| l.strip_prefix("SKIFF_AGENT_FLAGS="))
            .expect("SKIFF_AGENT_FLAGS line");
        let argv = ["skiff", "agent"].into_iter().chain(flags.split_whitespace());
        let cli = Cli::try_parse_from(argv).expect("the agent flags of deploy/agent.env");
        assert!(matches!(cli.command, Command::Agent(_)));
    }

    #[test]
    fn flags_win_over_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("skiff.toml");
        std::fs::write(
            &f,
            "name = \"from-file\"\nlisten-client = \"127.0.0.9:1\"\nsnapshot-count = 7\n",
        )
        .expect("write");
        let args = MasterArgs {
            config: Some(f),
            name: Some("flag".into()),
            ..Default::default()
        };
        let (c, api, _) = args.into_config().expect("config");
        assert_eq!(api.map(|a| a.listen), Some("127.0.0.1:6443".to_string()));
        assert_eq!(c.name, "flag");
        assert_eq!(c.listen_client, "127.0.0.9:1");
        assert_eq!(c.snapshot_count, 7);
    }
}

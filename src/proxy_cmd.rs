//! `skiff proxy` (netproxy alone) and the proxy flags `skiff agent` shares: flags to configs.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use netproxy::proxier::SyncConfig;
use netproxy::{ProxyConfig, Upstreams};

/// Flags of the service proxy, in `skiff proxy` and `skiff agent`.
#[derive(Args)]
pub struct ProxyFlags {
    /// The service CIDR: traffic for it that no service rule translates is refused.
    #[arg(long, default_value = "10.96.0.0/16")]
    pub service_cidr: String,
    /// Port of this node's cluster DNS server (on the node address); the cluster DNS address
    /// (--cluster-dns) is redirected to it.
    #[arg(long, default_value_t = 53)]
    pub dns_port: u16,
    /// Where cluster DNS forwards names outside the cluster domain: `node` (the nameservers of
    /// this node's /etc/resolv.conf), `none` (NXDOMAIN), or comma-separated ip[:port].
    #[arg(long, default_value = "node")]
    pub dns_upstream: String,
    /// The proxy's /metrics listener; `off` disables it.
    #[arg(long, default_value = "127.0.0.1:10249")]
    pub proxy_metrics: String,
}

/// Flags of `skiff proxy`.
#[derive(Args)]
pub struct ProxyArgs {
    /// The node's name [default: the host name].
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    kubeconfig: PathBuf,
    /// More API servers to fail over to, comma-separated (https://host:port).
    #[arg(long, value_delimiter = ',')]
    server: Vec<String>,
    /// The node's address (cluster DNS listens on it) [default: the source address of the
    /// default route].
    #[arg(long)]
    node_ip: Option<IpAddr>,
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    #[arg(long, value_delimiter = ',', default_value = "10.96.0.10")]
    cluster_dns: Vec<IpAddr>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    #[command(flatten)]
    proxy: ProxyFlags,
}

/// What `skiff agent` knows that the proxy needs too.
pub struct NodeFacts {
    pub name: String,
    pub node_ip: IpAddr,
    pub kubeconfig: PathBuf,
    pub servers: Vec<String>,
    pub cluster_cidr: String,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
}

fn parse_upstreams(s: &str) -> Result<Upstreams> {
    Ok(match s {
        "node" => Upstreams::Node,
        "none" => Upstreams::Nowhere,
        list => {
            let mut out = Vec::new();
            for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let addr = match item.parse::<SocketAddr>() {
                    Ok(a) => a,
                    Err(_) => match item.parse::<IpAddr>() {
                        Ok(ip) => SocketAddr::new(ip, 53),
                        Err(_) => bail!("--dns-upstream: {item:?} is not node, none or an ip[:port]"),
                    },
                };
                out.push(addr);
            }
            Upstreams::List(out)
        }
    })
}

pub fn config(node: NodeFacts, flags: &ProxyFlags) -> Result<ProxyConfig> {
    let node_ip = match node.node_ip {
        IpAddr::V4(ip) if !ip.is_unspecified() => ip,
        other => bail!("the service proxy needs a concrete IPv4 node address (--node-ip), got {other}"),
    };
    let cluster_dns = node.cluster_dns.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let metrics = match flags.proxy_metrics.as_str() {
        "off" => None,
        a => Some(
            a.parse::<SocketAddr>()
                .map_err(|_| anyhow::anyhow!("--proxy-metrics: {a:?} is not ip:port or off"))?,
        ),
    };
    Ok(ProxyConfig {
        node_name: node.name,
        node_ips: vec![node_ip],
        kubeconfig: node.kubeconfig,
        servers: node.servers,
        cluster_cidr: node.cluster_cidr,
        service_cidr: flags.service_cidr.clone(),
        cluster_dns,
        dns_listen: SocketAddrV4::new(node_ip, flags.dns_port),
        cluster_domain: node.cluster_domain,
        upstreams: parse_upstreams(&flags.dns_upstream)?,
        metrics,
        sync: SyncConfig::default(),
    })
}

pub async fn run_proxy(a: ProxyArgs) -> Result<()> {
    let name = match a.name {
        Some(n) => n,
        None => crate::agent_cmd::nix_hostname()?,
    };
    let node = NodeFacts {
        name,
        node_ip: a.node_ip.unwrap_or_else(crate::agent_cmd::default_node_ip),
        kubeconfig: a.kubeconfig,
        servers: a.server,
        cluster_cidr: a.cluster_cidr,
        cluster_dns: a.cluster_dns,
        cluster_domain: a.cluster_domain,
    };
    let cfg = config(node, &a.proxy)?;
    let stop = crate::agent_cmd::stop_on_signals();
    netproxy::run(cfg, stop).await?;
    Ok(())
}

/// `skiff bench proxy ...`.
#[derive(clap::Subcommand)]
pub enum ProxyBench {
    /// Write a table of many services, then time single endpoint changes to the kernel. Run it
    /// in a network namespace of its own (`unshare --net` or `ip netns exec`).
    Rules {
        #[arg(long, default_value_t = 1000)]
        services: usize,
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        #[arg(long, default_value_t = 100)]
        changes: usize,
        /// Real backends of the first service (10.96.0.100:80), ip:port comma-separated.
        #[arg(long, value_delimiter = ',')]
        first_backends: Vec<SocketAddr>,
    },
    /// Accept and close TCP connections on an address (until SIGTERM).
    Serve { listen: SocketAddr },
    /// Connect and close in a loop, for a time; print the rate.
    Connect {
        to: SocketAddr,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Stop after this many connections.
        #[arg(long, default_value_t = 20_000)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
}

/// A line on stdout; a reader that went away (`| head -1`) is not an error.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

pub async fn run_bench(cmd: ProxyBench) -> Result<()> {
    match cmd {
        ProxyBench::Rules {
            services,
            endpoints,
            changes,
            first_backends,
        } => {
            let opts = netproxy::bench::RulesOptions {
                services,
                endpoints,
                changes,
                first_backends,
            };
            let r = netproxy::bench::rules(opts).await.map_err(anyhow::Error::msg)?;
            say(format!(
                "services {} x {} endpoints ({} chains): full write {:.0} ms ({} KiB), {} endpoint changes ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}, full resync {:.0} ms",
                r.services,
                r.endpoints_per_service,
                r.chains,
                r.full_write_ms,
                r.full_script_bytes / 1024,
                r.changes,
                r.change_ms_p50,
                r.change_ms_p90,
                r.change_ms_p99,
                r.change_ms_max,
                r.resync_ms
            ));
            say(serde_json::to_string(&r)?);
        }
        ProxyBench::Serve { listen } => {
            let stop = crate::agent_cmd::stop_on_signals();
            netproxy::bench::serve(listen, stop).await?;
        }
        ProxyBench::Connect {
            to,
            seconds,
            count,
            concurrency,
        } => {
            let r = netproxy::bench::connect(to, seconds, count, concurrency).await;
            say(format!(
                "{}: {} connections, {:.0}/s, ms p50 {:.2} p99 {:.2}, {} errors",
                r.target, r.connections, r.per_second, r.ms_p50, r.ms_p99, r.errors
            ));
            say(serde_json::to_string(&r)?);
        }
    }
    Ok(())
}

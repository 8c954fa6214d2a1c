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

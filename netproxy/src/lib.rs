//! netproxy, skiff's kube-proxy: makes Services reach their pods. It follows Services and
//! EndpointSlices, keeps them in a local [`model::Model`], computes the whole nftables table
//! from it with pure code ([`rules`]) and applies the difference from the last one (or the
//! whole table) as one atomic transaction (table `ip skiff`, laid out like kube-proxy's
//! nftables mode). It also answers cluster DNS for pods
//! (`<service>.<namespace>.svc.cluster.local`), reached through the cluster DNS address
//! (10.96.0.10), which the ruleset redirects to this node's DNS server.
//!
//! `skiff agent` runs it on every node; `skiff proxy` runs it alone.
//!
//! # Layout
//! - [`model`]: Services and EndpointSlices as the proxy needs them, parsed from the API's JSON.
//! - [`rules`]: the ruleset from the model (pure).
//! - [`nft`]: the kernel seam (`nft -f -` transactions, a fake for tests).
//! - [`proxier`]: the coalescing sync loop, resync and retries.
//! - [`watch`]: list+watch of Services and EndpointSlices into the model.
//! - [`dns`]: the cluster DNS zone (pure) and its UDP/TCP server.
//! - [`metrics`]: rules programmed, sync latency and errors on `/metrics`.
//! - [`bench`]: `skiff bench proxy` (sync latency at scale, connection rate through a VIP).

pub mod bench;
pub mod dns;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod proxier;
pub mod rules;
pub mod watch;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;

use node_agent::kube::{KubeClient, KubeError, Kubeconfig};
use tokio_util::sync::CancellationToken;

use crate::dns::DnsServer;
use crate::metrics::Metrics;
use crate::model::{DnsRedirect, Model};
use crate::proxier::{Proxier, SyncConfig};
use crate::watch::Kind;

/// Where the cluster DNS server sends names outside the cluster domain.
#[derive(Debug, Clone)]
pub enum Upstreams {
    /// The nameservers of the node's own /etc/resolv.conf.
    Node,
    /// None: such names get NXDOMAIN.
    Nowhere,
    List(Vec<SocketAddr>),
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub node_name: String,
    /// The node's own addresses (node ports answer on every local address anyway).
    pub node_ips: Vec<Ipv4Addr>,
    pub kubeconfig: PathBuf,
    pub servers: Vec<String>,
    /// The cluster's pod CIDR: service traffic from outside it is masqueraded.
    pub cluster_cidr: String,
    /// The service CIDR: anything for it that no rule translated is refused, never routed out.
    pub service_cidr: String,
    /// The cluster DNS address (pods' nameserver); None: no DNS server.
    pub cluster_dns: Option<Ipv4Addr>,
    /// Where this node's DNS server listens; the cluster DNS address is redirected to it.
    pub dns_listen: SocketAddrV4,
    pub cluster_domain: String,
    pub upstreams: Upstreams,
    /// `/metrics` listener (kube-proxy's is 127.0.0.1:10249); None: off.
    pub metrics: Option<SocketAddr>,
    pub sync: SyncConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error("{flag} {value}: {reason}")]
    Config {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}

/// Parses `a.b.c.d/len` with the agent's own CIDR type.
pub fn parse_cidr(flag: &'static str, s: &str) -> Result<(Ipv4Addr, u8), ProxyError> {
    let net: node_agent::network::Ipv4Net =
        s.parse()
            .map_err(|e: node_agent::network::IpNetError| ProxyError::Config {
                flag,
                value: s.to_string(),
                reason: e.to_string(),
            })?;
    Ok((net.addr(), net.prefix()))
}

/// Runs the proxy until `stop`; the table is removed on the way out.
pub async fn run(cfg: ProxyConfig, stop: CancellationToken) -> Result<(), ProxyError> {
    let client = Arc::new(KubeClient::new(&Kubeconfig::load(&cfg.kubeconfig)?, &cfg.servers)?);
    run_with(cfg, client, Arc::new(nft::NftCli), stop).await
}

/// [`run`] with a given client and kernel seam.
pub async fn run_with(
    cfg: ProxyConfig,
    client: Arc<KubeClient>,
    nft: Arc<dyn nft::Nft>,
    stop: CancellationToken,
) -> Result<(), ProxyError> {
    let cluster_cidr = parse_cidr("--cluster-cidr", &cfg.cluster_cidr)?;
    let service_cidr = parse_cidr("--service-cidr", &cfg.service_cidr)?;
    let metrics = Arc::new(Metrics::default());
    let mut model = Model::new(cfg.node_name.clone(), cluster_cidr);
    model.node_ips = cfg.node_ips.clone();
    model.service_cidr = Some(service_cidr);
    let dns = match cfg.cluster_dns {
        Some(vip) => {
            let upstreams = match &cfg.upstreams {
                Upstreams::Node => dns::server::upstreams_from_resolv_conf(
                    &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                    &[IpAddr::V4(vip), IpAddr::V4(*cfg.dns_listen.ip())],
                ),
                Upstreams::Nowhere => Vec::new(),
                Upstreams::List(l) => l.clone(),
            };
            let listen = SocketAddr::V4(cfg.dns_listen);
            let listen_err = |source| ProxyError::Listen {
                addr: listen.to_string(),
                source,
            };
            let udp = tokio::net::UdpSocket::bind(listen).await.map_err(listen_err)?;
            let tcp = tokio::net::TcpListener::bind(listen).await.map_err(listen_err)?;
            let server = DnsServer::new(dns::Zone::new(&cfg.cluster_domain, Vec::new()), upstreams);
            let s = server.clone();
            *metrics.dns.lock() = Some(Box::new(move || {
                let st = s.stats();
                vec![
                    ("queries", st.queries),
                    ("nxdomain", st.nxdomain),
                    ("forwarded", st.forwarded),
                    ("errors", st.errors),
                ]
            }));
            tokio::spawn(server.clone().serve(udp, tcp, stop.clone()));
            model.dns = Some(DnsRedirect {
                vip,
                target: cfg.dns_listen,
            });
            tracing::info!(%listen, %vip, "cluster DNS serving");
            Some(server)
        }
        None => None,
    };
    if let Some(addr) = cfg.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Listen {
                addr: addr.to_string(),
                source,
            })?;
        tokio::spawn(metrics::serve(listener, metrics.clone(), stop.clone()));
    }
    let mut sync = cfg.sync.clone();
    sync.cluster_domain = cfg.cluster_domain.clone();
    let proxier = Proxier::new(model, nft, metrics, dns, sync);
    for kind in [Kind::Services, Kind::Slices] {
        tokio::spawn(watch::follow(client.clone(), kind, proxier.clone(), stop.clone()));
    }
    proxier.run(stop).await;
    Ok(())
}

//! `skiff bench proxy`: how fast the proxy programs the kernel and what a service hop costs.
//! - [`rules`]: a model of many services (each with its EndpointSlice) is written whole, then
//!   one endpoint of a random service changes at a time and the time from the change to the
//!   kernel holding it is measured (the path a real EndpointSlice event takes: model update,
//!   desired table, delta, one `nft -f` transaction). Run it in a private network namespace.
//! - [`serve`] and [`connect`]: a TCP accept-and-close server and a bounded connect loop, to
//!   compare the connection rate through a cluster IP with that to the pod IP directly.
//!
//! Bounded in count and time; never asserts a figure.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::model::{Endpoint, EndpointSlice, Model, Protocol, Service, ServicePort, SlicePort, TargetPort};
use crate::nft::{Nft, NftCli};
use crate::proxier::{Proxier, Source, SyncConfig};

#[derive(Debug, Clone)]
pub struct RulesOptions {
    pub services: usize,
    pub endpoints: usize,
    /// Endpoint changes measured one after the other (at most 10,000).
    pub changes: usize,
    /// The first service's VIP and backends, for a connection test through it:
    /// 10.96.0.100:80 -> these (otherwise made-up pod addresses).
    pub first_backends: Vec<SocketAddr>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RulesReport {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub chains: u64,
    pub full_write_ms: f64,
    pub full_script_bytes: u64,
    pub changes: usize,
    pub change_ms_p50: f64,
    pub change_ms_p90: f64,
    pub change_ms_p99: f64,
    pub change_ms_max: f64,
    pub resync_ms: f64,
}

/// The bench service everything else surrounds.
pub const FIRST_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 100);

fn pod_ip(service: usize, i: usize) -> Ipv4Addr {
    // 10.245.0.0/16 onwards: made-up pods, never the bench's real ones in 10.244.
    let n = (service * 16 + i) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 245, 0, 0)) + n)
}

fn service(i: usize) -> Service {
    let vip = if i == 0 {
        FIRST_VIP
    } else {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 8, 0)) + i as u32)
    };
    let port = ServicePort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: 80,
        target_port: TargetPort::Number(8080),
        node_port: None,
    };
    Service::cluster_ip("bench", &format!("svc-{i}"), vec![vip], vec![port])
}

fn slice(i: usize, backends: &[SocketAddr], n: usize, generation: usize) -> EndpointSlice {
    let endpoint = |ip: Ipv4Addr| Endpoint::ready(ip, Some("n1".into()));
    let (port, endpoints) = if i == 0 && !backends.is_empty() {
        let ips = backends
            .iter()
            .filter_map(|a| match a {
                SocketAddr::V4(v4) => Some(endpoint(*v4.ip())),
                SocketAddr::V6(_) => None,
            })
            .collect();
        (backends[0].port(), ips)
    } else {
        // A changed slice swaps its first endpoint for a fresh address.
        let eps = (0..n)
            .map(|e| {
                if e == 0 && generation > 0 {
                    pod_ip(i, 15 - generation % 5)
                } else {
                    pod_ip(i, e)
                }
            })
            .map(endpoint)
            .collect();
        (8080, eps)
    };
    EndpointSlice {
        namespace: "bench".into(),
        name: format!("svc-{i}-abc"),
        service: format!("svc-{i}"),
        ports: vec![SlicePort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port,
        }],
        endpoints,
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

/// Writes the table whole, then measures `changes` endpoint changes; leaves the table in place
/// (the caller's namespace goes away, or it runs `skiff bench proxy` again).
pub async fn rules(opts: RulesOptions) -> Result<RulesReport, String> {
    // It writes the proxy's own table: never in the host's namespace, where a real proxy's
    // rules may live.
    let ns = |p: &str| std::fs::read_link(p).ok();
    if ns("/proc/self/ns/net").is_none() || ns("/proc/self/ns/net") == ns("/proc/1/ns/net") {
        return Err("run `skiff bench proxy rules` in a network namespace of its own \
                    (unshare --net, ip netns exec): it replaces table ip skiff"
            .to_string());
    }
    let services = opts.services.clamp(1, 20_000);
    let endpoints = opts.endpoints.clamp(1, 15);
    let changes = opts.changes.min(10_000);
    let mut model = Model::new("n1", (Ipv4Addr::new(10, 244, 0, 0), 16));
    model.service_cidr = Some((Ipv4Addr::new(10, 96, 0, 0), 16));
    let metrics = Arc::new(Metrics::default());
    let nft: Arc<dyn Nft> = Arc::new(NftCli);
    let proxier = Proxier::new(model, nft, metrics.clone(), None, SyncConfig::default());
    proxier.listed(Source::Services, |m| {
        for i in 0..services {
            m.upsert_service(service(i));
        }
    });
    proxier.listed(Source::Slices, |m| {
        for i in 0..services {
            m.upsert_slice(slice(i, &opts.first_backends, endpoints, 0));
        }
    });
    let t = Instant::now();
    proxier
        .sync_once(true)
        .await
        .map_err(|_| "the full write failed (see the log)".to_string())?;
    let full_write_ms = t.elapsed().as_secs_f64() * 1000.0;
    let full_script_bytes = metrics.script_bytes.load(std::sync::atomic::Ordering::Relaxed);
    let mut lat = Vec::with_capacity(changes);
    let deadline = Instant::now() + Duration::from_secs(300);
    for c in 0..changes {
        if Instant::now() > deadline {
            break;
        }
        // Never the first service: its backends are real.
        let i = if services > 1 {
            rand::thread_rng().gen_range(1..services)
        } else {
            0
        };
        let t = Instant::now();
        let changed = slice(i, &opts.first_backends, endpoints, c + 1);
        proxier.update(|m| m.upsert_slice(changed));
        proxier
            .sync_once(false)
            .await
            .map_err(|_| format!("change {c} failed (see the log)"))?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let t = Instant::now();
    proxier
        .sync_once(true)
        .await
        .map_err(|_| "the resync failed (see the log)".to_string())?;
    let resync_ms = t.elapsed().as_secs_f64() * 1000.0;
    lat.sort_by(f64::total_cmp);
    Ok(RulesReport {
        services,
        endpoints_per_service: endpoints,
        chains: metrics.chains.load(std::sync::atomic::Ordering::Relaxed),
        full_write_ms,
        full_script_bytes,
        changes: lat.len(),
        change_ms_p50: pct(&lat, 50.0),
        change_ms_p90: pct(&lat, 90.0),
        change_ms_p99: pct(&lat, 99.0),
        change_ms_max: lat.last().copied().unwrap_or(0.0),
        resync_ms,
    })
}

/// Accepts and closes connections on `addr` until `stop`.
pub async fn serve(addr: SocketAddr, stop: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            c = listener.accept() => { drop(c); }
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectReport {
    pub target: String,
    pub connections: u64,
    pub errors: u64,
    pub per_second: f64,
    pub ms_p50: f64,
    pub ms_p99: f64,
}

/// `concurrency` loops connecting to `to` and closing, for `seconds` (at most 60) or `count`
/// connections in all, whichever comes first. Keep `count` below the client's ephemeral port
/// range: a port reused while the node's conntrack still remembers its last connection
/// measures that, not the proxy.
pub async fn connect(to: SocketAddr, seconds: f64, count: u64, concurrency: usize) -> ConnectReport {
    let run_for = Duration::from_secs_f64(seconds.clamp(0.1, 60.0));
    let start = Instant::now();
    let left = Arc::new(std::sync::atomic::AtomicU64::new(count));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.clamp(1, 256) {
        let left = left.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let take = || {
                left.fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            };
            while start.elapsed() < run_for && take() {
                let t = Instant::now();
                // Closed with a reset (linger 0): no TIME_WAIT on either side, so ports are not
                // exhausted and a reused port never meets its previous connection's state.
                let attempt = async {
                    let sock = if to.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    // Deprecated because a non-zero linger blocks the thread in close(); a zero
                    // one resets at once.
                    #[allow(deprecated)]
                    sock.set_linger(Some(Duration::ZERO))?;
                    sock.connect(to).await
                };
                match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                    Ok(Ok(s)) => {
                        drop(s);
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    let took = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    ConnectReport {
        target: to.to_string(),
        connections: lat.len() as u64,
        errors,
        per_second: lat.len() as f64 / took,
        ms_p50: pct(&lat, 50.0),
        ms_p99: pct(&lat, 99.0),
    }
}

//! `skiff status`: the masters (leader, term, applied index, revision, from each member's
//! metrics endpoint) and the nodes (readiness, address, pod CIDR, from the API) of a cluster,
//! as a table. For a `skiff up` cluster `--dir` is enough; otherwise name the metrics
//! addresses and a kubeconfig.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::up_cmd::UpState;

/// Flags of `skiff status`.
#[derive(Args)]
pub struct StatusArgs {
    /// A `skiff up` state dir: its masters and admin kubeconfig.
    #[arg(long, default_value = "/var/lib/skiff-up")]
    dir: PathBuf,
    /// Masters' metrics addresses (host:port, comma-separated) instead of `--dir`'s.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Kubeconfig for the node list instead of `--dir`'s admin kubeconfig.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

/// One member's view, from its `/metrics`.
#[derive(Debug, Default, PartialEq)]
struct MemberView {
    term: u64,
    leader: bool,
    has_leader: bool,
    applied: u64,
    revision: u64,
}

/// Read the gauges `skiff status` shows from a Prometheus text page.
fn parse_metrics(text: &str) -> MemberView {
    let mut v = MemberView::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let Ok(n) = value.trim().parse::<f64>() else { continue };
        let n = n.max(0.0) as u64;
        match name {
            "skiff_raft_term" => v.term = n,
            "skiff_raft_is_leader" => v.leader = n == 1,
            "skiff_raft_has_leader" => v.has_leader = n == 1,
            "skiff_raft_applied_index" => v.applied = n,
            "skiff_mvcc_revision" => v.revision = n,
            _ => {}
        }
    }
    v
}

/// `GET /metrics` over plain HTTP/1.0, bounded by a 2 s timeout and 1 MiB.
fn fetch_metrics(addr: &str) -> Result<MemberView> {
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut body = Vec::new();
    s.take(1 << 20).read_to_end(&mut body)?;
    let text = String::from_utf8_lossy(&body);
    if !text.starts_with("HTTP/1.") || !text.lines().next().is_some_and(|l| l.contains(" 200")) {
        bail!("{addr}: not a metrics endpoint");
    }
    Ok(parse_metrics(&text))
}

pub async fn run_status(a: StatusArgs) -> Result<()> {
    let (members, kubeconfig): (Vec<(String, String)>, Option<PathBuf>) = if a.metrics.is_empty() {
        let st = UpState::load(&a.dir).context("no --metrics given, and no skiff up cluster at --dir")?;
        let members = st
            .hosts
            .iter()
            .filter(|h| h.master)
            .map(|h| (h.name.clone(), format!("{}:2381", h.addr)))
            .collect();
        (
            members,
            Some(a.kubeconfig.unwrap_or_else(|| a.dir.join("admin.kubeconfig"))),
        )
    } else {
        (a.metrics.iter().map(|m| (m.clone(), m.clone())).collect(), a.kubeconfig)
    };

    println!(
        "{:<8} {:<22} {:<7} {:>6} {:>9} {:>9}",
        "MEMBER", "METRICS", "LEADER", "TERM", "APPLIED", "REVISION"
    );
    let mut leaders = 0;
    for (name, addr) in &members {
        let addr2 = addr.clone();
        match tokio::task::spawn_blocking(move || fetch_metrics(&addr2)).await? {
            Ok(v) => {
                leaders += usize::from(v.leader);
                let role = match (v.leader, v.has_leader) {
                    (true, _) => "*",
                    (false, true) => "-",
                    (false, false) => "none",
                };
                println!(
                    "{name:<8} {addr:<22} {role:<7} {:>6} {:>9} {:>9}",
                    v.term, v.applied, v.revision
                );
            }
            Err(e) => println!("{name:<8} {addr:<22} unreachable: {e:#}"),
        }
    }
    if leaders != 1 {
        println!("({leaders} members say they lead: an election may be under way)");
    }

    let Some(kc) = kubeconfig else { return Ok(()) };
    let cfg = node_agent::kube::kubeconfig::Kubeconfig::load(&kc)?;
    let servers: Vec<String> = members
        .iter()
        .filter_map(|(_, m)| m.rsplit_once(':').map(|(host, _)| format!("https://{host}:6443")))
        .collect();
    let client = node_agent::kube::client::KubeClient::new(&cfg, &servers)?;
    let nodes: serde_json::Value = client.get("/api/v1/nodes").await.context("listing nodes")?;
    println!("\n{:<16} {:<7} {:<16} {:<18}", "NODE", "READY", "ADDRESS", "POD CIDR");
    for n in nodes["items"].as_array().into_iter().flatten() {
        let ready = n["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .and_then(|c| c["status"].as_str())
            .unwrap_or("Unknown");
        let addr = n["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
            .and_then(|x| x["address"].as_str())
            .unwrap_or("");
        println!(
            "{:<16} {:<7} {:<16} {:<18}",
            n["metadata"]["name"].as_str().unwrap_or(""),
            ready,
            addr,
            n["spec"]["podCIDR"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_gauges_and_ignores_the_rest() {
        let text = "HTTP/1.0 200 OK\r\n\r\n# HELP skiff_raft_term x\n# TYPE skiff_raft_term gauge\n\
                    skiff_raft_term 7\nskiff_raft_is_leader 1\nskiff_raft_has_leader 1\n\
                    skiff_raft_applied_index 1234\nskiff_mvcc_revision 99\nother 5\ngarbage\nskiff_raft_term x\n";
        assert_eq!(
            parse_metrics(text),
            MemberView {
                term: 7,
                leader: true,
                has_leader: true,
                applied: 1234,
                revision: 99
            }
        );
        assert_eq!(parse_metrics(""), MemberView::default());
    }
}

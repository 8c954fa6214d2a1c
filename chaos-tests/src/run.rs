//! One run: network, cluster, workload under the nemesis, final reads, checks, report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::watch;

use crate::checker::linear::{self, Limits};
use crate::checker::watch::{self as watch_check, WatchLog};
use crate::checker::Verdict;
use crate::cluster::{connect, Cluster};
use crate::history::{self, Func, Outcome, Recorder};
use crate::nemesis::{self, Applied, Kind, Planned};
use crate::net::Net;
use crate::workload::{self, Config};

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub seed: u64,
    pub duration: Duration,
    pub nemeses: Vec<Kind>,
    pub members: usize,
    pub clients: usize,
    pub keys: usize,
    pub watchers: usize,
    /// Each run writes into `results/<run name>/`.
    pub results: PathBuf,
    pub skiff_bin: String,
    pub extra_args: Vec<String>,
    pub limits: Limits,
    /// Negative control: clients read with `serializable` (stale) reads; the checker must object.
    pub serializable_reads: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub run: String,
    pub dir: PathBuf,
    pub seed: u64,
    pub duration_s: f64,
    pub members: usize,
    pub clients: usize,
    pub keys: usize,
    pub schedule: Vec<Planned>,
    pub applied: Vec<Applied>,
    /// "read ok" -> count, etc.
    pub counts: BTreeMap<String, u64>,
    pub linearizable: Verdict,
    pub per_key: BTreeMap<String, Verdict>,
    pub watch: Verdict,
    pub watch_events: Vec<usize>,
    pub watch_reconnects: Vec<u64>,
    pub final_values: BTreeMap<String, Option<u64>>,
    pub check_ms: u64,
}

impl Summary {
    pub fn valid(&self) -> bool {
        self.linearizable.is_valid() && self.watch.is_valid()
    }

    pub fn text(&self) -> String {
        let mut s = format!(
            "run {} seed {} ({:.1} s, {} members, {} clients, {} keys)\n",
            self.run, self.seed, self.duration_s, self.members, self.clients, self.keys
        );
        s.push_str("nemesis:\n");
        for a in &self.applied {
            s.push_str(&format!("  {:>6}-{:>6} ms  {}\n", a.start_ms, a.end_ms, a.description));
        }
        s.push_str("operations:\n");
        for (k, v) in &self.counts {
            s.push_str(&format!("  {k:<12} {v}\n"));
        }
        s.push_str(&format!("linearizability: {:?}\n", self.linearizable));
        s.push_str(&format!(
            "watch: {:?} (events per watcher {:?}, reconnects {:?})\n",
            self.watch, self.watch_events, self.watch_reconnects
        ));
        s.push_str(&format!("results: {}\n", self.dir.display()));
        s
    }
}

pub async fn run(cfg: &RunConfig) -> Result<Summary> {
    let net = Net::create(cfg.members).context("creating the test network (needs root)")?;
    let run_name = net.run.clone();
    let dir = cfg.results.join(&run_name);
    std::fs::create_dir_all(&dir)?;
    let data = tempfile::Builder::new().prefix("skiff-chaos-").tempdir()?;
    eprintln!(
        "chaos: run {run_name} seed {} subnet 10.251.{}.0/24 results {}",
        cfg.seed,
        net.subnet,
        dir.display()
    );
    let mut cluster = Cluster::start(net, data.path(), &dir, &cfg.skiff_bin, &cfg.extra_args)?;
    cluster.wait_ready(Duration::from_secs(30)).await?;
    let endpoints = cluster.endpoints();

    let prefix = format!("/chaos/{run_name}/");
    let start_rev = connect(&endpoints, Duration::from_secs(5))
        .await?
        .get("chaos-ready-probe", None)
        .await?
        .header()
        .map(|h| h.revision())
        .unwrap_or(0)
        + 1;

    let rec = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let wcfg = Config {
        prefix: prefix.clone(),
        keys: cfg.keys,
        op_timeout: Duration::from_secs(2),
        think: Duration::from_millis(10),
        max_ops_per_client: 100_000,
        serializable_reads: cfg.serializable_reads,
    };
    let mut clients = Vec::new();
    for id in 0..cfg.clients {
        clients.push(tokio::spawn(workload::register_client(
            id as u64,
            cfg.clients as u64,
            cfg.seed,
            endpoints[id % endpoints.len()].clone(),
            wcfg.clone(),
            rec.clone(),
            stop.clone(),
        )));
    }
    let (end_tx, end_rx) = watch::channel(None);
    let hard_deadline = Instant::now() + cfg.duration + Duration::from_secs(60);
    let mut watchers = Vec::new();
    for w in 0..cfg.watchers {
        watchers.push(tokio::spawn(workload::watcher(
            format!("w{}", w + 1),
            endpoints.clone(),
            w,
            prefix.clone(),
            start_rev,
            end_rx.clone(),
            hard_deadline,
        )));
    }

    let t0 = Instant::now();
    let plan = nemesis::schedule(cfg.seed, &cfg.nemeses, cfg.members, cfg.duration);
    let applied = nemesis::execute(&mut cluster, &plan, t0).await;
    tokio::time::sleep_until((t0 + cfg.duration).into()).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    nemesis::heal_all(&mut cluster);
    cluster.wait_ready(Duration::from_secs(30)).await?;

    // Final linearizable reads, part of the history; then a sentinel write ends the watchers.
    // The client from the start may hold connections the nemeses broke, so each attempt uses a
    // fresh one, starting at a different member; a failed read changes nothing and is recorded
    // as failed.
    let final_deadline = Instant::now() + Duration::from_secs(30);
    let mut final_values = BTreeMap::new();
    for k in 0..cfg.keys {
        let key = workload::key(&prefix, k);
        let mut attempt = 0usize;
        let value = loop {
            let p = rec.invoke(u64::MAX, &key);
            let got = match fresh_client(&endpoints, attempt).await {
                Ok(mut fc) => fc.get(key.as_str(), None).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            match got {
                Ok(r) => {
                    let value = r
                        .kvs()
                        .first()
                        .and_then(|kv| std::str::from_utf8(kv.value()).ok()?.parse().ok());
                    rec.complete(p, Func::Read { value }, Outcome::Ok, None, None);
                    break value;
                }
                Err(e) => {
                    rec.complete(p, Func::Read { value: None }, Outcome::Fail, None, Some(e.to_string()));
                    if Instant::now() > final_deadline {
                        return Err(e.context(format!("final read of {key}\n{}", cluster.logs())));
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        final_values.insert(key, value);
    }
    let end_key = format!("{prefix}{}", workload::END_KEY);
    let mut attempt = 0usize;
    let end_rev = loop {
        let put = match fresh_client(&endpoints, attempt).await {
            Ok(mut fc) => fc.put(end_key.as_str(), "end", None).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match put {
            Ok(r) => break r.header().map(|h| h.revision()).unwrap_or(i64::MAX),
            Err(e) if Instant::now() > final_deadline => {
                return Err(e.context(format!("sentinel write\n{}", cluster.logs())));
            }
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let _ = end_tx.send(Some(end_rev));
    let mut logs: Vec<WatchLog> = Vec::new();
    for w in watchers {
        logs.push(w.await.unwrap_or_default());
    }
    drop(end_tx);
    let duration_s = t0.elapsed().as_secs_f64();
    drop(cluster); // kills members, removes namespaces

    let ops = rec.ops();
    let check_started = Instant::now();
    let report = linear::check(&ops, cfg.limits);
    let mut watch_verdict = watch_check::check(&logs, &ops);
    if let Some(first) = logs.first() {
        let seen = watch_check::final_values(first);
        for (k, v) in &final_values {
            if seen.get(k).copied().flatten() != *v {
                let problem = format!("final read {k}={v:?} but watcher saw {:?}", seen.get(k));
                watch_verdict = match watch_verdict {
                    Verdict::Invalid { reason } => Verdict::Invalid {
                        reason: format!("{reason}; {problem}"),
                    },
                    _ => Verdict::Invalid { reason: problem },
                };
            }
        }
    }
    let mut counts = BTreeMap::new();
    for o in &ops {
        let f = match o.func {
            Func::Read { .. } => "read",
            Func::Write { .. } => "write",
            Func::Cas { .. } => "cas",
        };
        let out = match o.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        *counts.entry(format!("{f} {out}")).or_insert(0) += 1;
    }
    let summary = Summary {
        run: run_name,
        dir: dir.clone(),
        seed: cfg.seed,
        duration_s,
        members: cfg.members,
        clients: cfg.clients,
        keys: cfg.keys,
        schedule: plan,
        applied,
        counts,
        linearizable: report.verdict,
        per_key: report.keys,
        watch: watch_verdict,
        watch_events: logs.iter().map(|l| l.events.len()).collect(),
        watch_reconnects: logs.iter().map(|l| l.reconnects).collect(),
        final_values,
        check_ms: check_started.elapsed().as_millis() as u64,
    };
    std::fs::write(dir.join("history.jsonl"), history::to_jsonl(&ops))?;
    std::fs::write(dir.join("watches.json"), serde_json::to_string_pretty(&logs)?)?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    std::fs::write(dir.join("summary.txt"), summary.text())?;
    if !summary.valid() {
        // Keep the members' data for inspection.
        let kept = data.keep();
        std::fs::write(dir.join("data-dir.txt"), kept.display().to_string())?;
    }
    Ok(summary)
}

/// A new client whose endpoint list starts at member `attempt % n`, so that successive attempts
/// do not all go through the same (possibly unreachable) member first.
async fn fresh_client(endpoints: &[String], attempt: usize) -> Result<etcd_client::Client> {
    let mut eps = endpoints.to_vec();
    if !eps.is_empty() {
        let n = eps.len();
        eps.rotate_left(attempt % n);
    }
    connect(&eps, Duration::from_secs(3)).await
}

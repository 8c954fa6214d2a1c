//! `skiff bench scheduler`: scheduler throughput and creation-to-bind latency through the whole
//! stack, in the manner of Kubernetes' scheduler_perf. Creates `nodes` Node objects (no agents
//! behind them), watches the run's namespace, creates `pods` pods from `clients` clients as fast
//! as they go, and waits until every created pod is bound. Each pod's latency runs from the
//! moment its create was sent to the moment the watch showed it bound, so it covers the API
//! server, Raft, the scheduler's informers, its decision and the binding write.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::conn::{next_data, status_error, Conn};
use super::error::{LoadgenError, OpError};
use super::objects;
use super::ops;
use super::runner::{dial_clients, dialer_for};
use super::sched_objects::{self as so, Shape};
use super::watch_event::LineBuf;

/// Errors kept in the report (the rest are only counted).
const MAX_LISTED_ERRORS: usize = 5;
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct SchedConfig {
    pub label: String,
    pub kubeconfig: PathBuf,
    pub endpoints: Vec<String>,
    pub http2: bool,
    pub nodes: u64,
    pub pods: u64,
    pub clients: usize,
    pub shape: Shape,
    /// Longest wait for every pod to be bound, after the last create.
    pub timeout: Duration,
}

#[derive(Debug, Default, Serialize)]
pub struct SchedReport {
    pub label: String,
    pub shape: String,
    pub nodes: u64,
    pub pods: u64,
    pub clients: usize,
    pub created: u64,
    pub bound: u64,
    pub create_errors: u64,
    pub errors: Vec<String>,
    /// First create sent to last create answered.
    pub create_secs: f64,
    /// First create sent to last binding seen.
    pub total_secs: f64,
    /// Bound pods over `total_secs`.
    pub pods_per_sec: f64,
    /// Creation-to-bind latency percentiles, milliseconds.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub nodes_used: usize,
}

impl SchedReport {
    pub fn failed(&self) -> bool {
        self.created == 0 || self.bound < self.created
    }

    pub fn table(&self) -> String {
        let mut t = format!(
            "scheduler {} ({}): {} nodes, {} pods, {} clients\n",
            self.label, self.shape, self.nodes, self.pods, self.clients
        );
        t += &format!(
            "  created {} ({} errors) in {:.2} s; bound {} on {} nodes in {:.2} s\n",
            self.created, self.create_errors, self.create_secs, self.bound, self.nodes_used, self.total_secs
        );
        t += &format!(
            "  {:.0} pods/s scheduled; creation-to-bind p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
            self.pods_per_sec, self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        );
        for e in &self.errors {
            t += &format!("  error: {e}\n");
        }
        t
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Sends `bodies[i]` for every i with `i % conns.len() == client`, each client on its own
/// connection; returns per item the send instant when it succeeded.
async fn create_all(
    conns: Vec<Conn>,
    path: &str,
    bodies: Arc<Vec<hyper::body::Bytes>>,
    cancel: &CancellationToken,
) -> (Vec<Option<Instant>>, Vec<String>) {
    let n = conns.len().max(1);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(c, mut conn)| {
            let bodies = bodies.clone();
            let path = path.to_string();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut errors = Vec::new();
                for i in (c..bodies.len()).step_by(n) {
                    if cancel.is_cancelled() {
                        break;
                    }
                    let sent = Instant::now();
                    match conn.call(Method::POST, &path, Some(bodies[i].clone())).await {
                        Ok((StatusCode::CREATED, _)) => out.push((i, sent)),
                        Ok((status, body)) => errors.push(status_error(status, &body).to_string()),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (out, errors)
            })
        })
        .collect();
    let mut sent = vec![None; bodies.len()];
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok((ok, errs)) => {
                for (i, at) in ok {
                    sent[i] = Some(at);
                }
                errors.extend(errs);
            }
            Err(e) => errors.push(format!("client task failed: {e}")),
        }
    }
    (sent, errors)
}

/// Follows the namespace's pods from `rv`, noting when each is first seen bound.
async fn watch_bindings(
    mut conn: Conn,
    ns: String,
    rv: i64,
    seen: Arc<Mutex<HashMap<String, (Instant, String)>>>,
    stop: CancellationToken,
) -> Result<(), String> {
    let path = format!("{}?watch=1&resourceVersion={rv}", objects::pods_path(&ns));
    let resp = conn.send(Method::GET, &path, None).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("watch answered {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut lines = LineBuf::default();
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            c = next_data(&mut body) => c,
        };
        let chunk = match chunk {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the server ended the watch".into()),
        };
        let now = Instant::now();
        for line in lines.push(&chunk)? {
            if let Some((pod, node)) = so::binding_of(&line)? {
                seen.lock().entry(pod).or_insert((now, node));
            }
        }
    }
}

async fn setup<T>(what: &str, f: impl std::future::Future<Output = Result<T, OpError>>) -> Result<T, LoadgenError> {
    tokio::time::timeout(SETUP_TIMEOUT, f)
        .await
        .map_err(|_| LoadgenError::WatchSetup(format!("{what}: timed out")))?
        .map_err(|e| LoadgenError::WatchSetup(format!("{what}: {e}")))
}

/// Runs the benchmark; errors only when it cannot start.
pub async fn run(mut cfg: SchedConfig, cancel: CancellationToken) -> Result<SchedReport, LoadgenError> {
    if cfg.clients == 0 || cfg.pods == 0 || cfg.nodes == 0 {
        return Err(LoadgenError::Config(
            "--clients, --pods and --nodes must be above 0".into(),
        ));
    }
    let (dialer, endpoints) = dialer_for(&cfg.kubeconfig, &mut cfg.endpoints, cfg.http2)?;
    let run = format!("{:06x}", rand::thread_rng().gen_range(0..1u32 << 24));
    let ns = format!("sb-{run}");
    let mut ctl = dialer.conn(endpoints[0].clone());
    setup("creating the namespace", ops::ensure_namespace(&mut ctl, &ns)).await?;

    tracing::info!(nodes = cfg.nodes, run = %run, "creating nodes");
    let nodes: Vec<_> = (0..cfg.nodes)
        .map(|i| so::body(&so::node(cfg.shape, &run, i)))
        .collect();
    let conns = dial_clients(&dialer, &endpoints, cfg.clients).await?;
    let (made, errs) = create_all(conns, "/api/v1/nodes", Arc::new(nodes), &cancel).await;
    if made.iter().any(Option::is_none) {
        cleanup(&mut ctl, &ns, &run).await;
        return Err(LoadgenError::WatchSetup(format!(
            "creating nodes failed: {}",
            errs.first().cloned().unwrap_or_default()
        )));
    }

    let rv_body = setup(
        "reading the pods' resourceVersion",
        ctl.call_ok(Method::GET, &format!("{}?limit=1", objects::pods_path(&ns)), None),
    )
    .await?;
    let page = objects::parse_page(&rv_body).map_err(LoadgenError::WatchSetup)?;
    let rv = objects::rv_number(&page.resource_version).map_err(LoadgenError::WatchSetup)?;
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let stop_watch = cancel.child_token();
    let mut wconn = dialer.conn(endpoints[endpoints.len() - 1].clone());
    setup("connecting the watch", wconn.connect()).await?;
    let watcher = tokio::spawn(watch_bindings(wconn, ns.clone(), rv, seen.clone(), stop_watch.clone()));

    tracing::info!(pods = cfg.pods, clients = cfg.clients, "creating pods");
    let pods: Vec<_> = (0..cfg.pods).map(|i| so::body(&so::pod(cfg.shape, &ns, i))).collect();
    let conns = dial_clients(&dialer, &endpoints, cfg.clients).await?;
    let start = Instant::now();
    let (sent, errors) = create_all(conns, &objects::pods_path(&ns), Arc::new(pods), &cancel).await;
    let create_secs = start.elapsed().as_secs_f64();
    let created = sent.iter().filter(|s| s.is_some()).count() as u64;

    let deadline = Instant::now() + cfg.timeout;
    let mut watch_error = None;
    loop {
        if seen.lock().len() as u64 >= created || Instant::now() > deadline || cancel.is_cancelled() {
            break;
        }
        if watcher.is_finished() {
            watch_error = Some("the watch ended early".to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_watch.cancel();
    if let Ok(Err(e)) = watcher.await {
        watch_error = Some(e);
    }

    let seen = std::mem::take(&mut *seen.lock());
    let mut latencies = Vec::with_capacity(seen.len());
    let mut last = start;
    let mut used = std::collections::HashSet::new();
    for (i, s) in sent.iter().enumerate() {
        let (Some(sent_at), Some((bound_at, node))) = (s, seen.get(&so::pod_name(i as u64))) else {
            continue;
        };
        latencies.push(bound_at.saturating_duration_since(*sent_at).as_micros() as u64);
        last = last.max(*bound_at);
        used.insert(node.clone());
    }
    latencies.sort_unstable();
    let total_secs = last.saturating_duration_since(start).as_secs_f64();
    let ms = |p: f64| so::percentile(&latencies, p) as f64 / 1000.0;
    let mut listed: Vec<String> = errors.iter().take(MAX_LISTED_ERRORS).cloned().collect();
    listed.extend(watch_error);
    let report = SchedReport {
        label: cfg.label.clone(),
        shape: cfg.shape.to_string(),
        nodes: cfg.nodes,
        pods: cfg.pods,
        clients: cfg.clients,
        created,
        bound: latencies.len() as u64,
        create_errors: errors.len() as u64,
        errors: listed,
        create_secs,
        total_secs,
        pods_per_sec: if total_secs > 0.0 {
            latencies.len() as f64 / total_secs
        } else {
            0.0
        },
        p50_ms: ms(50.0),
        p90_ms: ms(90.0),
        p99_ms: ms(99.0),
        max_ms: ms(100.0),
        nodes_used: used.len(),
    };
    cleanup(&mut ctl, &ns, &run).await;
    Ok(report)
}

/// Removes the run's namespace (and its pods) and nodes; best effort.
async fn cleanup(ctl: &mut Conn, ns: &str, run: &str) {
    let ns_path = format!("{}/{ns}", objects::namespaces_path());
    if let Err(e) = ctl.call_ok(Method::DELETE, &ns_path, None).await {
        tracing::warn!(namespace = ns, error = %e, "removing the benchmark namespace");
    }
    let nodes = format!("/api/v1/nodes?labelSelector=skiff.dev%2Fbench-run%3D{run}");
    if let Err(e) = ctl.call_ok(Method::DELETE, &nodes, None).await {
        tracing::warn!(error = %e, "removing the benchmark nodes");
    }
}

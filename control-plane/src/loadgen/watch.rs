//! The watchers of the watch workload: each holds one watch on the namespace's configmaps
//! from a fixed resourceVersion, times every ADDED event of this run against the send time
//! its data carries, and remembers the resourceVersions it saw so the run can check that none
//! was lost. Over HTTP/2, watches are multiplexed, [`STREAMS_PER_CONN`] to a connection;
//! over HTTP/1.1 each has its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hyper::Method;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::conn::{next_data, status_error, Conn, Dialer};
use super::endpoint::{endpoint_of, Endpoint};
use super::error::LoadgenError;
use super::objects;
use super::op_kind::OpKind;
use super::recorder::Recorder;
use super::watch_event::{parse_event, Event, LineBuf};

/// How long watchers may take to be established.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Watches per HTTP/2 connection (below the 100 streams Go's and hyper's servers allow at
/// least).
pub const STREAMS_PER_CONN: usize = 50;
/// Connections dialled at once while setting up.
const DIAL_PARALLEL: usize = 32;

/// What one watcher saw.
pub struct WatcherResult {
    /// resourceVersions of this run's ADDED events, in arrival order.
    pub seen: Vec<i64>,
    /// Why its watch ended early, if it did.
    pub error: Option<String>,
}

pub struct Watchers {
    stop: CancellationToken,
    tasks: JoinSet<WatcherResult>,
    counts: Vec<Arc<AtomicU64>>,
}

/// Where the watches go and what they count.
pub struct WatchSpec {
    pub namespace: String,
    /// Watches start after this resourceVersion.
    pub resource_version: i64,
    /// Only events of objects named with it are counted (this run's writes).
    pub run_prefix: Arc<str>,
    /// Asked of the server as timeoutSeconds, so watches outlive the run.
    pub timeout: Duration,
    /// Send times are nanoseconds since this instant.
    pub base: Instant,
}

/// Connections for `n` watchers: shared HTTP/2 connections when the server speaks it, else
/// one (lazily dialled) per watcher.
async fn watcher_conns(dialer: &Arc<Dialer>, endpoints: &[Arc<Endpoint>], n: usize) -> Result<Vec<Conn>, LoadgenError> {
    let shared = n.div_ceil(STREAMS_PER_CONN);
    let dialled: Vec<Result<Conn, LoadgenError>> = futures::stream::iter(0..shared)
        .map(|i| {
            let mut conn = dialer.conn(endpoints[endpoint_of(i, endpoints.len())].clone());
            async move {
                conn.connect().await.map_err(|source| LoadgenError::Connect {
                    endpoint: conn.endpoint().url.clone(),
                    source,
                })?;
                Ok(conn)
            }
        })
        .buffered(DIAL_PARALLEL)
        .collect()
        .await;
    let dialled = dialled.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok((0..n)
        .map(|i| {
            let base = &dialled[i % dialled.len()];
            base.share()
                .unwrap_or_else(|| dialer.conn(endpoints[endpoint_of(i, endpoints.len())].clone()))
        })
        .collect())
}

/// Starts `n` watchers; returns once every watch is established (answered 200).
pub async fn start(
    dialer: &Arc<Dialer>,
    endpoints: &[Arc<Endpoint>],
    n: usize,
    spec: WatchSpec,
    rec: Arc<Recorder>,
) -> Result<Watchers, LoadgenError> {
    let conns = watcher_conns(dialer, endpoints, n).await?;
    let path = format!(
        "{}?watch=1&resourceVersion={}&timeoutSeconds={}",
        objects::configmaps_path(&spec.namespace),
        spec.resource_version,
        spec.timeout.as_secs().max(1)
    );
    let stop = CancellationToken::new();
    let (created_tx, mut created_rx) = mpsc::channel(n.max(1));
    let mut tasks = JoinSet::new();
    let mut counts = Vec::with_capacity(n);
    for conn in conns {
        let count = Arc::new(AtomicU64::new(0));
        counts.push(count.clone());
        tasks.spawn(watcher(Watcher {
            conn,
            path: path.clone(),
            run_prefix: spec.run_prefix.clone(),
            base: spec.base,
            rec: rec.clone(),
            count,
            created: created_tx.clone(),
            announced: false,
            stop: stop.clone(),
        }));
    }
    drop(created_tx);
    let deadline = tokio::time::Instant::now() + CREATE_TIMEOUT;
    for created in 0..n {
        match tokio::time::timeout_at(deadline, created_rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => {
                stop.cancel();
                return Err(LoadgenError::WatchSetup(e));
            }
            Ok(None) | Err(_) => {
                stop.cancel();
                return Err(LoadgenError::WatchSetup(format!(
                    "only {created} of {n} watches established within {CREATE_TIMEOUT:?}"
                )));
            }
        }
    }
    Ok(Watchers { stop, tasks, counts })
}

impl Watchers {
    /// Waits until every watcher has seen `expected` events or `grace` passes, then stops
    /// them and returns what each saw. (A cancelled run waits too, briefly: the events of its
    /// last acknowledged writes are on their way, and are not missing.)
    pub async fn finish(mut self, expected: u64, grace: Duration) -> Vec<WatcherResult> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.counts.iter().any(|c| c.load(Ordering::Relaxed) < expected) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop.cancel();
        let mut out = Vec::new();
        while let Some(r) = self.tasks.join_next().await {
            out.push(r.unwrap_or_else(|e| WatcherResult {
                seen: Vec::new(),
                error: Some(format!("watcher task failed: {e}")),
            }));
        }
        out
    }
}

struct Watcher {
    conn: Conn,
    path: String,
    run_prefix: Arc<str>,
    base: Instant,
    rec: Arc<Recorder>,
    count: Arc<AtomicU64>,
    created: mpsc::Sender<Result<(), String>>,
    /// Whether `created` has heard from this watcher.
    announced: bool,
    stop: CancellationToken,
}

async fn watcher(mut w: Watcher) -> WatcherResult {
    let mut seen = Vec::new();
    let error = watch_loop(&mut w, &mut seen).await;
    if !w.announced {
        let why = error
            .clone()
            .unwrap_or_else(|| "stopped before it was established".into());
        let _ = w.created.send(Err(why)).await;
    }
    WatcherResult { seen, error }
}

/// Runs one watch until stopped; returns why it ended early, if it did.
async fn watch_loop(w: &mut Watcher, seen: &mut Vec<i64>) -> Option<String> {
    let ep = w.conn.endpoint().url.clone();
    let resp = tokio::select! {
        r = w.conn.send(Method::GET, &w.path, None) => r,
        _ = w.stop.cancelled() => return None,
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return Some(format!("watch on {ep}: {e}")),
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let mut body = resp.into_body();
        let first = next_data(&mut body).await.and_then(Result::ok).unwrap_or_default();
        return Some(format!("watch on {ep}: {}", status_error(status, &first)));
    }
    let _ = w.created.send(Ok(())).await;
    w.announced = true;
    let mut body = resp.into_body();
    let mut lines = LineBuf::default();
    loop {
        let chunk = tokio::select! {
            _ = w.stop.cancelled() => return None,
            c = next_data(&mut body) => c,
        };
        let chunk = match chunk {
            Some(Ok(c)) => c,
            Some(Err(e)) => return Some(format!("watch on {ep}: {e}")),
            None => return Some(format!("watch on {ep}: the server ended the stream")),
        };
        let now = u64::try_from(w.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let lines = match lines.push(&chunk) {
            Ok(l) => l,
            Err(e) => return Some(format!("watch on {ep}: {e}")),
        };
        for line in lines {
            match parse_event(&line) {
                Ok(Event::Added { name, rv, sent }) if name.starts_with(&*w.run_prefix) => {
                    if let Some(sent) = sent {
                        w.rec
                            .record(OpKind::WatchEvent, Duration::from_nanos(now.saturating_sub(sent)));
                    }
                    seen.push(rv);
                }
                Ok(Event::Added { .. } | Event::Other(_)) => {}
                Ok(Event::Error { code, message }) => {
                    return Some(format!("watch on {ep}: ERROR event {code}: {message}"));
                }
                Err(e) => return Some(format!("watch on {ep}: {e}")),
            }
        }
        w.count.store(seen.len() as u64, Ordering::Relaxed);
    }
}

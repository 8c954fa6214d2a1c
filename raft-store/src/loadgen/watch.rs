//! The watchers of the watch workload: each opens its own Watch stream on the workload's
//! prefix, times every PUT event against the send time carried in its value, and remembers
//! the revisions it saw so the run can check that none was lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::etcdserverpb as pb;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::mvccpb::event::EventType;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::error::LoadgenError;
use super::keys::prefix_end;
use super::op_kind::OpKind;
use super::recorder::Recorder;
use super::worker::value_timestamp;

/// How long watchers may take to be created.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one watcher saw.
pub struct WatcherResult {
    /// Event revisions in arrival order.
    pub seen: Vec<i64>,
    /// Why its stream ended early, if it did.
    pub error: Option<String>,
}

pub struct Watchers {
    stop: CancellationToken,
    tasks: JoinSet<WatcherResult>,
    counts: Vec<Arc<AtomicU64>>,
}

/// Starts `n` watchers, watcher `i` on `channels[i % len]`; returns once all are created.
pub async fn start(
    channels: &[Channel],
    prefix: &[u8],
    n: usize,
    base: Instant,
    rec: Arc<Recorder>,
) -> Result<Watchers, LoadgenError> {
    let stop = CancellationToken::new();
    let (created_tx, mut created_rx) = mpsc::channel(n.max(1));
    let mut tasks = JoinSet::new();
    let mut counts = Vec::with_capacity(n);
    for i in 0..n {
        let count = Arc::new(AtomicU64::new(0));
        counts.push(count.clone());
        tasks.spawn(watcher(
            WatchClient::new(channels[i % channels.len()].clone()),
            prefix.to_vec(),
            base,
            rec.clone(),
            count,
            created_tx.clone(),
            stop.clone(),
        ));
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
                    "only {created} of {n} watchers created within {CREATE_TIMEOUT:?}"
                )));
            }
        }
    }
    Ok(Watchers { stop, tasks, counts })
}

impl Watchers {
    /// Waits until every watcher has seen `expected` events (or `grace` passes, or the run is
    /// cancelled), then stops them and returns what each saw.
    pub async fn finish(mut self, expected: u64, grace: Duration, cancel: &CancellationToken) -> Vec<WatcherResult> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && !cancel.is_cancelled()
            && self.counts.iter().any(|c| c.load(Ordering::Relaxed) < expected)
        {
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

async fn watcher(
    mut client: WatchClient<Channel>,
    prefix: Vec<u8>,
    base: Instant,
    rec: Arc<Recorder>,
    count: Arc<AtomicU64>,
    created: mpsc::Sender<Result<(), String>>,
    stop: CancellationToken,
) -> WatcherResult {
    let mut seen = Vec::new();
    let mut announced = false;
    let (tx, rx) = mpsc::channel(1);
    let create = pb::WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            ..Default::default()
        })),
    };
    // The receiver is alive: it is ours until `watch` takes it.
    let _ = tx.send(create).await;
    let error = match client.watch(ReceiverStream::new(rx)).await {
        Err(s) => Some(format!("watch: {}: {}", s.code(), s.message())),
        Ok(resp) => {
            let mut stream = resp.into_inner();
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => break None,
                    m = stream.message() => m,
                };
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => break Some("watch stream ended".to_string()),
                    Err(s) => break Some(format!("watch stream: {}: {}", s.code(), s.message())),
                };
                if resp.created && !announced {
                    announced = true;
                    let _ = created.send(Ok(())).await;
                }
                if resp.canceled {
                    break Some(format!("watch canceled: {}", resp.cancel_reason));
                }
                let now = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                for ev in resp.events {
                    let Some(kv) = ev.kv else { continue };
                    if ev.r#type != EventType::Put as i32 {
                        continue;
                    }
                    if let Some(ts) = value_timestamp(&kv.value) {
                        rec.record(OpKind::WatchEvent, Duration::from_nanos(now.saturating_sub(ts)));
                    }
                    seen.push(kv.mod_revision);
                }
                count.store(seen.len() as u64, Ordering::Relaxed);
            }
        }
    };
    if !announced {
        let why = error.clone().unwrap_or_else(|| "stopped before it was created".into());
        let _ = created.send(Err(why)).await;
    }
    drop(tx);
    WatcherResult { seen, error }
}

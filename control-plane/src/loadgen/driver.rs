//! Runs client tasks until the run's bounds: takes op numbers from a shared counter, waits
//! for each op's due time when paced, times it, records the outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::error::OpError;
use super::recorder::Recorder;
use super::worker::Worker;
use raft_store::loadgen::pacing::{Bounds, Pacer};

/// After a failed op a client pauses this long, so a dead cluster is not hammered in a tight
/// loop (the run still ends at its bounds).
const ERROR_PAUSE: Duration = Duration::from_millis(5);

pub struct Plan {
    pub bounds: Bounds,
    pub pacer: Pacer,
    pub op_timeout: Duration,
}

/// Runs every worker to the end of the plan; returns when all have stopped. `start` is the
/// instant the schedule (and the duration bound) counts from.
pub async fn drive(workers: Vec<Worker>, plan: Plan, rec: Arc<Recorder>, start: Instant, cancel: CancellationToken) {
    let next = Arc::new(AtomicU64::new(0));
    let plan = Arc::new(plan);
    let mut tasks = tokio::task::JoinSet::new();
    for w in workers {
        tasks.spawn(client(
            w,
            plan.clone(),
            next.clone(),
            rec.clone(),
            start,
            cancel.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

async fn client(
    mut w: Worker,
    plan: Arc<Plan>,
    next: Arc<AtomicU64>,
    rec: Arc<Recorder>,
    start: Instant,
    cancel: CancellationToken,
) {
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let due = plan.pacer.due(n);
        if cancel.is_cancelled() || !plan.bounds.admits(n, due, start.elapsed()) {
            return;
        }
        let origin = match due {
            Some(d) => {
                let at = start + d;
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = cancel.cancelled() => return,
                }
                at
            }
            None => Instant::now(),
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(plan.op_timeout, w.op(n)) => r,
            _ = cancel.cancelled() => return,
        };
        match outcome {
            Ok(Ok(done)) => {
                rec.record(done.kind, origin.elapsed());
                if let Some(n) = done.items {
                    rec.list_items(n);
                }
            }
            Ok(Err(e)) => {
                rec.error(&e);
                tokio::time::sleep(ERROR_PAUSE).await;
            }
            Err(_) => {
                w.reset();
                rec.error(&OpError::Timeout(plan.op_timeout));
            }
        }
    }
}

//! `WatchHub`: the state machine publishes into it, watch streams register with it, and its
//! background task catches unsynced watchers up from storage and sends progress notifications.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::HubState;
use super::stream::WatchStream;
use super::types::{WatchConfig, WatchMsg};
use super::History;
use crate::mvcc::{Event, MvccError};

pub struct WatchHub {
    history: Arc<dyn History>,
    config: WatchConfig,
    /// Lock order: the state machine's lock, then this one (`publish` and `resync` are called
    /// with the state machine's lock held). Hence this lock is never held while calling
    /// `History`, nor across an `.await`; everything done under it is non-blocking.
    pub(super) state: Mutex<HubState>,
    /// Wakes `run` when a watcher became unsynced or a progress request is waiting.
    pub(super) wake: Notify,
}

impl WatchHub {
    /// A hub whose last published revision is `current_rev`, with etcd's default tunables.
    pub fn new(history: Arc<dyn History>, current_rev: i64) -> Arc<Self> {
        Self::with_config(history, current_rev, WatchConfig::default())
    }

    pub fn with_config(history: Arc<dyn History>, current_rev: i64, config: WatchConfig) -> Arc<Self> {
        Arc::new(Self {
            history,
            config,
            state: Mutex::new(HubState::new(current_rev)),
            wake: Notify::new(),
        })
    }

    /// Called by the state machine after each applied batch, with the batch's events grouped by
    /// revision (ascending) and the store revision after it. Never blocks: a watcher whose
    /// channel is full drops to the unsynced group and is caught up from storage.
    pub fn publish(&self, revs: &[(i64, Vec<Event>)], current_rev: i64) {
        let fell_behind = self.state.lock().publish(revs, current_rev);
        if fell_behind {
            self.wake.notify_one();
        }
    }

    /// Called after a snapshot install replaced the state: synced watchers that have not seen
    /// every revision up to `current_rev` are caught up from storage.
    pub fn resync(&self, current_rev: i64) {
        let moved = self.state.lock().resync(current_rev);
        if moved {
            self.wake.notify_one();
        }
    }

    /// The last revision published (the header revision of progress notifications).
    pub fn last_revision(&self) -> i64 {
        self.state.lock().last_rev
    }

    /// Registered watchers, synced or not.
    pub fn watcher_count(&self) -> usize {
        self.state.lock().watcher_count()
    }

    /// Watchers currently behind (being caught up from storage).
    pub fn unsynced_count(&self) -> usize {
        self.state.lock().unsynced_count()
    }

    /// Opens a client stream: every message for its watchers goes to `sink`, in order.
    /// Dropping the returned handle removes all of its watchers.
    pub fn open_stream(self: &Arc<Self>, sink: mpsc::Sender<WatchMsg>) -> WatchStream {
        let id = self.state.lock().open_stream(sink);
        WatchStream::new(self.clone(), id)
    }

    /// Background task: catches unsynced watchers up from `History` (`batch_revs` revisions per
    /// read), answers pending progress requests, and sends periodic progress notifications.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut next_progress = Instant::now() + self.config.progress_interval;
        while !shutdown.is_cancelled() {
            let advanced = self.catch_up_once().await;
            let now = Instant::now();
            {
                let mut st = self.state.lock();
                st.flush_pending_progress();
                if now >= next_progress {
                    st.progress_tick();
                }
            }
            if now >= next_progress {
                next_progress = now + self.config.progress_interval;
            }
            if advanced {
                // More may be ready right away; let other tasks run in between.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.retry_interval) => {}
                _ = tokio::time::sleep_until(next_progress) => {}
            }
        }
    }

    /// One catch-up step: plan under the lock, read history without it, deliver under it.
    /// Returns true if some watcher advanced.
    async fn catch_up_once(&self) -> bool {
        let batch = self.config.batch_revs.max(1);
        let Some((from, to)) = self.state.lock().plan_catch_up(batch) else {
            return false;
        };
        if from > to {
            return false;
        }
        let history = self.history.clone();
        let read = tokio::task::spawn_blocking(move || history.history(from, to, batch)).await;
        let read = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "watch catch-up read panicked or was cancelled");
                return false;
            }
        };
        match read {
            Ok(revs) => self.state.lock().apply_history(from, to, &revs, batch),
            Err(MvccError::Compacted { compacted, .. }) => self.state.lock().cancel_compacted(compacted),
            Err(e) => {
                tracing::warn!(error = %e, from, to, "watch catch-up could not read history");
                false
            }
        }
    }
}

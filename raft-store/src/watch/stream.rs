//! `WatchStream`: one client stream's handle on the hub. The Watch service creates, cancels and
//! asks for progress through it; dropping it removes all of the stream's watchers.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::hub::WatchHub;
use super::types::{WatchError, WatchMsg, WatchSpec};

pub struct WatchStream {
    hub: Arc<WatchHub>,
    id: u64,
}

impl WatchStream {
    pub(super) fn new(hub: Arc<WatchHub>, id: u64) -> Self {
        Self { hub, id }
    }

    /// Creates a watcher (`watch_id` 0: the hub picks one) and answers the create request
    /// through `permit` (a reserved slot of this stream's channel), so that the `Created`
    /// message precedes the watcher's first events. On error the answer is a create response
    /// with `watch_id` -1 and the reason, as etcd sends.
    pub fn watch(&self, permit: mpsc::Permit<'_, WatchMsg>, watch_id: i64, spec: WatchSpec) -> Result<i64, WatchError> {
        let (id, unsynced) = self.hub.state.lock().add_watcher(self.id, permit, watch_id, spec)?;
        if unsynced {
            self.hub.wake.notify_one();
        }
        Ok(id)
    }

    /// Removes a watcher. `Some(revision)` if it existed: the caller then sends the canceled
    /// response (no event of the watcher can follow it).
    pub fn cancel(&self, watch_id: i64) -> Option<i64> {
        self.hub.state.lock().cancel(self.id, watch_id)
    }

    /// Asks for a stream-wide progress notification (watch ID -1), sent once every watcher of
    /// the stream is synced.
    pub fn request_progress(&self) {
        let mut st = self.hub.state.lock();
        st.request_progress(self.id);
        let pending = st.flush_pending_progress();
        drop(st);
        if pending {
            self.hub.wake.notify_one();
        }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.hub.state.lock().close_stream(self.id);
    }
}

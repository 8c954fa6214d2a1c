//! What the hub and the Watch service exchange. Domain types only: the gRPC layer converts
//! `WatchMsg` into etcd's `WatchResponse`.

use std::time::Duration;

use thiserror::Error;

use crate::mvcc::Event;

/// A create request's `watch_id` asking the server to pick one (etcd 3.5's `AutoWatchID`).
/// Picked IDs count up from 0 per stream, skipping IDs in use.
pub const AUTO_WATCH_ID: i64 = 0;

/// The watch ID of responses that concern no single watcher: a failed create, and the
/// stream-wide answer to a progress request (etcd's `clientv3.InvalidWatchID`).
pub const INVALID_WATCH_ID: i64 = -1;

/// What to watch, as the Watch service parsed it from a create request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSpec {
    /// First key; the service turns an empty key into `\0` (the smallest key), as etcd does.
    pub key: Vec<u8>,
    /// etcd range conventions: empty = the single key, `\0` = every key from `key` on.
    pub range_end: Vec<u8>,
    /// First revision to deliver; 0 = after the current revision.
    pub start_revision: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
    pub progress_notify: bool,
    /// The client accepts a large revision split over several responses.
    pub fragment: bool,
}

/// One message to a watch stream, in the order it must reach the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMsg {
    /// Answer to a create request. `cancel_reason` is set (and `watch_id` is
    /// `INVALID_WATCH_ID`) when the watcher could not be created.
    Created {
        watch_id: i64,
        revision: i64,
        cancel_reason: Option<String>,
    },
    /// Whole revisions of events, ascending; `revision` is the header revision.
    Events {
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
        fragment: bool,
    },
    /// No events: every event up to `revision` has been sent before this message.
    /// `watch_id` is `INVALID_WATCH_ID` when it answers a stream-wide progress request.
    Progress { watch_id: i64, revision: i64 },
    /// The watcher is gone. `compact_revision` is non-zero when its start was compacted away.
    Canceled {
        watch_id: i64,
        revision: i64,
        compact_revision: i64,
        reason: String,
    },
}

impl WatchMsg {
    pub fn watch_id(&self) -> i64 {
        match self {
            WatchMsg::Created { watch_id, .. }
            | WatchMsg::Events { watch_id, .. }
            | WatchMsg::Progress { watch_id, .. }
            | WatchMsg::Canceled { watch_id, .. } => *watch_id,
        }
    }
}

/// Why a watcher could not be created; the text is what etcd puts in `cancel_reason`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum WatchError {
    #[error("mvcc: watcher range is empty")]
    EmptyRange,
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateId { watch_id: i64 },
    /// A negative start revision (etcd answers these as compacted).
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted { requested: i64 },
    #[error("watch stream is closed")]
    StreamClosed,
}

/// Tunables; `Default` matches etcd.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// How often watchers created with `progress_notify` get an idle progress notification.
    pub progress_interval: Duration,
    /// How often unsynced watchers whose channel was full are retried.
    pub retry_interval: Duration,
    /// Revisions read from history per catch-up step.
    pub batch_revs: usize,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            progress_interval: Duration::from_secs(10 * 60),
            retry_interval: Duration::from_millis(100),
            batch_revs: 100,
        }
    }
}

//! The watch hub: fans applied events out to watchers, etcd v3 style.
//!
//! Watchers live in two groups, as in etcd's `watchableStore`:
//! - **synced**: caught up with the hub's last published revision; `publish` hands them each
//!   applied batch directly.
//! - **unsynced**: behind; the hub's background task (`WatchHub::run`) replays their missing
//!   revisions from committed storage through `History`, in bounded batches, and moves them
//!   back to synced once they have caught up.
//!
//! A watcher whose channel is full never blocks `publish` (which runs under the state machine's
//! lock): it drops to the unsynced group, remembering the first revision it has not received,
//! and is caught up from storage later (etcd's "victims" are folded into unsynced here: their
//! events are re-read rather than held in memory).
//!
//! Every watcher tracks `next_rev`, the first revision it has not been sent. Publishing and
//! catch-up only deliver revisions `>= next_rev` and advance it, so each event is delivered
//! exactly once and in revision order; a message never splits a revision. A watcher rejoins the
//! synced group only under the hub's lock and only when `next_rev` is past the last published
//! revision, so no revision can fall between the two paths.
//!
//! # Layout
//! - `types`: what the hub and the Watch service exchange (`WatchSpec`, `WatchMsg`, errors, config).
//! - `watcher`: one watcher: its range, filters and delivery of revisions into messages.
//! - `state`: the hub's state under its lock: the groups, streams, and every decision (no IO
//!   beyond non-blocking `try_send`).
//! - `hub`: `WatchHub`: the lock, `publish`/`resync` for the state machine, and the catch-up and
//!   progress task.
//! - `stream`: `WatchStream`: one client stream's handle (create, cancel, request progress);
//!   dropping it removes the stream's watchers.

mod hub;
mod state;
mod stream;
mod types;
mod watcher;

#[cfg(test)]
mod tests;

use crate::mvcc::{Event, MvccError};

pub use hub::WatchHub;
pub use stream::WatchStream;
pub use types::{WatchConfig, WatchError, WatchMsg, WatchSpec, AUTO_WATCH_ID, INVALID_WATCH_ID};

/// Committed history, as the state machine's storage holds it.
///
/// Implementations take the state machine's lock; the hub never calls them while holding its
/// own lock (lock order: state machine, then hub).
pub trait History: Send + Sync + 'static {
    /// Events with `from <= revision <= to`, grouped by revision in ascending order, at most
    /// `max_revs` revisions (whole revisions only). `Err(MvccError::Compacted { .. })` when
    /// `from` is below the compacted revision.
    fn history(&self, from: i64, to: i64, max_revs: usize) -> Result<Vec<(i64, Vec<Event>)>, MvccError>;

    /// `(current revision, compacted revision)`.
    fn revisions(&self) -> (i64, i64);
}

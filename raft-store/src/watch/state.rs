//! The hub's state under its lock, and every decision about it. Nothing here blocks or waits:
//! messages go out with `try_send`, and a full channel only moves a watcher to `unsynced`.
//!
//! Invariant: every watcher in `synced` has `next_rev > last_rev`, and has been sent every
//! event it wants up to `last_rev`. Publishing keeps it (synced watchers get each batch and
//! move past it, or drop to `unsynced`); catch-up only promotes a watcher once it holds.

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::types::{WatchError, WatchMsg, WatchSpec, AUTO_WATCH_ID, INVALID_WATCH_ID};
use super::watcher::{try_send, Delivery, Watcher};
use crate::mvcc::Event;

/// Internal, hub-unique watcher key (client watch IDs are only unique per stream).
type Serial = u64;

struct StreamEntry {
    sink: mpsc::Sender<WatchMsg>,
    /// Client watch ID -> watcher.
    ids: HashMap<i64, Serial>,
    next_auto_id: i64,
    /// A progress request waits for every watcher of the stream to be synced.
    progress_pending: bool,
}

#[derive(Default)]
pub(super) struct HubState {
    /// The last revision published by the state machine (or installed by a snapshot).
    pub last_rev: i64,
    next_serial: Serial,
    next_stream: u64,
    streams: HashMap<u64, StreamEntry>,
    synced: HashMap<Serial, Watcher>,
    unsynced: HashMap<Serial, Watcher>,
}

impl HubState {
    pub fn new(current_rev: i64) -> Self {
        Self {
            last_rev: current_rev,
            ..Self::default()
        }
    }

    pub fn watcher_count(&self) -> usize {
        self.synced.len() + self.unsynced.len()
    }

    pub fn unsynced_count(&self) -> usize {
        self.unsynced.len()
    }

    pub fn open_stream(&mut self, sink: mpsc::Sender<WatchMsg>) -> u64 {
        let id = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(
            id,
            StreamEntry {
                sink,
                ids: HashMap::new(),
                next_auto_id: 0,
                progress_pending: false,
            },
        );
        id
    }

    pub fn close_stream(&mut self, stream: u64) {
        if let Some(entry) = self.streams.remove(&stream) {
            for serial in entry.ids.values() {
                self.synced.remove(serial);
                self.unsynced.remove(serial);
            }
        }
    }

    /// Creates a watcher and answers the create request through `permit`, before any event of
    /// the watcher can reach the channel. Returns the watch ID, and whether it starts unsynced
    /// (the caller then wakes the catch-up task).
    pub fn add_watcher(
        &mut self,
        stream: u64,
        permit: mpsc::Permit<'_, WatchMsg>,
        watch_id: i64,
        spec: WatchSpec,
    ) -> Result<(i64, bool), WatchError> {
        let last_rev = self.last_rev;
        let refuse = |permit: mpsc::Permit<'_, WatchMsg>, e: WatchError| {
            permit.send(WatchMsg::Created {
                watch_id: INVALID_WATCH_ID,
                revision: last_rev,
                cancel_reason: Some(e.to_string()),
            });
            Err(e)
        };
        let Some(entry) = self.streams.get_mut(&stream) else {
            return Err(WatchError::StreamClosed);
        };
        if spec.start_revision < 0 {
            return refuse(
                permit,
                WatchError::Compacted {
                    requested: spec.start_revision,
                },
            );
        }
        if !spec.range_end.is_empty() && spec.range_end != [0] && spec.key >= spec.range_end {
            return refuse(permit, WatchError::EmptyRange);
        }
        let id = if watch_id == AUTO_WATCH_ID {
            while entry.ids.contains_key(&entry.next_auto_id) {
                entry.next_auto_id += 1;
            }
            entry.next_auto_id += 1;
            entry.next_auto_id - 1
        } else if entry.ids.contains_key(&watch_id) {
            return refuse(permit, WatchError::DuplicateId { watch_id });
        } else {
            watch_id
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        entry.ids.insert(id, serial);
        permit.send(WatchMsg::Created {
            watch_id: id,
            revision: last_rev,
            cancel_reason: None,
        });

        let next_rev = if spec.start_revision == 0 {
            last_rev + 1
        } else {
            spec.start_revision
        };
        let w = Watcher {
            stream,
            watch_id: id,
            spec,
            next_rev,
            events_since_tick: false,
            sink: entry.sink.clone(),
        };
        let unsynced = next_rev <= last_rev;
        if unsynced {
            self.unsynced.insert(serial, w);
        } else {
            self.synced.insert(serial, w);
        }
        Ok((id, unsynced))
    }

    /// Removes a watcher; `Some(last_rev)` if it existed.
    pub fn cancel(&mut self, stream: u64, watch_id: i64) -> Option<i64> {
        let serial = self.streams.get_mut(&stream)?.ids.remove(&watch_id)?;
        self.synced.remove(&serial);
        self.unsynced.remove(&serial);
        Some(self.last_rev)
    }

    fn remove(&mut self, serial: Serial) {
        let w = self.synced.remove(&serial).or_else(|| self.unsynced.remove(&serial));
        if let Some(w) = w {
            if let Some(entry) = self.streams.get_mut(&w.stream) {
                entry.ids.remove(&w.watch_id);
            }
        }
    }

    /// Hands an applied batch to the synced watchers. Returns true if some watcher fell behind.
    pub fn publish(&mut self, revs: &[(i64, Vec<Event>)], current_rev: i64) -> bool {
        let mut behind = Vec::new();
        let mut closed = Vec::new();
        for (serial, w) in self.synced.iter_mut() {
            match w.deliver(revs, current_rev, current_rev) {
                Delivery::Done => {}
                Delivery::Full => behind.push(*serial),
                Delivery::Closed => closed.push(*serial),
            }
        }
        for serial in closed {
            self.remove(serial);
        }
        for serial in &behind {
            if let Some(w) = self.synced.remove(serial) {
                self.unsynced.insert(*serial, w);
            }
        }
        self.last_rev = self.last_rev.max(current_rev);
        !behind.is_empty()
    }

    /// After a snapshot replaced the state: synced watchers that have not seen everything up to
    /// `current_rev` go to `unsynced`. Returns true if any did.
    pub fn resync(&mut self, current_rev: i64) -> bool {
        let behind: Vec<Serial> = self
            .synced
            .iter()
            .filter(|(_, w)| w.next_rev <= current_rev)
            .map(|(s, _)| *s)
            .collect();
        for serial in &behind {
            if let Some(w) = self.synced.remove(serial) {
                self.unsynced.insert(*serial, w);
            }
        }
        self.last_rev = self.last_rev.max(current_rev);
        !behind.is_empty()
    }

    /// The next history read for catch-up: from the lowest `next_rev` among unsynced watchers
    /// whose channel has room, at most `batch` revisions, never past `last_rev` (so storage is
    /// known to hold all of it). Watchers already past `last_rev` are promoted on the way.
    pub fn plan_catch_up(&mut self, batch: usize) -> Option<(i64, i64)> {
        self.promote_caught_up();
        let from = self
            .unsynced
            .values()
            .filter(|w| w.sink.capacity() > 0)
            .map(|w| w.next_rev)
            .min()?;
        let span = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        Some((from, from.saturating_add(span - 1).min(self.last_rev)))
    }

    /// Delivers a history read of `[from, to]` (at most `batch` revisions) to the unsynced
    /// watchers it covers, then promotes those that caught up. Returns true if any advanced.
    pub fn apply_history(&mut self, from: i64, to: i64, revs: &[(i64, Vec<Event>)], batch: usize) -> bool {
        // A full read stopped at its last revision; a short one covers all of [from, to].
        let covered = match revs.last() {
            Some((last, _)) if revs.len() >= batch => *last,
            _ => to,
        };
        let mut advanced = false;
        let mut closed = Vec::new();
        for (serial, w) in self.unsynced.iter_mut() {
            // Watchers created since the read was planned may start before `from`.
            if w.next_rev < from || w.next_rev > covered {
                continue;
            }
            let before = w.next_rev;
            match w.deliver(revs, covered, covered) {
                Delivery::Closed => closed.push(*serial),
                Delivery::Done | Delivery::Full => advanced |= w.next_rev > before,
            }
        }
        for serial in closed {
            self.remove(serial);
        }
        self.promote_caught_up();
        advanced
    }

    /// History below `compacted` is gone: watchers that still need it are canceled with
    /// `compact_revision` set, as etcd does. A watcher whose channel is full is retried later.
    pub fn cancel_compacted(&mut self, compacted: i64) -> bool {
        let doomed: Vec<Serial> = self
            .unsynced
            .iter()
            .filter(|(_, w)| w.next_rev < compacted)
            .map(|(s, _)| *s)
            .collect();
        let mut changed = false;
        for serial in doomed {
            let Some(w) = self.unsynced.get(&serial) else {
                continue;
            };
            let msg = WatchMsg::Canceled {
                watch_id: w.watch_id,
                revision: self.last_rev,
                compact_revision: compacted,
                reason: String::new(),
            };
            if try_send(&w.sink, msg) != Delivery::Full {
                self.remove(serial);
                changed = true;
            }
        }
        changed
    }

    fn promote_caught_up(&mut self) {
        let last_rev = self.last_rev;
        let ready: Vec<Serial> = self
            .unsynced
            .iter()
            .filter(|(_, w)| w.next_rev > last_rev)
            .map(|(s, _)| *s)
            .collect();
        for serial in ready {
            if let Some(w) = self.unsynced.remove(&serial) {
                self.synced.insert(serial, w);
            }
        }
    }

    /// A client's progress request: answered (watch ID -1, header = `last_rev`) as soon as all
    /// of the stream's watchers are synced; until then it stays pending.
    pub fn request_progress(&mut self, stream: u64) {
        if let Some(entry) = self.streams.get_mut(&stream) {
            entry.progress_pending = true;
        }
        self.try_stream_progress(stream);
    }

    /// Retries pending progress requests. Returns true if some are still pending.
    pub fn flush_pending_progress(&mut self) -> bool {
        let pending: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, e)| e.progress_pending)
            .map(|(s, _)| *s)
            .collect();
        let mut still = false;
        for stream in pending {
            still |= !self.try_stream_progress(stream);
        }
        still
    }

    /// Returns true when nothing is pending any more for this stream.
    fn try_stream_progress(&mut self, stream: u64) -> bool {
        let Some(entry) = self.streams.get(&stream) else {
            return true;
        };
        if !entry.progress_pending {
            return true;
        }
        let all_synced = entry
            .ids
            .values()
            .all(|s| self.synced.get(s).is_some_and(|w| w.progress_allowed(self.last_rev)));
        if !all_synced {
            return false;
        }
        let msg = WatchMsg::Progress {
            watch_id: INVALID_WATCH_ID,
            revision: self.last_rev,
        };
        let sent = try_send(&entry.sink, msg) != Delivery::Full;
        if let Some(entry) = self.streams.get_mut(&stream) {
            entry.progress_pending = !sent;
        }
        sent
    }

    /// The periodic notification for watchers created with `progress_notify`: sent to synced
    /// watchers that got no events since the previous tick (best effort: a full channel skips it).
    pub fn progress_tick(&mut self) {
        let last_rev = self.last_rev;
        for w in self.synced.values_mut() {
            if w.spec.progress_notify && !w.events_since_tick && w.progress_allowed(last_rev) {
                let _ = try_send(
                    &w.sink,
                    WatchMsg::Progress {
                        watch_id: w.watch_id,
                        revision: last_rev,
                    },
                );
            }
            w.events_since_tick = false;
        }
        for w in self.unsynced.values_mut() {
            w.events_since_tick = false;
        }
    }
}

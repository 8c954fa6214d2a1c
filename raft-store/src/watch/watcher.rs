//! One watcher: what it watches, how far it has been sent, and turning revisions of events into
//! messages on its stream's channel.

use tokio::sync::mpsc::{self, error::TrySendError};

use super::types::{WatchMsg, WatchSpec};
use crate::mvcc::{in_range, Event, EventType};

/// Soft cap on the events of one message: a message holds whole revisions, and starts a new
/// one before a revision that would take it past this (so only a single revision larger than
/// the cap makes a larger message). Keeps responses under common clients' 4 MiB receive limit.
pub(super) const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The outcome of handing revisions to a watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Everything up to the given revision was sent (or had nothing for this watcher).
    Done,
    /// The channel is full; `next_rev` is the first revision not sent.
    Full,
    /// The stream is gone.
    Closed,
}

pub(super) struct Watcher {
    pub stream: u64,
    pub watch_id: i64,
    pub spec: WatchSpec,
    /// First revision not yet sent to this watcher.
    pub next_rev: i64,
    /// Events were sent since the last progress tick (etcd elides the next notification then).
    pub events_since_tick: bool,
    pub sink: mpsc::Sender<WatchMsg>,
}

impl Watcher {
    fn wants(&self, ev: &Event) -> bool {
        let kind_ok = match ev.kind {
            EventType::Put => !self.spec.no_put,
            EventType::Delete => !self.spec.no_delete,
        };
        kind_ok && in_range(&ev.kv.key, &self.spec.key, &self.spec.range_end)
    }

    /// This watcher's events of one revision: filtered, `prev_kv` kept only when asked for.
    fn select(&self, evs: &[Event]) -> Vec<Event> {
        evs.iter()
            .filter(|ev| self.wants(ev))
            .map(|ev| {
                let mut ev = ev.clone();
                if !self.spec.prev_kv {
                    ev.prev_kv = None;
                }
                ev
            })
            .collect()
    }

    /// Sends the revisions of `revs` (ascending) in `[next_rev, upto]` and advances `next_rev`
    /// past what was sent. `revs` must hold every revision with events in that interval; on
    /// `Done`, `next_rev` ends past `upto`. `header_rev` is the messages' header revision.
    pub fn deliver(&mut self, revs: &[(i64, Vec<Event>)], upto: i64, header_rev: i64) -> Delivery {
        let mut batch: Vec<Event> = Vec::new();
        let mut batch_bytes = 0usize;
        // The last revision the unsent batch accounts for (including revisions with nothing
        // for this watcher that came after its first event).
        let mut batch_to = 0i64;
        let start = self.next_rev;
        for (rev, evs) in revs.iter().filter(|(r, _)| *r >= start && *r <= upto) {
            let mine = self.select(evs);
            let bytes: usize = mine.iter().map(event_bytes).sum();
            if !batch.is_empty() && batch_bytes + bytes > MAX_MESSAGE_BYTES {
                match self.send(std::mem::take(&mut batch), header_rev) {
                    Delivery::Done => self.next_rev = batch_to + 1,
                    other => return other,
                }
                batch_bytes = 0;
            }
            if mine.is_empty() && batch.is_empty() {
                self.next_rev = rev + 1;
                continue;
            }
            batch.extend(mine);
            batch_bytes += bytes;
            batch_to = *rev;
        }
        if !batch.is_empty() {
            match self.send(batch, header_rev) {
                Delivery::Done => self.next_rev = batch_to + 1,
                other => return other,
            }
        }
        self.next_rev = self.next_rev.max(upto + 1);
        Delivery::Done
    }

    fn send(&mut self, events: Vec<Event>, header_rev: i64) -> Delivery {
        let msg = WatchMsg::Events {
            watch_id: self.watch_id,
            revision: header_rev,
            events,
            fragment: self.spec.fragment,
        };
        let d = try_send(&self.sink, msg);
        if d == Delivery::Done {
            self.events_since_tick = true;
        }
        d
    }

    /// Whether a progress notification at `rev` may be sent: etcd withholds it while the
    /// revision is below the watcher's requested start.
    pub fn progress_allowed(&self, rev: i64) -> bool {
        rev >= self.spec.start_revision
    }
}

pub(super) fn try_send(sink: &mpsc::Sender<WatchMsg>, msg: WatchMsg) -> Delivery {
    match sink.try_send(msg) {
        Ok(()) => Delivery::Done,
        Err(TrySendError::Full(_)) => Delivery::Full,
        Err(TrySendError::Closed(_)) => Delivery::Closed,
    }
}

/// Rough encoded size of an event, for batching.
fn event_bytes(ev: &Event) -> usize {
    let kv = |k: &crate::mvcc::KeyValue| k.key.len() + k.value.len() + 48;
    kv(&ev.kv) + ev.prev_kv.as_ref().map_or(0, kv) + 8
}

//! Where clients put their results: a latency histogram per op kind, conflicts and errors.
//! Shared by all client tasks; each record takes one short uncontended-ish lock (a few tens of
//! ns, far below the cost of an RPC).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use super::error::OpError;
use super::histogram::Histogram;
use super::op_kind::OpKind;

/// Errors of one class: how many, and the first message seen.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorTally {
    pub count: u64,
    pub example: String,
}

pub struct Recorder {
    hists: Vec<Mutex<Histogram>>,
    conflicts: AtomicU64,
    errors: Mutex<BTreeMap<String, ErrorTally>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            hists: OpKind::ALL.iter().map(|_| Mutex::new(Histogram::new())).collect(),
            conflicts: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn record(&self, kind: OpKind, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.hists[kind.slot()].lock().record(ns);
    }

    pub fn conflict(&self) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, e: &OpError) {
        let mut errors = self.errors.lock();
        let t = errors.entry(e.class()).or_insert_with(|| ErrorTally {
            count: 0,
            example: e.to_string().chars().take(300).collect(),
        });
        t.count += 1;
    }

    pub fn histogram(&self, kind: OpKind) -> Histogram {
        self.hists[kind.slot()].lock().clone()
    }

    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> BTreeMap<String, ErrorTally> {
        self.errors.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_kind_and_tallies_errors_by_class() {
        let r = Recorder::new();
        r.record(OpKind::Put, Duration::from_millis(2));
        r.record(OpKind::Put, Duration::from_millis(4));
        r.record(OpKind::List, Duration::from_millis(9));
        r.error(&OpError::Timeout(Duration::from_secs(1)));
        r.error(&OpError::Timeout(Duration::from_secs(2)));
        r.error(&OpError::Grpc(tonic::Status::unavailable("no leader")));
        r.conflict();
        assert_eq!(r.histogram(OpKind::Put).count(), 2);
        assert_eq!(r.histogram(OpKind::List).max(), 9_000_000);
        assert_eq!(r.histogram(OpKind::Range).count(), 0);
        let e = r.errors();
        assert_eq!(e["timeout"].count, 2);
        assert_eq!(e["timeout"].example, "timed out after 1s");
        assert_eq!(e["grpc Unavailable"].count, 1);
        assert_eq!(r.conflicts(), 1);
    }
}

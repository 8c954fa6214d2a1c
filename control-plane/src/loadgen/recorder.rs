//! Where clients and watchers put their results: a latency histogram per op kind, errors by
//! class, and how long the lists were. Shared by all tasks; each record takes one short lock (tens of ns, far below the
//! cost of an HTTPS request).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use raft_store::loadgen::{ErrorTally, Histogram};

use super::error::OpError;
use super::op_kind::OpKind;

pub struct Recorder {
    hists: Vec<Mutex<Histogram>>,
    errors: Mutex<BTreeMap<String, ErrorTally>>,
    /// Items of the longest list seen.
    list_items: AtomicU64,
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
            errors: Mutex::new(BTreeMap::new()),
            list_items: AtomicU64::new(0),
        }
    }

    pub fn record(&self, kind: OpKind, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.hists[kind.slot()].lock().record(ns);
    }

    pub fn error(&self, e: &OpError) {
        let mut errors = self.errors.lock();
        let t = errors.entry(e.class()).or_insert_with(|| ErrorTally {
            count: 0,
            example: e.to_string().chars().take(300).collect(),
        });
        t.count += 1;
    }

    pub fn list_items(&self, n: u64) {
        self.list_items.fetch_max(n, Ordering::Relaxed);
    }

    pub fn max_list_items(&self) -> u64 {
        self.list_items.load(Ordering::Relaxed)
    }

    pub fn histogram(&self, kind: OpKind) -> Histogram {
        self.hists[kind.slot()].lock().clone()
    }

    pub fn errors(&self) -> BTreeMap<String, ErrorTally> {
        self.errors.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_kind_and_tallies_errors_by_status() {
        let r = Recorder::new();
        r.record(OpKind::Create, Duration::from_millis(2));
        r.record(OpKind::Create, Duration::from_millis(4));
        r.record(OpKind::List, Duration::from_millis(9));
        r.list_items(10_003);
        r.list_items(10_001);
        r.error(&OpError::Timeout(Duration::from_secs(1)));
        r.error(&OpError::Timeout(Duration::from_secs(2)));
        for code in [429, 500, 500] {
            r.error(&OpError::Status {
                code,
                message: "m".into(),
            });
        }
        assert_eq!(r.histogram(OpKind::Create).count(), 2);
        assert_eq!(r.histogram(OpKind::List).max(), 9_000_000);
        assert_eq!(r.histogram(OpKind::Get).count(), 0);
        assert_eq!(r.max_list_items(), 10_003);
        let e = r.errors();
        assert_eq!(e["timeout"].count, 2);
        assert_eq!(e["timeout"].example, "timed out after 1s");
        assert_eq!((e["http 429"].count, e["http 500"].count), (1, 2));
        assert_eq!(e["http 500"].example, "HTTP 500: m");
    }
}

//! The result of a run: throughput, latency percentiles, errors; as a table and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::config::{Config, Workload};
use super::histogram::Histogram;
use super::mix::Mix;
use super::op_kind::OpKind;
use super::recorder::ErrorTally;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From a histogram of nanoseconds.
    pub fn from_histogram(h: &Histogram) -> Self {
        let ms = |ns: u64| ns as f64 / 1e6;
        Latency {
            samples: h.count(),
            mean_ms: h.mean() / 1e6,
            p50_ms: ms(h.quantile(0.5)),
            p90_ms: ms(h.quantile(0.9)),
            p99_ms: ms(h.quantile(0.99)),
            p999_ms: ms(h.quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: OpKind,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct MixShare {
    pub kind: OpKind,
    pub percent: f64,
}

/// Event delivery of the watch workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchReport {
    pub watchers: usize,
    /// Puts acknowledged to the writers.
    pub puts_acked: u64,
    /// `watchers * puts_acked`: events every watcher must have seen.
    pub events_expected: u64,
    /// Events received over all watchers (may exceed expected: unacknowledged puts that landed).
    pub events_received: u64,
    /// Acknowledged puts missing from some watcher's stream, summed over watchers.
    pub missing: u64,
    pub out_of_order: u64,
    /// Watchers whose stream failed, with why.
    pub watcher_errors: Vec<String>,
}

/// Inputs of [`Report::build`] gathered by the runner.
pub struct Measured {
    pub elapsed: Duration,
    pub histograms: Vec<(OpKind, Histogram)>,
    pub conflicts: u64,
    pub errors: BTreeMap<String, ErrorTally>,
    pub watch: Option<WatchReport>,
    pub mix: Option<Mix>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub workload: Workload,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub conns: usize,
    /// Target ops/s; 0 = unbounded.
    pub rate: f64,
    pub key_size: usize,
    pub val_size: usize,
    pub key_space: u64,
    pub sequential: bool,
    pub serializable: bool,
    pub mix: Option<Vec<MixShare>>,
    pub elapsed_s: f64,
    /// Client operations that completed (conflicts included; watch events are not ops).
    pub ops: u64,
    pub errors: u64,
    /// txn-cas compares that failed (the key changed between read and txn).
    pub conflicts: u64,
    /// `ops / elapsed_s`.
    pub ops_per_sec: f64,
    /// The headline latency: put-to-event for watch, all client ops otherwise.
    pub latency: Latency,
    pub kinds: Vec<KindReport>,
    pub error_kinds: BTreeMap<String, ErrorTally>,
    pub watch: Option<WatchReport>,
    /// Why this run counts as failed (empty when it did not).
    pub failures: Vec<String>,
}

impl Report {
    pub fn build(cfg: &Config, m: Measured) -> Report {
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let mut all = Histogram::new();
        let mut kinds = Vec::new();
        let mut ops = 0;
        for (kind, h) in &m.histograms {
            if h.count() == 0 {
                continue;
            }
            if *kind != OpKind::WatchEvent {
                ops += h.count();
                all.merge(h);
            }
            kinds.push(KindReport {
                kind: *kind,
                ops: h.count(),
                ops_per_sec: h.count() as f64 / secs,
                latency: Latency::from_histogram(h),
            });
        }
        let headline = if cfg.workload == Workload::Watch {
            m.histograms
                .iter()
                .find(|(k, _)| *k == OpKind::WatchEvent)
                .map(|(_, h)| Latency::from_histogram(h))
                .unwrap_or_default()
        } else {
            Latency::from_histogram(&all)
        };
        let errors: u64 = m.errors.values().map(|t| t.count).sum();
        let mut failures = Vec::new();
        if ops == 0 {
            failures.push(format!("no operation succeeded ({errors} errors)"));
        }
        if let Some(w) = &m.watch {
            if w.missing > 0 {
                failures.push(format!("watch: {} acknowledged events never delivered", w.missing));
            }
            if w.out_of_order > 0 {
                failures.push(format!("watch: {} events out of revision order", w.out_of_order));
            }
            if !w.watcher_errors.is_empty() {
                failures.push(format!("watch: {} watcher streams failed", w.watcher_errors.len()));
            }
        }
        Report {
            label: cfg.label.clone(),
            workload: cfg.workload,
            endpoints: cfg.endpoints.clone(),
            clients: cfg.clients,
            conns: cfg.conns,
            rate: cfg.rate.max(0.0),
            key_size: cfg.key_size,
            val_size: cfg.val_size,
            key_space: cfg.key_space,
            sequential: cfg.sequential,
            serializable: cfg.serializable,
            mix: m.mix.map(|mix| {
                mix.describe()
                    .into_iter()
                    .map(|(kind, percent)| MixShare { kind, percent })
                    .collect()
            }),
            elapsed_s: m.elapsed.as_secs_f64(),
            ops,
            errors,
            conflicts: m.conflicts,
            ops_per_sec: ops as f64 / secs,
            latency: headline,
            kinds,
            error_kinds: m.errors,
            watch: m.watch,
            failures,
        }
    }

    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A human-readable summary.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let rate = if self.rate > 0.0 {
            format!("{} ops/s", self.rate)
        } else {
            "unbounded".into()
        };
        let label = if self.label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.label)
        };
        let _ = writeln!(
            s,
            "== {}{label}: {} endpoints, {} clients, {} conns, rate {rate}, {} keys{}{}",
            self.workload,
            self.endpoints.len(),
            self.clients,
            self.conns,
            self.key_space,
            if self.sequential { " (sequential)" } else { "" },
            if self.serializable { ", serializable" } else { "" },
        );
        let _ = writeln!(
            s,
            "{:.2} s: {} ops, {} errors, {} conflicts: {:.1} ops/s",
            self.elapsed_s, self.ops, self.errors, self.conflicts, self.ops_per_sec
        );
        let _ = writeln!(
            s,
            "{:<12} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "kind", "ops", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for k in &self.kinds {
            let l = &k.latency;
            let _ = writeln!(
                s,
                "{:<12} {:>9} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                k.kind.name(),
                k.ops,
                k.ops_per_sec,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.p999_ms,
                l.max_ms
            );
        }
        for (class, t) in &self.error_kinds {
            let _ = writeln!(s, "errors: {class}: {} (e.g. {})", t.count, t.example);
        }
        if let Some(w) = &self.watch {
            let _ = writeln!(
                s,
                "watch: {} watchers, {} puts acked, {}/{} events received, {} missing, {} out of order",
                w.watchers, w.puts_acked, w.events_received, w.events_expected, w.missing, w.out_of_order
            );
            for e in &w.watcher_errors {
                let _ = writeln!(s, "watcher error: {e}");
            }
        }
        for f in &self.failures {
            let _ = writeln!(s, "FAILED: {f}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram {
        let mut h = Histogram::new();
        values.iter().for_each(|&v| h.record(v));
        h
    }

    #[test]
    fn throughput_and_headline_latency() {
        let cfg = Config::default();
        let r = Report::build(
            &cfg,
            Measured {
                elapsed: Duration::from_secs(2),
                histograms: vec![
                    (OpKind::Put, hist(&[1_000_000, 3_000_000])),
                    (OpKind::Range, hist(&[2_000_000, 2_000_000])),
                    (OpKind::List, Histogram::new()),
                ],
                conflicts: 1,
                errors: BTreeMap::new(),
                watch: None,
                mix: None,
            },
        );
        assert_eq!(r.ops, 4);
        assert_eq!(r.ops_per_sec, 2.0);
        assert_eq!(r.kinds.len(), 2, "empty kinds are left out");
        assert_eq!(r.latency.max_ms, 3.0);
        assert!((r.latency.p50_ms - 2.0).abs() / 2.0 < 0.01, "{}", r.latency.p50_ms);
        assert!(!r.failed());
        assert!(r.table().contains("put"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(json["workload"], "put");
        assert_eq!(json["kinds"][1]["kind"], "range");
    }

    #[test]
    fn no_success_or_lost_events_fail_the_run() {
        let cfg = Config {
            workload: Workload::Watch,
            ..Config::default()
        };
        let mut errors = BTreeMap::new();
        errors.insert(
            "grpc Unavailable".to_string(),
            ErrorTally {
                count: 5,
                example: "x".into(),
            },
        );
        let r = Report::build(
            &cfg,
            Measured {
                elapsed: Duration::from_secs(1),
                histograms: vec![(OpKind::WatchEvent, hist(&[5]))],
                conflicts: 0,
                errors,
                watch: Some(WatchReport {
                    missing: 3,
                    ..WatchReport::default()
                }),
                mix: None,
            },
        );
        assert_eq!(r.ops, 0, "watch events are not client ops");
        assert_eq!(r.latency.samples, 1, "watch headline is the event latency");
        assert_eq!(r.failures.len(), 2);
        assert!(r.table().contains("FAILED: no operation succeeded (5 errors)"));
    }
}

//! The result of a run: throughput, latency percentiles, errors by status code; as a table
//! and as JSON, in the format of raft-store's etcd load generator.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use raft_store::loadgen::{ErrorTally, Histogram, Latency};
use serde::Serialize;

use super::config::{Config, Workload};
use super::op_kind::OpKind;

/// Watcher errors listed in a report (the count covers all).
pub const MAX_LISTED_WATCHER_ERRORS: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    pub kind: OpKind,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub latency: Latency,
}

/// Event delivery of the watch workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchReport {
    pub watchers: usize,
    /// Configmap creates acknowledged to the writers.
    pub writes_acked: u64,
    /// `watchers * writes_acked`: events every watcher must have seen.
    pub events_expected: u64,
    /// Events of this run received over all watchers (may exceed expected: unacknowledged
    /// writes that landed).
    pub events_received: u64,
    /// Acknowledged writes missing from some watcher's stream, summed over watchers.
    pub missing: u64,
    pub out_of_order: u64,
    /// Watchers whose watch ended early.
    pub failed_watchers: usize,
    /// Why, for the first [`MAX_LISTED_WATCHER_ERRORS`] of them.
    pub watcher_errors: Vec<String>,
}

/// Inputs of [`Report::build`] gathered by the runner.
pub struct Measured {
    pub elapsed: Duration,
    pub histograms: Vec<(OpKind, Histogram)>,
    pub errors: BTreeMap<String, ErrorTally>,
    pub watch: Option<WatchReport>,
    /// What the clients' connections negotiated (`h2`, `http/1.1`, or both joined by `+`).
    pub protocol: String,
    /// Pods created by pre-population.
    pub populated: u64,
    /// Items of the longest list.
    pub list_items: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub workload: Workload,
    pub endpoints: Vec<String>,
    pub clients: usize,
    pub protocol: String,
    /// Target ops/s; 0 = unbounded.
    pub rate: f64,
    pub namespace: String,
    /// Pre-populated pods (get and list; 0 otherwise).
    pub objects: u64,
    /// Of which created by this run's pre-population.
    pub populated: u64,
    /// Items of the longest whole list (list workload: the pre-populated pods, and any others
    /// in the namespace).
    pub list_items: u64,
    pub elapsed_s: f64,
    /// Client operations that completed (watch events are not ops).
    pub ops: u64,
    pub errors: u64,
    /// `ops / elapsed_s`.
    pub ops_per_sec: f64,
    /// The headline latency: write-to-event for watch, all client ops otherwise.
    pub latency: Latency,
    pub kinds: Vec<KindReport>,
    /// Failed ops by class: `http <status>`, `transport`, `timeout`, `check`.
    pub error_kinds: BTreeMap<String, ErrorTally>,
    pub watch: Option<WatchReport>,
    /// Why the run counts as failed (empty when it did not).
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
                failures.push(format!("watch: {} acknowledged writes never delivered", w.missing));
            }
            if w.out_of_order > 0 {
                failures.push(format!("watch: {} events out of resourceVersion order", w.out_of_order));
            }
            if w.failed_watchers > 0 {
                failures.push(format!("watch: {} watches ended early", w.failed_watchers));
            }
        }
        Report {
            label: cfg.label.clone(),
            workload: cfg.workload,
            endpoints: cfg.endpoints.clone(),
            clients: cfg.clients,
            protocol: m.protocol,
            rate: cfg.rate.max(0.0),
            namespace: cfg.namespace.clone(),
            objects: if cfg.workload.needs_population() {
                cfg.objects
            } else {
                0
            },
            populated: m.populated,
            list_items: m.list_items,
            elapsed_s: m.elapsed.as_secs_f64(),
            ops,
            errors,
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
        let mut objects = if self.objects > 0 {
            format!(", {} pods ({} created now)", self.objects, self.populated)
        } else {
            String::new()
        };
        if self.list_items > 0 {
            let _ = write!(objects, ", lists of {} items", self.list_items);
        }
        let _ = writeln!(
            s,
            "== {}{label}: {} endpoints, {} clients over {}, rate {rate}, namespace {}{objects}",
            self.workload,
            self.endpoints.len(),
            self.clients,
            self.protocol,
            self.namespace,
        );
        let _ = writeln!(
            s,
            "{:.2} s: {} ops, {} errors: {:.1} ops/s",
            self.elapsed_s, self.ops, self.errors, self.ops_per_sec
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
                "watch: {} watchers, {} writes acked, {}/{} events received, {} missing, {} out of order, {} watches ended early",
                w.watchers,
                w.writes_acked,
                w.events_received,
                w.events_expected,
                w.missing,
                w.out_of_order,
                w.failed_watchers
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

    fn measured(histograms: Vec<(OpKind, Histogram)>) -> Measured {
        Measured {
            elapsed: Duration::from_secs(2),
            histograms,
            errors: BTreeMap::new(),
            watch: None,
            protocol: "h2".into(),
            populated: 0,
            list_items: 0,
        }
    }

    #[test]
    fn throughput_and_headline_latency() {
        let cfg = Config {
            workload: Workload::Get,
            endpoints: vec!["https://127.0.0.1:6443".into()],
            ..Config::default()
        };
        let mut m = measured(vec![
            (OpKind::Get, hist(&[1_000_000, 3_000_000, 2_000_000, 2_000_000])),
            (OpKind::List, Histogram::new()),
        ]);
        m.populated = 7;
        m.list_items = 10_050;
        m.errors.insert(
            "http 503".into(),
            ErrorTally {
                count: 2,
                example: "HTTP 503: no leader".into(),
            },
        );
        let r = Report::build(&cfg, m);
        assert_eq!(r.ops, 4);
        assert_eq!(r.ops_per_sec, 2.0);
        assert_eq!(r.errors, 2);
        assert_eq!(r.kinds.len(), 1, "empty kinds are left out");
        assert_eq!(r.latency.max_ms, 3.0);
        assert!((r.latency.p50_ms - 2.0).abs() / 2.0 < 0.01, "{}", r.latency.p50_ms);
        assert!(!r.failed());
        let table = r.table();
        assert!(
            table.starts_with("== get: 1 endpoints, 10 clients over h2, rate unbounded, namespace skiff-bench, 10000 pods (7 created now), lists of 10050 items\n2.00 s: 4 ops, 2 errors: 2.0 ops/s\nkind"),
            "{table}"
        );
        assert!(table.contains("\nget                  4        2.0     2.0"), "{table}");
        assert!(
            table.contains("errors: http 503: 2 (e.g. HTTP 503: no leader)"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
        assert_eq!(json["workload"], "get");
        assert_eq!(json["kinds"][0]["kind"], "get");
        assert_eq!(json["kinds"][0]["latency"]["max_ms"], 3.0);
        assert_eq!(json["error_kinds"]["http 503"]["count"], 2);
        assert_eq!(json["objects"], 10_000);
    }

    #[test]
    fn no_success_or_lost_events_fail_the_run() {
        let cfg = Config {
            workload: Workload::Watch,
            ..Config::default()
        };
        let mut m = measured(vec![(OpKind::WatchEvent, hist(&[5]))]);
        m.watch = Some(WatchReport {
            watchers: 3,
            missing: 3,
            failed_watchers: 1,
            watcher_errors: vec!["watch on https://h:1: the server ended the stream".into()],
            ..WatchReport::default()
        });
        let r = Report::build(&cfg, m);
        assert_eq!(r.ops, 0, "watch events are not client ops");
        assert_eq!(r.latency.samples, 1, "watch headline is the event latency");
        assert_eq!(r.objects, 0);
        assert_eq!(r.failures.len(), 3);
        assert!(r.failed());
        let t = r.table();
        assert!(t.contains("FAILED: no operation succeeded (0 errors)"), "{t}");
        assert!(
            t.contains("FAILED: watch: 3 acknowledged writes never delivered"),
            "{t}"
        );
        assert!(t.contains("watcher error: watch on https://h:1"), "{t}");
    }
}

//! Prometheus metrics under Kubernetes' names: `apiserver_request_total` and
//! `apiserver_request_duration_seconds` (a histogram with kube-apiserver's buckets), labelled by
//! verb, resource and code.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (verb, resource, code) -> requests.
    totals: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// (verb, resource) -> latency.
    durations: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl Metrics {
    pub fn observe(&self, verb: &str, resource: &str, code: u16, took: Duration, method: &str) {
        let verb = if verb.is_empty() {
            method.to_ascii_uppercase()
        } else {
            verb.to_ascii_uppercase()
        };
        *self
            .totals
            .lock()
            .entry((verb.clone(), resource.to_string(), code))
            .or_default() += 1;
        if verb == "WATCH" {
            return; // a watch's duration is its lifetime, not a latency
        }
        let secs = took.as_secs_f64();
        let mut d = self.durations.lock();
        let h = d.entry((verb, resource.to_string())).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((verb, res, code), n) in self.totals.lock().iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",resource=\"{res}\",verb=\"{verb}\"}} {n}"
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, res), h) in self.durations.lock().iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{resource=\"{res}\",verb=\"{verb}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{resource=\"{res}\",verb=\"{verb}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{resource=\"{res}\",verb=\"{verb}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{resource=\"{res}\",verb=\"{verb}\"}} {}",
                h.count
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets() {
        let m = Metrics::default();
        m.observe("get", "pods", 200, Duration::from_millis(3), "GET");
        m.observe("get", "pods", 200, Duration::from_millis(30), "GET");
        m.observe("", "", 401, Duration::from_millis(1), "get");
        let text = m.render();
        assert!(
            text.contains("apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"GET\"} 2"),
            "{text}"
        );
        assert!(text.contains("apiserver_request_total{code=\"401\",resource=\"\",verb=\"GET\"} 1"));
        assert!(
            text.contains("apiserver_request_duration_seconds_bucket{resource=\"pods\",verb=\"GET\",le=\"0.005\"} 1")
        );
        assert!(
            text.contains("apiserver_request_duration_seconds_bucket{resource=\"pods\",verb=\"GET\",le=\"0.05\"} 2")
        );
    }
}

//! What the proxy reports about itself, in Prometheus' text format on `/metrics` (kube-proxy
//! serves the same on 127.0.0.1:10249): rules programmed, sync latency (from the first change
//! a sync carries to the rules being in the kernel) and sync errors.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Upper bounds of the sync latency histogram, in seconds (kube-proxy's network programming
/// buckets, trimmed).
const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counters another part reports through the proxy's endpoint (the DNS server's).
pub type ExtraCounters = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

#[derive(Default)]
pub struct Metrics {
    pub syncs: AtomicU64,
    pub sync_errors: AtomicU64,
    pub services: AtomicU64,
    pub endpoints: AtomicU64,
    pub chains: AtomicU64,
    pub script_bytes: AtomicU64,
    latency: Mutex<Histogram>,
    /// Cluster DNS counters, filled by the caller from the DNS server's own.
    pub dns: Mutex<Option<ExtraCounters>>,
}

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    last: f64,
}

impl Metrics {
    pub fn observe_sync(&self, latency: Duration) {
        let s = latency.as_secs_f64();
        let mut h = self.latency.lock();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
        h.last = s;
    }

    /// The last observed sync latency, in seconds.
    pub fn last_latency(&self) -> f64 {
        self.latency.lock().last
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        counter(
            "skiff_netproxy_syncs_total",
            "Rulesets applied to the kernel.",
            "counter",
            self.syncs.load(Ordering::Relaxed),
        );
        counter(
            "skiff_netproxy_sync_errors_total",
            "Rulesets the kernel refused or that could not be applied.",
            "counter",
            self.sync_errors.load(Ordering::Relaxed),
        );
        counter(
            "skiff_netproxy_services",
            "Services with rules in the last ruleset.",
            "gauge",
            self.services.load(Ordering::Relaxed),
        );
        counter(
            "skiff_netproxy_endpoints",
            "Endpoints with rules in the last ruleset.",
            "gauge",
            self.endpoints.load(Ordering::Relaxed),
        );
        counter(
            "skiff_netproxy_chains",
            "nftables chains in the last ruleset.",
            "gauge",
            self.chains.load(Ordering::Relaxed),
        );
        counter(
            "skiff_netproxy_ruleset_bytes",
            "Size of the last ruleset script.",
            "gauge",
            self.script_bytes.load(Ordering::Relaxed),
        );
        if let Some(dns) = self.dns.lock().as_ref() {
            for (name, v) in dns() {
                let _ = writeln!(
                    out,
                    "# TYPE skiff_netproxy_dns_{name}_total counter\nskiff_netproxy_dns_{name}_total {v}"
                );
            }
        }
        let h = self.latency.lock();
        let name = "skiff_netproxy_sync_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the first change a sync carries to its rules in the kernel."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
        out
    }
}

/// Serves `GET /metrics` (any other path: 404) until `stop`.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stop: CancellationToken) {
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => return,
            c = listener.accept() => c,
        };
        let Ok((mut sock, _)) = conn else {
            // Out of descriptors, say: pause rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return };
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_sync(Duration::from_millis(3));
        m.observe_sync(Duration::from_millis(300));
        let text = m.render();
        assert!(
            text.contains("skiff_netproxy_sync_latency_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("skiff_netproxy_sync_latency_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("skiff_netproxy_sync_latency_seconds_bucket{le=\"0.5\"} 2"),
            "{text}"
        );
        assert!(text.contains("skiff_netproxy_sync_latency_seconds_count 2"), "{text}");
        assert!((m.last_latency() - 0.3).abs() < 1e-9);
    }
}

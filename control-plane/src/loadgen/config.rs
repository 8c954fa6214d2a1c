//! What to run: the workload and its parameters.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use raft_store::loadgen::MAX_DURATION;
use serde::Serialize;

use super::endpoint::Endpoint;
use super::error::LoadgenError;

/// Ops a run stops at when `--total` is not given (the duration usually ends it first).
pub const DEFAULT_TOTAL: u64 = 10_000_000;
/// Pods per page of the list workload, as client-go's chunked list (`kubectl get`) asks for.
pub const LIST_PAGE: u64 = 500;
/// Pre-populated pods of the get and list workloads when `--objects` is not given.
pub const DEFAULT_OBJECTS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// POSTs of small pods with unique names.
    Create,
    /// GETs of single pods, drawn uniformly from the `objects` pre-populated ones.
    Get,
    /// Whole paged lists (`limit=500`, following `continue`) of the namespace's pods, with at
    /// least the `objects` pre-populated ones.
    List,
    /// `watchers` watches on the namespace's configmaps while `clients` writers create
    /// configmaps; write-to-event latency, and a check that every watcher saw every write.
    Watch,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Workload::Create, Workload::Get, Workload::List, Workload::Watch];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Get => "get",
            Workload::List => "list",
            Workload::Watch => "watch",
        }
    }

    /// Whether the `objects` pods must exist before the measured phase.
    pub fn needs_population(self) -> bool {
        matches!(self, Workload::Get | Workload::List)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Workload::ALL.into_iter().find(|w| w.name() == s).ok_or_else(|| {
            let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
            format!("unknown workload {s:?} (one of {})", names.join(", "))
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Names the run in reports.
    pub label: String,
    /// API server URLs (`https://host:port`); clients are spread over them round-robin.
    /// Empty: the kubeconfig's server.
    pub endpoints: Vec<String>,
    /// Admin kubeconfig: the CA, and a client certificate and key (or a bearer token).
    pub kubeconfig: PathBuf,
    pub workload: Workload,
    /// Concurrent clients (writers, for the watch workload), each with its own connection.
    pub clients: usize,
    /// Offer HTTP/2 (ALPN `h2`, falling back to what the server picks); false: HTTP/1.1 only.
    pub http2: bool,
    /// Stop after this many ops.
    pub total: u64,
    /// Stop after this long (capped at 10 minutes).
    pub duration: Duration,
    /// Target ops/s over all clients; 0 = as fast as the clients go.
    pub rate: f64,
    /// Namespace the workload writes in; created when missing.
    pub namespace: String,
    /// Pre-populated pods of the get and list workloads.
    pub objects: u64,
    /// Watches of the watch workload.
    pub watchers: usize,
    /// An op that takes longer counts as an error.
    pub op_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            label: String::new(),
            endpoints: Vec::new(),
            kubeconfig: PathBuf::from("admin.kubeconfig"),
            workload: Workload::Create,
            clients: 10,
            http2: true,
            total: DEFAULT_TOTAL,
            duration: Duration::from_secs(30),
            rate: 0.0,
            namespace: "skiff-bench".into(),
            objects: DEFAULT_OBJECTS,
            watchers: 100,
            op_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |m: String| Err(LoadgenError::Config(m));
        for e in &self.endpoints {
            Endpoint::parse(e).map_err(|why| LoadgenError::Config(format!("endpoint {e:?}: {why}")))?;
        }
        if !(1..=10_000).contains(&self.clients) {
            return bad(format!("--clients {}: must be 1..=10000", self.clients));
        }
        if self.total == 0 {
            return bad("--total must be at least 1".into());
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return bad(format!(
                "--duration {:?}: must be above 0 and at most {:?}",
                self.duration, MAX_DURATION
            ));
        }
        if self.op_timeout.is_zero() {
            return bad("--op-timeout must be above 0".into());
        }
        if !is_dns_label(&self.namespace) {
            return bad(format!(
                "--namespace {:?}: must be a DNS label (a-z, 0-9, '-', at most 63)",
                self.namespace
            ));
        }
        if self.workload.needs_population() && !(1..=1_000_000).contains(&self.objects) {
            return bad(format!("--objects {}: must be 1..=1000000", self.objects));
        }
        if self.workload == Workload::Watch && !(1..=10_000).contains(&self.watchers) {
            return bad(format!("--watchers {}: must be 1..=10000", self.watchers));
        }
        Ok(())
    }
}

/// RFC 1123 label, as Kubernetes requires of namespace names.
fn is_dns_label(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    (1..=63).contains(&s.len()) && s.chars().all(ok_char) && !s.starts_with('-') && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        assert!("nope".parse::<Workload>().is_err());
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_are_refused() {
        assert!(Config::default().validate().is_ok());
        let bad = [
            Config {
                clients: 0,
                ..Config::default()
            },
            Config {
                endpoints: vec!["http://127.0.0.1:6443".into()],
                ..Config::default()
            },
            Config {
                duration: Duration::from_secs(601),
                ..Config::default()
            },
            Config {
                namespace: "Bad_NS".into(),
                ..Config::default()
            },
            Config {
                workload: Workload::List,
                objects: 0,
                ..Config::default()
            },
            Config {
                workload: Workload::Watch,
                watchers: 0,
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
        let three = Config {
            endpoints: (1..=3).map(|i| format!("https://127.0.0.{i}:6443")).collect(),
            ..Config::default()
        };
        assert!(three.validate().is_ok());
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("skiff-bench-1"));
        for s in ["", "-a", "a-", "A", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(s), "{s:?}");
        }
    }
}

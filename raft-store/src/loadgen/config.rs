//! What to run: the workload and its parameters.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::error::LoadgenError;
use super::keys::KeyGen;
use super::pacing::MAX_DURATION;

/// Ops a run stops at when `--total` is not given (the duration usually ends it first).
pub const DEFAULT_TOTAL: u64 = 10_000_000;
/// Keys per page of the list workload, as Kubernetes' default chunked list uses.
pub const LIST_PAGE: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Puts of `val_size` bytes to keys drawn from the key space.
    Put,
    /// Single-key gets of pre-populated keys (linearizable unless serializable).
    Range,
    /// Get the key's mod_revision, then Txn(mod_revision == r ? put : get), as kube-apiserver
    /// updates an object.
    TxnCas,
    /// Paged prefix lists (limit 500, following `more`) of `key_space` pre-populated keys.
    List,
    /// `watchers` prefix watchers while `clients` writers put; put-to-event latency.
    Watch,
    /// The Kubernetes-like mix of [`super::mix::Mix::kubernetes`].
    Mixed,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Put,
        Workload::Range,
        Workload::TxnCas,
        Workload::List,
        Workload::Watch,
        Workload::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Range => "range",
            Workload::TxnCas => "txn-cas",
            Workload::List => "list",
            Workload::Watch => "watch",
            Workload::Mixed => "mixed",
        }
    }

    /// Each workload writes under its own prefix, so runs on one cluster do not interfere.
    pub fn prefix(self) -> &'static str {
        match self {
            Workload::Put => "b/put/",
            Workload::Range => "b/rng/",
            Workload::TxnCas => "b/cas/",
            Workload::List => "b/lst/",
            Workload::Watch => "b/wch/",
            Workload::Mixed => "b/mix/",
        }
    }

    /// Whether every key of the key space must exist before the measured phase.
    pub fn needs_population(self) -> bool {
        matches!(
            self,
            Workload::Range | Workload::TxnCas | Workload::List | Workload::Mixed
        )
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
    /// Names the run in reports (e.g. `etcd`, `skiff`).
    pub label: String,
    /// Client addresses, `host:port` or `http://host:port`.
    pub endpoints: Vec<String>,
    pub workload: Workload,
    /// Concurrent client tasks (writers, for the watch workload).
    pub clients: usize,
    /// gRPC channels (HTTP/2 connections), spread over the endpoints; clients share them
    /// round-robin.
    pub conns: usize,
    /// Stop after this many ops.
    pub total: u64,
    /// Stop after this long (capped at 10 minutes).
    pub duration: Duration,
    /// Target ops/s over all clients; 0 = as fast as the clients go.
    pub rate: f64,
    /// Hex digits after the workload prefix.
    pub key_size: usize,
    pub val_size: usize,
    /// Distinct keys; the pre-populated set for range, txn-cas, list and mixed.
    pub key_space: u64,
    /// Keys `n % key_space` in op order instead of uniformly random.
    pub sequential: bool,
    /// Serializable (local) reads for range, list and txn-cas's read.
    pub serializable: bool,
    /// Watchers of the watch workload.
    pub watchers: usize,
    /// An op that takes longer counts as an error.
    pub op_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            label: String::new(),
            endpoints: vec!["127.0.0.1:2379".into()],
            workload: Workload::Put,
            clients: 10,
            conns: 1,
            total: DEFAULT_TOTAL,
            duration: Duration::from_secs(30),
            rate: 0.0,
            key_size: 8,
            val_size: 256,
            key_space: 10_000,
            sequential: false,
            serializable: false,
            watchers: 10,
            op_timeout: Duration::from_secs(10),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |m: String| Err(LoadgenError::Config(m));
        if self.endpoints.is_empty() {
            return bad("no endpoints".into());
        }
        if !(1..=100_000).contains(&self.clients) {
            return bad(format!("--clients {}: must be 1..=100000", self.clients));
        }
        if !(1..=10_000).contains(&self.conns) {
            return bad(format!("--conns {}: must be 1..=10000", self.conns));
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
        if self.val_size > 1 << 20 {
            return bad(format!("--val-size {}: at most 1 MiB", self.val_size));
        }
        if self.workload == Workload::Watch {
            if !(1..=10_000).contains(&self.watchers) {
                return bad(format!("--watchers {}: must be 1..=10000", self.watchers));
            }
            if self.val_size < 8 {
                return bad("the watch workload needs --val-size >= 8 (the value carries the send time)".into());
            }
        }
        KeyGen::check(self.key_size, self.key_space).map_err(LoadgenError::Config)
    }

    pub fn keys(&self) -> KeyGen {
        KeyGen::new(self.workload.prefix(), self.key_size, self.key_space, self.sequential)
    }
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
                endpoints: vec![],
                ..Config::default()
            },
            Config {
                duration: Duration::from_secs(601),
                ..Config::default()
            },
            Config {
                key_space: 1 << 40,
                ..Config::default()
            },
            Config {
                workload: Workload::Watch,
                val_size: 4,
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn prefixes_are_distinct() {
        let mut p: Vec<_> = Workload::ALL.iter().map(|w| w.prefix()).collect();
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), Workload::ALL.len());
    }
}

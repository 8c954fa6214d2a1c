//! The kinds of operation the load generator times, each with its own latency histogram.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// One Put.
    Put,
    /// One single-key Range.
    Range,
    /// A Range of the key, then a Txn comparing its mod_revision and putting on success.
    TxnCas,
    /// A whole paged list: prefix Ranges with a limit, following `more`.
    List,
    /// Put-to-event latency, one sample per watcher per event.
    WatchEvent,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Put,
        OpKind::Range,
        OpKind::TxnCas,
        OpKind::List,
        OpKind::WatchEvent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Range => "range",
            OpKind::TxnCas => "txn-cas",
            OpKind::List => "list",
            OpKind::WatchEvent => "watch-event",
        }
    }

    /// Position in [`OpKind::ALL`].
    pub fn slot(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_all() {
        for (i, k) in OpKind::ALL.iter().enumerate() {
            assert_eq!(k.slot(), i);
        }
    }
}

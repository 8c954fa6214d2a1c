//! The kinds of operation the load generator times, each with its own latency histogram.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// One pod POST.
    Create,
    /// One pod GET.
    Get,
    /// A whole paged list: GETs with `limit`, following `continue`.
    List,
    /// One configmap POST of the watch workload.
    Write,
    /// Write-to-event latency, one sample per watcher per event.
    WatchEvent,
}

impl OpKind {
    pub const ALL: [OpKind; 5] = [
        OpKind::Create,
        OpKind::Get,
        OpKind::List,
        OpKind::Write,
        OpKind::WatchEvent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Get => "get",
            OpKind::List => "list",
            OpKind::Write => "write",
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

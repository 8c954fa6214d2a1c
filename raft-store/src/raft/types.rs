use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::mvcc::{WriteOp, WriteResult};

/// A member as the raft membership config stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNode {
    pub name: String,
    /// host:port of the peer (raft) listener.
    pub peer_addr: String,
    /// host:port of the client (etcd API) listener; empty until the member has published it.
    pub client_addr: String,
}

impl fmt::Display for MemberNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_addr)
    }
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub op: WriteOp,
    /// Set by leader-only components (scheduler, controllers): the entry is refused at apply
    /// time unless it was appended by the leader of exactly this term.
    pub fence_term: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    Applied {
        revision: i64,
        result: WriteResult,
    },
    Rejected(StoreError),
    /// Blank and membership entries.
    Noop {
        revision: i64,
    },
}

openraft::declare_raft_types!(
    /// skiff's raft types.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Membership = openraft::StoredMembership<NodeId, MemberNode>;

/// Member ids are derived from the peer address, so every member computes the same id for a
/// peer from `--initial-cluster`, and `etcdctl member add --peer-urls` agrees with `--join`.
pub fn member_id(peer_addr: &str) -> NodeId {
    let addr = peer_addr
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    // FNV-1a: stable across versions and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in addr.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // etcd ids are non-zero; keep the top bit clear so they print the same signed or unsigned.
    (h >> 1).max(1)
}

//! The store's error: what a client may see. Serializable because rejections travel back
//! through the raft log's responses and through forwarded requests.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::mvcc::MvccError;

#[derive(Debug, Clone, Error, Serialize, Deserialize, PartialEq, Eq)]
pub enum StoreError {
    #[error("mvcc: required revision has been compacted")]
    Compacted { requested: i64, compacted: i64 },
    #[error("mvcc: required revision is a future revision")]
    FutureRevision { requested: i64, current: i64 },
    #[error("requested lease not found")]
    LeaseNotFound { id: i64 },
    #[error("lease already exists")]
    LeaseExists { id: i64 },
    #[error("key not found")]
    KeyNotFound { key: String },
    #[error("duplicate key given in txn request")]
    DuplicateKey { key: String },
    #[error("write fenced by term {fence} refused: appended in term {term}")]
    FenceMismatch { fence: u64, term: u64 },
    #[error("member not found")]
    MemberNotFound { id: u64 },
    #[error("peerURL exists")]
    MemberExists { peer_url: String },
    #[error("can only promote a learner member")]
    NotLearner { id: u64 },
    /// Retryable: this member is not the leader and could not reach it.
    #[error("not leader")]
    NotLeader { leader: Option<u64> },
    /// Retryable: no leader, no quorum, or a deadline passed.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// Fatal for the request: storage or internal failure.
    #[error("{0}")]
    Internal(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::NotLeader { .. } | StoreError::Unavailable(_))
    }
}

impl From<MvccError> for StoreError {
    fn from(e: MvccError) -> Self {
        match e {
            MvccError::Compacted { requested, compacted } => StoreError::Compacted { requested, compacted },
            MvccError::FutureRevision { requested, current } => StoreError::FutureRevision { requested, current },
            MvccError::LeaseNotFound { id } => StoreError::LeaseNotFound { id },
            MvccError::LeaseExists { id } => StoreError::LeaseExists { id },
            MvccError::KeyNotFound { key } => StoreError::KeyNotFound { key },
            MvccError::DuplicateKey { key } => StoreError::DuplicateKey { key },
            MvccError::Backend(b) => StoreError::Internal(b.to_string()),
        }
    }
}

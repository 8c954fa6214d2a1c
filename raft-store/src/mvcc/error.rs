use thiserror::Error;

use super::backend::BackendError;

/// Errors of the MVCC layer. All but `Backend` are the caller's fault and deterministic: every
/// replica rejects the same request the same way.
#[derive(Debug, Error)]
pub enum MvccError {
    #[error("mvcc: required revision has been compacted (requested {requested}, compacted {compacted})")]
    Compacted { requested: i64, compacted: i64 },
    #[error("mvcc: required revision is a future revision (requested {requested}, current {current})")]
    FutureRevision { requested: i64, current: i64 },
    #[error("requested lease not found: {id}")]
    LeaseNotFound { id: i64 },
    #[error("lease already exists: {id}")]
    LeaseExists { id: i64 },
    #[error("key not found: {key}")]
    KeyNotFound { key: String },
    #[error("duplicate key given in txn request: {key}")]
    DuplicateKey { key: String },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

pub fn show_key(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

//! gRPC statuses with etcd's exact codes and messages. etcd clients match on the message text
//! (clientv3's `rpctypes`), and etcdctl prints it (`Error: etcdserver: key is not provided`).

use tonic::{Code, Status};

use crate::error::StoreError;

pub const EMPTY_KEY: &str = "etcdserver: key is not provided";
pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";
pub const VALUE_PROVIDED: &str = "etcdserver: value is provided";
pub const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
pub const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
pub const LEASE_EXISTS: &str = "etcdserver: lease already exists";
pub const LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
pub const MEMBER_NOT_FOUND: &str = "etcdserver: member not found";
pub const PEER_URL_EXISTS: &str = "etcdserver: Peer URLs already exists";
pub const MEMBER_BAD_URLS: &str = "etcdserver: given member URLs are invalid";
pub const NOT_LEARNER: &str = "etcdserver: can only promote a learner member";
pub const NO_LEADER: &str = "etcdserver: no leader";

pub fn invalid(msg: &str) -> Status {
    Status::invalid_argument(msg)
}

/// Maps a store error to the status etcd answers with.
pub fn store_status(e: StoreError) -> Status {
    let (code, msg): (Code, String) = match e {
        StoreError::Compacted { .. } => (Code::OutOfRange, COMPACTED.into()),
        StoreError::FutureRevision { .. } => (Code::OutOfRange, FUTURE_REV.into()),
        StoreError::LeaseNotFound { .. } => (Code::NotFound, LEASE_NOT_FOUND.into()),
        StoreError::LeaseExists { .. } => (Code::FailedPrecondition, LEASE_EXISTS.into()),
        StoreError::KeyNotFound { .. } => (Code::InvalidArgument, KEY_NOT_FOUND.into()),
        StoreError::DuplicateKey { .. } => (Code::InvalidArgument, DUPLICATE_KEY.into()),
        StoreError::FenceMismatch { .. } => (Code::FailedPrecondition, format!("etcdserver: {e}")),
        StoreError::MemberNotFound { .. } => (Code::NotFound, MEMBER_NOT_FOUND.into()),
        StoreError::MemberExists { .. } => (Code::FailedPrecondition, PEER_URL_EXISTS.into()),
        StoreError::NotLearner { .. } => (Code::FailedPrecondition, NOT_LEARNER.into()),
        StoreError::NotLeader { .. } => (Code::Unavailable, NO_LEADER.into()),
        StoreError::Unavailable(m) => (Code::Unavailable, m),
        StoreError::InvalidArgument(m) => (Code::InvalidArgument, m),
        StoreError::Internal(m) => (Code::Internal, m),
    };
    Status::new(code, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_etcd_statuses() {
        let cases = [
            (
                StoreError::Compacted {
                    requested: 1,
                    compacted: 5,
                },
                Code::OutOfRange,
                COMPACTED,
            ),
            (
                StoreError::FutureRevision {
                    requested: 9,
                    current: 5,
                },
                Code::OutOfRange,
                FUTURE_REV,
            ),
            (StoreError::LeaseNotFound { id: 1 }, Code::NotFound, LEASE_NOT_FOUND),
            (
                StoreError::LeaseExists { id: 1 },
                Code::FailedPrecondition,
                LEASE_EXISTS,
            ),
            (
                StoreError::KeyNotFound { key: "k".into() },
                Code::InvalidArgument,
                KEY_NOT_FOUND,
            ),
            (StoreError::MemberNotFound { id: 1 }, Code::NotFound, MEMBER_NOT_FOUND),
            (
                StoreError::MemberExists { peer_url: "u".into() },
                Code::FailedPrecondition,
                PEER_URL_EXISTS,
            ),
            (StoreError::NotLearner { id: 1 }, Code::FailedPrecondition, NOT_LEARNER),
            (StoreError::NotLeader { leader: None }, Code::Unavailable, NO_LEADER),
            (
                StoreError::Unavailable("etcdserver: request timed out".into()),
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (StoreError::Internal("disk".into()), Code::Internal, "disk"),
        ];
        for (e, code, msg) in cases {
            let s = store_status(e);
            assert_eq!((s.code(), s.message()), (code, msg));
        }
    }
}

//! One etcd v3 operation each: what a client task sends and what it checks in the answer.

use proto::etcdserverpb as pb;
use proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::request_op::Request;
use tonic::transport::Channel;

use super::config::LIST_PAGE;
use super::error::OpError;
use super::keys::{next_page_start, prefix_end};

pub type Kv = KvClient<Channel>;

/// A Put; returns the revision it created.
pub async fn put(kv: &mut Kv, key: Vec<u8>, value: Vec<u8>) -> Result<i64, OpError> {
    let r = kv
        .put(pb::PutRequest {
            key,
            value,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(r.header.map_or(0, |h| h.revision))
}

/// A single-key Range of a key that must exist.
pub async fn get(kv: &mut Kv, key: Vec<u8>, serializable: bool) -> Result<(), OpError> {
    let r = kv
        .range(pb::RangeRequest {
            key,
            serializable,
            ..Default::default()
        })
        .await?
        .into_inner();
    if r.kvs.is_empty() {
        return Err(OpError::Check("pre-populated key not found".into()));
    }
    Ok(())
}

/// kube-apiserver's update: read the key's mod_revision, then
/// `Txn(mod_revision(key) == r) then Put(key) else Range(key)`. Returns whether the compare
/// held (false: a concurrent writer got there first, a conflict).
pub async fn txn_cas(kv: &mut Kv, key: Vec<u8>, value: Vec<u8>, serializable: bool) -> Result<bool, OpError> {
    let r = kv
        .range(pb::RangeRequest {
            key: key.clone(),
            serializable,
            ..Default::default()
        })
        .await?
        .into_inner();
    let rev = r.kvs.first().map_or(0, |kv| kv.mod_revision);
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: key.clone(),
            target_union: Some(TargetUnion::ModRevision(rev)),
            range_end: Vec::new(),
        }],
        success: vec![pb::RequestOp {
            request: Some(Request::RequestPut(pb::PutRequest {
                key: key.clone(),
                value,
                ..Default::default()
            })),
        }],
        failure: vec![pb::RequestOp {
            request: Some(Request::RequestRange(pb::RangeRequest {
                key,
                ..Default::default()
            })),
        }],
    };
    Ok(kv.txn(txn).await?.into_inner().succeeded)
}

/// A Kubernetes-style paged list of every key under `prefix`: Ranges of `LIST_PAGE` keys, the
/// first at the current revision, the following ones pinned to the first page's revision (as
/// a continue token does), each starting just after the previous page's last key. Fails when
/// the number of keys is not `expect`.
pub async fn list(kv: &mut Kv, prefix: &[u8], serializable: bool, expect: u64) -> Result<(), OpError> {
    let end = prefix_end(prefix);
    let mut start = prefix.to_vec();
    let mut revision = 0;
    let mut keys = 0u64;
    // A list of N keys needs N/limit + 1 pages; anything longer is a server bug.
    let max_pages = expect / LIST_PAGE as u64 + 2;
    for _ in 0..max_pages {
        let r = kv
            .range(pb::RangeRequest {
                key: start,
                range_end: end.clone(),
                limit: LIST_PAGE,
                revision,
                serializable,
                ..Default::default()
            })
            .await?
            .into_inner();
        if revision == 0 {
            revision = r.header.as_ref().map_or(0, |h| h.revision);
        }
        keys += r.kvs.len() as u64;
        let Some(last) = r.kvs.last() else {
            break;
        };
        if !r.more {
            break;
        }
        start = next_page_start(&last.key);
    }
    if keys != expect {
        return Err(OpError::Check(format!("list returned {keys} keys, expected {expect}")));
    }
    Ok(())
}

/// Puts every key in one Txn (etcd allows 128 ops per txn branch).
pub async fn put_batch(kv: &mut Kv, keys: Vec<Vec<u8>>, value: &[u8]) -> Result<(), OpError> {
    let success = keys
        .into_iter()
        .map(|key| pb::RequestOp {
            request: Some(Request::RequestPut(pb::PutRequest {
                key,
                value: value.to_vec(),
                ..Default::default()
            })),
        })
        .collect();
    kv.txn(pb::TxnRequest {
        compare: Vec::new(),
        success,
        failure: Vec::new(),
    })
    .await?;
    Ok(())
}

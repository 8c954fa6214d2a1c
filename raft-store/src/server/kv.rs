//! etcd's KV service over `StoreHandle`, with etcd's ingress validation (same checks, same
//! order, same messages as etcd's `v3rpc/key.go`).

use std::collections::HashSet;

use prost::Message;
use proto::etcdserverpb as pb;
use proto::etcdserverpb::kv_server::Kv;
use tonic::{Request, Response, Status};

use super::convert;
use super::status::*;
use crate::handle::StoreHandle;
use crate::mvcc::{in_range, WriteOp, WriteResult};

/// etcd's `--max-request-bytes` default: larger write requests are refused.
pub const MAX_REQUEST_BYTES: usize = 1_572_864;
/// etcd's `--max-txn-ops` default: operations per txn branch (and compares).
pub const MAX_TXN_OPS: usize = 128;

pub struct KvService {
    pub handle: StoreHandle,
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!("etcdserver: unexpected result for {what}"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<pb::RangeRequest>) -> Result<Response<pb::RangeResponse>, Status> {
        let r = request.into_inner();
        check_range(&r)?;
        let (rev, resp) = self
            .handle
            .range(convert::range_request(r))
            .await
            .map_err(store_status)?;
        Ok(Response::new(convert::range_response(resp, self.handle.header(), rev)))
    }

    async fn put(&self, request: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let r = request.into_inner();
        check_put(&r)?;
        check_size(&r)?;
        match self
            .handle
            .write(WriteOp::Put(convert::put_request(r)))
            .await
            .map_err(store_status)?
        {
            (rev, WriteResult::Put(p)) => Ok(Response::new(convert::put_response(p, self.handle.header(), rev))),
            _ => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let r = request.into_inner();
        check_delete(&r)?;
        check_size(&r)?;
        let op = WriteOp::DeleteRange(convert::delete_range_request(r));
        match self.handle.write(op).await.map_err(store_status)? {
            (rev, WriteResult::DeleteRange(d)) => Ok(Response::new(convert::delete_range_response(
                d,
                self.handle.header(),
                rev,
            ))),
            _ => Err(unexpected("delete range")),
        }
    }

    async fn txn(&self, request: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let r = request.into_inner();
        check_txn(&r, MAX_TXN_OPS)?;
        check_intervals(&r.success)?;
        check_intervals(&r.failure)?;
        check_size(&r)?;
        let op = WriteOp::Txn(convert::txn_request(r)?);
        match self.handle.write(op).await.map_err(store_status)? {
            (rev, WriteResult::Txn(t)) => Ok(Response::new(convert::txn_response(t, self.handle.header(), rev))),
            _ => Err(unexpected("txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let r = request.into_inner();
        // Compaction is applied with the log entry, so `physical` is always satisfied.
        let (rev, _) = self
            .handle
            .write(WriteOp::Compact { revision: r.revision })
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::CompactionResponse {
            header: convert::header(self.handle.header(), rev),
        }))
    }
}

// ---- validation (pure) ------------------------------------------------------------------

pub fn check_size(m: &impl Message) -> Result<(), Status> {
    if m.encoded_len() > MAX_REQUEST_BYTES {
        return Err(invalid(REQUEST_TOO_LARGE));
    }
    Ok(())
}

pub fn check_range(r: &pb::RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(invalid(EMPTY_KEY));
    }
    Ok(())
}

pub fn check_put(r: &pb::PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(invalid(EMPTY_KEY));
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(invalid(VALUE_PROVIDED));
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(invalid(LEASE_PROVIDED));
    }
    Ok(())
}

pub fn check_delete(r: &pb::DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(invalid(EMPTY_KEY));
    }
    Ok(())
}

/// Op counts (compares and each branch, with nested txns counting against what their parent
/// left), empty keys and empty ops, recursively.
pub fn check_txn(r: &pb::TxnRequest, max_ops: usize) -> Result<(), Status> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_ops {
        return Err(invalid(TOO_MANY_OPS));
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(invalid(EMPTY_KEY));
    }
    for op in r.success.iter().chain(&r.failure) {
        check_op(op, max_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &pb::RequestOp, max_ops: usize) -> Result<(), Status> {
    use pb::request_op::Request;
    match &op.request {
        Some(Request::RequestRange(r)) => check_range(r),
        Some(Request::RequestPut(p)) => check_put(p),
        Some(Request::RequestDeleteRange(d)) => check_delete(d),
        Some(Request::RequestTxn(t)) => check_txn(t, max_ops),
        None => Err(invalid(KEY_NOT_FOUND)),
    }
}

type Puts = HashSet<Vec<u8>>;
type Dels = Vec<(Vec<u8>, Vec<u8>)>;

/// A key may be written once per branch: no two puts of one key, no put of a deleted key. The
/// two branches of a nested txn exclude each other, so they may put the same key. Returns the
/// branch's puts and deletes for the enclosing level.
pub fn check_intervals(ops: &[pb::RequestOp]) -> Result<(Puts, Dels), Status> {
    use pb::request_op::Request;
    let dup = || invalid(DUPLICATE_KEY);
    let deleted = |dels: &Dels, k: &[u8]| dels.iter().any(|(s, e)| in_range(k, s, e));

    let mut dels: Dels = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some((d.key.clone(), d.range_end.clone())),
            _ => None,
        })
        .collect();
    let mut puts = Puts::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(dup());
            }
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(dup());
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(dup());
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::request_op::Request;

    fn put(k: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Request::RequestPut(pb::PutRequest {
                key: k.as_bytes().to_vec(),
                ..Default::default()
            })),
        }
    }

    fn del(k: &str, end: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
                key: k.as_bytes().to_vec(),
                range_end: end.as_bytes().to_vec(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<pb::RequestOp>, failure: Vec<pb::RequestOp>) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    fn nested(t: pb::TxnRequest) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Request::RequestTxn(t)),
        }
    }

    fn msg(r: Result<impl Sized, Status>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::InvalidArgument);
                s.message().to_string()
            }
        }
    }

    #[test]
    fn empty_keys_are_refused() {
        assert_eq!(msg(check_range(&pb::RangeRequest::default())), EMPTY_KEY);
        assert_eq!(msg(check_put(&pb::PutRequest::default())), EMPTY_KEY);
        assert_eq!(msg(check_delete(&pb::DeleteRangeRequest::default())), EMPTY_KEY);
        let t = pb::TxnRequest {
            compare: vec![pb::Compare::default()],
            ..Default::default()
        };
        assert_eq!(msg(check_txn(&t, MAX_TXN_OPS)), EMPTY_KEY);
        assert_eq!(msg(check_txn(&txn(vec![put("")], vec![]), MAX_TXN_OPS)), EMPTY_KEY);
        assert_eq!(
            msg(check_txn(
                &txn(vec![], vec![pb::RequestOp { request: None }]),
                MAX_TXN_OPS
            )),
            KEY_NOT_FOUND
        );
    }

    #[test]
    fn range_end_before_key_is_legal() {
        let r = pb::RangeRequest {
            key: b"b".to_vec(),
            range_end: b"a".to_vec(),
            ..Default::default()
        };
        assert_eq!(msg(check_range(&r)), "ok");
    }

    #[test]
    fn ignore_flags_refuse_values() {
        let p = pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(msg(check_put(&p)), VALUE_PROVIDED);
        let p = pb::PutRequest {
            key: b"k".to_vec(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(msg(check_put(&p)), LEASE_PROVIDED);
    }

    #[test]
    fn too_many_ops() {
        let ops = |n: usize| (0..n).map(|i| put(&format!("k{i}"))).collect::<Vec<_>>();
        assert_eq!(msg(check_txn(&txn(ops(128), vec![]), MAX_TXN_OPS)), "ok");
        assert_eq!(msg(check_txn(&txn(ops(129), vec![]), MAX_TXN_OPS)), TOO_MANY_OPS);
        assert_eq!(msg(check_txn(&txn(vec![], ops(129)), MAX_TXN_OPS)), TOO_MANY_OPS);
        // A nested txn gets what its parent's widest list left.
        let inner = txn(ops(2), vec![]);
        let mut outer = ops(127);
        outer.push(nested(inner));
        assert_eq!(msg(check_txn(&txn(outer, vec![]), MAX_TXN_OPS)), TOO_MANY_OPS);
    }

    #[test]
    fn duplicate_keys_in_a_branch() {
        assert_eq!(msg(check_intervals(&[put("a"), put("a")])), DUPLICATE_KEY);
        assert_eq!(msg(check_intervals(&[put("a"), put("b")])), "ok");
        assert_eq!(msg(check_intervals(&[del("a", "c"), put("b")])), DUPLICATE_KEY);
        assert_eq!(msg(check_intervals(&[del("a", ""), put("b")])), "ok");
        // Puts in exclusive branches of a nested txn may repeat each other, not the parent.
        assert_eq!(
            msg(check_intervals(&[nested(txn(vec![put("a")], vec![put("a")]))])),
            "ok"
        );
        assert_eq!(
            msg(check_intervals(&[put("a"), nested(txn(vec![put("a")], vec![]))])),
            DUPLICATE_KEY
        );
        assert_eq!(
            msg(check_intervals(&[del("a", "b"), nested(txn(vec![], vec![put("a")]))])),
            DUPLICATE_KEY
        );
        // The branches of the top-level txn are checked separately.
        let t = txn(vec![put("a")], vec![put("a")]);
        assert_eq!(msg(check_intervals(&t.success).and(check_intervals(&t.failure))), "ok");
    }

    #[test]
    fn request_size_limit() {
        let small = pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![0; MAX_REQUEST_BYTES - 16],
            ..Default::default()
        };
        assert_eq!(msg(check_size(&small)), "ok");
        let big = pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![0; MAX_REQUEST_BYTES],
            ..Default::default()
        };
        assert_eq!(msg(check_size(&big)), REQUEST_TOO_LARGE);
    }
}

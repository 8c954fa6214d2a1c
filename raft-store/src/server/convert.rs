//! The one place prost (etcd wire) types and the store's domain types meet. Ingress converters
//! take requests that `kv`'s validation has already checked; egress converters attach headers.

use proto::etcdserverpb as pb;
use proto::mvccpb;
use tonic::Status;

use super::status::{invalid, KEY_NOT_FOUND};
use crate::handle_types::{Header, MemberInfo};
use crate::mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event, EventType, KeyValue,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest,
    TxnResponse,
};
use crate::watch::{WatchMsg, WatchSpec};

// ---- ingress ----------------------------------------------------------------------------

pub fn range_request(r: pb::RangeRequest) -> RangeRequest {
    use pb::range_request::{SortOrder as O, SortTarget as T};
    // Unknown enum values read as the defaults, as etcd's generated getters do.
    let sort_order = match O::try_from(r.sort_order).unwrap_or(O::None) {
        O::None => SortOrder::None,
        O::Ascend => SortOrder::Ascend,
        O::Descend => SortOrder::Descend,
    };
    let sort_target = match T::try_from(r.sort_target).unwrap_or(T::Key) {
        T::Key => SortTarget::Key,
        T::Version => SortTarget::Version,
        T::Create => SortTarget::Create,
        T::Mod => SortTarget::Mod,
        T::Value => SortTarget::Value,
    };
    RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub fn put_request(r: pb::PutRequest) -> PutRequest {
    PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn delete_range_request(r: pb::DeleteRangeRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

pub fn txn_request(r: pb::TxnRequest) -> Result<TxnRequest, Status> {
    Ok(TxnRequest {
        compare: r.compare.into_iter().map(compare).collect::<Result<_, _>>()?,
        success: r.success.into_iter().map(request_op).collect::<Result<_, _>>()?,
        failure: r.failure.into_iter().map(request_op).collect::<Result<_, _>>()?,
    })
}

fn request_op(op: pb::RequestOp) -> Result<RequestOp, Status> {
    use pb::request_op::Request;
    Ok(match op.request {
        Some(Request::RequestRange(r)) => RequestOp::Range(range_request(r)),
        Some(Request::RequestPut(p)) => RequestOp::Put(put_request(p)),
        Some(Request::RequestDeleteRange(d)) => RequestOp::DeleteRange(delete_range_request(d)),
        Some(Request::RequestTxn(t)) => RequestOp::Txn(txn_request(t)?),
        // etcd answers an empty op this way.
        None => return Err(invalid(KEY_NOT_FOUND)),
    })
}

pub fn compare(c: pb::Compare) -> Result<Compare, Status> {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match R::try_from(c.result) {
        Ok(R::Equal) => CompareResult::Equal,
        Ok(R::Greater) => CompareResult::Greater,
        Ok(R::Less) => CompareResult::Less,
        Ok(R::NotEqual) => CompareResult::NotEqual,
        Err(_) => return Err(invalid(&format!("etcdserver: unknown compare result {}", c.result))),
    };
    // The target picks the union arm; a missing or different arm compares as zero / empty,
    // as etcd's getters return.
    let int = |pick: fn(&U) -> Option<i64>| c.target_union.as_ref().and_then(pick).unwrap_or(0);
    let target = match T::try_from(c.target) {
        Ok(T::Version) => CompareTarget::Version(int(|u| if let U::Version(v) = u { Some(*v) } else { None })),
        Ok(T::Create) => CompareTarget::Create(int(|u| if let U::CreateRevision(v) = u { Some(*v) } else { None })),
        Ok(T::Mod) => CompareTarget::Mod(int(|u| if let U::ModRevision(v) = u { Some(*v) } else { None })),
        Ok(T::Lease) => CompareTarget::Lease(int(|u| if let U::Lease(v) = u { Some(*v) } else { None })),
        Ok(T::Value) => CompareTarget::Value(match &c.target_union {
            Some(U::Value(v)) => v.clone(),
            _ => Vec::new(),
        }),
        Err(_) => return Err(invalid(&format!("etcdserver: unknown compare target {}", c.target))),
    };
    Ok(Compare {
        key: c.key,
        range_end: c.range_end,
        result,
        target,
    })
}

/// A create request as the hub takes it: `(client watch_id, spec)`, with etcd's key
/// normalization (an empty key is `\0`, the smallest key).
pub fn watch_create(c: pb::WatchCreateRequest) -> (i64, WatchSpec) {
    use pb::watch_create_request::FilterType;
    let key = if c.key.is_empty() { vec![0] } else { c.key };
    let has = |f: FilterType| c.filters.contains(&(f as i32));
    let spec = WatchSpec {
        key,
        range_end: c.range_end,
        start_revision: c.start_revision,
        prev_kv: c.prev_kv,
        no_put: has(FilterType::Noput),
        no_delete: has(FilterType::Nodelete),
        progress_notify: c.progress_notify,
        fragment: c.fragment,
    };
    (c.watch_id, spec)
}

// ---- egress -----------------------------------------------------------------------------

/// A response header: the member's identity with `revision`.
pub fn header(h: Header, revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision,
        raft_term: h.raft_term,
    })
}

pub fn key_value(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn event(e: Event) -> mvccpb::Event {
    let kind = match e.kind {
        EventType::Put => mvccpb::event::EventType::Put,
        EventType::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(key_value(e.kv)),
        prev_kv: e.prev_kv.map(key_value),
    }
}

pub fn range_response(r: RangeResponse, h: Header, revision: i64) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header(h, revision),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_response(r: PutResponse, h: Header, revision: i64) -> pb::PutResponse {
    pb::PutResponse {
        header: header(h, revision),
        prev_kv: r.prev_kv.map(key_value),
    }
}

pub fn delete_range_response(r: DeleteRangeResponse, h: Header, revision: i64) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header(h, revision),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// A txn's response; nested responses carry the same header.
pub fn txn_response(r: TxnResponse, h: Header, revision: i64) -> pb::TxnResponse {
    use pb::response_op::Response;
    let responses = r
        .responses
        .into_iter()
        .map(|op| pb::ResponseOp {
            response: Some(match op {
                ResponseOp::Range(x) => Response::ResponseRange(range_response(x, h, revision)),
                ResponseOp::Put(x) => Response::ResponsePut(put_response(x, h, revision)),
                ResponseOp::DeleteRange(x) => Response::ResponseDeleteRange(delete_range_response(x, h, revision)),
                ResponseOp::Txn(x) => Response::ResponseTxn(txn_response(x, h, revision)),
            }),
        })
        .collect();
    pb::TxnResponse {
        header: header(h, revision),
        succeeded: r.succeeded,
        responses,
    }
}

pub fn watch_response(msg: WatchMsg, h: Header) -> pb::WatchResponse {
    match msg {
        WatchMsg::Created {
            watch_id,
            revision,
            cancel_reason,
        } => pb::WatchResponse {
            header: header(h, revision),
            watch_id,
            created: true,
            canceled: cancel_reason.is_some(),
            cancel_reason: cancel_reason.unwrap_or_default(),
            ..Default::default()
        },
        WatchMsg::Events {
            watch_id,
            revision,
            events,
            ..
        } => pb::WatchResponse {
            header: header(h, revision),
            watch_id,
            events: events.into_iter().map(event).collect(),
            ..Default::default()
        },
        WatchMsg::Progress { watch_id, revision } => pb::WatchResponse {
            header: header(h, revision),
            watch_id,
            ..Default::default()
        },
        WatchMsg::Canceled {
            watch_id,
            revision,
            compact_revision,
            reason,
        } => pb::WatchResponse {
            header: header(h, revision),
            watch_id,
            canceled: true,
            compact_revision,
            cancel_reason: reason,
            ..Default::default()
        },
    }
}

pub fn member(m: MemberInfo) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    use pb::request_op::Request;

    fn hdr() -> Header {
        Header {
            cluster_id: 1,
            member_id: 2,
            revision: 99,
            raft_term: 3,
        }
    }

    #[test]
    fn range_request_maps_every_field() {
        let r = range_request(pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 3,
            revision: 4,
            sort_order: 2,
            sort_target: 3,
            serializable: true,
            keys_only: true,
            count_only: false,
            min_mod_revision: 5,
            max_mod_revision: 6,
            min_create_revision: 7,
            max_create_revision: 8,
        });
        assert_eq!((r.sort_order, r.sort_target), (SortOrder::Descend, SortTarget::Mod));
        assert_eq!((r.limit, r.revision, r.serializable, r.keys_only), (3, 4, true, true));
        assert_eq!(
            (
                r.min_mod_revision,
                r.max_mod_revision,
                r.min_create_revision,
                r.max_create_revision
            ),
            (5, 6, 7, 8)
        );
        let unknown = range_request(pb::RangeRequest {
            sort_order: 42,
            sort_target: -1,
            ..Default::default()
        });
        assert_eq!(
            (unknown.sort_order, unknown.sort_target),
            (SortOrder::None, SortTarget::Key)
        );
    }

    #[test]
    fn txn_converts_recursively() {
        let cmp = pb::Compare {
            result: R::Greater as i32,
            target: T::Mod as i32,
            key: b"k".to_vec(),
            range_end: vec![],
            target_union: Some(U::ModRevision(7)),
        };
        let put = pb::RequestOp {
            request: Some(Request::RequestPut(pb::PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        };
        let nested = pb::RequestOp {
            request: Some(Request::RequestTxn(pb::TxnRequest {
                compare: vec![],
                success: vec![put.clone()],
                failure: vec![],
            })),
        };
        let t = txn_request(pb::TxnRequest {
            compare: vec![cmp],
            success: vec![put, nested],
            failure: vec![],
        })
        .expect("converts");
        assert_eq!(t.compare[0].target, CompareTarget::Mod(7));
        assert_eq!(t.compare[0].result, CompareResult::Greater);
        assert!(
            matches!(&t.success[1], RequestOp::Txn(inner) if matches!(&inner.success[0], RequestOp::Put(p) if p.value == b"v"))
        );
    }

    #[test]
    fn compare_with_other_union_arm_reads_zero() {
        let c = compare(pb::Compare {
            result: R::Equal as i32,
            target: T::Version as i32,
            key: b"k".to_vec(),
            range_end: vec![],
            target_union: Some(U::Lease(5)),
        })
        .expect("converts");
        assert_eq!(c.target, CompareTarget::Version(0));
        let v = compare(pb::Compare {
            target: T::Value as i32,
            key: b"k".to_vec(),
            ..Default::default()
        })
        .expect("ok");
        assert_eq!(v.target, CompareTarget::Value(vec![]));
        assert!(compare(pb::Compare {
            target: 9,
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn empty_request_op_is_key_not_found() {
        let e = txn_request(pb::TxnRequest {
            success: vec![pb::RequestOp { request: None }],
            ..Default::default()
        })
        .expect_err("refused");
        assert_eq!(e.message(), KEY_NOT_FOUND);
    }

    #[test]
    fn txn_response_headers_are_nested() {
        let r = TxnResponse {
            succeeded: true,
            responses: vec![
                ResponseOp::Put(PutResponse { prev_kv: None }),
                ResponseOp::Txn(TxnResponse {
                    succeeded: false,
                    responses: vec![ResponseOp::Range(RangeResponse::default())],
                }),
            ],
        };
        let p = txn_response(r, hdr(), 12);
        assert_eq!(p.header.as_ref().map(|h| (h.revision, h.member_id)), Some((12, 2)));
        let Some(pb::response_op::Response::ResponseTxn(inner)) = &p.responses[1].response else {
            panic!("txn")
        };
        let Some(pb::response_op::Response::ResponseRange(rr)) = &inner.responses[0].response else {
            panic!("range")
        };
        assert_eq!(rr.header.as_ref().map(|h| h.revision), Some(12));
    }

    #[test]
    fn events_and_watch_responses() {
        let kv = KeyValue {
            key: b"a".to_vec(),
            mod_revision: 5,
            ..Default::default()
        };
        let e = event(Event {
            kind: EventType::Delete,
            kv: kv.clone(),
            prev_kv: Some(kv),
        });
        assert_eq!(e.r#type, mvccpb::event::EventType::Delete as i32);
        assert!(e.prev_kv.is_some());

        let created = watch_response(
            WatchMsg::Created {
                watch_id: 0,
                revision: 4,
                cancel_reason: None,
            },
            hdr(),
        );
        assert!(created.created && !created.canceled && created.watch_id == 0);
        let failed = watch_response(
            WatchMsg::Created {
                watch_id: -1,
                revision: 4,
                cancel_reason: Some("mvcc: watcher range is empty".into()),
            },
            hdr(),
        );
        assert!(failed.created && failed.canceled && failed.cancel_reason == "mvcc: watcher range is empty");
        let compacted = watch_response(
            WatchMsg::Canceled {
                watch_id: 3,
                revision: 9,
                compact_revision: 6,
                reason: String::new(),
            },
            hdr(),
        );
        assert!(compacted.canceled && compacted.compact_revision == 6);
        let progress = watch_response(
            WatchMsg::Progress {
                watch_id: -1,
                revision: 9,
            },
            hdr(),
        );
        assert_eq!((progress.watch_id, progress.header.map(|h| h.revision)), (-1, Some(9)));
    }

    #[test]
    fn watch_create_normalizes_key_and_filters() {
        let (id, spec) = watch_create(pb::WatchCreateRequest {
            key: vec![],
            range_end: vec![0],
            filters: vec![1],
            watch_id: 4,
            ..Default::default()
        });
        assert_eq!(id, 4);
        assert_eq!((spec.key, spec.range_end), (vec![0], vec![0]));
        assert!(spec.no_delete && !spec.no_put);
    }
}

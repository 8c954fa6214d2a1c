//! One suite of etcd-semantics tests, run against `MemKv` and `RocksKv`.

use std::sync::Arc;

use super::*;

fn put(k: &str, v: &str) -> WriteOp {
    WriteOp::Put(PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    })
}

fn get<B: Backend>(m: &Mvcc<B>, k: &str, rev: i64) -> Result<Option<KeyValue>, MvccError> {
    let r = m.range(&RangeRequest {
        key: k.into(),
        revision: rev,
        ..Default::default()
    })?;
    Ok(r.kvs.into_iter().next())
}

fn val<B: Backend>(m: &Mvcc<B>, k: &str, rev: i64) -> Option<String> {
    get(m, k, rev)
        .ok()
        .flatten()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

fn prefix_end(p: &str) -> Vec<u8> {
    let mut e = p.as_bytes().to_vec();
    *e.last_mut().expect("non-empty prefix") += 1;
    e
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod mem {
            $( #[test] fn $name() { super::$name(|| super::MemKv::new()); } )*
        }
        mod rocks {
            $( #[test] fn $name() { super::$name(super::rocks_backend); } )*
        }
    };
}

fn rocks_backend() -> RocksKv {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let db = rocksdb::DB::open_cf(&opts, dir.path(), ["sm"]).expect("open rocksdb");
    // The directory must outlive the DB; leak it for the test's lifetime.
    std::mem::forget(dir);
    RocksKv::new(Arc::new(db), "sm").expect("cf")
}

suite!(
    revisions_versions_and_tombstones,
    range_forms_limit_sort_and_count,
    txn_compares_and_branches,
    txn_sees_its_own_writes_and_is_one_revision,
    compaction_removes_history_and_errors_below_it,
    history_replays_events_by_revision,
    leases_attach_and_revoke_keys_in_one_revision,
    reopen_restores_everything,
    bad_requests_change_nothing,
);

fn revisions_versions_and_tombstones<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    assert_eq!(m.current_revision(), 0);
    assert_eq!(m.apply(&put("a", "1")).expect("put").revision, 1);
    m.apply(&put("a", "2")).expect("put");
    m.apply(&put("b", "x")).expect("put");
    let a = get(&m, "a", 0).expect("get").expect("a exists");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 2, 2));
    assert_eq!(val(&m, "a", 1).as_deref(), Some("1"));
    let d = m
        .apply(&WriteOp::DeleteRange(DeleteRangeRequest {
            key: "a".into(),
            prev_kv: true,
            ..Default::default()
        }))
        .expect("delete");
    assert_eq!(d.revision, 4);
    match d.result {
        WriteResult::DeleteRange(r) => {
            assert_eq!(r.deleted, 1);
            assert_eq!(r.prev_kvs[0].value, b"2");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(val(&m, "a", 0), None);
    assert_eq!(val(&m, "a", 3).as_deref(), Some("2"));
    // Deleting nothing does not make a revision (etcd semantics).
    let d = m
        .apply(&WriteOp::DeleteRange(DeleteRangeRequest {
            key: "zz".into(),
            ..Default::default()
        }))
        .expect("delete nothing");
    assert_eq!(d.revision, 4);
    assert!(d.events.is_empty());
    // A new generation starts at version 1 with a new create_revision.
    m.apply(&put("a", "3")).expect("put");
    let a = get(&m, "a", 0).expect("get").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    m.flush().expect("flush");
}

fn range_forms_limit_sort_and_count<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    for (k, v) in [("p/c", "1"), ("p/a", "3"), ("p/b", "2"), ("q", "0")] {
        m.apply(&put(k, v)).expect("put");
    }
    m.flush().expect("flush");
    let all = |req: RangeRequest| m.range(&req).expect("range");
    let r = all(RangeRequest {
        key: "p/".into(),
        range_end: prefix_end("p/"),
        ..Default::default()
    });
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"p/a".to_vec(), b"p/b".to_vec(), b"p/c".to_vec()]);
    assert_eq!((r.count, r.more), (3, false));
    let r = all(RangeRequest {
        key: "p/".into(),
        range_end: prefix_end("p/"),
        limit: 2,
        ..Default::default()
    });
    assert_eq!((r.kvs.len(), r.count, r.more), (2, 3, true));
    let r = all(RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    });
    assert_eq!(r.count, 4);
    let r = all(RangeRequest {
        key: "p/".into(),
        range_end: prefix_end("p/"),
        sort_target: SortTarget::Value,
        sort_order: SortOrder::Descend,
        ..Default::default()
    });
    assert_eq!(r.kvs[0].value, b"3");
    let r = all(RangeRequest {
        key: "p/".into(),
        range_end: prefix_end("p/"),
        count_only: true,
        ..Default::default()
    });
    assert_eq!((r.kvs.len(), r.count), (0, 3));
    let r = all(RangeRequest {
        key: "p/".into(),
        range_end: prefix_end("p/"),
        keys_only: true,
        ..Default::default()
    });
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r = all(RangeRequest {
        key: "p/".into(),
        range_end: prefix_end("p/"),
        min_mod_revision: 2,
        ..Default::default()
    });
    assert_eq!(r.kvs.len(), 2);
    // range_end before key: nothing.
    let r = all(RangeRequest {
        key: "z".into(),
        range_end: "a".into(),
        ..Default::default()
    });
    assert_eq!(r.count, 0);
    assert!(matches!(
        m.range(&RangeRequest {
            key: "q".into(),
            revision: 99,
            ..Default::default()
        }),
        Err(MvccError::FutureRevision {
            requested: 99,
            current: 4
        })
    ));
}

fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key: key.into(),
        range_end: vec![],
        result,
        target,
    }
}

fn txn_compares_and_branches<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    m.apply(&put("k", "v1")).expect("put");
    let t = |c: Compare| TxnRequest {
        compare: vec![c],
        success: vec![RequestOp::Put(PutRequest {
            key: "ok".into(),
            value: "yes".into(),
            ..Default::default()
        })],
        failure: vec![RequestOp::Put(PutRequest {
            key: "ok".into(),
            value: "no".into(),
            ..Default::default()
        })],
    };
    let cases = [
        (cmp("k", CompareResult::Equal, CompareTarget::Value("v1".into())), true),
        (
            cmp("k", CompareResult::NotEqual, CompareTarget::Value("v1".into())),
            false,
        ),
        (cmp("k", CompareResult::Equal, CompareTarget::Version(1)), true),
        (cmp("k", CompareResult::Greater, CompareTarget::Mod(0)), true),
        (cmp("k", CompareResult::Less, CompareTarget::Create(1)), false),
        (cmp("k", CompareResult::Equal, CompareTarget::Lease(0)), true),
        (cmp("missing", CompareResult::Equal, CompareTarget::Version(0)), true),
        (
            cmp("missing", CompareResult::Equal, CompareTarget::Value("".into())),
            false,
        ),
    ];
    for (c, expect) in cases {
        let a = m.apply(&WriteOp::Txn(t(c.clone()))).expect("txn");
        let WriteResult::Txn(r) = a.result else {
            panic!("not a txn result")
        };
        assert_eq!(r.succeeded, expect, "compare {c:?}");
        assert_eq!(val(&m, "ok", 0).as_deref(), Some(if expect { "yes" } else { "no" }));
    }
}

fn txn_sees_its_own_writes_and_is_one_revision<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    m.apply(&put("x", "0")).expect("put");
    let a = m
        .apply(&WriteOp::Txn(TxnRequest {
            compare: vec![],
            success: vec![
                RequestOp::Put(PutRequest {
                    key: "a".into(),
                    value: "1".into(),
                    ..Default::default()
                }),
                RequestOp::Put(PutRequest {
                    key: "b".into(),
                    value: "2".into(),
                    ..Default::default()
                }),
                RequestOp::Range(RangeRequest {
                    key: "a".into(),
                    ..Default::default()
                }),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: "x".into(),
                    ..Default::default()
                }),
            ],
            failure: vec![],
        }))
        .expect("txn");
    assert_eq!(a.revision, 2);
    assert_eq!(a.events.len(), 3);
    assert!(a.events.iter().all(|e| e.kv.mod_revision == 2));
    let WriteResult::Txn(r) = a.result else { panic!("txn") };
    let ResponseOp::Range(rr) = &r.responses[2] else {
        panic!("range")
    };
    assert_eq!(rr.kvs[0].value, b"1");
    // Same key twice in one txn is refused and changes nothing.
    let e = m.apply(&WriteOp::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "d".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "d".into(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    }));
    assert!(matches!(e, Err(MvccError::DuplicateKey { .. })));
    assert_eq!(m.current_revision(), 2);
    assert_eq!(val(&m, "d", 0), None);
}

fn compaction_removes_history_and_errors_below_it<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    for i in 0..5 {
        m.apply(&put("k", &i.to_string())).expect("put");
    }
    m.apply(&put("gone", "x")).expect("put");
    m.apply(&WriteOp::DeleteRange(DeleteRangeRequest {
        key: "gone".into(),
        ..Default::default()
    }))
    .expect("del");
    m.flush().expect("flush");
    assert_eq!(m.current_revision(), 7);
    m.apply(&WriteOp::Compact { revision: 4 }).expect("compact");
    m.flush().expect("flush");
    assert_eq!(m.compacted_revision(), 4);
    assert!(matches!(
        get(&m, "k", 3),
        Err(MvccError::Compacted {
            requested: 3,
            compacted: 4
        })
    ));
    assert_eq!(val(&m, "k", 4).as_deref(), Some("3"));
    assert_eq!(val(&m, "k", 0).as_deref(), Some("4"));
    // Physically gone: revisions 1..3 are no longer in the backend.
    let mut n = 0;
    m.backend()
        .scan(b"r", Some(b"s"), &mut |_, _| {
            n += 1;
            true
        })
        .expect("scan");
    assert_eq!(n, 4, "kept: k@4, k@5, gone@6, gone@7(tombstone)");
    assert!(matches!(
        m.apply(&WriteOp::Compact { revision: 4 }),
        Err(MvccError::Compacted { .. })
    ));
    assert!(matches!(
        m.apply(&WriteOp::Compact { revision: 99 }),
        Err(MvccError::FutureRevision { .. })
    ));
    m.apply(&WriteOp::Compact { revision: 7 }).expect("compact");
    m.flush().expect("flush");
    assert_eq!(val(&m, "gone", 0), None);
    assert!(matches!(m.history(6, 7, 10), Err(MvccError::Compacted { .. })));
    // The delete at exactly the compacted revision is still in history.
    let h = m.history(7, 7, 10).expect("history");
    assert_eq!(h[0].1[0].kind, EventType::Delete);
}

fn history_replays_events_by_revision<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    m.apply(&put("a", "1")).expect("put");
    m.apply(&WriteOp::Txn(TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest {
                key: "a".into(),
                value: "2".into(),
                ..Default::default()
            }),
            RequestOp::Put(PutRequest {
                key: "b".into(),
                value: "3".into(),
                ..Default::default()
            }),
        ],
        failure: vec![],
    }))
    .expect("txn");
    m.apply(&WriteOp::DeleteRange(DeleteRangeRequest {
        key: "a".into(),
        ..Default::default()
    }))
    .expect("del");
    m.flush().expect("flush");
    let h = m.history(1, 10, 100).expect("history");
    let revs: Vec<_> = h.iter().map(|(r, evs)| (*r, evs.len())).collect();
    assert_eq!(revs, vec![(1, 1), (2, 2), (3, 1)]);
    assert_eq!(h[1].1[0].prev_kv.as_ref().map(|p| p.value.clone()), Some(b"1".to_vec()));
    assert_eq!(h[2].1[0].kind, EventType::Delete);
    assert_eq!(h[2].1[0].prev_kv.as_ref().map(|p| p.value.clone()), Some(b"2".to_vec()));
    let h = m.history(2, 10, 1).expect("history");
    assert_eq!(h.len(), 1, "bounded by max_revs");
}

fn leases_attach_and_revoke_keys_in_one_revision<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    m.apply(&WriteOp::LeaseGrant { id: 7, ttl: 10 }).expect("grant");
    assert!(matches!(
        m.apply(&WriteOp::LeaseGrant { id: 7, ttl: 10 }),
        Err(MvccError::LeaseExists { id: 7 })
    ));
    for k in ["a", "b"] {
        m.apply(&WriteOp::Put(PutRequest {
            key: k.into(),
            value: "v".into(),
            lease: 7,
            ..Default::default()
        }))
        .expect("put");
    }
    m.apply(&put("c", "no lease")).expect("put");
    assert_eq!(m.lease(7).expect("lease").keys.len(), 2);
    // Re-putting without the lease detaches the key.
    m.apply(&put("b", "v2")).expect("put");
    assert_eq!(m.lease(7).expect("lease").keys, vec![b"a".to_vec()]);
    let a = m.apply(&WriteOp::LeaseRevoke { id: 7 }).expect("revoke");
    assert_eq!(a.events.len(), 1);
    assert_eq!(val(&m, "a", 0), None);
    assert_eq!(val(&m, "b", 0).as_deref(), Some("v2"));
    assert!(m.lease(7).is_none());
    assert!(matches!(
        m.apply(&WriteOp::LeaseRevoke { id: 7 }),
        Err(MvccError::LeaseNotFound { id: 7 })
    ));
    m.flush().expect("flush");
}

fn reopen_restores_everything<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    m.apply(&WriteOp::LeaseGrant { id: 1, ttl: 30 }).expect("grant");
    m.apply(&WriteOp::Put(PutRequest {
        key: "l".into(),
        value: "v".into(),
        lease: 1,
        ..Default::default()
    }))
    .expect("put");
    m.apply(&put("a", "1")).expect("put");
    m.apply(&put("a", "2")).expect("put");
    m.apply(&WriteOp::Compact { revision: 2 }).expect("compact");
    m.flush().expect("flush");
    let dump = m.backend().dump().expect("dump");
    let fresh = mk();
    fresh.replace_all(dump).expect("replace");
    let m2 = Mvcc::open(fresh).expect("reopen");
    assert_eq!(m2.current_revision(), 3, "a lease grant is not a revision");
    assert_eq!(m2.compacted_revision(), 2);
    assert_eq!(val(&m2, "a", 0).as_deref(), Some("2"));
    assert_eq!(m2.lease(1).expect("lease").keys, vec![b"l".to_vec()]);
}

fn bad_requests_change_nothing<B: Backend>(mk: impl Fn() -> B) {
    let mut m = Mvcc::open(mk()).expect("open");
    m.apply(&put("a", "1")).expect("put");
    let e = m.apply(&WriteOp::Put(PutRequest {
        key: "b".into(),
        lease: 42,
        ..Default::default()
    }));
    assert!(matches!(e, Err(MvccError::LeaseNotFound { id: 42 })));
    let e = m.apply(&WriteOp::Put(PutRequest {
        key: "nope".into(),
        ignore_value: true,
        ..Default::default()
    }));
    assert!(matches!(e, Err(MvccError::KeyNotFound { .. })));
    assert_eq!(m.current_revision(), 1);
    assert_eq!(val(&m, "b", 0), None);
}

//! Fenced writes (ARCHITECTURE.md, fenced leadership): a write fenced by term T applies only if
//! the leader that appends it is in term T. A one-member store on loopback.

use std::time::{Duration, Instant};

use skiff_raft_store::mvcc::{PutRequest, WriteOp};
use skiff_raft_store::{Member, NodeConfig, StoreError};
use tokio_util::sync::CancellationToken;

fn put(key: &str) -> WriteOp {
    WriteOp::Put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fenced_by_another_term_is_refused_at_apply_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Ports in a range the other multi-process tests do not use.
    let port = 15000 + (std::process::id() % 500) as u16 * 2;
    let config = NodeConfig {
        name: "f1".into(),
        data_dir: dir.path().join("f1"),
        listen_peer: format!("127.0.0.1:{}", port + 1),
        listen_client: format!("127.0.0.1:{port}"),
        ..NodeConfig::default()
    };
    let stop = CancellationToken::new();
    let member = Member::start(config, stop.clone()).await.expect("start");
    let store = member.handle.clone();

    let mut leadership = store.leadership();
    let deadline = Instant::now() + Duration::from_secs(10);
    let term = loop {
        if let Some(t) = leadership.current() {
            break t;
        }
        assert!(Instant::now() < deadline, "no leadership within 10 s");
        let _ = tokio::time::timeout(Duration::from_millis(100), leadership.changed()).await;
    };
    assert!(term >= 1);

    let (rev, _) = store
        .write_fenced(put("a"), Some(term))
        .await
        .expect("fenced by the current term");
    assert!(rev > 0);
    match store.write_fenced(put("b"), Some(term - 1)).await {
        Err(StoreError::FenceMismatch { fence, term: t }) => {
            assert_eq!(fence, term - 1);
            assert_eq!(t, term);
        }
        other => panic!("a write fenced by a past term applied: {other:?}"),
    }
    match store.write_fenced(put("c"), Some(term + 1)).await {
        Err(StoreError::FenceMismatch { .. }) => {}
        other => panic!("a write fenced by a future term applied: {other:?}"),
    }
    // Nothing of the refused writes reached the keyspace.
    let (_, r) = store
        .range(skiff_raft_store::mvcc::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range");
    let keys: Vec<&[u8]> = r.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert_eq!(keys, vec![b"a".as_slice()]);
    // The ledger counts each fenced write by (fence term, appending leader's term).
    let ledger = store.fence_ledger();
    assert_eq!(ledger.admitted.into_iter().collect::<Vec<_>>(), vec![((term, term), 1)]);
    assert_eq!(
        ledger.refused.into_iter().collect::<Vec<_>>(),
        vec![((term - 1, term), 1), ((term + 1, term), 1)]
    );
    assert!(store.fencing_enforced());
    stop.cancel();
    member.wait().await;
    // Everything holding the store goes before it is opened again (RocksDB's lock).
    drop((store, leadership));

    // The same data dir under --unsafe-no-fencing (a negative control): a write fenced by another
    // term applies, and the ledger, restored from disk, records it as such.
    let unfenced = NodeConfig {
        name: "f1".into(),
        data_dir: dir.path().join("f1"),
        listen_peer: format!("127.0.0.1:{}", port + 1),
        listen_client: format!("127.0.0.1:{port}"),
        unsafe_no_fencing: true,
        ..NodeConfig::default()
    };
    let stop = CancellationToken::new();
    let member = Member::start(unfenced, stop.clone()).await.expect("restart");
    let store = member.handle.clone();
    assert!(!store.fencing_enforced());
    let mut leadership = store.leadership();
    let deadline = Instant::now() + Duration::from_secs(10);
    let now = loop {
        if let Some(t) = leadership.current() {
            break t;
        }
        assert!(Instant::now() < deadline, "no leadership within 10 s after the restart");
        let _ = tokio::time::timeout(Duration::from_millis(100), leadership.changed()).await;
    };
    store
        .write_fenced(put("d"), Some(now + 1))
        .await
        .expect("unfenced: a write fenced by another term applies");
    let ledger = store.fence_ledger();
    assert_eq!(
        ledger.admitted.get(&(term, term)),
        Some(&1),
        "restored from disk: {ledger:?}"
    );
    assert_eq!(ledger.admitted.get(&(now + 1, now)), Some(&1), "{ledger:?}");
    assert_eq!(ledger.refused.len(), 2, "{ledger:?}");
    stop.cancel();
    member.wait().await;
}

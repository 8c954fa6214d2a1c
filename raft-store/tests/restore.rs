//! Disaster recovery: a snapshot file of a one-member store restored into a new three-member
//! cluster on other addresses. The new cluster elects a leader, serves every key at its
//! revision, continues the revisions, and a member restored into a used dir is refused.

use std::time::{Duration, Instant};

use skiff_raft_store::mvcc::{PutRequest, RangeRequest, WriteOp, WriteResult};
use skiff_raft_store::node::{restore_snapshot, RestoreConfig};
use skiff_raft_store::server::maintenance::SnapshotChunks;
use skiff_raft_store::{Member, NodeConfig, StoreHandle};
use tokio_util::sync::CancellationToken;

fn put(key: &str, value: &str) -> WriteOp {
    WriteOp::Put(PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    })
}

async fn range_all(store: &StoreHandle) -> (i64, Vec<(String, String, i64)>) {
    let (rev, r) = store
        .range(RangeRequest {
            key: b"k/".to_vec(),
            range_end: b"k0".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range");
    let kvs = r
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.mod_revision,
            )
        })
        .collect();
    (rev, kvs)
}

async fn wait_leader(members: &[&StoreHandle]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(i) = members.iter().position(|m| m.is_leader()) {
            return i;
        }
        assert!(Instant::now() < deadline, "no leader within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_into_a_new_three_member_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Ports in a range the other multi-process tests do not use.
    let base = 17000 + (std::process::id() % 250) as u16 * 8;
    let stop = CancellationToken::new();
    let old = Member::start(
        NodeConfig {
            name: "old".into(),
            data_dir: dir.path().join("old"),
            listen_peer: format!("127.0.0.1:{}", base + 1),
            listen_client: format!("127.0.0.1:{base}"),
            ..NodeConfig::default()
        },
        stop.clone(),
    )
    .await
    .expect("start");
    wait_leader(&[&old.handle]).await;
    for i in 0..50 {
        old.handle
            .write(put(&format!("k/{i:03}"), &format!("v{i}")))
            .await
            .expect("put");
    }
    // Overwrite one, delete one: the restored keyspace keeps the latest of each key.
    old.handle.write(put("k/007", "again")).await.expect("put");
    old.handle
        .write(WriteOp::DeleteRange(skiff_raft_store::mvcc::DeleteRangeRequest {
            key: b"k/008".to_vec(),
            ..Default::default()
        }))
        .await
        .expect("delete");
    let (rev_before, kvs_before) = range_all(&old.handle).await;
    assert_eq!(kvs_before.len(), 49);

    // The file as Maintenance.Snapshot streams it (what etcdctl snapshot save writes).
    let payload = old.handle.snapshot_bytes().await.expect("snapshot");
    let file: Vec<u8> = SnapshotChunks::new(payload, None).flat_map(|m| m.blob).collect();
    stop.cancel();
    old.wait().await;

    let cluster: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("n{i}"), format!("127.0.0.1:{}", base + 2 * i + 1)))
        .collect();
    let mut revisions = Vec::new();
    for (name, _) in &cluster {
        let r = restore_snapshot(
            &file,
            &RestoreConfig {
                name: name.clone(),
                data_dir: dir.path().join(name),
                initial_cluster: cluster.clone(),
            },
        )
        .expect("restore");
        revisions.push(r.revision);
    }
    assert_eq!(
        revisions,
        vec![rev_before; 3],
        "every member restored at the snapshot's revision"
    );
    // A second restore into a used dir is refused and leaves it alone.
    let again = restore_snapshot(
        &file,
        &RestoreConfig {
            name: "n1".into(),
            data_dir: dir.path().join("n1"),
            initial_cluster: cluster.clone(),
        },
    );
    assert!(again.unwrap_err().to_string().contains("is not empty"));

    let stop = CancellationToken::new();
    let mut members = Vec::new();
    for (i, (name, peer)) in cluster.iter().enumerate() {
        let m = Member::start(
            NodeConfig {
                name: name.clone(),
                data_dir: dir.path().join(name),
                listen_peer: peer.clone(),
                listen_client: format!("127.0.0.1:{}", base + 2 * (i as u16 + 1)),
                initial_cluster: cluster.clone(),
                ..NodeConfig::default()
            },
            stop.clone(),
        )
        .await
        .expect("start restored member");
        members.push(m);
    }
    let handles: Vec<&StoreHandle> = members.iter().map(|m| &m.handle).collect();
    let leader = wait_leader(&handles).await;
    let (rev_after, kvs_after) = range_all(handles[leader]).await;
    assert_eq!(rev_after, rev_before);
    assert_eq!(kvs_after, kvs_before, "the same keys, values and mod revisions");
    let list = handles[leader].member_list().await.expect("member list");
    let mut names: Vec<_> = list.iter().map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["n1", "n2", "n3"]);
    assert!(list.iter().all(|m| !m.is_learner));

    // Writes continue the revisions, and reach every member.
    let (rev, res) = handles[leader]
        .write(put("k/new", "x"))
        .await
        .expect("put after restore");
    assert!(matches!(res, WriteResult::Put(_)));
    assert_eq!(rev, rev_before + 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    for h in &handles {
        loop {
            let (r, kvs) = range_all(h).await;
            if r > rev_before && kvs.iter().any(|(k, _, _)| k == "k/new") {
                break;
            }
            assert!(Instant::now() < deadline, "a restored member did not get the new write");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.cancel();
    for m in members {
        m.wait().await;
    }
}

//! Hub tests against an in-memory `History` that publishes like the state machine does (under
//! its own lock, so the lock order is exercised too).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::mvcc::{EventType, KeyValue};

#[derive(Default)]
struct Inner {
    revs: Vec<(i64, Vec<Event>)>,
    current: i64,
    compacted: i64,
}

#[derive(Default)]
struct FakeHistory {
    inner: Mutex<Inner>,
}

impl History for FakeHistory {
    fn history(&self, from: i64, to: i64, max_revs: usize) -> Result<Vec<(i64, Vec<Event>)>, MvccError> {
        let g = self.inner.lock();
        if from < g.compacted {
            return Err(MvccError::Compacted {
                requested: from,
                compacted: g.compacted,
            });
        }
        Ok(g.revs
            .iter()
            .filter(|(r, _)| *r >= from && *r <= to)
            .take(max_revs)
            .cloned()
            .collect())
    }

    fn revisions(&self) -> (i64, i64) {
        let g = self.inner.lock();
        (g.current, g.compacted)
    }
}

/// A fake state machine: storage plus the hub it publishes to.
struct Store {
    hist: Arc<FakeHistory>,
    hub: Arc<WatchHub>,
}

fn config() -> WatchConfig {
    WatchConfig {
        progress_interval: Duration::from_secs(1),
        retry_interval: Duration::from_millis(2),
        batch_revs: 7,
    }
}

impl Store {
    fn new() -> Self {
        let hist = Arc::new(FakeHistory::default());
        let hub = WatchHub::with_config(hist.clone(), 0, config());
        Self { hist, hub }
    }

    /// Applies one revision; publishes unless `publish` is false (as if a snapshot brought it).
    fn commit_with(&self, evs: Vec<Event>, publish: bool) -> i64 {
        let mut g = self.hist.inner.lock();
        g.current += 1;
        let rev = g.current;
        let evs: Vec<Event> = evs
            .into_iter()
            .map(|mut e| {
                e.kv.mod_revision = rev;
                e
            })
            .collect();
        g.revs.push((rev, evs.clone()));
        if publish {
            self.hub.publish(&[(rev, evs)], rev);
        }
        rev
    }

    fn commit(&self, evs: Vec<Event>) -> i64 {
        self.commit_with(evs, true)
    }

    fn compact(&self, rev: i64) {
        let mut g = self.hist.inner.lock();
        g.compacted = rev;
        g.revs.retain(|(r, _)| *r >= rev);
    }

    fn start(&self) -> CancellationToken {
        let token = CancellationToken::new();
        tokio::spawn(self.hub.clone().run(token.clone()));
        token
    }
}

fn put(key: &str) -> Event {
    let kv = KeyValue {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        version: 2,
        ..Default::default()
    };
    Event {
        kind: EventType::Put,
        kv: kv.clone(),
        prev_kv: Some(KeyValue { version: 1, ..kv }),
    }
}

fn del(key: &str) -> Event {
    let kv = KeyValue {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    };
    let prev = KeyValue {
        key: key.as_bytes().to_vec(),
        value: b"old".to_vec(),
        version: 1,
        ..Default::default()
    };
    Event {
        kind: EventType::Delete,
        kv,
        prev_kv: Some(prev),
    }
}

fn spec(key: &str, range_end: &[u8], start: i64) -> WatchSpec {
    WatchSpec {
        key: key.as_bytes().to_vec(),
        range_end: range_end.to_vec(),
        start_revision: start,
        ..Default::default()
    }
}

async fn watch(stream: &WatchStream, tx: &mpsc::Sender<WatchMsg>, id: i64, s: WatchSpec) -> Result<i64, WatchError> {
    let permit = tx.reserve().await.expect("channel open");
    stream.watch(permit, id, s)
}

async fn recv(rx: &mut mpsc::Receiver<WatchMsg>) -> WatchMsg {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("timed out")
        .expect("channel open")
}

/// Keys of the events of an Events message, with their revisions.
fn events_of(msg: &WatchMsg) -> Vec<(i64, String)> {
    match msg {
        WatchMsg::Events { events, .. } => events
            .iter()
            .map(|e| (e.kv.mod_revision, String::from_utf8_lossy(&e.kv.key).into_owned()))
            .collect(),
        other => panic!("expected events, got {other:?}"),
    }
}

#[tokio::test]
async fn exactly_once_in_order_across_unsynced_and_back() {
    let store = Arc::new(Store::new());
    let (tx, mut rx) = mpsc::channel(2);
    let stream = store.hub.open_stream(tx.clone());
    let id = watch(&stream, &tx, 0, spec("k", b"l", 0)).await.expect("created");
    assert_eq!(id, 0);
    let token = store.start();

    // Nobody reads: after one message the channel is full and the watcher falls behind.
    for i in 1..=300 {
        store.commit(vec![put(&format!("k{i}a")), put("x"), put(&format!("k{i}b"))]);
    }
    assert_eq!(store.hub.unsynced_count(), 1);

    // Keep writing while the reader catches up.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 301..=400 {
                store.commit(vec![put(&format!("k{i}a")), put("x"), put(&format!("k{i}b"))]);
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };

    assert!(matches!(recv(&mut rx).await, WatchMsg::Created { watch_id: 0, .. }));
    let mut seen = Vec::new();
    let mut n = 0;
    while seen.len() < 800 {
        let msg = recv(&mut rx).await;
        let evs = events_of(&msg);
        // Whole revisions only: both events of every revision in the message.
        let mut revs: Vec<i64> = evs.iter().map(|(r, _)| *r).collect();
        revs.dedup();
        assert_eq!(evs.len(), revs.len() * 2, "a revision was split: {evs:?}");
        seen.extend(evs);
        n += 1;
        if n % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    writer.await.expect("writer");
    let want: Vec<(i64, String)> = (1..=400)
        .flat_map(|i| [(i, format!("k{i}a")), (i, format!("k{i}b"))])
        .collect();
    assert_eq!(seen, want);

    // Back in sync: live events flow again, nothing extra arrived.
    tokio::time::timeout(Duration::from_secs(5), async {
        while store.hub.unsynced_count() > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("watcher back in sync");
    assert!(rx.try_recv().is_err());
    store.commit(vec![put("k401a"), put("k401b")]);
    assert_eq!(
        events_of(&recv(&mut rx).await),
        vec![(401, "k401a".into()), (401, "k401b".into())]
    );
    token.cancel();
}

#[tokio::test]
async fn start_below_compaction_is_created_then_canceled() {
    let store = Store::new();
    for i in 0..10 {
        store.commit(vec![put(&format!("a{i}"))]);
    }
    store.compact(5);
    let token = store.start();
    let (tx, mut rx) = mpsc::channel(8);
    let stream = store.hub.open_stream(tx.clone());
    let id = watch(&stream, &tx, 0, spec("a", b"b", 3)).await.expect("created");
    assert!(matches!(recv(&mut rx).await, WatchMsg::Created { watch_id, cancel_reason: None, .. } if watch_id == id));
    match recv(&mut rx).await {
        WatchMsg::Canceled {
            watch_id,
            compact_revision,
            ..
        } => {
            assert_eq!((watch_id, compact_revision), (id, 5));
        }
        other => panic!("expected compacted cancel, got {other:?}"),
    }
    assert_eq!(store.hub.watcher_count(), 0);

    // At the compacted revision itself history is still there.
    watch(&stream, &tx, 0, spec("a", b"b", 5)).await.expect("created");
    assert!(matches!(recv(&mut rx).await, WatchMsg::Created { .. }));
    let got: Vec<i64> = events_of(&recv(&mut rx).await).into_iter().map(|(r, _)| r).collect();
    assert_eq!(got, vec![5, 6, 7, 8, 9, 10]);
    token.cancel();
}

#[tokio::test]
async fn start_from_history_then_live() {
    let store = Store::new();
    for i in 1..=5 {
        store.commit(vec![put(if i % 2 == 1 { "a" } else { "b" })]);
    }
    let token = store.start();
    let (tx, mut rx) = mpsc::channel(16);
    let stream = store.hub.open_stream(tx.clone());
    let hist = watch(&stream, &tx, 0, spec("a", b"", 2)).await.expect("created");
    let live = watch(&stream, &tx, 0, spec("a", b"", 0)).await.expect("created");
    assert_eq!((hist, live), (0, 1));
    assert!(matches!(
        recv(&mut rx).await,
        WatchMsg::Created {
            watch_id: 0,
            revision: 5,
            ..
        }
    ));
    assert!(matches!(
        recv(&mut rx).await,
        WatchMsg::Created {
            watch_id: 1,
            revision: 5,
            ..
        }
    ));
    assert_eq!(events_of(&recv(&mut rx).await), vec![(3, "a".into()), (5, "a".into())]);
    store.commit(vec![put("a")]);
    let mut got = [recv(&mut rx).await, recv(&mut rx).await];
    got.sort_by_key(|m| m.watch_id());
    for (m, id) in got.iter().zip([0, 1]) {
        assert_eq!(m.watch_id(), id);
        assert_eq!(events_of(m), vec![(6, "a".into())]);
    }
    token.cancel();
}

#[tokio::test]
async fn filters_ranges_and_prev_kv() {
    let store = Store::new();
    let (tx, mut rx) = mpsc::channel(64);
    let stream = store.hub.open_stream(tx.clone());
    let no_put = watch(
        &stream,
        &tx,
        10,
        WatchSpec {
            no_put: true,
            ..spec("a", b"b", 0)
        },
    )
    .await
    .expect("ok");
    let no_del = watch(
        &stream,
        &tx,
        11,
        WatchSpec {
            no_delete: true,
            prev_kv: true,
            ..spec("a", b"b", 0)
        },
    )
    .await
    .expect("ok");
    let from_key = watch(&stream, &tx, 12, spec("b", &[0], 0)).await.expect("ok");
    assert_eq!((no_put, no_del, from_key), (10, 11, 12));
    for _ in 0..3 {
        assert!(matches!(recv(&mut rx).await, WatchMsg::Created { .. }));
    }
    store.commit(vec![put("a1"), del("a2"), put("c")]);
    let mut msgs = Vec::new();
    while let Ok(m) = rx.try_recv() {
        msgs.push(m);
    }
    msgs.sort_by_key(|m| m.watch_id());
    assert_eq!(msgs.len(), 3);
    let evs = |m: &WatchMsg| match m {
        WatchMsg::Events { events, .. } => events.clone(),
        other => panic!("{other:?}"),
    };
    let e = evs(&msgs[0]);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].kv.key.as_slice(), e[0].prev_kv.is_none()),
        (EventType::Delete, &b"a2"[..], true)
    );
    let e = evs(&msgs[1]);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].kv.key.as_slice(), e[0].prev_kv.is_some()),
        (EventType::Put, &b"a1"[..], true)
    );
    let e = evs(&msgs[2]);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kv.key, b"c");
}

#[tokio::test]
async fn ids_duplicates_empty_ranges_and_cancel() {
    let store = Store::new();
    let (tx, mut rx) = mpsc::channel(16);
    let stream = store.hub.open_stream(tx.clone());
    assert_eq!(watch(&stream, &tx, 1, spec("a", b"", 0)).await, Ok(1));
    assert_eq!(watch(&stream, &tx, 0, spec("a", b"", 0)).await, Ok(0));
    assert_eq!(
        watch(&stream, &tx, 0, spec("a", b"", 0)).await,
        Ok(2),
        "auto IDs skip IDs in use"
    );
    assert_eq!(
        watch(&stream, &tx, 1, spec("a", b"", 0)).await,
        Err(WatchError::DuplicateId { watch_id: 1 })
    );
    assert_eq!(
        watch(&stream, &tx, 0, spec("b", b"a", 0)).await,
        Err(WatchError::EmptyRange)
    );
    assert!(matches!(
        watch(&stream, &tx, 0, spec("a", b"", -1)).await,
        Err(WatchError::Compacted { .. })
    ));
    for want in [1, 0, 2, -1, -1, -1] {
        match recv(&mut rx).await {
            WatchMsg::Created {
                watch_id,
                cancel_reason,
                ..
            } => {
                assert_eq!(watch_id, want);
                assert_eq!(cancel_reason.is_some(), want == -1);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stream.cancel(0), Some(0));
    assert_eq!(stream.cancel(0), None);
    store.commit(vec![put("a")]);
    let mut ids: Vec<i64> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|m| m.watch_id())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2]);
    drop(stream);
    assert_eq!(store.hub.watcher_count(), 0);
}

#[tokio::test]
async fn progress_request_waits_until_synced() {
    let store = Store::new();
    for _ in 0..20 {
        store.commit(vec![put("a")]);
    }
    let (tx, mut rx) = mpsc::channel(16);
    let stream = store.hub.open_stream(tx.clone());
    watch(&stream, &tx, 0, spec("a", b"", 1)).await.expect("created");
    assert!(matches!(recv(&mut rx).await, WatchMsg::Created { .. }));
    stream.request_progress();
    assert!(rx.try_recv().is_err(), "no progress while the watcher is behind");
    let token = store.start();
    let mut revs = Vec::new();
    loop {
        match recv(&mut rx).await {
            WatchMsg::Events { events, .. } => revs.extend(events.iter().map(|e| e.kv.mod_revision)),
            WatchMsg::Progress { watch_id, revision } => {
                assert_eq!((watch_id, revision), (INVALID_WATCH_ID, 20));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(revs, (1..=20).collect::<Vec<_>>());
    // Synced: answered at once.
    stream.request_progress();
    assert_eq!(
        rx.try_recv().ok(),
        Some(WatchMsg::Progress {
            watch_id: -1,
            revision: 20
        })
    );
    token.cancel();
}

#[tokio::test(start_paused = true)]
async fn periodic_progress_only_when_idle() {
    let store = Store::new();
    let (tx, mut rx) = mpsc::channel(16);
    let stream = store.hub.open_stream(tx.clone());
    let id = watch(
        &stream,
        &tx,
        7,
        WatchSpec {
            progress_notify: true,
            ..spec("a", b"", 0)
        },
    )
    .await
    .expect("ok");
    watch(&stream, &tx, 8, spec("a", b"", 0)).await.expect("ok");
    recv(&mut rx).await;
    recv(&mut rx).await;
    let token = store.start();
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        rx.try_recv().ok(),
        Some(WatchMsg::Progress {
            watch_id: id,
            revision: 0
        })
    );
    assert!(rx.try_recv().is_err());
    // Events in the interval elide the next notification.
    store.commit(vec![put("a")]);
    assert_eq!(events_of(&recv(&mut rx).await), vec![(1, "a".into())]);
    assert_eq!(events_of(&recv(&mut rx).await), vec![(1, "a".into())]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(rx.try_recv().is_err());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        rx.try_recv().ok(),
        Some(WatchMsg::Progress {
            watch_id: id,
            revision: 1
        })
    );
    token.cancel();
}

#[tokio::test]
async fn resync_after_snapshot_catches_up_from_storage() {
    let store = Store::new();
    let token = store.start();
    let (tx, mut rx) = mpsc::channel(16);
    let stream = store.hub.open_stream(tx.clone());
    watch(&stream, &tx, 0, spec("a", b"b", 0)).await.expect("ok");
    recv(&mut rx).await;
    store.commit(vec![put("a1")]);
    // Revisions 2..=4 arrive by snapshot: stored but never published.
    for i in 2..=4 {
        store.commit_with(vec![put(&format!("a{i}"))], false);
    }
    store.hub.resync(4);
    store.commit(vec![put("a5")]);
    let mut revs = Vec::new();
    while revs.len() < 5 {
        revs.extend(events_of(&recv(&mut rx).await).into_iter().map(|(r, _)| r));
    }
    assert_eq!(revs, vec![1, 2, 3, 4, 5]);
    token.cancel();
}

#[tokio::test]
async fn closed_stream_watchers_are_dropped_on_publish() {
    let store = Store::new();
    let (tx, rx) = mpsc::channel(16);
    let stream = store.hub.open_stream(tx.clone());
    watch(&stream, &tx, 0, spec("a", b"", 0)).await.expect("ok");
    drop(rx);
    store.commit(vec![put("a")]);
    assert_eq!(store.hub.watcher_count(), 0);
}

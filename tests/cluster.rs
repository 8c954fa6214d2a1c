//! Multi-process tests of a skiff store cluster on loopback (127.0.0.1-4): leader kill under
//! load, full restart, catch-up by snapshot, membership changes under load, watch across a
//! leader change. Each member is a real `skiff master` process.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use common::{local_get, Cluster};
use etcd_client::{EventType, GetOptions, WatchOptions};

/// Puts `load/<n>` for n = 0.. until `stop` or `max` writes or `limit` time; returns the acked n.
async fn writer(endpoints: Vec<String>, max: usize, limit: Duration, stop: Arc<Mutex<bool>>) -> Vec<usize> {
    let mut acked = Vec::new();
    let started = Instant::now();
    let mut client = None;
    for n in 0..max {
        if *stop.lock().expect("lock") || started.elapsed() > limit {
            break;
        }
        if client.is_none() {
            client = common::connect(&endpoints).await.ok();
        }
        let Some(c) = client.as_mut() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match c.put(format!("load/{n:06}"), n.to_string(), None).await {
            Ok(_) => acked.push(n),
            Err(_) => {
                client = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    acked
}

async fn assert_all_present(c: &Cluster, acked: &[usize]) -> Result<()> {
    // Retried: right after a failover a member may still be finding the new leader.
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let attempt = async {
            c.client()
                .await?
                .get("load/", Some(GetOptions::new().with_prefix()))
                .await
                .map_err(anyhow::Error::from)
        };
        match attempt.await {
            Ok(r) => break r,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let present: std::collections::HashSet<String> = r
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    for n in acked {
        ensure!(
            present.contains(&format!("load/{n:06}")),
            "acknowledged write load/{n:06} lost"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_under_load_loses_no_acknowledged_write() -> Result<()> {
    let mut c = Cluster::start(3, &[])?;
    let leader = c.leader(Duration::from_secs(20)).await?;
    let stop = Arc::new(Mutex::new(false));
    let w = tokio::spawn(writer(c.endpoints(), 100_000, Duration::from_secs(40), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.kill(leader);
    let new_leader = c.leader(Duration::from_secs(15)).await?;
    ensure!(new_leader != leader, "a killed member cannot lead");
    // Writes resume under the new leader.
    tokio::time::sleep(Duration::from_secs(3)).await;
    *stop.lock().expect("lock") = true;
    let acked = w.await?;
    ensure!(
        acked.len() > 50,
        "too few writes acknowledged: {}\n{}",
        acked.len(),
        c.logs()
    );
    let last = *acked.last().expect("some writes");
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.client().await?.put("after-failover", "yes", None).await.is_err() {
        ensure!(
            Instant::now() < deadline,
            "no write accepted after failover\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_all_present(&c, &acked).await?;
    // The old leader comes back on its data and catches up.
    c.restart(leader)?;
    let mut old = c.client_of(leader).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while local_get(&mut old, "after-failover").await.ok().flatten().is_none() {
        if Instant::now() > deadline {
            bail!("restarted member did not catch up\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(local_get(&mut old, &format!("load/{last:06}")).await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stop_and_restart_brings_every_write_back() -> Result<()> {
    let mut c = Cluster::start(3, &[])?;
    c.wait_ready(1, Duration::from_secs(20)).await?;
    let mut client = c.client().await?;
    for i in 0..200 {
        client.put(format!("load/{i:06}"), i.to_string(), None).await?;
    }
    let rev = client
        .get("load/000199", None)
        .await?
        .header()
        .map(|h| h.revision())
        .unwrap_or(0);
    for i in 1..=3 {
        c.kill(i); // SIGKILL: no clean shutdown
    }
    for i in 1..=3 {
        c.restart(i)?;
    }
    c.wait_ready(2, Duration::from_secs(30)).await?;
    assert_all_present(&c, &(0..200).collect::<Vec<_>>()).await?;
    let mut client = c.client().await?;
    let r = client.get("load/000000", None).await?;
    ensure!(
        r.header().map(|h| h.revision()).unwrap_or(0) >= rev,
        "revision went backwards"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_member_catches_up_by_snapshot() -> Result<()> {
    let mut c = Cluster::start(3, &["--snapshot-count", "100", "--snapshot-catchup-entries", "10"])?;
    c.wait_ready(1, Duration::from_secs(20)).await?;
    let leader = c.leader(Duration::from_secs(10)).await?;
    let lagger = if leader == 3 { 2 } else { 3 };
    c.kill(lagger);
    let mut client = common::connect(&[c.endpoint(leader)]).await?;
    for i in 0..600 {
        client.put(format!("load/{i:06}"), i.to_string(), None).await?;
    }
    c.restart(lagger)?;
    let mut l = c.client_of(lagger).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while local_get(&mut l, "load/000599").await.ok().flatten().is_none() {
        if Instant::now() > deadline {
            bail!("lagging member did not catch up\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(&c.members[lagger - 1].log)?;
    ensure!(
        log.contains("installed snapshot"),
        "expected catch-up by snapshot\n{}",
        c.logs()
    );
    ensure!(local_get(&mut l, "load/000000").await?.as_deref() == Some("0"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_fourth_member_and_remove_one_under_load() -> Result<()> {
    let mut c = Cluster::start(3, &[])?;
    c.wait_ready(1, Duration::from_secs(20)).await?;
    let stop = Arc::new(Mutex::new(false));
    let w = tokio::spawn(writer(c.endpoints(), 100_000, Duration::from_secs(60), stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.join(4)?;
    let mut admin = c.client_of(1).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ms = admin.member_list().await?;
        let voters = ms
            .members()
            .iter()
            .filter(|m| !m.is_learner() && m.name() == "m4")
            .count();
        if ms.members().len() == 4 && voters == 1 {
            break;
        }
        if Instant::now() > deadline {
            bail!("m4 did not become a voter\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Remove m3 while writes continue.
    let ms = admin.member_list().await?;
    let m3 = ms
        .members()
        .iter()
        .find(|m| m.name() == "m3")
        .map(|m| m.id())
        .expect("m3 listed");
    admin.member_remove(m3).await?;
    c.kill(3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    *stop.lock().expect("lock") = true;
    let acked = w.await?;
    ensure!(acked.len() > 20, "writes stalled: {}\n{}", acked.len(), c.logs());
    ensure!(admin.member_list().await?.members().len() == 3);
    let mut m4 = c.client_of(4).await?;
    let last = *acked.last().expect("writes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while local_get(&mut m4, &format!("load/{last:06}"))
        .await
        .ok()
        .flatten()
        .is_none()
    {
        if Instant::now() > deadline {
            bail!("m4 missing acknowledged writes\n{}", c.logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_all_present(&c, &acked).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_continues_across_a_leader_kill_without_gaps_or_duplicates() -> Result<()> {
    let mut c = Cluster::start(3, &[])?;
    c.wait_ready(1, Duration::from_secs(20)).await?;
    let leader = c.leader(Duration::from_secs(10)).await?;
    let watcher_member = if leader == 1 { 2 } else { 1 };
    let mut wc = c.client_of(watcher_member).await?;
    let (_w, mut stream) = wc.watch("load/", Some(WatchOptions::new().with_prefix())).await?;
    let stop = Arc::new(Mutex::new(false));
    let writer_eps: Vec<String> = (1..=3).filter(|i| *i != leader).map(|i| c.endpoint(i)).collect();
    let w = tokio::spawn(writer(writer_eps, 100_000, Duration::from_secs(40), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.kill(leader);
    c.leader(Duration::from_secs(15)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    *stop.lock().expect("lock") = true;
    let acked = w.await?;
    let last = format!("load/{:06}", acked.last().copied().unwrap_or(0));
    let mut seen: Vec<(i64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    'outer: while Instant::now() < deadline {
        let msg = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
        let Ok(Ok(Some(resp))) = msg else { break };
        for ev in resp.events() {
            if ev.event_type() != EventType::Put {
                continue;
            }
            let kv = ev.kv().expect("event kv");
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            seen.push((kv.mod_revision(), key.clone()));
            if key == last {
                break 'outer;
            }
        }
    }
    ensure!(
        seen.last().map(|(_, k)| k == &last).unwrap_or(false),
        "watch stopped early: saw {} events, last acked {last}\n{}",
        seen.len(),
        c.logs()
    );
    for pair in seen.windows(2) {
        ensure!(
            pair[0].0 < pair[1].0,
            "revisions out of order or duplicated: {:?}",
            pair
        );
    }
    let keys: std::collections::HashSet<&String> = seen.iter().map(|(_, k)| k).collect();
    for n in &acked {
        ensure!(
            keys.contains(&format!("load/{n:06}")),
            "watch missed acknowledged write load/{n:06}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_lose_nothing() -> Result<()> {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    let c = Cluster::start(3, &[])?;
    c.wait_ready(2, Duration::from_secs(20)).await?;
    let mut client = c.client_of(2).await?;
    client.put("kept", "v", None).await?;
    let expect_err = |r: Result<String, etcd_client::Error>, want: &str| -> Result<()> {
        match r {
            Ok(_) => bail!("expected an error containing {want:?}"),
            Err(e) => {
                ensure!(e.to_string().contains(want), "error {e} does not say {want:?}");
                Ok(())
            }
        }
    };
    let big = vec![b'x'; 1_600_000];
    expect_err(
        client.put("big", big, None).await.map(|_| String::new()),
        "request is too large",
    )?;
    expect_err(
        client.put("", "v", None).await.map(|_| String::new()),
        "key is not provided",
    )?;
    let ops: Vec<TxnOp> = (0..129).map(|i| TxnOp::put(format!("t{i}"), "v", None)).collect();
    let txn = Txn::new()
        .when([Compare::version("kept", CompareOp::Greater, 0)])
        .and_then(ops);
    expect_err(
        client.txn(txn).await.map(|_| String::new()),
        "too many operations in txn request",
    )?;
    let r = client
        .get("kept", Some(GetOptions::new().with_revision(1_000_000)))
        .await;
    expect_err(r.map(|_| String::new()), "required revision is a future revision")?;
    let r = client
        .put("leased", "v", Some(etcd_client::PutOptions::new().with_lease(0x1234)))
        .await;
    expect_err(r.map(|_| String::new()), "requested lease not found")?;
    // Still serving, nothing lost, nothing half-applied.
    let mut all = c.client().await?;
    ensure!(local_get(&mut client, "kept").await?.as_deref() == Some("v"));
    ensure!(
        all.get("t0", None).await?.kvs().is_empty(),
        "a refused txn was partly applied"
    );
    ensure!(all.get("big", None).await?.kvs().is_empty());
    all.put("after", "ok", None).await?;
    Ok(())
}

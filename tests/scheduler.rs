//! The scheduler runs on the Raft leader only, its bindings fenced by the leader's term. Three
//! real `skiff master` processes on loopback; nodes and pods are written straight into the store
//! (the scheduler reads it through its informers, no API server needed), the leader is killed
//! while pods are pending, and the store's history must show every pod bound exactly once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::Cluster;
use etcd_client::{Client, GetOptions, WatchOptions};
use serde_json::{json, Value};

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                   "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"}}})
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"schedulerName": "default-scheduler",
                 "containers": [{"name": "c", "image": "busybox",
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
        "status": {"phase": "Pending"}})
}

async fn put_json(c: &mut Client, key: String, v: &Value) -> Result<()> {
    c.put(key, serde_json::to_vec(v)?, None).await?;
    Ok(())
}

/// A client of the members still running.
async fn live_client(cluster: &Cluster) -> Result<Client> {
    let live: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| m.child.is_some())
        .map(|m| format!("http://{}", m.client_addr(cluster.base)))
        .collect();
    common::connect(&live).await
}

/// Puts with retries through any member (a leader may just have died).
async fn put_retrying(cluster: &Cluster, key: String, v: &Value) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = async { put_json(&mut live_client(cluster).await?, key.clone(), v).await }.await;
        match r {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// nodeName of every pod now (linearizable, any live member).
async fn bound(cluster: &Cluster) -> Result<HashMap<String, String>> {
    let mut c = live_client(cluster).await?;
    let r = c
        .get("/registry/pods/default/", Some(GetOptions::new().with_prefix()))
        .await?;
    let mut out = HashMap::new();
    for kv in r.kvs() {
        let v: Value = serde_json::from_slice(kv.value())?;
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        out.insert(name, v["spec"]["nodeName"].as_str().unwrap_or("").to_string());
    }
    Ok(out)
}

async fn wait_all_bound(cluster: &Cluster, n: usize, timeout: Duration) -> Result<HashMap<String, String>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(b) = bound(cluster).await {
            if b.len() == n && b.values().all(|v| !v.is_empty()) {
                return Ok(b);
            }
            if Instant::now() > deadline {
                let unbound = b.values().filter(|v| v.is_empty()).count();
                bail!(
                    "{unbound} of {} pods still unbound after {timeout:?}\n{}",
                    b.len(),
                    cluster.logs()
                );
            }
        } else if Instant::now() > deadline {
            bail!("store unreachable\n{}", cluster.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_leader_schedules_and_no_pod_is_ever_bound_twice() -> Result<()> {
    let mut cluster = Cluster::start(3, &[])?;
    let leader = cluster.leader(Duration::from_secs(20)).await?;
    let mut c = cluster.client().await?;
    for i in 0..4 {
        put_json(&mut c, format!("/registry/minions/n{i}"), &node(&format!("n{i}"))).await?;
    }
    for i in 0..60 {
        put_json(
            &mut c,
            format!("/registry/pods/default/a{i:03}"),
            &pod(&format!("a{i:03}")),
        )
        .await?;
    }
    let first = wait_all_bound(&cluster, 60, Duration::from_secs(20)).await?;
    // Spread by LeastAllocated: every node got some.
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for n in first.values() {
        *per_node.entry(n.as_str()).or_default() += 1;
    }
    ensure!(per_node.len() == 4, "pods not spread over the 4 nodes: {per_node:?}");

    // Pods pending while the leader dies: they need a node of pool "late", which comes after.
    for i in 0..60 {
        let mut p = pod(&format!("b{i:03}"));
        p["spec"]["nodeSelector"] = json!({"pool": "late"});
        put_json(&mut c, format!("/registry/pods/default/b{i:03}"), &p).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = bound(&cluster).await?;
    let pending_at_kill = before.values().filter(|v| v.is_empty()).count();
    ensure!(
        pending_at_kill == 60,
        "{pending_at_kill} pods pending before the kill, expected 60"
    );
    let killed = Instant::now();
    cluster.kill(leader);
    let mut late = node("late");
    late["metadata"]["labels"]["pool"] = json!("late");
    put_retrying(&cluster, "/registry/minions/late".into(), &late).await?;
    let first_bind = loop {
        let b = bound(&cluster).await.unwrap_or_default();
        if b.iter().any(|(name, n)| name.starts_with('b') && !n.is_empty()) {
            break killed.elapsed();
        }
        ensure!(
            killed.elapsed() < Duration::from_secs(30),
            "no pending pod bound 30 s after the kill\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // And pods created after it.
    for i in 0..60 {
        put_retrying(
            &cluster,
            format!("/registry/pods/default/c{i:03}"),
            &pod(&format!("c{i:03}")),
        )
        .await?;
    }
    let all = wait_all_bound(&cluster, 180, Duration::from_secs(30)).await?;
    let everything = killed.elapsed();
    let new_leader = cluster.leader(Duration::from_secs(10)).await?;
    ensure!(new_leader != leader, "leader did not change");
    for (name, n) in &all {
        if name.starts_with('b') {
            ensure!(n == "late", "{name} bound to {n}, not to the only node of its pool");
        }
    }
    for l in cluster.logs().lines().filter(|l| {
        l.contains("leader-only")
            || l.contains("scheduler started")
            || l.contains("first pod bound")
            || l.contains("---")
    }) {
        eprintln!("{l}");
    }
    eprintln!(
        "leader killed with {pending_at_kill} pods pending: first of them bound {first_bind:?} after the kill, all 180 {everything:?}"
    );

    // The history: every put of every pod, from the first revision.
    let mut c = cluster.client_of(new_leader).await?;
    let rev = c
        .get("/registry/pods/default/", Some(GetOptions::new().with_prefix()))
        .await?
        .kvs()
        .iter()
        .map(|kv| kv.mod_revision())
        .max()
        .context("no pods")?;
    let (_watcher, mut stream) = c
        .watch(
            "/registry/pods/default/",
            Some(WatchOptions::new().with_prefix().with_start_revision(1)),
        )
        .await?;
    let mut node_of: HashMap<String, String> = HashMap::new();
    let mut seen_rev = 0;
    while seen_rev < rev {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .context("history watch timed out")??
            .context("history watch ended")?;
        ensure!(
            !resp.canceled(),
            "history watch cancelled (compacted at {}): {}",
            resp.compact_revision(),
            resp.cancel_reason()
        );
        for ev in resp.events() {
            let kv = ev.kv().context("event without kv")?;
            seen_rev = seen_rev.max(kv.mod_revision());
            let v: Value = serde_json::from_slice(kv.value())?;
            let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            let n = v["spec"]["nodeName"].as_str().unwrap_or("").to_string();
            match node_of.get(&name) {
                Some(prev) if !prev.is_empty() => {
                    ensure!(*prev == n, "pod {name} bound to {prev} then to {n:?}");
                }
                _ => {
                    node_of.insert(name, n);
                }
            }
        }
    }
    for (name, n) in &all {
        ensure!(node_of.get(name) == Some(n), "history of {name} does not end on {n}");
    }
    Ok(())
}

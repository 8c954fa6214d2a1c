//! Register clients and watchers, talking to the members through `etcd-client`.
//!
//! Each client is bound to one member (client k to member k mod n, as Jepsen binds clients to
//! nodes), picks a key and an operation at random (from its own seeded RNG), and records the
//! invocation and completion. Every written value is unique in the run. A client that gets an
//! unknown outcome continues as a new process (Jepsen's rule: a process with an operation in
//! flight never issues another), and reconnects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, EventType, GetOptions, Txn, TxnOp, WatchOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::checker::watch::{Event, WatchLog};
use crate::cluster::connect;
use crate::history::{Func, Outcome, Recorder};

#[derive(Clone, Debug)]
pub struct Config {
    pub prefix: String,
    pub keys: usize,
    pub op_timeout: Duration,
    /// Pause between a client's operations.
    pub think: Duration,
    /// Upper bound on each client's operations, whatever the duration.
    pub max_ops_per_client: u64,
    /// Negative control: serializable (local, possibly stale) reads instead of linearizable ones.
    pub serializable_reads: bool,
}

/// Written under the prefix once the workload is over; watchers stop when they have seen it.
pub const END_KEY: &str = "_end";

pub fn key(prefix: &str, k: usize) -> String {
    format!("{prefix}k{k}")
}

fn parse(v: &[u8]) -> Option<u64> {
    // A value we did not write parses to u64::MAX, which no model state can hold.
    Some(
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX),
    )
}

/// Errors where the request certainly never reached a member: nothing was applied.
fn definitely_not_sent(e: &etcd_client::Error) -> bool {
    let s = e.to_string();
    s.contains("Connection refused") || s.contains("tcp connect error") || s.contains("error trying to connect")
}

/// One client: runs until `stop` or its op bound; `id` seeds its RNG and its value space.
pub async fn register_client(
    id: u64,
    clients: u64,
    seed: u64,
    endpoint: String,
    cfg: Config,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut process = id;
    let mut counter = 0u64;
    let mut known: HashMap<String, u64> = HashMap::new();
    let mut client: Option<Client> = None;
    let mut ops = 0u64;
    while !stop.load(Ordering::Relaxed) && ops < cfg.max_ops_per_client {
        if client.is_none() {
            match tokio::time::timeout(cfg.op_timeout, connect(std::slice::from_ref(&endpoint), cfg.op_timeout)).await {
                Ok(Ok(c)) => client = Some(c),
                _ => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        ops += 1;
        let k = key(&cfg.prefix, rng.gen_range(0..cfg.keys));
        let roll: f64 = rng.gen();
        counter += 1;
        let fresh = (id + 1) * 1_000_000_000 + counter;
        let p = rec.invoke(process, &k);
        let (func, outcome, revision, error) = if roll < 0.4 {
            let opts = cfg.serializable_reads.then(|| GetOptions::new().with_serializable());
            match tokio::time::timeout(cfg.op_timeout, c.get(k.as_str(), opts)).await {
                Ok(Ok(r)) => {
                    let value = r.kvs().first().and_then(|kv| parse(kv.value()));
                    if let Some(v) = value {
                        known.insert(k.clone(), v);
                    }
                    (Func::Read { value }, Outcome::Ok, None, None)
                }
                Ok(Err(e)) => (Func::Read { value: None }, Outcome::Fail, None, Some(e.to_string())),
                Err(_) => (Func::Read { value: None }, Outcome::Fail, None, Some("timeout".into())),
            }
        } else if roll < 0.75 {
            let func = Func::Write { value: fresh };
            match tokio::time::timeout(cfg.op_timeout, c.put(k.as_str(), fresh.to_string(), None)).await {
                Ok(Ok(r)) => {
                    known.insert(k.clone(), fresh);
                    (func, Outcome::Ok, r.header().map(|h| h.revision()), None)
                }
                Ok(Err(e)) if definitely_not_sent(&e) => (func, Outcome::Fail, None, Some(e.to_string())),
                Ok(Err(e)) => (func, Outcome::Info, None, Some(e.to_string())),
                Err(_) => (func, Outcome::Info, None, Some("timeout".into())),
            }
        } else {
            // Compare against the value this client last saw (or a random small one, to miss).
            let from = known.get(&k).copied().unwrap_or_else(|| rng.gen_range(0..3));
            let func = Func::Cas { from, to: fresh };
            let txn = Txn::new()
                .when([Compare::value(k.as_str(), CompareOp::Equal, from.to_string())])
                .and_then([TxnOp::put(k.as_str(), fresh.to_string(), None)]);
            match tokio::time::timeout(cfg.op_timeout, c.txn(txn)).await {
                Ok(Ok(r)) if r.succeeded() => {
                    known.insert(k.clone(), fresh);
                    (func, Outcome::Ok, r.header().map(|h| h.revision()), None)
                }
                Ok(Ok(_)) => (func, Outcome::Fail, None, None),
                Ok(Err(e)) if definitely_not_sent(&e) => (func, Outcome::Fail, None, Some(e.to_string())),
                Ok(Err(e)) => (func, Outcome::Info, None, Some(e.to_string())),
                Err(_) => (func, Outcome::Info, None, Some("timeout".into())),
            }
        };
        let failed = outcome != Outcome::Ok && error.is_some();
        let info = outcome == Outcome::Info;
        rec.complete(p, func, outcome, revision, error);
        if info {
            process += clients;
        }
        if failed {
            // A CAS whose compare failed is a normal answer; anything else: reconnect, back off.
            client = None;
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            tokio::time::sleep(cfg.think).await;
        }
    }
}

/// A watcher over `prefix` from `start_rev`, resuming from its last revision + 1 on any error,
/// moving to the next member each time. Finishes once it has seen revision `end_rev` (sent
/// through `end` when the workload is over) or at `hard_deadline`.
pub async fn watcher(
    name: String,
    endpoints: Vec<String>,
    first: usize,
    prefix: String,
    start_rev: i64,
    mut end: watch::Receiver<Option<i64>>,
    hard_deadline: Instant,
) -> WatchLog {
    let mut log = WatchLog {
        name,
        ..WatchLog::default()
    };
    let mut next_rev = start_rev;
    let mut member = first;
    'outer: while Instant::now() < hard_deadline {
        if let Some(e) = *end.borrow() {
            if next_rev > e {
                log.completed = true;
                break;
            }
        }
        let ep = endpoints[member % endpoints.len()].clone();
        let opts = WatchOptions::new().with_prefix().with_start_revision(next_rev);
        let stream = async {
            let mut c = connect(&[ep], Duration::from_secs(2)).await?;
            let (w, s) = c.watch(prefix.as_str(), Some(opts)).await?;
            anyhow::Ok((c, w, s))
        };
        let Ok(Ok((_client, _w, mut s))) = tokio::time::timeout(Duration::from_secs(3), stream).await else {
            log.reconnects += 1;
            member += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        loop {
            if let Some(e) = *end.borrow() {
                if next_rev > e {
                    log.completed = true;
                    break 'outer;
                }
            }
            if Instant::now() >= hard_deadline {
                break 'outer;
            }
            // A silent stream (paused or partitioned member) is abandoned after a while.
            let msg = tokio::select! {
                m = s.message() => m,
                _ = end.changed() => continue,
                _ = tokio::time::sleep(Duration::from_secs(5)) => break,
            };
            match msg {
                Ok(Some(resp)) => {
                    if resp.canceled() {
                        break;
                    }
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let rev = kv.mod_revision();
                        next_rev = rev + 1;
                        if kv.key().ends_with(END_KEY.as_bytes()) {
                            continue; // the sentinel, written after the workload
                        }
                        let value = match ev.event_type() {
                            EventType::Put => parse(kv.value()),
                            EventType::Delete => None,
                        };
                        log.events.push(Event {
                            revision: rev,
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            value,
                        });
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        log.reconnects += 1;
        member += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    log
}

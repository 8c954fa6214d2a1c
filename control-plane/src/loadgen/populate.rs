//! Pre-population: the `objects` pods of the get and list workloads exist before the measured
//! phase. Pods already there (an earlier run on the namespace) are kept; the missing ones are
//! created by many parallel connections, spread over the endpoints. Not timed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::conn::Dialer;
use super::endpoint::{endpoint_of, Endpoint};
use super::error::{LoadgenError, OpError};
use super::objects::{pop_index, pop_name};
use super::ops::{create_pod, list_pods};

/// Creates in flight.
const PARALLEL: usize = 64;
/// Attempts per pod (a member may be briefly busy right after start).
const ATTEMPTS: u32 = 5;
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// Makes pods `0..objects` exist; returns how many it had to create.
pub async fn populate(
    dialer: &Arc<Dialer>,
    endpoints: &[Arc<Endpoint>],
    ns: &str,
    objects: u64,
    cancel: &CancellationToken,
) -> Result<u64, LoadgenError> {
    let fail = |source: OpError| LoadgenError::Populate { objects, source };
    let first = endpoints
        .first()
        .cloned()
        .ok_or_else(|| LoadgenError::Config("no API endpoint".into()))?;
    let mut conn = dialer.conn(first);
    let (names, _) = tokio::time::timeout(LIST_TIMEOUT, list_pods(&mut conn, ns))
        .await
        .map_err(|_| fail(OpError::Timeout(LIST_TIMEOUT)))?
        .map_err(fail)?;
    let mut present = vec![false; objects.min(1 << 24) as usize];
    for i in names.iter().filter_map(|n| pop_index(n)) {
        if let Some(p) = present.get_mut(i as usize) {
            *p = true;
        }
    }
    let missing: Arc<Vec<u64>> = Arc::new((0..objects).filter(|&i| !present[i as usize]).collect());
    if missing.is_empty() {
        return Ok(0);
    }
    tracing::info!(missing = missing.len(), objects, namespace = ns, "pre-populating pods");
    let next = Arc::new(AtomicUsize::new(0));
    let failed: Arc<Mutex<Option<OpError>>> = Arc::new(Mutex::new(None));
    let stop = cancel.child_token();
    let mut tasks = JoinSet::new();
    for t in 0..PARALLEL.min(missing.len()) {
        let mut conn = dialer.conn(endpoints[endpoint_of(t, endpoints.len())].clone());
        let (missing, next, failed, stop, ns) = (
            missing.clone(),
            next.clone(),
            failed.clone(),
            stop.clone(),
            ns.to_string(),
        );
        tasks.spawn(async move {
            while let Some(&i) = missing.get(next.fetch_add(1, Ordering::Relaxed)) {
                if stop.is_cancelled() {
                    return;
                }
                if let Err(e) = create_with_retries(&mut conn, &ns, &pop_name(i), &stop).await {
                    failed.lock().get_or_insert(e);
                    stop.cancel();
                    return;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    if let Some(e) = failed.lock().take() {
        return Err(fail(e));
    }
    if cancel.is_cancelled() {
        return Err(fail(OpError::Check("cancelled".into())));
    }
    Ok(missing.len() as u64)
}

async fn create_with_retries(
    conn: &mut super::conn::Conn,
    ns: &str,
    name: &str,
    stop: &CancellationToken,
) -> Result<(), OpError> {
    let mut last = OpError::Check("no attempt made".into());
    for attempt in 0..ATTEMPTS {
        let r = tokio::select! {
            r = tokio::time::timeout(CREATE_TIMEOUT, create_pod(conn, ns, name, true)) => r,
            _ = stop.cancelled() => return Ok(()),
        };
        match r {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = OpError::Timeout(CREATE_TIMEOUT),
        }
        if last.breaks_connection() {
            conn.reset();
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    Err(last)
}

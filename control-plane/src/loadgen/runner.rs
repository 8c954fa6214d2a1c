//! A whole run: credentials, namespace, pre-population, client connections (and watchers),
//! the measured phase, the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::config::{Config, Workload};
use super::conn::{Conn, Dialer};
use super::driver::{drive, Plan};
use super::endpoint::{endpoint_of, Endpoint};
use super::error::LoadgenError;
use super::kubeconfig;
use super::objects::run_prefix;
use super::op_kind::OpKind;
use super::ops;
use super::populate::populate;
use super::recorder::Recorder;
use super::report::{Measured, Report, WatchReport, MAX_LISTED_WATCHER_ERRORS};
use super::tls;
use super::watch::{self, WatchSpec};
use super::worker::{Shared, Worker};
use raft_store::loadgen::pacing::{Bounds, Pacer};
use raft_store::loadgen::watch_check::check_events;

/// After the writers stop, how long watchers may take to deliver the last events.
const WATCH_GRACE: Duration = Duration::from_secs(10);
/// The same when the run was cancelled: shorter, the user is waiting.
const CANCELLED_WATCH_GRACE: Duration = Duration::from_secs(2);
/// Client connections dialled at once before the run.
const DIAL_PARALLEL: usize = 32;
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `cfg` to its bounds (or until `cancel`) and reports. Errors only when the run cannot
/// start; failed operations are counted in the report.
pub async fn run(mut cfg: Config, cancel: CancellationToken) -> Result<Report, LoadgenError> {
    cfg.validate()?;
    let (dialer, endpoints) = dialer_for(&cfg.kubeconfig, &mut cfg.endpoints, cfg.http2)?;
    let mut setup = dialer.conn(endpoints[0].clone());
    let ns_err = |source| LoadgenError::Namespace {
        namespace: cfg.namespace.clone(),
        source,
    };
    tokio::time::timeout(SETUP_TIMEOUT, ops::ensure_namespace(&mut setup, &cfg.namespace))
        .await
        .map_err(|_| ns_err(super::error::OpError::Timeout(SETUP_TIMEOUT)))?
        .map_err(ns_err)?;
    let populated = if cfg.workload.needs_population() {
        populate(&dialer, &endpoints, &cfg.namespace, cfg.objects, &cancel).await?
    } else {
        0
    };

    let rec = Arc::new(Recorder::new());
    let acked = (cfg.workload == Workload::Watch).then(|| Arc::new(Mutex::new(Vec::new())));
    let run_id = format!("{:06x}", rand::thread_rng().gen_range(0..1u32 << 24));
    let shared = Shared {
        workload: cfg.workload,
        namespace: cfg.namespace.as_str().into(),
        objects: cfg.objects,
        run_prefix: run_prefix(&run_id).into(),
        base: Instant::now(),
        acked: acked.clone(),
    };
    let conns = dial_clients(&dialer, &endpoints, cfg.clients).await?;
    let protocol = protocols(&conns);
    let workers: Vec<Worker> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| Worker::new(conn, i as u64 + 1, shared.clone()))
        .collect();
    let plan = Plan {
        bounds: Bounds::new(cfg.total, cfg.duration),
        pacer: Pacer::new(cfg.rate),
        op_timeout: cfg.op_timeout,
    };

    let watchers = match cfg.workload {
        Workload::Watch => {
            let rv = tokio::time::timeout(SETUP_TIMEOUT, ops::configmaps_revision(&mut setup, &cfg.namespace))
                .await
                .map_err(|_| LoadgenError::WatchSetup("reading the configmaps' resourceVersion timed out".into()))?
                .map_err(|e| LoadgenError::WatchSetup(format!("reading the configmaps' resourceVersion: {e}")))?;
            let spec = WatchSpec {
                namespace: cfg.namespace.clone(),
                resource_version: rv,
                run_prefix: shared.run_prefix.clone(),
                timeout: plan.bounds.duration + WATCH_GRACE + SETUP_TIMEOUT * 2,
                base: shared.base,
            };
            Some(watch::start(&dialer, &endpoints, cfg.watchers, spec, rec.clone()).await?)
        }
        _ => None,
    };
    drop(setup);
    tracing::info!(workload = %cfg.workload, clients = cfg.clients, run = %run_id, "running");
    let start = Instant::now();
    drive(workers, plan, rec.clone(), start, cancel.clone()).await;
    let elapsed = start.elapsed();

    let watch = match (watchers, acked) {
        (Some(w), Some(acked)) => {
            let mut acked = acked.lock().clone();
            acked.sort_unstable();
            let grace = if cancel.is_cancelled() {
                CANCELLED_WATCH_GRACE
            } else {
                WATCH_GRACE
            };
            let results = w.finish(acked.len() as u64, grace).await;
            let mut report = WatchReport {
                watchers: results.len(),
                writes_acked: acked.len() as u64,
                events_expected: acked.len() as u64 * results.len() as u64,
                ..WatchReport::default()
            };
            for r in results {
                let check = check_events(&acked, &r.seen);
                report.events_received += r.seen.len() as u64;
                report.missing += check.missing;
                report.out_of_order += check.out_of_order;
                if let Some(e) = r.error {
                    report.failed_watchers += 1;
                    if report.watcher_errors.len() < MAX_LISTED_WATCHER_ERRORS {
                        report.watcher_errors.push(e);
                    }
                }
            }
            Some(report)
        }
        _ => None,
    };

    Ok(Report::build(
        &cfg,
        Measured {
            elapsed,
            histograms: OpKind::ALL.iter().map(|&k| (k, rec.histogram(k))).collect(),
            errors: rec.errors(),
            watch,
            protocol,
            populated,
            list_items: rec.max_list_items(),
        },
    ))
}

/// The credentials of `kubeconfig` and the endpoints (its server when `endpoints` is empty);
/// at least one endpoint is returned.
pub(super) fn dialer_for(
    kubeconfig: &std::path::Path,
    endpoints: &mut Vec<String>,
    http2: bool,
) -> Result<(Arc<Dialer>, Vec<Arc<Endpoint>>), LoadgenError> {
    let creds = kubeconfig::load(kubeconfig)?;
    if endpoints.is_empty() {
        endpoints.push(creds.server.clone());
    }
    let parsed = endpoints
        .iter()
        .map(|e| {
            Endpoint::parse(e)
                .map(Arc::new)
                .map_err(|why| LoadgenError::Config(format!("endpoint {e:?}: {why}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dialer = Dialer::new(tls::client_config(&creds, http2)?, creds.token.as_deref())?;
    Ok((dialer, parsed))
}

/// One connection per client, client `i` to endpoint `i % endpoints`, dialled before the
/// measured phase so handshakes are not timed.
pub(super) async fn dial_clients(
    dialer: &Arc<Dialer>,
    endpoints: &[Arc<Endpoint>],
    n: usize,
) -> Result<Vec<Conn>, LoadgenError> {
    let dialled: Vec<Result<Conn, LoadgenError>> = futures::stream::iter(0..n)
        .map(|i| {
            let mut conn = dialer.conn(endpoints[endpoint_of(i, endpoints.len())].clone());
            async move {
                conn.connect().await.map_err(|source| LoadgenError::Connect {
                    endpoint: conn.endpoint().url.clone(),
                    source,
                })?;
                Ok(conn)
            }
        })
        .buffered(DIAL_PARALLEL)
        .collect()
        .await;
    dialled.into_iter().collect()
}

/// What the connections negotiated: `h2`, `http/1.1`, or `h2+http/1.1`.
fn protocols(conns: &[Conn]) -> String {
    let mut p: Vec<&str> = conns.iter().filter_map(Conn::protocol).collect();
    p.sort_unstable();
    p.dedup();
    p.reverse();
    p.join("+")
}

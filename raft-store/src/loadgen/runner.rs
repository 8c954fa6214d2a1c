//! A whole run: connect, pre-populate, drive the clients (and watchers), build the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::config::{Config, Workload};
use super::conn;
use super::driver::{drive, Plan};
use super::error::LoadgenError;
use super::mix::Mix;
use super::op_kind::OpKind;
use super::ops::Kv;
use super::pacing::{Bounds, Pacer};
use super::populate::populate;
use super::recorder::Recorder;
use super::report::{Measured, Report, WatchReport};
use super::watch;
use super::watch_check::check_events;
use super::worker::{Shared, Worker};

/// Watchers get their own connections, at most this many (spread over the members).
const MAX_WATCH_CONNS: usize = 100;
/// After the writers stop, how long watchers may take to deliver the last events.
const WATCH_GRACE: Duration = Duration::from_secs(10);

/// Runs `cfg` to its bounds (or until `cancel`) and reports. Errors only when the run cannot
/// start; failed operations are counted in the report.
pub async fn run(cfg: Config, cancel: CancellationToken) -> Result<Report, LoadgenError> {
    cfg.validate()?;
    let channels = conn::connect(&cfg.endpoints, cfg.conns).await?;
    let keys = cfg.keys();
    let mut value = vec![0u8; cfg.val_size];
    // Random (incompressible) values, the same in every run.
    StdRng::seed_from_u64(0x5c1ff).fill_bytes(&mut value);
    if cfg.workload.needs_population() {
        tracing::info!(keys = keys.key_space(), prefix = %String::from_utf8_lossy(keys.prefix()), "pre-populating");
        populate(&channels, &keys, &value).await?;
    }
    let rec = Arc::new(Recorder::new());
    let acked = (cfg.workload == Workload::Watch).then(|| Arc::new(Mutex::new(Vec::new())));
    let shared = Shared {
        workload: cfg.workload,
        keys: keys.clone(),
        value: Arc::new(value),
        serializable: cfg.serializable,
        mix: Mix::kubernetes(),
        base: Instant::now(),
        acked: acked.clone(),
    };
    let workers: Vec<Worker> = (0..cfg.clients)
        .map(|i| {
            Worker::new(
                Kv::new(channels[i % channels.len()].clone()),
                i as u64 + 1,
                shared.clone(),
            )
        })
        .collect();
    let plan = Plan {
        bounds: Bounds::new(cfg.total, cfg.duration),
        pacer: Pacer::new(cfg.rate),
        op_timeout: cfg.op_timeout,
    };

    let watchers = match cfg.workload {
        Workload::Watch => {
            let wch = conn::connect(&cfg.endpoints, cfg.watchers.clamp(1, MAX_WATCH_CONNS)).await?;
            Some(watch::start(&wch, keys.prefix(), cfg.watchers, shared.base, rec.clone()).await?)
        }
        _ => None,
    };
    tracing::info!(workload = %cfg.workload, clients = cfg.clients, "running");
    let start = Instant::now();
    drive(workers, plan, rec.clone(), start, cancel.clone()).await;
    let elapsed = start.elapsed();

    let watch = match (watchers, acked) {
        (Some(w), Some(acked)) => {
            let mut acked = acked.lock().clone();
            acked.sort_unstable();
            let results = w.finish(acked.len() as u64, WATCH_GRACE, &cancel).await;
            let mut report = WatchReport {
                watchers: results.len(),
                puts_acked: acked.len() as u64,
                events_expected: acked.len() as u64 * results.len() as u64,
                ..WatchReport::default()
            };
            for r in results {
                let check = check_events(&acked, &r.seen);
                report.events_received += r.seen.len() as u64;
                report.missing += check.missing;
                report.out_of_order += check.out_of_order;
                report.watcher_errors.extend(r.error);
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
            conflicts: rec.conflicts(),
            errors: rec.errors(),
            watch,
            mix: (cfg.workload == Workload::Mixed).then(Mix::kubernetes),
        },
    ))
}

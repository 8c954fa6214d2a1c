//! The sync loop: watchers change the [`Model`] and wake it; it renders the whole ruleset from
//! the model (pure), and applies it as one nftables transaction, at most once per
//! `min_interval` so that a burst of endpoint changes becomes one update. A full re-apply every
//! `resync` repairs drift (someone flushed our table); a failed apply is retried. The cluster
//! DNS zone is rebuilt from the same model on the same beat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::dns::{zone_of, DnsServer};
use crate::metrics::Metrics;
use crate::model::Model;
use crate::nft::Nft;
use crate::rules;

/// How often the proxy may sync, and how often it must.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub min_interval: Duration,
    pub resync: Duration,
    pub retry: Duration,
    pub cluster_domain: String,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            min_interval: Duration::from_millis(100),
            resync: Duration::from_secs(30),
            retry: Duration::from_secs(1),
            cluster_domain: "cluster.local".into(),
        }
    }
}

/// Which lists have arrived: nothing is programmed before both did, so a start-up never
/// programs services without their endpoints (which would refuse their traffic for a moment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Services,
    Slices,
}

struct State {
    model: Model,
    /// When the oldest change not yet in the kernel was made.
    dirty_since: Option<Instant>,
    services_listed: bool,
    slices_listed: bool,
    last_script: Option<Arc<String>>,
}

pub struct Proxier {
    state: Mutex<State>,
    wake: Notify,
    nft: Arc<dyn Nft>,
    metrics: Arc<Metrics>,
    dns: Option<Arc<DnsServer>>,
    cfg: SyncConfig,
}

impl Proxier {
    pub fn new(
        model: Model,
        nft: Arc<dyn Nft>,
        metrics: Arc<Metrics>,
        dns: Option<Arc<DnsServer>>,
        cfg: SyncConfig,
    ) -> Arc<Proxier> {
        Arc::new(Proxier {
            state: Mutex::new(State {
                model,
                dirty_since: None,
                services_listed: false,
                slices_listed: false,
                last_script: None,
            }),
            wake: Notify::new(),
            nft,
            metrics,
            dns,
            cfg,
        })
    }

    /// Changes the model and schedules a sync.
    pub fn update(&self, change: impl FnOnce(&mut Model)) {
        let mut st = self.state.lock();
        change(&mut st.model);
        st.dirty_since.get_or_insert_with(Instant::now);
        drop(st);
        self.wake.notify_one();
    }

    /// Replaces one kind of object wholesale after a (re)list.
    pub fn listed(&self, source: Source, change: impl FnOnce(&mut Model)) {
        let mut st = self.state.lock();
        change(&mut st.model);
        match source {
            Source::Services => st.services_listed = true,
            Source::Slices => st.slices_listed = true,
        }
        st.dirty_since.get_or_insert_with(Instant::now);
        drop(st);
        self.wake.notify_one();
    }

    /// A copy of the model (for tests and the bench).
    pub fn model(&self) -> Model {
        self.state.lock().model.clone()
    }

    /// Syncs until `stop`, then removes the table.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut last_sync: Option<Instant> = None;
        let mut next_resync = tokio::time::Instant::now() + self.cfg.resync;
        loop {
            let mut force = false;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next_resync) => force = true,
            }
            if let Some(at) = last_sync {
                let wait = (at + self.cfg.min_interval).saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
            match self.sync_once(force).await {
                Ok(true) => {
                    last_sync = Some(Instant::now());
                    next_resync = tokio::time::Instant::now() + self.cfg.resync;
                }
                Ok(false) => {}
                Err(()) => {
                    // The change stays dirty; try again after a pause.
                    let me = self.clone();
                    let retry = self.cfg.retry;
                    tokio::spawn(async move {
                        tokio::time::sleep(retry).await;
                        me.wake.notify_one();
                    });
                }
            }
        }
        let nft = self.nft.clone();
        let res = tokio::task::spawn_blocking(move || nft.apply(rules::teardown_script())).await;
        match res {
            Ok(Ok(())) => tracing::info!("removed the skiff nftables table"),
            Ok(Err(e)) => tracing::warn!(error = %e, "removing the skiff nftables table"),
            Err(e) => tracing::warn!(error = %e, "removing the skiff nftables table"),
        }
    }

    /// One sync: Ok(true) when rules were applied, Ok(false) when there was nothing to do.
    pub async fn sync_once(&self, force: bool) -> Result<bool, ()> {
        let (ruleset, since, zone) = {
            let mut st = self.state.lock();
            if !(st.services_listed && st.slices_listed) {
                return Ok(false);
            }
            let Some(since) = st.dirty_since.take().or(force.then(Instant::now)) else {
                return Ok(false);
            };
            let ruleset = rules::render(&st.model);
            let zone = self.dns.as_ref().map(|_| zone_of(&st.model, &self.cfg.cluster_domain));
            (ruleset, since, zone)
        };
        if let (Some(dns), Some(zone)) = (&self.dns, zone) {
            dns.set_zone(zone);
        }
        let script = Arc::new(ruleset.script);
        let unchanged = self.state.lock().last_script.as_deref() == Some(&*script);
        if unchanged && !force {
            self.metrics.observe_sync(since.elapsed());
            return Ok(false);
        }
        let nft = self.nft.clone();
        let s = script.clone();
        let result = tokio::task::spawn_blocking(move || nft.apply(&s)).await;
        let m = &self.metrics;
        match result {
            Ok(Ok(())) => {
                let took = since.elapsed();
                use std::sync::atomic::Ordering::Relaxed;
                m.syncs.fetch_add(1, Relaxed);
                m.services.store(ruleset.services as u64, Relaxed);
                m.endpoints.store(ruleset.endpoints as u64, Relaxed);
                m.chains.store(ruleset.chains as u64, Relaxed);
                m.script_bytes.store(script.len() as u64, Relaxed);
                m.observe_sync(took);
                tracing::debug!(
                    services = ruleset.services,
                    endpoints = ruleset.endpoints,
                    ?took,
                    "rules synced"
                );
                self.state.lock().last_script = Some(script);
                Ok(true)
            }
            failed => {
                m.sync_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match failed {
                    Ok(Err(e)) => tracing::warn!(error = %e, "applying the service rules"),
                    Err(e) => tracing::warn!(error = %e, "applying the service rules"),
                    Ok(Ok(())) => {}
                }
                let mut st = self.state.lock();
                let earlier = st.dirty_since.map_or(since, |d| d.min(since));
                st.dirty_since = Some(earlier);
                Err(())
            }
        }
    }
}

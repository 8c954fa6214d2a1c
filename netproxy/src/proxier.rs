//! The sync loop: watchers change the [`Model`] and wake it; it computes the whole desired
//! table from the model (pure, [`Desired`]) and sends the kernel the difference from the last
//! one it applied, as one nftables transaction, at most once per `min_interval` so that a
//! burst of endpoint changes becomes one update. The first sync, every `resync` and any sync
//! after a failure rewrite the whole table instead, which repairs drift (someone flushed or
//! edited our table). The cluster DNS zone is rebuilt from the same model on the same beat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::dns::{zone_of, DnsServer};
use crate::metrics::Metrics;
use crate::model::Model;
use crate::nft::Nft;
use crate::rules::{self, Desired};

/// The longest pause between retries of a failing sync.
const MAX_RETRY: Duration = Duration::from_secs(30);

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
            resync: Duration::from_secs(300),
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
    /// What the kernel holds, as far as we know; None: unknown, write it whole.
    applied: Option<Arc<Desired>>,
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
                applied: None,
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

    /// Syncs until `stop`, then removes the table. After a failure one retry is scheduled, with
    /// a backoff doubling to 30 s; changes meanwhile wait for it (they are in the model).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut last_sync: Option<Instant> = None;
        let mut next_resync = tokio::time::Instant::now() + self.cfg.resync;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut backoff = self.cfg.retry;
        loop {
            let mut force = false;
            let retry = retry_at;
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified(), if retry.is_none() => {}
                _ = tokio::time::sleep_until(retry.unwrap_or(next_resync)), if retry.is_some() => {}
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
            if force {
                next_resync = tokio::time::Instant::now() + self.cfg.resync;
            }
            let result = self.sync_once(force).await;
            last_sync = Some(Instant::now());
            match result {
                Ok(_) => {
                    backoff = self.cfg.retry;
                    retry_at = None;
                }
                Err(()) => {
                    retry_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_RETRY);
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
    /// `full` rewrites the whole table even when nothing changed.
    pub async fn sync_once(&self, full: bool) -> Result<bool, ()> {
        let (desired, since, zone, applied) = {
            let mut st = self.state.lock();
            if !(st.services_listed && st.slices_listed) {
                return Ok(false);
            }
            let Some(since) = st.dirty_since.take().or(full.then(Instant::now)) else {
                return Ok(false);
            };
            let desired = Desired::of(&st.model);
            let zone = self.dns.as_ref().map(|_| zone_of(&st.model, &self.cfg.cluster_domain));
            (desired, since, zone, st.applied.clone())
        };
        if let (Some(dns), Some(zone)) = (&self.dns, zone) {
            dns.set_zone(zone);
        }
        let delta = match (&applied, full) {
            (Some(prev), false) => desired.delta_script(prev),
            _ => None,
        };
        let script = match delta {
            Some(d) if d.is_empty() => {
                self.metrics.observe_sync(since.elapsed());
                return Ok(false);
            }
            Some(d) => d,
            None => desired.full_script(),
        };
        let nft = self.nft.clone();
        let bytes = script.len();
        let result = tokio::task::spawn_blocking(move || nft.apply(&script)).await;
        let m = &self.metrics;
        match result {
            Ok(Ok(())) => {
                let took = since.elapsed();
                use std::sync::atomic::Ordering::Relaxed;
                m.syncs.fetch_add(1, Relaxed);
                m.services.store(desired.services as u64, Relaxed);
                m.endpoints.store(desired.endpoints as u64, Relaxed);
                m.chains.store(desired.chains() as u64, Relaxed);
                m.script_bytes.store(bytes as u64, Relaxed);
                m.observe_sync(took);
                tracing::debug!(
                    services = desired.services,
                    endpoints = desired.endpoints,
                    bytes,
                    ?took,
                    "rules synced"
                );
                self.state.lock().applied = Some(Arc::new(desired));
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
                // The kernel's table is now unknown: the retry rewrites it whole.
                st.applied = None;
                let earlier = st.dirty_since.map_or(since, |d| d.min(since));
                st.dirty_since = Some(earlier);
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, EndpointSlice, Protocol, Service, ServicePort, SlicePort, TargetPort};
    use crate::nft::FakeNft;
    use std::net::Ipv4Addr;

    fn svc(name: &str, ip: [u8; 4]) -> Service {
        let port = ServicePort {
            name: "".into(),
            protocol: Protocol::Tcp,
            port: 80,
            target_port: TargetPort::Number(8080),
            node_port: None,
        };
        Service::cluster_ip("default", name, vec![Ipv4Addr::from(ip)], vec![port])
    }

    fn slice(service: &str, ips: &[[u8; 4]]) -> EndpointSlice {
        EndpointSlice {
            namespace: "default".into(),
            name: format!("{service}-abc"),
            service: service.into(),
            ports: vec![SlicePort {
                name: "".into(),
                protocol: Protocol::Tcp,
                port: 8080,
            }],
            endpoints: ips
                .iter()
                .map(|ip| Endpoint::ready(Ipv4Addr::from(*ip), Some("n1".into())))
                .collect(),
        }
    }

    fn proxier(nft: Arc<FakeNft>, cfg: SyncConfig) -> (Arc<Proxier>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let model = Model::new("n1", (Ipv4Addr::new(10, 244, 0, 0), 16));
        (Proxier::new(model, nft, metrics.clone(), None, cfg), metrics)
    }

    #[tokio::test]
    async fn nothing_is_programmed_before_both_lists_arrived() {
        let nft = Arc::new(FakeNft::default());
        let (p, _) = proxier(nft.clone(), SyncConfig::default());
        p.listed(Source::Services, |m| m.upsert_service(svc("web", [10, 96, 0, 5])));
        assert_eq!(p.sync_once(false).await, Ok(false));
        assert!(
            nft.applied.lock().is_empty(),
            "services without their endpoints were programmed"
        );
        p.listed(Source::Slices, |m| m.upsert_slice(slice("web", &[[10, 244, 1, 5]])));
        assert_eq!(p.sync_once(false).await, Ok(true));
        assert_eq!(nft.applied.lock().len(), 1);
    }

    #[tokio::test]
    async fn a_full_write_first_then_only_differences() {
        let nft = Arc::new(FakeNft::default());
        let (p, metrics) = proxier(nft.clone(), SyncConfig::default());
        p.listed(Source::Services, |m| m.upsert_service(svc("web", [10, 96, 0, 5])));
        p.listed(Source::Slices, |m| m.upsert_slice(slice("web", &[[10, 244, 1, 5]])));
        assert_eq!(p.sync_once(false).await, Ok(true));
        p.update(|m| m.upsert_slice(slice("web", &[[10, 244, 1, 5], [10, 244, 2, 5]])));
        assert_eq!(p.sync_once(false).await, Ok(true));
        // Nothing changed: nothing is sent.
        p.update(|m| m.upsert_slice(slice("web", &[[10, 244, 1, 5], [10, 244, 2, 5]])));
        assert_eq!(p.sync_once(false).await, Ok(false));
        let applied = nft.applied.lock().clone();
        assert_eq!(applied.len(), 2);
        assert!(applied[0].contains("delete table ip skiff"), "{}", applied[0]);
        assert!(!applied[1].contains("delete table"), "{}", applied[1]);
        assert!(applied[1].contains("dnat to 10.244.2.5:8080"), "{}", applied[1]);
        assert_eq!(metrics.syncs.load(std::sync::atomic::Ordering::Relaxed), 2);
        // A forced resync writes the whole table again.
        assert_eq!(p.sync_once(true).await, Ok(true));
        assert!(nft.applied.lock()[2].contains("delete table ip skiff"));
    }

    #[tokio::test]
    async fn after_a_failure_the_retry_rewrites_the_whole_table() {
        let nft = Arc::new(FakeNft::default());
        let (p, metrics) = proxier(nft.clone(), SyncConfig::default());
        p.listed(Source::Services, |m| m.upsert_service(svc("web", [10, 96, 0, 5])));
        p.listed(Source::Slices, |m| m.upsert_slice(slice("web", &[[10, 244, 1, 5]])));
        assert_eq!(p.sync_once(false).await, Ok(true));
        *nft.fail.lock() = true;
        p.update(|m| m.upsert_service(svc("api", [10, 96, 0, 6])));
        assert_eq!(p.sync_once(false).await, Err(()));
        assert_eq!(metrics.sync_errors.load(std::sync::atomic::Ordering::Relaxed), 1);
        *nft.fail.lock() = false;
        // The change is still pending, and the kernel's table is unknown: a full write.
        assert_eq!(p.sync_once(false).await, Ok(true));
        let applied = nft.applied.lock().clone();
        assert_eq!(applied.len(), 2);
        assert!(applied[1].contains("delete table ip skiff") && applied[1].contains("10.96.0.6"));
    }

    #[tokio::test]
    async fn a_failing_kernel_is_retried_with_backoff_not_per_change() {
        let nft = Arc::new(FakeNft::default());
        *nft.fail.lock() = true;
        let cfg = SyncConfig {
            min_interval: Duration::from_millis(5),
            retry: Duration::from_millis(100),
            ..SyncConfig::default()
        };
        let (p, metrics) = proxier(nft.clone(), cfg);
        let stop = CancellationToken::new();
        let run = tokio::spawn(p.clone().run(stop.clone()));
        p.listed(Source::Services, |m| m.upsert_service(svc("web", [10, 96, 0, 5])));
        p.listed(Source::Slices, |m| m.upsert_slice(slice("web", &[[10, 244, 1, 1]])));
        for i in 2..60u8 {
            p.update(|m| m.upsert_slice(slice("web", &[[10, 244, 1, i]])));
            tokio::time::sleep(Duration::from_millis(7)).await;
        }
        // Attempts at about 0, 100 and 300 ms (backoff doubling), not one per change.
        let errors = metrics.sync_errors.load(std::sync::atomic::Ordering::Relaxed);
        assert!((2..=4).contains(&errors), "{errors} failed attempts");
        *nft.fail.lock() = false;
        tokio::time::sleep(Duration::from_millis(900)).await;
        let applied = nft.applied.lock().clone();
        assert_eq!(applied.len(), 1, "one full write once the kernel takes it");
        assert!(applied[0].contains("delete table ip skiff") && applied[0].contains("dnat to 10.244.1.59:8080"));
        stop.cancel();
        run.await.expect("run ends");
    }

    #[tokio::test]
    async fn a_burst_of_changes_is_coalesced() {
        let nft = Arc::new(FakeNft::default());
        let cfg = SyncConfig {
            min_interval: Duration::from_millis(300),
            ..SyncConfig::default()
        };
        let (p, _) = proxier(nft.clone(), cfg);
        let stop = CancellationToken::new();
        let run = tokio::spawn(p.clone().run(stop.clone()));
        p.listed(Source::Services, |m| m.upsert_service(svc("web", [10, 96, 0, 5])));
        p.listed(Source::Slices, |m| m.upsert_slice(slice("web", &[[10, 244, 1, 1]])));
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 2..50u8 {
            p.update(|m| m.upsert_slice(slice("web", &[[10, 244, 1, i]])));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let applied = nft.applied.lock().clone();
        // The initial write, then the burst in at most two more (min_interval apart).
        assert!((2..=3).contains(&applied.len()), "{} syncs", applied.len());
        assert!(applied.last().is_some_and(|s| s.contains("dnat to 10.244.1.49:8080")));
        stop.cancel();
        run.await.expect("run ends");
        // On the way out the table is removed.
        assert_eq!(
            nft.applied.lock().last().map(String::as_str),
            Some(rules::teardown_script())
        );
    }
}

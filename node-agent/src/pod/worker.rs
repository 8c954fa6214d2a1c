//! One pod's worker: drives the pod to its desired state (sandbox, init containers in order,
//! containers with their restart policy and back-off), reacts to container exits, terminates
//! gracefully on deletion, cleans every trace up, and reports status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::context::Context;
use super::probe::{self, Kind, Outcome, ProbeState};
use super::record::{exit_reason, next_backoff, should_restart, Record, State, Terminated};
use super::status::{initialized, pod_status, Observed};
use crate::runtime::{cgroups, rootfs, sandbox, ContainerInfo, Phase};

/// How often a worker looks again without a reason (status refresh, missed events).
const RESYNC: Duration = Duration::from_secs(10);

pub struct Worker {
    ctx: Arc<Context>,
    pod: Pod,
    uid: String,
    dir: PathBuf,
    records: Vec<Record>,
    attempts: BTreeMap<String, u32>,
    sandbox: Option<sandbox::Namespaces>,
    hostname: String,
    pod_ip: Option<String>,
    volumes: Option<BTreeMap<String, PathBuf>>,
    start_time: chrono::DateTime<Utc>,
    posted: Option<PodStatus>,
    /// The pod finished (Succeeded or Failed): its sandbox is released, its IP reported still.
    released: bool,
    /// Whether the pod came from the API (its status is posted there, its deletion confirmed).
    from_api: bool,
}

fn meta(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn terminated_from_api(t: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> Terminated {
    Terminated {
        container_id: t
            .container_id
            .as_ref()
            .map(|id| id.trim_start_matches("skiff://").to_string()),
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|x| x.0),
        finished_at: t.finished_at.as_ref().map(|x| x.0).unwrap_or_else(Utc::now),
    }
}

fn container_of(pod: &Pod, name: &str) -> Option<k8s_openapi::api::core::v1::Container> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == name)
        .cloned()
}

/// Fresh probes for a container run; ready at once only without a readiness or startup probe.
fn arm_probes(r: &mut Record, c: Option<&k8s_openapi::api::core::v1::Container>) {
    let now = Instant::now();
    r.probes = [Kind::Startup, Kind::Liveness, Kind::Readiness]
        .into_iter()
        .filter_map(|k| Some(ProbeState::new(k, k.of(c?)?, now)))
        .collect();
    r.ready = !r
        .probes
        .iter()
        .any(|p| matches!(p.kind, Kind::Readiness | Kind::Startup));
}

/// Grace periods beyond a day are cut to a day (an absurd value must not overflow a timer).
const MAX_GRACE_SECONDS: i64 = 86_400;

fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

impl Worker {
    pub fn new(ctx: Arc<Context>, pod: Pod, from_api: bool) -> Worker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = ctx.pods_dir.join(&uid);
        let spec = pod.spec.clone().unwrap_or_default();
        let mut records: Vec<Record> = spec
            .init_containers
            .unwrap_or_default()
            .iter()
            .map(|c| Record::new(&c.name, c.image.as_deref().unwrap_or(""), true))
            .collect();
        records.extend(
            spec.containers
                .iter()
                .map(|c| Record::new(&c.name, c.image.as_deref().unwrap_or(""), false)),
        );
        // Restart counts survive an agent restart through the API's copy of the status.
        // So do finished containers: an init container that completed, or a container that
        // ended under restartPolicy Never, must not run again (the runtime no longer has them).
        if let Some(st) = pod.status.as_ref() {
            for cs in st
                .container_statuses
                .iter()
                .flatten()
                .chain(st.init_container_statuses.iter().flatten())
            {
                if let Some(r) = records.iter_mut().find(|r| r.name == cs.name) {
                    r.restart_count = cs.restart_count;
                    r.image_id = (!cs.image_id.is_empty()).then(|| cs.image_id.clone());
                    if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
                        r.state = State::Terminated(terminated_from_api(t));
                    }
                    r.last = cs
                        .last_state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .map(terminated_from_api);
                }
            }
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(Utc::now);
        Worker {
            ctx,
            pod,
            uid,
            dir,
            records,
            attempts: BTreeMap::new(),
            sandbox: None,
            hostname: String::new(),
            pod_ip: None,
            volumes: None,
            start_time,
            posted: None,
            released: false,
            from_api,
        }
    }

    /// Containers of this pod found in the runtime when the worker starts (agent restart).
    fn adopt(&mut self, found: Vec<ContainerInfo>) -> Vec<ContainerInfo> {
        let mut exited = Vec::new();
        for info in found {
            let mut parts = info.id.splitn(3, '_');
            let (_, Some(name), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let n: u32 = n.parse().unwrap_or(0);
            let a = self.attempts.entry(name.to_string()).or_insert(0);
            *a = (*a).max(n + 1);
            let Some(r) = self.records.iter_mut().find(|r| r.name == name) else {
                continue;
            };
            match info.phase {
                Phase::Running => {
                    r.state = State::Running {
                        container_id: info.id.clone(),
                        started_at: info.started_at.unwrap_or(info.created_at),
                    };
                    arm_probes(r, container_of(&self.pod, name).as_ref());
                }
                Phase::Exited => {
                    r.state = State::Running {
                        container_id: info.id.clone(),
                        started_at: info.started_at.unwrap_or(info.created_at),
                    };
                    exited.push(info);
                }
                // Created but never started: the agent died between the two; start over.
                Phase::Created => exited.push(ContainerInfo {
                    exit_code: Some(128),
                    ..info
                }),
            }
        }
        exited
    }

    pub async fn run(
        mut self,
        mut updates: watch::Receiver<Option<Pod>>,
        mut exits: mpsc::Receiver<ContainerInfo>,
        found: Vec<ContainerInfo>,
    ) {
        for info in self.adopt(found) {
            self.on_exit(info).await;
        }
        loop {
            let latest = updates.borrow_and_update().clone();
            let Some(pod) = latest else {
                // Gone from the API (force-deleted): stop at once.
                self.terminate(Duration::ZERO, &mut exits).await;
                return;
            };
            if pod.metadata.uid.as_deref() != Some(self.uid.as_str()) {
                return;
            }
            self.pod = pod;
            if self.pod.metadata.deletion_timestamp.is_some() {
                let grace = self
                    .pod
                    .metadata
                    .deletion_grace_period_seconds
                    .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
                    .unwrap_or(30);
                self.terminate(
                    Duration::from_secs(grace.clamp(0, MAX_GRACE_SECONDS) as u64),
                    &mut exits,
                )
                .await;
                self.confirm_deletion().await;
                return;
            }
            if let Err(message) = self.sync().await {
                tracing::warn!(pod = %self.key(), %message, "pod sync");
            }
            self.run_probes().await;
            self.post_status().await;
            if !self.released
                && matches!(
                    self.posted.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded") | Some("Failed")
                )
            {
                // As kubelet: a finished pod gives its network namespace and IP back at once
                // (completed Jobs must not exhaust the node's range); logs stay until deletion.
                self.ctx.teardown_network(&self.uid).await;
                sandbox::unpin(&self.dir.join("ns"));
                self.released = true;
            }
            let wake = self
                .records
                .iter()
                .filter_map(|r| r.not_before)
                .chain(
                    self.records
                        .iter()
                        .filter(|r| r.running_id().is_some())
                        .flat_map(|r| r.probes.iter().map(|p| p.next_at)),
                )
                .min()
                .unwrap_or_else(|| Instant::now() + RESYNC);
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        // The manager is gone (agent shutting down): leave containers running.
                        return;
                    }
                }
                Some(info) = exits.recv() => self.on_exit(info).await,
                _ = tokio::time::sleep_until(wake.min(Instant::now() + RESYNC)) => {}
            }
        }
    }

    fn key(&self) -> String {
        let (ns, name) = meta(&self.pod);
        format!("{ns}/{name}")
    }

    /// One pass towards the desired state; an `Err` is a message for the log (the reasons a
    /// user needs are in the container states).
    async fn sync(&mut self) -> Result<(), String> {
        if self.released {
            return Ok(());
        }
        if self.sandbox.is_none() {
            self.setup_sandbox().await?;
        }
        let policy = restart_policy(&self.pod);
        // Init containers, one at a time, in order.
        let inits: Vec<usize> = (0..self.records.len()).filter(|i| self.records[*i].init).collect();
        for i in inits {
            let r = &self.records[i];
            match &r.state {
                State::Terminated(t) if t.exit_code == 0 => continue,
                State::Terminated(_) => return Ok(()),
                State::Running { .. } => return Ok(()),
                State::Waiting { .. } => {
                    self.maybe_start(i).await;
                    return Ok(());
                }
            }
        }
        if !initialized(&self.records) {
            return Ok(());
        }
        for i in 0..self.records.len() {
            if self.records[i].init {
                continue;
            }
            let start = match &self.records[i].state {
                State::Waiting { .. } => true,
                State::Terminated(t) => should_restart(&policy, t.exit_code),
                State::Running { .. } => false,
            };
            if start {
                self.maybe_start(i).await;
            }
        }
        Ok(())
    }

    async fn setup_sandbox(&mut self) -> Result<(), String> {
        let hostnet = host_network(&self.pod);
        let (hostname, _) = crate::spec::pod_hostname(&self.pod, &self.ctx.cluster_domain);
        let t0 = std::time::Instant::now();
        let ns = self
            .ctx
            .runtime
            .pin(&self.dir.join("ns"), &hostname, hostnet)
            .await
            .map_err(|e| e.to_string())?;
        let pinned = t0.elapsed().as_micros();
        let pod_ip = if hostnet {
            self.ctx.node_ip.clone()
        } else {
            let Some(net) = ns.net.clone() else {
                return Err("no network namespace".into());
            };
            // The pod's volumes (a TokenRequest, configMap reads) are prepared meanwhile.
            let volumes = async {
                match &self.volumes {
                    None => Some(self.ctx.prepare_volumes(&self.pod, &self.dir).await),
                    Some(_) => None,
                }
            };
            let (network, volumes) = tokio::join!(self.ctx.setup_network(&self.uid, &net), volumes);
            if let Some(Ok(v)) = volumes {
                self.volumes = Some(v);
            }
            match network {
                Ok(ip) => ip.to_string(),
                Err(message) => {
                    for r in self.records.iter_mut() {
                        r.state = State::Waiting {
                            reason: "ContainerCreating".into(),
                            message: Some(message.clone()),
                        };
                    }
                    return Err(message);
                }
            }
        };
        let files = self
            .ctx
            .write_pod_files(&self.pod, &self.dir, &pod_ip, &hostname)
            .map_err(|e| e.to_string());
        files?;
        tracing::debug!(pod = %self.key(), pin_us = pinned, network_us = t0.elapsed().as_micros() - pinned, "sandbox ready");
        self.pod_ip = Some(pod_ip);
        self.hostname = hostname;
        self.sandbox = Some(ns);
        Ok(())
    }

    /// Starts container `i` unless its back-off forbids it now.
    async fn maybe_start(&mut self, i: usize) {
        if let Some(t) = self.records[i].not_before {
            if Instant::now() < t {
                let (ns, pod_name) = meta(&self.pod);
                let r = &mut self.records[i];
                // While waiting out a back-off, the reason says which back-off (as kubelet).
                let next = match &r.state {
                    State::Waiting { reason, message } if reason == "ErrImagePull" || reason == "ImagePullBackOff" => {
                        Some((
                            "ImagePullBackOff",
                            message
                                .clone()
                                .map(|m| format!("Back-off pulling image {:?}: {m}", r.image)),
                        ))
                    }
                    State::Waiting { reason, .. }
                        if reason.starts_with("Create")
                            || matches!(
                                reason.as_str(),
                                "RunContainerError" | "InvalidImageName" | "ErrImageNeverPull"
                            ) =>
                    {
                        None
                    }
                    _ => Some((
                        "CrashLoopBackOff",
                        Some(format!(
                            "back-off restarting failed container={} pod={pod_name}_{ns}({})",
                            r.name, self.uid
                        )),
                    )),
                };
                if let Some((reason, message)) = next {
                    if !matches!(&r.state, State::Waiting { reason: cur, .. } if cur == reason) {
                        r.state = State::Waiting {
                            reason: reason.into(),
                            message,
                        };
                    }
                }
                return;
            }
        }
        let name = self.records[i].name.clone();
        let attempt = {
            let a = self.attempts.entry(name.clone()).or_insert(0);
            *a += 1;
            *a - 1
        };
        let id = format!("{}_{}_{}", self.uid, name, attempt);
        let outcome = self.start_container(i, &id).await;
        let key = self.key();
        let r = &mut self.records[i];
        match outcome {
            Ok(started_at) => {
                r.state = State::Running {
                    container_id: id,
                    started_at,
                };
                r.not_before = None;
                arm_probes(r, container_of(&self.pod, &name).as_ref());
            }
            Err((reason, message)) => {
                let (delay, next) = next_backoff(r.backoff, Duration::ZERO);
                r.backoff = Some(next);
                r.not_before = Some(Instant::now() + delay.max(Duration::from_secs(1)));
                tracing::info!(pod = %key, container = %name, %reason, %message, "container not started");
                r.state = State::Waiting {
                    reason: reason.to_string(),
                    message: Some(message),
                };
            }
        }
    }

    /// Image, root filesystem, bundle, create, start. The error is (reason, message) as
    /// Kubernetes reports them.
    async fn start_container(&mut self, i: usize, id: &str) -> Result<chrono::DateTime<Utc>, (&'static str, String)> {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let r = &self.records[i];
        let container = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == r.name)
            .cloned()
            .ok_or((
                "CreateContainerConfigError",
                format!("container {} is not in the pod spec", r.name),
            ))?;
        let t0 = std::time::Instant::now();
        let mut marks: Vec<(&'static str, u128)> = Vec::new();
        let mut mark = |what: &'static str| marks.push((what, t0.elapsed().as_micros()));
        let image = self.ctx.ensure_image(&container, &self.pod).await?;
        mark("image");
        self.records[i].image_id = Some(image.digest.clone());
        if self.volumes.is_none() {
            let v = self
                .ctx
                .prepare_volumes(&self.pod, &self.dir)
                .await
                .map_err(|m| ("CreateContainerConfigError", m))?;
            self.volumes = Some(v);
        }
        mark("volumes");
        let restart_count = self.records[i].restart_count;
        let bundle = self.dir.join("containers").join(id);
        // A leftover with this id (an earlier attempt that died half-way) goes first.
        let _ = self.ctx.runtime.delete(id, true).await;
        let _ = rootfs::remove(&bundle);
        let resolved = self
            .ctx
            .resolve_env(&self.pod, &container)
            .await
            .map_err(|m| ("CreateContainerConfigError", m))?;
        mark("env");
        // The downward API reads the pod's IPs from its status: give it this node's view.
        let mut pod = self.pod.clone();
        let st = pod.status.get_or_insert_with(Default::default);
        st.pod_ip = self.pod_ip.clone();
        st.host_ip = Some(self.ctx.node_ip.clone());
        let prepared = self.ctx.prepare_bundle(
            &pod,
            &container,
            &image,
            &bundle,
            self.sandbox.as_ref(),
            self.volumes.as_ref(),
            &self.dir,
            id,
            &self.uid,
            resolved,
            &self.hostname,
        );
        if let Err(m) = prepared {
            let _ = rootfs::remove(&bundle);
            return Err(("CreateContainerError", m));
        }
        let log_dir = self.dir.join("logs").join(&container.name);
        let _ = std::fs::create_dir_all(&log_dir);
        let log_path = log_dir.join(format!("{restart_count}.log"));
        mark("bundle");
        if let Err(e) = self.ctx.runtime.create(id, &bundle, &log_path).await {
            let _ = rootfs::remove(&bundle);
            return Err(("CreateContainerError", e.to_string()));
        }
        mark("create");
        match self.ctx.runtime.start(id).await {
            Ok(info) => {
                mark("start");
                // Where a start's time goes (cumulative microseconds), for the benchmark.
                tracing::debug!(pod = %self.key(), container = %container.name, steps = ?marks, "container started");
                Ok(info.started_at.unwrap_or_else(Utc::now))
            }
            Err(e) => {
                let _ = self.ctx.runtime.delete(id, true).await;
                let _ = rootfs::remove(&bundle);
                Err(("RunContainerError", e.to_string()))
            }
        }
    }

    /// Runs the probes that are due; a failed startup or liveness probe restarts the container
    /// (its exit then follows the restart policy), readiness sets `ready`.
    async fn run_probes(&mut self) {
        let Some(pod_ip) = self.pod_ip.clone() else { return };
        let now = Instant::now();
        for i in 0..self.records.len() {
            let Some(id) = self.records[i].running_id().map(str::to_string) else {
                continue;
            };
            let Some(c) = container_of(&self.pod, &self.records[i].name) else {
                continue;
            };
            let started = self.records[i]
                .probes
                .iter()
                .find(|p| p.kind == Kind::Startup)
                .is_none_or(|p| p.result == Some(true));
            for j in 0..self.records[i].probes.len() {
                let st = &self.records[i].probes[j];
                if st.next_at > now || (st.kind != Kind::Startup && !started) {
                    continue;
                }
                let kind = st.kind;
                let Some(spec) = kind.of(&c).cloned() else { continue };
                let outcome = probe::run(&spec, &c, &pod_ip, Some((&self.ctx.runtime, &id))).await;
                let ok = match &outcome {
                    Outcome::Success => true,
                    Outcome::Failure(m) => {
                        let pod = self.pod.clone();
                        self.ctx
                            .event(
                                &pod,
                                "Warning",
                                "Unhealthy",
                                &format!("{} probe failed: {m}", kind.name()),
                            )
                            .await;
                        false
                    }
                    Outcome::Unsupported(m) => {
                        if self.records[i].probes[j].result.is_none() {
                            tracing::warn!(pod = %self.key(), container = %c.name, "{m}; counted as success");
                        }
                        true
                    }
                };
                let verdict = self.records[i].probes[j].record(&spec, ok, Instant::now());
                match (kind, verdict) {
                    (Kind::Readiness, Some(v)) => self.records[i].ready = v,
                    (Kind::Startup, Some(true)) => {
                        self.records[i].ready = !self.records[i].probes.iter().any(|p| p.kind == Kind::Readiness);
                    }
                    (Kind::Startup | Kind::Liveness, Some(false)) => {
                        let pod = self.pod.clone();
                        let msg = format!(
                            "Container {} failed {} probe, will be restarted",
                            c.name,
                            kind.name().to_lowercase()
                        );
                        self.ctx.event(&pod, "Normal", "Killing", &msg).await;
                        if let Err(e) = self.ctx.runtime.kill(&id, libc::SIGKILL, true).await {
                            tracing::warn!(pod = %self.key(), container = %id, error = %e, "killing an unhealthy container");
                        }
                        self.records[i].ready = false;
                        break;
                    }
                    _ => {}
                }
            }
        }
    }

    async fn on_exit(&mut self, info: ContainerInfo) {
        let Some(i) = self
            .records
            .iter()
            .position(|r| r.running_id() == Some(info.id.as_str()))
        else {
            // Not one we track (an old attempt): just clean it up.
            let _ = self.ctx.runtime.delete(&info.id, true).await;
            let _ = rootfs::remove(&self.dir.join("containers").join(&info.id));
            return;
        };
        let cgroup = cgroups::container_path(&self.uid, &info.id);
        let oom = cgroups::oom_killed(&cgroup);
        let _ = self.ctx.runtime.delete(&info.id, true).await;
        let _ = rootfs::remove(&self.dir.join("containers").join(&info.id));
        let policy = restart_policy(&self.pod);
        let r = &mut self.records[i];
        let started_at = match &r.state {
            State::Running { started_at, .. } => Some(*started_at),
            _ => info.started_at,
        };
        let exit_code = info.exit_code.unwrap_or(255);
        let finished_at = info.finished_at.unwrap_or_else(Utc::now);
        let reason = if info.exit_code.is_none() {
            "Unknown"
        } else {
            exit_reason(exit_code, oom)
        };
        let t = Terminated {
            container_id: Some(info.id.clone()),
            exit_code,
            signal: info.signal,
            reason: reason.to_string(),
            message: None,
            started_at,
            finished_at,
        };
        r.ready = false;
        if should_restart(&policy, exit_code) && !(r.init && exit_code == 0) {
            let ran_for = started_at
                .map(|s| (finished_at - s).to_std().unwrap_or_default())
                .unwrap_or_default();
            let (delay, next) = next_backoff(r.backoff, ran_for);
            r.backoff = Some(next);
            r.not_before = Some(Instant::now() + delay);
            r.restart_count += 1;
            r.last = Some(t);
            r.state = State::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: None,
            };
            if delay.is_zero() {
                r.state = State::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                };
            }
        } else {
            r.state = State::Terminated(t);
        }
    }

    /// Graceful stop: SIGTERM to every running container, SIGKILL to those still running after
    /// the grace period, then everything removed.
    async fn terminate(&mut self, grace: Duration, exits: &mut mpsc::Receiver<ContainerInfo>) {
        let running: Vec<String> = self
            .records
            .iter()
            .filter_map(|r| r.running_id().map(str::to_string))
            .collect();
        if !running.is_empty() {
            // SIGTERM goes to each container's main process (as with kubelet); SIGKILL to all
            // of its processes.
            let (signal, all) = if grace.is_zero() {
                (libc::SIGKILL, true)
            } else {
                (libc::SIGTERM, false)
            };
            for id in &running {
                if let Err(e) = self.ctx.runtime.kill(id, signal, all).await {
                    tracing::warn!(pod = %self.key(), container = %id, error = %e, "stopping container");
                }
                let pod = self.pod.clone();
                let name = self
                    .records
                    .iter()
                    .find(|r| r.running_id() == Some(id.as_str()))
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                self.ctx
                    .event(&pod, "Normal", "Killing", &format!("Stopping container {name}"))
                    .await;
            }
            let term_deadline = Instant::now() + grace;
            let kill_deadline = term_deadline + Duration::from_secs(5);
            let mut left: Vec<String> = running.clone();
            let mut killed = grace.is_zero();
            while !left.is_empty() {
                let until = if killed { kill_deadline } else { term_deadline };
                tokio::select! {
                    Some(info) = exits.recv() => {
                        left.retain(|id| *id != info.id);
                        self.on_exit_final(info);
                    }
                    _ = tokio::time::sleep_until(until) => {
                        if killed {
                            break;
                        }
                        for id in &left {
                            let _ = self.ctx.runtime.kill(id, libc::SIGKILL, true).await;
                        }
                        killed = true;
                    }
                }
            }
        }
        self.cleanup().await;
    }

    fn on_exit_final(&mut self, info: ContainerInfo) {
        if let Some(r) = self
            .records
            .iter_mut()
            .find(|r| r.running_id() == Some(info.id.as_str()))
        {
            let exit_code = info.exit_code.unwrap_or(255);
            r.state = State::Terminated(Terminated {
                container_id: Some(info.id.clone()),
                exit_code,
                signal: info.signal,
                reason: exit_reason(exit_code, false).into(),
                message: None,
                started_at: info.started_at,
                finished_at: info.finished_at.unwrap_or_else(Utc::now),
            });
        }
    }

    /// Removes every trace of the pod on this node: containers, roots, network, namespaces,
    /// cgroups, volumes and logs.
    pub async fn cleanup(&mut self) {
        if let Ok(all) = self.ctx.runtime.list().await {
            for c in all.iter().filter(|c| c.id.starts_with(&format!("{}_", self.uid))) {
                if let Err(e) = self.ctx.runtime.delete(&c.id, true).await {
                    tracing::warn!(pod = %self.key(), container = %c.id, error = %e, "deleting container");
                }
            }
        }
        if let Ok(dirs) = std::fs::read_dir(self.dir.join("containers")) {
            for d in dirs.flatten() {
                let _ = rootfs::remove(&d.path());
            }
        }
        self.ctx.teardown_network(&self.uid).await;
        sandbox::unpin(&self.dir.join("ns"));
        cgroups::remove_pod(&self.uid);
        if let Err(e) = crate::volumes::cleanup(&self.dir) {
            tracing::warn!(pod = %self.key(), error = %e, "removing volumes");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(pod = %self.key(), error = %e, "removing the pod directory");
            }
        }
        self.sandbox = None;
    }

    async fn confirm_deletion(&self) {
        if !self.from_api {
            return;
        }
        let (ns, name) = meta(&self.pod);
        let body = json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}});
        if let Err(e) = self
            .ctx
            .client
            .delete(&format!("/api/v1/namespaces/{ns}/pods/{name}"), &body)
            .await
        {
            if !e.is_not_found() && !e.is_conflict() {
                tracing::warn!(pod = %self.key(), error = %e, "confirming deletion");
            }
        }
    }

    async fn post_status(&mut self) {
        // Transition times come from what this worker last posted, not from a watch event
        // that may predate it.
        let mut basis = self.pod.clone();
        if let Some(p) = &self.posted {
            basis.status = Some(p.clone());
        }
        let observed = Observed {
            pod: &basis,
            sandbox_ready: self.sandbox.is_some(),
            records: &self.records,
            pod_ip: self.pod_ip.clone(),
            host_ip: self.ctx.node_ip.clone(),
            start_time: self.start_time,
            now: Utc::now(),
        };
        let status = pod_status(&observed);
        if self.posted.as_ref() == Some(&status) {
            return;
        }
        let (ns, name) = meta(&self.pod);
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
        match self
            .ctx
            .client
            .merge_patch::<_, Pod>(&path, &json!({ "status": status }))
            .await
        {
            Ok(p) => {
                self.pod.status = p.status;
                self.posted = Some(status);
            }
            Err(e) => tracing::warn!(pod = %self.key(), error = %e, "posting pod status"),
        }
    }
}

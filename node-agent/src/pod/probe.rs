//! Container probes (startup, liveness, readiness) with kubelet's rules: a probe runs every
//! `periodSeconds` after `initialDelaySeconds`, each attempt bounded by `timeoutSeconds`; its
//! result flips after `successThreshold` successes or `failureThreshold` failures in a row.
//! httpGet and tcpSocket probes go to the pod's IP from the node, as kubelet's do; exec probes
//! run their command in the container (as `kubectl exec` does), exit code 0 being success.
//! gRPC probes are not supported yet (reported once, counted as success).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::runtime::exec_client::Reader;
use crate::runtime::{ExecEnd, ExecRequest, RuntimeClient};

/// How much of an exec probe's output is kept for its message (kubelet's limit).
const EXEC_OUTPUT_LIMIT: usize = 10 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }

    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Kind::Startup => c.startup_probe.as_ref(),
            Kind::Liveness => c.liveness_probe.as_ref(),
            Kind::Readiness => c.readiness_probe.as_ref(),
        }
    }
}

/// The running tally of one probe of one container run (pure).
#[derive(Debug, Clone)]
pub struct ProbeState {
    pub kind: Kind,
    pub next_at: Instant,
    successes: i32,
    failures: i32,
    /// The current verdict; `None` before the first threshold is reached.
    pub result: Option<bool>,
}

fn secs(v: Option<i32>, default: i32, min: i32) -> i32 {
    v.unwrap_or(default).max(min)
}

pub fn period(p: &Probe) -> Duration {
    Duration::from_secs(secs(p.period_seconds, 10, 1) as u64)
}

pub fn timeout(p: &Probe) -> Duration {
    Duration::from_secs(secs(p.timeout_seconds, 1, 1) as u64)
}

impl ProbeState {
    pub fn new(kind: Kind, p: &Probe, started: Instant) -> ProbeState {
        let delay = Duration::from_secs(secs(p.initial_delay_seconds, 0, 0) as u64);
        ProbeState {
            kind,
            next_at: started + delay,
            successes: 0,
            failures: 0,
            result: None,
        }
    }

    /// Records one attempt; returns the new verdict when it changed.
    pub fn record(&mut self, p: &Probe, ok: bool, now: Instant) -> Option<bool> {
        self.next_at = now + period(p);
        if ok {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let verdict = if ok && self.successes >= secs(p.success_threshold, 1, 1) {
            Some(true)
        } else if !ok && self.failures >= secs(p.failure_threshold, 3, 1) {
            Some(false)
        } else {
            None
        };
        match verdict {
            Some(v) if self.result != Some(v) => {
                self.result = Some(v);
                // A liveness or startup failure restarts the container: count afresh after.
                if !v {
                    self.failures = 0;
                }
                Some(v)
            }
            _ => None,
        }
    }
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
    Unsupported(&'static str),
}

fn port_of(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} out of range")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port {name:?} is not a named port of the container")),
    }
}

/// Runs one attempt of `p` against the pod at `pod_ip`; an exec probe runs in `container`
/// (the runtime and the running container's id).
pub async fn run(p: &Probe, c: &Container, pod_ip: &str, container: Option<(&RuntimeClient, &str)>) -> Outcome {
    let limit = timeout(p);
    if let Some(exec) = &p.exec {
        let command = exec.command.clone().unwrap_or_default();
        if command.first().is_none_or(|c| c.is_empty()) {
            return Outcome::Failure("exec probe has no command".into());
        }
        return match container {
            Some((runtime, id)) => run_exec(runtime, id, command, limit).await,
            None => Outcome::Failure("the container is not running".into()),
        };
    }
    if let Some(tcp) = &p.tcp_socket {
        let port = match port_of(&tcp.port, c) {
            Ok(port) => port,
            Err(m) => return Outcome::Failure(m),
        };
        let host = tcp.host.clone().unwrap_or_else(|| pod_ip.to_string());
        return match tokio::time::timeout(limit, tokio::net::TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(http) = &p.http_get {
        let port = match port_of(&http.port, c) {
            Ok(port) => port,
            Err(m) => return Outcome::Failure(m),
        };
        let scheme = http.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
        let host = http.host.clone().unwrap_or_else(|| pod_ip.to_string());
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("{scheme}://{host}:{port}{path}");
        // As kubelet: HTTPS probes do not verify the certificate; redirects are followed.
        let client = match reqwest::Client::builder()
            .timeout(limit)
            .danger_accept_invalid_certs(true)
            .build()
        {
            Ok(c) => c,
            Err(e) => return Outcome::Failure(e.to_string()),
        };
        let mut req = client.get(&url).header("User-Agent", "kube-probe/1.32");
        for h in http.http_headers.iter().flatten() {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        return match req.send().await {
            Ok(r) if (200..400).contains(&r.status().as_u16()) => Outcome::Success,
            Ok(r) => Outcome::Failure(format!("HTTP probe failed with statuscode: {}", r.status().as_u16())),
            Err(e) => Outcome::Failure(format!("Get {url:?}: {e}")),
        };
    }
    if p.grpc.is_some() {
        return Outcome::Unsupported("gRPC probes are not supported by this agent yet");
    }
    Outcome::Failure("probe has no handler".into())
}

async fn run_exec(runtime: &RuntimeClient, id: &str, command: Vec<String>, limit: Duration) -> Outcome {
    let req = ExecRequest {
        container_id: id.to_string(),
        command,
        stdin: false,
        tty: false,
        size: None,
    };
    let mut p = match runtime.exec(&req).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e.to_string()),
    };
    let (Some(end), stdout, stderr) = (p.take_end(), p.stdout.take(), p.stderr.take()) else {
        return Outcome::Failure("the exec helper did not start".into());
    };
    let attempt = async {
        let (out, err) = tokio::join!(read_capped(stdout), read_capped(stderr));
        let end = end
            .await
            .unwrap_or_else(|_| ExecEnd::Failed("the exec helper went away".into()));
        (end, [out, err].concat())
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok((end, output)) => exec_outcome(end, &output),
        Err(_) => {
            p.stop();
            Outcome::Failure(format!("command {:?} timed out after {limit:?}", req.command))
        }
    }
}

/// Reads a stream to its end, keeping the first `EXEC_OUTPUT_LIMIT` bytes.
async fn read_capped(r: Option<Reader>) -> Vec<u8> {
    let Some(mut r) = r else { return Vec::new() };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = r.read(&mut buf).await {
        let room = EXEC_OUTPUT_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

/// An exec probe's verdict: exit code 0 is success; otherwise the output is the message.
fn exec_outcome(end: ExecEnd, output: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(&output[..output.len().min(EXEC_OUTPUT_LIMIT)])
        .trim_end()
        .to_string();
    match end {
        ExecEnd::Exited(0) => Outcome::Success,
        ExecEnd::Exited(code) if text.is_empty() => Outcome::Failure(format!("command exited with code {code}")),
        ExecEnd::Exited(_) => Outcome::Failure(text),
        ExecEnd::Failed(why) => Outcome::Failure(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: i32, failure: i32) -> Probe {
        Probe {
            success_threshold: Some(success),
            failure_threshold: Some(failure),
            period_seconds: Some(5),
            ..Default::default()
        }
    }

    #[test]
    fn thresholds_flip_the_verdict() {
        let p = probe(2, 3);
        let now = Instant::now();
        let mut s = ProbeState::new(Kind::Readiness, &p, now);
        assert_eq!(s.record(&p, true, now), None);
        assert_eq!(s.record(&p, true, now), Some(true));
        assert_eq!(s.record(&p, true, now), None);
        assert_eq!(s.record(&p, false, now), None);
        assert_eq!(s.record(&p, false, now), None);
        assert_eq!(s.record(&p, false, now), Some(false));
        assert_eq!(s.result, Some(false));
        assert_eq!(s.next_at, now + Duration::from_secs(5));
    }

    #[test]
    fn defaults_are_kubelets() {
        let p = Probe::default();
        assert_eq!(period(&p), Duration::from_secs(10));
        assert_eq!(timeout(&p), Duration::from_secs(1));
        let now = Instant::now();
        let mut s = ProbeState::new(Kind::Liveness, &p, now);
        assert_eq!(s.record(&p, true, now), Some(true));
        assert_eq!(
            (
                s.record(&p, false, now),
                s.record(&p, false, now),
                s.record(&p, false, now)
            ),
            (None, None, Some(false))
        );
    }

    #[tokio::test]
    async fn tcp_and_http_probes_reach_a_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz ");
                let reply: &[u8] = if ok {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n"
                };
                let _ = s.write_all(reply).await;
            }
        });
        let c = Container::default();
        let tcp: Probe = serde_json::from_value(serde_json::json!({"tcpSocket": {"port": port}})).unwrap_or_default();
        assert_eq!(run(&tcp, &c, "127.0.0.1", None).await, Outcome::Success);
        let good: Probe = serde_json::from_value(serde_json::json!({"httpGet": {"port": port, "path": "/healthz"}}))
            .unwrap_or_default();
        assert_eq!(run(&good, &c, "127.0.0.1", None).await, Outcome::Success);
        let bad: Probe = serde_json::from_value(serde_json::json!({"httpGet": {"port": port, "path": "/other"}}))
            .unwrap_or_default();
        assert!(matches!(run(&bad, &c, "127.0.0.1", None).await, Outcome::Failure(m) if m.contains("500")));
        let named: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": "web"}})).unwrap_or_default();
        assert!(matches!(run(&named, &c, "127.0.0.1", None).await, Outcome::Failure(m) if m.contains("named port")));
        let exec: Probe =
            serde_json::from_value(serde_json::json!({"exec": {"command": ["true"]}})).unwrap_or_default();
        assert!(matches!(run(&exec, &c, "127.0.0.1", None).await, Outcome::Failure(m) if m.contains("not running")));
        let empty: Probe = serde_json::from_value(serde_json::json!({"exec": {"command": []}})).unwrap_or_default();
        assert!(matches!(run(&empty, &c, "127.0.0.1", None).await, Outcome::Failure(m) if m.contains("no command")));
    }

    #[test]
    fn exec_verdicts_are_kubelets() {
        assert_eq!(exec_outcome(ExecEnd::Exited(0), b"noise"), Outcome::Success);
        assert_eq!(
            exec_outcome(ExecEnd::Exited(1), b"cat: can't open '/tmp/healthy'\n"),
            Outcome::Failure("cat: can't open '/tmp/healthy'".into())
        );
        assert_eq!(
            exec_outcome(ExecEnd::Exited(7), b""),
            Outcome::Failure("command exited with code 7".into())
        );
        assert_eq!(
            exec_outcome(ExecEnd::Failed("executable 'x' not found".into()), b""),
            Outcome::Failure("executable 'x' not found".into())
        );
    }
}

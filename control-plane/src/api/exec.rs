//! `pods/{name}/exec`: checked here as kube-apiserver checks `PodExecOptions`, then proxied to
//! the agent of the pod's node (`/exec/{namespace}/{pod}/{container}`, kubelet's parameter
//! names) as an HTTP upgrade. The client's WebSocket handshake is passed through unchanged
//! (key, version, subprotocols), so the agent's answer (101, accept key, the chosen
//! `v5.channel.k8s.io` or `v4.channel.k8s.io`) is the client's answer, and the two upgraded
//! connections are then spliced byte for byte: the API server does not parse the stream.
//!
//! SPDY (`Upgrade: SPDY/3.1`, what kubectl falls back to when a WebSocket upgrade fails) is
//! refused with a 400 saying so, after the same checks, so the user sees the real reason of a
//! failed WebSocket attempt either way.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::logs::{choose_container, encode, reach_agent};
use super::request::{Query, Target};
use super::ApiState;
use crate::error::{ApiError, ApiResult};

/// Largest agent error message read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `PodExecOptions` from the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn parse(q: &Query) -> ApiResult<ExecOptions> {
        let o = ExecOptions {
            container: q.get("container").filter(|c| !c.is_empty()).map(str::to_string),
            command: q.commands().to_vec(),
            stdin: super::logs::boolean(q, "stdin")?,
            stdout: super::logs::boolean(q, "stdout")?,
            stderr: super::logs::boolean(q, "stderr")?,
            tty: super::logs::boolean(q, "tty")?,
        };
        if o.command.first().is_none_or(|c| c.is_empty()) {
            return Err(ApiError::bad_request(
                "you must specify at least one command for the container",
            ));
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        Ok(o)
    }

    /// The agent's query string (kubelet's names: input, output, error, tty; `command` once
    /// per argument).
    pub fn agent_query(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = self.command.iter().map(|c| ("command", c.as_str())).collect();
        for (k, on) in [
            ("input", self.stdin),
            ("output", self.stdout),
            ("error", self.stderr && !self.tty),
            ("tty", self.tty),
        ] {
            if on {
                pairs.push((k, "1"));
            }
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// What kind of upgrade the client asked for.
fn upgrade_kind(headers: &HeaderMap) -> String {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// GET or POST pods/{name}/exec.
pub async fn pod_exec(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    client: Option<OnUpgrade>,
) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or("");
    let ns = t.namespace.as_deref().unwrap_or("");
    let opts = ExecOptions::parse(q)?;
    let pod = st.storage.must_get(t.res, Some(ns), name).await?;
    if let Some(phase @ ("Succeeded" | "Failed")) = pod.obj.pointer("/status/phase").and_then(Value::as_str) {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    let container = choose_container(&pod.obj, name, opts.container.as_deref())?;
    let kind = upgrade_kind(headers);
    if kind.starts_with("spdy") {
        return Err(ApiError::bad_request(
            "SPDY is not supported: exec is served over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io)",
        ));
    }
    let (Some(client), "websocket") = (client, kind.as_str()) else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let (node_name, addr) = reach_agent(st, &pod.obj, name).await?;
    let path = format!(
        "/exec/{}/{}/{}?{}",
        encode(ns),
        encode(name),
        encode(&container),
        opts.agent_query()
    );
    let mut forward: Vec<(HeaderName, HeaderValue)> = vec![
        (CONNECTION, HeaderValue::from_static("Upgrade")),
        (UPGRADE, HeaderValue::from_static("websocket")),
    ];
    for h in [SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, SEC_WEBSOCKET_PROTOCOL] {
        for v in headers.get_all(&h) {
            forward.push((h.clone(), v.clone()));
        }
    }
    let mut resp = st
        .kubelet
        .upgrade(addr, &path, &forward)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot reach the agent of node {node_name} at {addr}: {e}")))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let bytes = axum::body::to_bytes(Body::new(resp.into_body()), MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(match status.as_u16() {
            400 => ApiError::bad_request(message),
            404 => ApiError::new(404, "NotFound", message),
            code => ApiError::new(
                502,
                "InternalError",
                format!("the agent of node {node_name} answered {code}: {message}"),
            ),
        });
    }
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for h in [UPGRADE, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_PROTOCOL] {
        if let Some(v) = resp.headers().get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    let agent = hyper::upgrade::on(&mut resp);
    let shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        let (client, agent) = match tokio::try_join!(client, agent) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade");
                return;
            }
        };
        let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut agent) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "exec stream");
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(s: &str) -> Query {
        Query::parse(Some(s)).unwrap()
    }

    #[test]
    fn kubectls_options_become_kubelets_with_every_argument_in_order() {
        let o = ExecOptions::parse(&query(
            "command=sh&command=-c&command=echo+%22a+b%22&container=app&stdin=true&stdout=true&tty=true",
        ))
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo \"a b\""]);
        assert_eq!(o.container.as_deref(), Some("app"));
        assert_eq!(
            o.agent_query(),
            "command=sh&command=-c&command=echo+%22a+b%22&input=1&output=1&tty=1"
        );
        let o = ExecOptions::parse(&query("command=ls&stdout=1&stderr=1")).unwrap();
        assert_eq!(o.agent_query(), "command=ls&output=1&error=1");
    }

    #[test]
    fn options_that_cannot_run_are_400s() {
        for (q, want) in [
            ("stdout=true", "at least one command"),
            ("command=&stdout=true", "at least one command"),
            ("command=ls", "at least 1 of stdin, stdout, stderr"),
            ("command=ls&stdout=maybe", "stdout"),
        ] {
            let e = ExecOptions::parse(&query(q)).unwrap_err();
            assert_eq!(e.code, 400, "{q}");
            assert!(e.message.contains(want), "{q}: {}", e.message);
        }
    }

    #[test]
    fn upgrades_are_told_apart() {
        let mut h = HeaderMap::new();
        assert_eq!(upgrade_kind(&h), "");
        h.insert(UPGRADE, HeaderValue::from_static("WebSocket"));
        assert_eq!(upgrade_kind(&h), "websocket");
        h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(upgrade_kind(&h).starts_with("spdy"));
    }
}

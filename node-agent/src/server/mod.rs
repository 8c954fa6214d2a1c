//! The agent's HTTPS server, kubelet's `:10250` for skiff: the API server calls it for
//! `pods/log` (`GET /containerLogs/{namespace}/{pod}/{container}`, kubelet's path and query
//! names) and gets the container's output as a `text/plain` stream, and for `pods/exec`
//! (`/exec/{namespace}/{pod}/{container}`, a WebSocket in Kubernetes' channel protocol).
//!
//! Only the API servers may call (see `auth`): TLS verifies the client certificate against the
//! cluster CA, then the connection's user must be the API servers' one. HTTP/1.1 only; one
//! request or many per connection.
//!
//! # Layout
//! - `route`: paths and query parameters to a [`LogRequest`] or an exec request (pure).
//! - `channel`: the exec streams' wire protocol, `v5.channel.k8s.io` / `v4` (pure).
//! - `exec`: the exec upgrade and session.
//! - `auth`: the self-signed serving certificate, the TLS configuration, the client check.
//! - `logs`: which file a request reads, and the streaming task.
//! - `body`: response bodies and the channel the log reader writes into.

mod auth;
mod body;
pub mod channel;
mod exec;
mod logs;
mod route;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use auth::APISERVER_CLIENT_USER;
pub use exec::ExecSource;
pub use logs::{LogSource, RunningFn};
pub use route::LogRequest;

use body::ResponseBody;
use route::{Rejection, Route};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of file descriptors, ...) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("agent server TLS: {0}")]
    Tls(String),
    #[error("listening on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A pod the agent knows, as the log endpoint needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub uid: String,
    /// Init, regular and ephemeral containers.
    pub containers: Vec<String>,
}

/// The pods on this node by namespace and name (the log endpoint's paths name pods, their
/// directories are named by uid). Kept by the agent's pod manager.
#[derive(Clone, Default)]
pub struct PodIndex(Arc<parking_lot::RwLock<HashMap<(String, String), PodRef>>>);

impl PodIndex {
    pub fn insert(&self, namespace: &str, name: &str, uid: &str, containers: Vec<String>) {
        self.0.write().insert(
            (namespace.to_string(), name.to_string()),
            PodRef {
                uid: uid.to_string(),
                containers,
            },
        );
    }

    /// Records `pod` under its uid `uid`.
    pub fn set(&self, uid: &str, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let containers = spec
            .into_iter()
            .flat_map(|s| {
                let init = s.init_containers.iter().flatten().map(|c| c.name.clone());
                let main = s.containers.iter().map(|c| c.name.clone());
                let eph = s.ephemeral_containers.iter().flatten().map(|c| c.name.clone());
                init.chain(main).chain(eph).collect::<Vec<_>>()
            })
            .collect();
        self.insert(ns, name, uid, containers);
    }

    pub fn remove_uid(&self, uid: &str) {
        self.0.write().retain(|_, p| p.uid != uid);
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<PodRef> {
        self.0.read().get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

/// Where and how the server listens.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub node_ip: IpAddr,
    /// The cluster CA, PEM (from the agent's kubeconfig).
    pub ca_pem: Vec<u8>,
}

/// Binds the listener (so a taken port fails the agent's start) and returns the task serving it
/// until `src.stop` is cancelled.
pub async fn start(
    cfg: &ServerConfig,
    src: LogSource,
    exec: ExecSource,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let tls = TlsAcceptor::from(auth::server_config(&cfg.ca_pem, cfg.node_ip)?);
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen,
            source,
        })?;
    tracing::info!(listen = %cfg.listen, "agent server serving container logs and exec");
    Ok(tokio::spawn(accept_loop(listener, tls, src, exec)))
}

async fn accept_loop(listener: TcpListener, tls: TlsAcceptor, src: LogSource, exec: ExecSource) {
    let stop = src.stop.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "agent server accept");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small writes (TLS flights, exec frames) go out at once, not after the peer's
        // delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "agent server TCP_NODELAY");
        }
        let (tls, src, exec) = (tls.clone(), src.clone(), exec.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "agent server TLS handshake");
                    return;
                }
                Err(_) => return,
            };
            let client = auth::check_client(stream.get_ref().1.peer_certificates());
            if let Err(r) = &client {
                tracing::info!(%peer, reason = %r.message, "agent server refused a client");
            }
            let client = Arc::new(client);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (client, src, exec) = (client.clone(), src.clone(), exec.clone());
                async move {
                    let resp = match client.as_ref() {
                        Ok(()) => handle(&src, &exec, req).await,
                        Err(r) => rejection(r),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "agent server connection");
            }
        });
    }
}

async fn handle(src: &LogSource, exec: &ExecSource, req: Request<Incoming>) -> Response<ResponseBody> {
    let route = route::parse(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        chrono::Utc::now(),
    );
    let served = match route {
        Ok(Route::Healthz) => Ok(ResponseBody::text("ok")),
        Ok(Route::Logs(l)) => logs::serve(src, l),
        Ok(Route::Exec(q)) => {
            return exec::serve(exec, q, req).await.unwrap_or_else(|r| rejection(&r));
        }
        Err(r) => Err(r),
    };
    match served {
        Ok(body) => text(StatusCode::OK, body),
        Err(r) => rejection(&r),
    }
}

fn rejection(r: &Rejection) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, ResponseBody::text(format!("{}\n", r.message)))
}

fn text(status: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_every_kind_of_container_and_forgets_by_uid() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {
                "initContainers": [{"name": "setup"}],
                "containers": [{"name": "app"}, {"name": "side"}],
                "ephemeralContainers": [{"name": "debug"}],
            }
        }))
        .unwrap();
        let index = PodIndex::default();
        index.set("u1", &pod);
        let got = index.get("prod", "web").unwrap();
        assert_eq!(got.uid, "u1");
        assert_eq!(got.containers, ["setup", "app", "side", "debug"]);
        assert_eq!(index.get("default", "web"), None);
        index.remove_uid("u2");
        assert!(index.get("prod", "web").is_some());
        index.remove_uid("u1");
        assert_eq!(index.get("prod", "web"), None);
    }
}

//! JSON requests to the API servers. Requests go to the server that answered last and fail over
//! to the others on a transport error (a master may be down); an HTTP error is the answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{KubeError, Kubeconfig};

pub struct KubeClient {
    http: reqwest::Client,
    /// Clients for watches: no overall timeout (a watch lasts minutes).
    watch_http: reqwest::Client,
    servers: Vec<String>,
    current: AtomicUsize,
    token: Option<String>,
}

/// One event of a watch, as the API server sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct WatchEvent<T> {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: T,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

impl KubeClient {
    /// A client for the kubeconfig's server plus any `extra_servers` (other masters), tried in
    /// order when one does not answer.
    pub fn new(cfg: &Kubeconfig, extra_servers: &[String]) -> Result<KubeClient, KubeError> {
        let build = |timeout: Option<Duration>| -> Result<reqwest::Client, KubeError> {
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .connect_timeout(Duration::from_secs(3))
                .pool_idle_timeout(Duration::from_secs(60))
                .tcp_keepalive(Duration::from_secs(30));
            b = match timeout {
                Some(t) => b.timeout(t),
                // A watch is re-established by the server every timeoutSeconds (300): a read
                // silent for longer means a dead connection.
                None => b.read_timeout(Duration::from_secs(330)),
            };
            if let Some(ca) = &cfg.ca_pem {
                let cert = reqwest::Certificate::from_pem(ca).map_err(|e| KubeError::Kubeconfig {
                    path: "certificate-authority".into(),
                    reason: e.to_string(),
                })?;
                b = b.tls_built_in_root_certs(false).add_root_certificate(cert);
            }
            if let Some(id) = &cfg.identity_pem {
                let identity = reqwest::Identity::from_pem(id).map_err(|e| KubeError::Kubeconfig {
                    path: "client-certificate".into(),
                    reason: e.to_string(),
                })?;
                b = b.identity(identity);
            }
            if cfg.insecure {
                b = b.danger_accept_invalid_certs(true);
            }
            b.build().map_err(|e| KubeError::Kubeconfig {
                path: "client".into(),
                reason: e.to_string(),
            })
        };
        let mut servers = vec![cfg.server.clone()];
        for s in extra_servers {
            let s = s.trim_end_matches('/').to_string();
            if !servers.contains(&s) {
                servers.push(s);
            }
        }
        Ok(KubeClient {
            http: build(Some(Duration::from_secs(30)))?,
            watch_http: build(None)?,
            servers,
            current: AtomicUsize::new(0),
            token: cfg.token.clone(),
        })
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<reqwest::Response, KubeError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut errors = Vec::new();
        for i in 0..self.servers.len() {
            let idx = (start + i) % self.servers.len();
            let mut req = http
                .request(method.clone(), format!("{}{}", self.servers[idx], path))
                .header("Accept", "application/json");
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some((ct, b)) = &body {
                req = req.header("Content-Type", *ct).body(b.clone());
            }
            match req.send().await {
                Ok(resp) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(e) => errors.push(format!("{}: {e}", self.servers[idx])),
            }
        }
        Err(KubeError::Unreachable(errors.join("; ")))
    }

    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<R, KubeError> {
        let name = method_name(&method);
        let resp = self.send(&self.http, method, path, body).await?;
        let code = resp.status();
        let bytes = resp.bytes().await.map_err(|e| KubeError::Unreachable(e.to_string()))?;
        if !code.is_success() {
            let st: Status = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(KubeError::Status {
                method: name,
                path: path.to_string(),
                code: code.as_u16(),
                reason: st.reason,
                message: st.message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| KubeError::Decode {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, KubeError> {
        self.call(Method::GET, path, None).await
    }

    /// `None` for a 404.
    pub async fn get_opt<R: DeserializeOwned>(&self, path: &str) -> Result<Option<R>, KubeError> {
        match self.get(path).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create<T: Serialize, R: DeserializeOwned>(&self, path: &str, obj: &T) -> Result<R, KubeError> {
        self.call(Method::POST, path, Some(("application/json", json(obj, path)?)))
            .await
    }

    pub async fn replace<T: Serialize, R: DeserializeOwned>(&self, path: &str, obj: &T) -> Result<R, KubeError> {
        self.call(Method::PUT, path, Some(("application/json", json(obj, path)?)))
            .await
    }

    pub async fn merge_patch<T: Serialize, R: DeserializeOwned>(&self, path: &str, patch: &T) -> Result<R, KubeError> {
        self.call(
            Method::PATCH,
            path,
            Some(("application/merge-patch+json", json(patch, path)?)),
        )
        .await
    }

    pub async fn delete<T: Serialize>(&self, path: &str, options: &T) -> Result<(), KubeError> {
        self.call::<serde_json::Value>(Method::DELETE, path, Some(("application/json", json(options, path)?)))
            .await
            .map(drop)
    }

    /// Starts a watch (`path` with its query, without `watch=1`); events arrive on the channel,
    /// which closes when the server ends the watch or the connection breaks.
    pub async fn watch<R: DeserializeOwned + Send + 'static>(
        &self,
        path: &str,
        resource_version: &str,
    ) -> Result<mpsc::Receiver<Result<WatchEvent<R>, KubeError>>, KubeError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = format!(
            "{path}{sep}watch=1&allowWatchBookmarks=true&resourceVersion={resource_version}&timeoutSeconds=300"
        );
        let resp = self.send(&self.watch_http, Method::GET, &full, None).await?;
        let code = resp.status();
        if !code.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            let st: Status = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(KubeError::Status {
                method: "WATCH",
                path: full,
                code: code.as_u16(),
                reason: st.reason,
                message: st.message,
            });
        }
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { return };
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let ev = serde_json::from_slice::<WatchEvent<serde_json::Value>>(&line)
                        .map_err(|e| KubeError::Decode {
                            path: full.clone(),
                            reason: e.to_string(),
                        })
                        .and_then(|ev| {
                            if ev.kind == "ERROR" {
                                let st: Status = serde_json::from_value(ev.object.clone()).unwrap_or_default();
                                let code = ev.object.get("code").and_then(|c| c.as_u64()).unwrap_or(500) as u16;
                                return Err(KubeError::Status {
                                    method: "WATCH",
                                    path: full.clone(),
                                    code,
                                    reason: st.reason,
                                    message: st.message,
                                });
                            }
                            let object = serde_json::from_value(ev.object).map_err(|e| KubeError::Decode {
                                path: full.clone(),
                                reason: e.to_string(),
                            })?;
                            Ok(WatchEvent { kind: ev.kind, object })
                        });
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

fn json<T: Serialize>(obj: &T, path: &str) -> Result<Vec<u8>, KubeError> {
    serde_json::to_vec(obj).map_err(|e| KubeError::Decode {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "REQUEST",
    }
}

//! The API server's TLS listener: rustls configuration, static bearer tokens, and the accept loop
//! that authenticates each request and hands it to the axum router.
//!
//! Authentication follows kube-apiserver's order: a client certificate verified against the
//! cluster CA names the user (see [`crate::pki::identity_from_der`]); failing that an
//! `Authorization: Bearer` token is looked up in the `--token-auth-file`. Every request carries an
//! [`Authn`] extension with the result, `None` for an anonymous request: refusing it (401) is the
//! router's decision, not the listener's, so health probes can stay open.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::header::AUTHORIZATION;
use axum::http::Request;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::auth::token::{looks_like_jwt, Claims, SigningKey};
use crate::pki::{identity_from_der, UserInfo};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1.1 client may take to send a request's headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2 pings find peers that vanished under a long-lived watch.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// After shutdown, how long open connections get to finish before they are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, ...) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the {what} PEM: {source}")]
    Pem { what: &'static str, source: std::io::Error },
    #[error("the {what} PEM holds no {expected}")]
    EmptyPem { what: &'static str, expected: &'static str },
    #[error("adding a CA certificate to the client trust store: {source}")]
    TrustStore { source: rustls::Error },
    #[error("building the client certificate verifier: {source}")]
    Verifier {
        source: rustls::server::VerifierBuilderError,
    },
    #[error("building the TLS server configuration: {source}")]
    Config { source: rustls::Error },
    #[error("reading the token file {path}: {source}")]
    TokenFileRead { path: String, source: std::io::Error },
    #[error("token file {origin}, line {line}: {reason}")]
    TokenFileFormat {
        origin: String,
        line: usize,
        reason: String,
    },
}

/// The identity the listener established for a request; `None` when anonymous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authn(pub Option<UserInfo>);

/// A TLS configuration serving `cert_pem` (leaf first, then any intermediates) with `key_pem`.
/// Client certificates are requested and verified against `ca_pem` but not required, so clients
/// with bearer tokens still connect. Offers h2 and http/1.1; uses ring whatever the process-wide
/// default provider is.
pub fn server_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in read_certs(ca_pem, "CA certificate")? {
        roots.add(ca).map_err(|source| TlsError::TrustStore { source })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|source| TlsError::Verifier { source })?;
    let chain = read_certs(cert_pem, "serving certificate")?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|source| TlsError::Pem {
            what: "serving key",
            source,
        })?
        .ok_or(TlsError::EmptyPem {
            what: "serving key",
            expected: "private key",
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config { source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Config { source })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsError::EmptyPem {
            what,
            expected: "CERTIFICATE block",
        });
    }
    Ok(certs)
}

/// Static bearer tokens in kube-apiserver's `--token-auth-file` format: CSV lines
/// `token,user,uid[,"group1,group2"]`. Debug output never shows the tokens.
#[derive(Clone, Default)]
pub struct TokenFile {
    entries: Vec<(String, UserInfo)>,
    /// Checks service account tokens (JWTs) that are not in the file.
    service_accounts: Option<Arc<SigningKey>>,
}

/// The claims of the service account token a request authenticated with: the router still
/// checks that the service account (and the pod the token is bound to) exist.
#[derive(Clone, Debug)]
pub struct ServiceAccountToken(pub Claims);

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

impl TokenFile {
    /// Reads and parses a token file.
    pub fn load(path: impl AsRef<Path>) -> Result<TokenFile, TlsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TlsError::TokenFileRead {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_from(&text, &path.display().to_string())
    }

    /// Parses token-file text (for tokens that come from somewhere other than a file).
    pub fn parse(text: &str) -> Result<TokenFile, TlsError> {
        Self::parse_from(text, "<inline>")
    }

    fn parse_from(text: &str, origin: &str) -> Result<TokenFile, TlsError> {
        let mut entries: Vec<(String, UserInfo)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let error = |reason: String| TlsError::TokenFileFormat {
                origin: origin.to_string(),
                line: line_no,
                reason,
            };
            if line.trim().is_empty() {
                continue;
            }
            let record = split_csv_line(line).map_err(|reason| error(reason.to_string()))?;
            if record.len() < 3 {
                return Err(error(format!(
                    "must have at least 3 columns (token, user name, user uid), found {}",
                    record.len()
                )));
            }
            let token = record[0].clone();
            if token.is_empty() {
                // kube-apiserver skips such lines with a warning too.
                warn!(origin, line = line_no, "skipping a token file line with an empty token");
                continue;
            }
            let groups = match record.get(3) {
                Some(groups) => groups
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect(),
                None => Vec::new(),
            };
            let user = UserInfo::authenticated(record[1].clone(), record[2].clone(), groups);
            match entries.iter_mut().find(|(t, _)| *t == token) {
                Some(entry) => {
                    warn!(
                        origin,
                        line = line_no,
                        "duplicate token in the token file: the later line wins"
                    );
                    entry.1 = user;
                }
                None => entries.push((token, user)),
            }
        }
        Ok(TokenFile {
            entries,
            service_accounts: None,
        })
    }

    /// Also accepts service account tokens signed with `key`.
    pub fn with_service_accounts(mut self, key: Arc<SigningKey>) -> TokenFile {
        self.service_accounts = Some(key);
        self
    }

    /// The service account a JWT names, if it verifies.
    pub fn lookup_service_account(&self, token: &str) -> Option<(UserInfo, Claims)> {
        let key = self.service_accounts.as_ref()?;
        if !looks_like_jwt(token) {
            return None;
        }
        let now = chrono::Utc::now().timestamp();
        match key.verify(token, now) {
            Ok(claims) => {
                let (name, groups) = claims.user();
                let uid = claims.kubernetes.serviceaccount.uid.clone();
                Some((UserInfo::authenticated(name, uid, groups), claims))
            }
            Err(e) => {
                debug!(error = %e, "a bearer token that looks like a JWT did not verify");
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user `token` belongs to. Every entry is compared, each in constant time, so the answer
    /// takes as long whichever token (if any) matches.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        let mut found = None;
        for (candidate, user) in &self.entries {
            if constant_time_eq(candidate.as_bytes(), token.as_bytes()) {
                found = Some(user);
            }
        }
        found.cloned()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// One CSV record as Go's encoding/csv reads it: fields separated by commas, optionally quoted
/// with `""` standing for a quote inside quotes. Quoted fields spanning lines are not supported.
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field"),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("extraneous character after a quoted field"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in a non-quoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// Serves the API on `listener` until `shutdown` is cancelled.
///
/// Each connection runs in its own task: TLS handshake (bounded by a timeout), then HTTP/1.1 or
/// HTTP/2 as the client speaks, with upgrades enabled for exec/attach/port-forward. Handshake and
/// connection errors are logged at debug level; they end that connection only. On shutdown the
/// listener closes at once, open connections are asked to finish (HTTP/1.1 after the response in
/// flight, HTTP/2 with GOAWAY), and those still open after a drain period are dropped; long-lived
/// handlers such as watches must end on the same token to drain in time.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    tokens: Arc<TokenFile>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(config);
    let http = Arc::new(http_builder());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    warn!(error = %e, "an API connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let conn = Connection {
                        peer,
                        acceptor: acceptor.clone(),
                        http: http.clone(),
                        app: app.clone(),
                        tokens: tokens.clone(),
                        shutdown: shutdown.clone(),
                    };
                    connections.spawn(conn.run(tcp));
                }
                Err(e) => {
                    warn!(error = %e, "accepting an API connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        debug!(
            open = connections.len(),
            "dropping API connections still open after the drain period"
        );
        connections.shutdown().await;
    }
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE);
    builder
}

/// What one connection's task needs.
struct Connection {
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    http: Arc<auto::Builder<TokioExecutor>>,
    app: Router,
    tokens: Arc<TokenFile>,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, tcp: TcpStream) {
        let peer = self.peer;
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(%peer, error = %e, "setting TCP_NODELAY failed");
        }
        let tls = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)) => match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            },
        };
        let cert_user = match tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()) {
            Some(leaf) => match identity_from_der(leaf) {
                Ok(user) => Some(user),
                Err(e) => {
                    debug!(%peer, error = %e, "the client certificate names no user");
                    None
                }
            },
            None => None,
        };

        let (app, tokens) = (self.app, self.tokens);
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            let user = cert_user.clone().or_else(|| bearer_user(&mut req, &tokens));
            req.extensions_mut().insert(Authn(user));
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = self.http.serve_connection_with_upgrades(TokioIo::new(tls), service);
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = self.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            debug!(%peer, error = %e, "API connection ended with an error");
        }
    }
}

/// The token user of an `Authorization: Bearer` header. Like kube-apiserver, the header is
/// removed once it has authenticated the request so the credential travels no further.
fn bearer_user<B>(req: &mut Request<B>, tokens: &TokenFile) -> Option<UserInfo> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim().to_string();
    if token.is_empty() {
        return None;
    }
    let user = match tokens.lookup(&token) {
        Some(user) => user,
        None => {
            let (user, claims) = tokens.lookup_service_account(&token)?;
            req.extensions_mut().insert(ServiceAccountToken(claims));
            user
        }
    };
    req.headers_mut().remove(AUTHORIZATION);
    Some(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{issue_client_cert, issue_server_cert, kubeconfig, token_kubeconfig, CaBundle};
    use axum::body::{Body, Bytes};
    use axum::http::{StatusCode, Version};
    use axum::routing::get;
    use axum::{Extension, Json};
    use hyper::body::{Body as _, Frame};
    use rustls::pki_types::ServerName;
    use serde_json::{json, Value};
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::TlsConnector;

    type BoxError = Box<dyn std::error::Error + Send + Sync>;

    const TOKENS: &str = "s3cret-bob,bob,uid-42,\"dev,system:masters\"\n\
                          other-token,carol,uid-7\n";

    /// An endless watch-like body fed by a task that sends an event every 20 ms.
    struct Events(tokio::sync::mpsc::Receiver<Bytes>);

    impl hyper::body::Body for Events {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.get_mut()
                .0
                .poll_recv(cx)
                .map(|event| event.map(|b| Ok(Frame::data(b))))
        }
    }

    fn router() -> Router {
        let whoami = |Extension(Authn(user)): Extension<Authn>, headers: axum::http::HeaderMap| async move {
            Json(json!({
                "user": user.map(|u| json!({"name": u.name, "groups": u.groups, "uid": u.uid})),
                "authorizationHeader": headers.contains_key(AUTHORIZATION),
            }))
        };
        let watch = || async {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tokio::spawn(async move {
                for i in 0.. {
                    let event = Bytes::from(format!("{{\"type\":\"ADDED\",\"n\":{i}}}\n"));
                    if tx.send(event).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            Body::new(Events(rx))
        };
        Router::new().route("/whoami", get(whoami)).route("/watch", get(watch))
    }

    struct Server {
        ca: CaBundle,
        addr: SocketAddr,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    async fn start() -> Server {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let (cert, key) = issue_server_cert(&ca, "kube-apiserver", &[]).unwrap();
        let config = server_config(&ca.cert_pem, &cert, &key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, TOKENS).unwrap();
        let tokens = Arc::new(TokenFile::load(&path).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, config, router(), tokens, shutdown.clone()));
        Server {
            ca,
            addr,
            shutdown,
            task,
            _dir: dir,
        }
    }

    fn client_config(ca: &CaBundle, identity: Option<(String, String)>, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(&ca.cert_pem, "CA").unwrap() {
            roots.add(cert).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some((cert, key)) => {
                let key = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
                builder
                    .with_client_auth_cert(read_certs(&cert, "client").unwrap(), key)
                    .unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }

    async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("kubernetes.default.svc").unwrap();
        TlsConnector::from(config).connect(name, tcp).await
    }

    fn request(path: &str, bearer: Option<&str>) -> Request<Body> {
        let mut req = Request::get(path).header("host", "kubernetes.default.svc");
        if let Some(token) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        req.body(Body::empty()).unwrap()
    }

    /// One request over a fresh HTTP/1.1 or HTTP/2 connection; the response with its body unread.
    async fn send(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        req: Request<Body>,
    ) -> Result<axum::http::Response<hyper::body::Incoming>, BoxError> {
        let tls = connect(addr, config).await?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Ok(sender.send_request(req).await?)
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            Ok(sender.send_request(req).await?)
        }
    }

    async fn whoami(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        bearer: Option<&str>,
    ) -> Result<Value, BoxError> {
        let resp = send(addr, config, request("/whoami", bearer)).await?;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = axum::body::to_bytes(Body::new(resp.into_body()), 1 << 20).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    #[tokio::test]
    async fn client_certificate_names_the_user_over_both_protocols() {
        let server = start().await;
        let identity = issue_client_cert(&server.ca, "alice", &["system:masters".into(), "dev".into()]).unwrap();
        for alpn in [&b"http/1.1"[..], b"h2"] {
            let config = client_config(&server.ca, Some(identity.clone()), alpn);
            // The certificate wins over a token, as in kube-apiserver.
            let got = whoami(server.addr, config, Some("s3cret-bob")).await.unwrap();
            assert_eq!(
                got["user"],
                json!({"name": "alice", "groups": ["system:masters", "dev", "system:authenticated"], "uid": ""})
            );
        }
        server.shutdown.cancel();
    }

    #[tokio::test]
    async fn bearer_token_names_the_user() {
        let server = start().await;
        for alpn in [&b"http/1.1"[..], b"h2"] {
            let got = whoami(server.addr, client_config(&server.ca, None, alpn), Some("s3cret-bob"))
                .await
                .unwrap();
            assert_eq!(
                got["user"],
                json!({"name": "bob", "groups": ["dev", "system:masters", "system:authenticated"], "uid": "uid-42"})
            );
            assert_eq!(got["authorizationHeader"], false, "a used token is stripped");
        }
        let mut req = request("/whoami", None);
        req.headers_mut()
            .insert(AUTHORIZATION, "bearer  other-token ".parse().unwrap());
        let resp = send(server.addr, client_config(&server.ca, None, b"h2"), req)
            .await
            .unwrap();
        let body = axum::body::to_bytes(Body::new(resp.into_body()), 1 << 20)
            .await
            .unwrap();
        let got: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got["user"]["name"], "carol");
        server.shutdown.cancel();
    }

    #[tokio::test]
    async fn anonymous_and_unknown_tokens_have_no_user() {
        let server = start().await;
        let config = client_config(&server.ca, None, b"http/1.1");
        let got = whoami(server.addr, config.clone(), None).await.unwrap();
        assert_eq!(got["user"], Value::Null);
        let got = whoami(server.addr, config, Some("s3cret-bo")).await.unwrap();
        assert_eq!(got["user"], Value::Null);
        assert_eq!(
            got["authorizationHeader"], true,
            "an unused header is left for the router to see"
        );
        server.shutdown.cancel();
    }

    #[tokio::test]
    async fn client_certificate_from_another_ca_is_refused() {
        let server = start().await;
        let other = CaBundle::generate("skiff-ca").unwrap();
        let identity = issue_client_cert(&other, "mallory", &["system:masters".into()]).unwrap();
        for alpn in [&b"http/1.1"[..], b"h2"] {
            // With TLS 1.3 the client learns of the refusal on its first read, not in the handshake.
            let result = send(
                server.addr,
                client_config(&server.ca, Some(identity.clone()), alpn),
                request("/whoami", None),
            );
            let err = result.await.expect_err("a foreign client certificate must be refused");
            assert!(
                format!("{err:?}").to_lowercase().contains("alert"),
                "refused by a TLS alert: {err:?}"
            );
        }
        // The server survives it, and plaintext garbage too.
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        drop(tcp);
        let got = whoami(server.addr, client_config(&server.ca, None, b"h2"), None)
            .await
            .unwrap();
        assert_eq!(got["user"], Value::Null);
        server.shutdown.cancel();
    }

    #[tokio::test]
    async fn watch_streams_over_chunked_http1_and_h2() {
        let server = start().await;
        for (alpn, version) in [(&b"http/1.1"[..], Version::HTTP_11), (b"h2", Version::HTTP_2)] {
            let resp = send(
                server.addr,
                client_config(&server.ca, None, alpn),
                request("/watch", None),
            )
            .await
            .unwrap();
            assert_eq!(resp.version(), version);
            if version == Version::HTTP_11 {
                assert_eq!(resp.headers()["transfer-encoding"], "chunked");
            }
            let mut body = resp.into_body();
            let mut seen = String::new();
            while seen.lines().count() < 3 {
                let frame = tokio::time::timeout(
                    Duration::from_secs(5),
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
                )
                .await
                .expect("an event within 5 s")
                .expect("the stream stays open")
                .unwrap();
                if let Ok(data) = frame.into_data() {
                    seen.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
            assert!(
                seen.starts_with("{\"type\":\"ADDED\",\"n\":0}\n{\"type\":\"ADDED\",\"n\":1}\n"),
                "{seen}"
            );
        }
        server.shutdown.cancel();
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_the_listener() {
        let server = start().await;
        // One idle keep-alive connection of each protocol, each having served a request.
        let io = TokioIo::new(
            connect(server.addr, client_config(&server.ca, None, b"http/1.1"))
                .await
                .unwrap(),
        );
        let (mut h1, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        let h1_conn = tokio::spawn(conn);
        let resp = h1.send_request(request("/whoami", None)).await.unwrap();
        axum::body::to_bytes(Body::new(resp.into_body()), 1 << 20)
            .await
            .unwrap();
        let io = TokioIo::new(
            connect(server.addr, client_config(&server.ca, None, b"h2"))
                .await
                .unwrap(),
        );
        let (mut h2, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        let h2_conn = tokio::spawn(conn);
        let resp = h2.send_request(request("/whoami", None)).await.unwrap();
        axum::body::to_bytes(Body::new(resp.into_body()), 1 << 20)
            .await
            .unwrap();
        assert!(!h1_conn.is_finished() && !h2_conn.is_finished());

        server.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("serve returns promptly once idle connections are closed")
            .unwrap();
        for conn in [h1_conn, h2_conn] {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn)
                .await
                .expect("the server closed the connection");
        }
        assert!(TcpStream::connect(server.addr).await.is_err(), "the listener is closed");
    }

    #[test]
    fn token_file_format() {
        let tokens = TokenFile::parse(
            "t1,alice,1\r\n\
             \n\
             \"t,2\",\"bob \"\"the builder\"\"\",2,\"a,,b\",ignored\n\
             ,nobody,3\n\
             t1,alice-again,4,solo\n",
        )
        .unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(
            tokens.lookup("t1").unwrap(),
            UserInfo {
                name: "alice-again".into(),
                groups: vec!["solo".into(), "system:authenticated".into()],
                uid: "4".into()
            }
        );
        let bob = tokens.lookup("t,2").unwrap();
        assert_eq!(bob.name, "bob \"the builder\"");
        assert_eq!(bob.groups, ["a", "b", "system:authenticated"]);
        assert_eq!(tokens.lookup(""), None);
        assert_eq!(tokens.lookup("t"), None);
        assert!(!format!("{tokens:?}").contains("t1"), "Debug must not print tokens");

        let err = TokenFile::parse("ok,a,1\njust,two\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("at least 3 columns"), "{err}");
        assert!(TokenFile::parse("\"open,a,1\n").is_err());
        assert!(TokenFile::parse("a\"b,c,1\n").is_err());
        assert!(TokenFile::parse("\"a\"x,c,1\n").is_err());
        let err = TokenFile::load("/nonexistent/tokens.csv").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/tokens.csv"), "{err}");
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn server_config_rejects_bad_pem() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let (cert, key) = issue_server_cert(&ca, "kube-apiserver", &[]).unwrap();
        let config = server_config(&ca.cert_pem, &cert, &key).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(matches!(server_config("", &cert, &key), Err(TlsError::EmptyPem { .. })));
        assert!(matches!(
            server_config(&ca.cert_pem, "", &key),
            Err(TlsError::EmptyPem { .. })
        ));
        assert!(matches!(
            server_config(&ca.cert_pem, &cert, &cert),
            Err(TlsError::EmptyPem { .. })
        ));
        // A key that does not match the certificate.
        let (_, other_key) = issue_server_cert(&ca, "kube-apiserver", &[]).unwrap();
        assert!(matches!(
            server_config(&ca.cert_pem, &cert, &other_key),
            Err(TlsError::Config { .. })
        ));
    }

    /// kubectl, configured by our kubeconfigs, talks to `serve` with either credential.
    #[tokio::test]
    async fn kubectl_authenticates_with_both_kubeconfigs() {
        let kubectl = crate::pki::tests::kubectl();
        let server = start().await;
        let url = format!("https://{}", server.addr);
        let (cert, key) = issue_client_cert(&server.ca, "admin", &["system:masters".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let configs = [
            (
                kubeconfig("skiff", &url, &server.ca.cert_pem, "admin", &cert, &key),
                "admin",
            ),
            (
                token_kubeconfig("skiff", &url, &server.ca.cert_pem, "bob", "s3cret-bob"),
                "bob",
            ),
        ];
        for (i, (text, user)) in configs.iter().enumerate() {
            let path = dir.path().join(format!("config-{i}"));
            std::fs::write(&path, text).unwrap();
            let out = tokio::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&path)
                .arg("--cache-dir")
                .arg(dir.path().join("cache"))
                .args(["get", "--raw", "/whoami"])
                // Loopback only, whatever proxy the environment names.
                .env_remove("HTTPS_PROXY")
                .env_remove("https_proxy")
                .env_remove("HTTP_PROXY")
                .env_remove("http_proxy")
                .env("NO_PROXY", "127.0.0.1")
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let got: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(got["user"]["name"], *user);
        }
        server.shutdown.cancel();
    }
}

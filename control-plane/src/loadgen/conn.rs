//! One client connection to an API server: TCP, TLS (with the kubeconfig's client
//! certificate), then HTTP/2 or HTTP/1.1 as ALPN settles, kept alive across requests. A
//! connection that fails is dropped and dialled again on the next request.
//!
//! An HTTP/2 connection can be shared ([`Conn::share`]): the watch workload multiplexes many
//! watches over few connections, as one client-go process does.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::endpoint::Endpoint;
use super::error::{LoadgenError, OpError};

/// TCP connect, TLS and HTTP handshakes together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read whole (a page of 500 pods is well under 1 MiB).
const MAX_BODY: usize = 64 << 20;

/// A request body held whole in memory.
pub struct Full(Option<Bytes>);

impl Body for Full {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// What every connection of a run dials with.
pub struct Dialer {
    tls: Arc<ClientConfig>,
    /// `Authorization` when the kubeconfig has a token.
    auth: Option<HeaderValue>,
}

impl Dialer {
    pub fn new(tls: Arc<ClientConfig>, token: Option<&str>) -> Result<Arc<Dialer>, LoadgenError> {
        let auth = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .map_err(|_| LoadgenError::Config("the kubeconfig token is not a valid header value".into()))?;
        Ok(Arc::new(Dialer { tls, auth }))
    }

    /// A connection to `ep`, dialled on first use.
    pub fn conn(self: &Arc<Self>, ep: Arc<Endpoint>) -> Conn {
        Conn {
            dialer: self.clone(),
            ep,
            live: None,
        }
    }
}

enum Sender {
    H1(http1::SendRequest<Full>),
    H2(http2::SendRequest<Full>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }
}

/// The task driving a connection's IO; ends it when the last user lets go.
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct Conn {
    dialer: Arc<Dialer>,
    ep: Arc<Endpoint>,
    live: Option<(Sender, Arc<Driver>)>,
}

impl Conn {
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// `h2` or `http/1.1` while connected.
    pub fn protocol(&self) -> Option<&'static str> {
        self.live.as_ref().map(|(s, _)| match s {
            Sender::H1(_) => "http/1.1",
            Sender::H2(_) => "h2",
        })
    }

    /// Another handle on the same HTTP/2 connection (None unless connected over HTTP/2).
    pub fn share(&self) -> Option<Conn> {
        match &self.live {
            Some((Sender::H2(s), driver)) => Some(Conn {
                dialer: self.dialer.clone(),
                ep: self.ep.clone(),
                live: Some((Sender::H2(s.clone()), driver.clone())),
            }),
            _ => None,
        }
    }

    /// Drops the connection; the next request dials again (after a timeout, an HTTP/1.1
    /// connection may still carry the abandoned exchange).
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// Dials now (unless connected).
    pub async fn connect(&mut self) -> Result<(), OpError> {
        if matches!(&self.live, Some((s, _)) if !s.is_closed()) {
            return Ok(());
        }
        self.live = None;
        let live = tokio::time::timeout(CONNECT_TIMEOUT, self.dial())
            .await
            .map_err(|_| OpError::Transport(format!("connecting timed out after {CONNECT_TIMEOUT:?}")))??;
        self.live = Some(live);
        Ok(())
    }

    async fn dial(&self) -> Result<(Sender, Arc<Driver>), OpError> {
        let tcp = TcpStream::connect(&self.ep.authority)
            .await
            .map_err(|e| OpError::Transport(format!("connect: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| OpError::Transport(format!("TCP_NODELAY: {e}")))?;
        let name = self.ep.server_name().map_err(OpError::Transport)?;
        let tls = TlsConnector::from(self.dialer.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| OpError::Transport(format!("TLS: {}", chain(&e))))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let handshake = |e: hyper::Error| OpError::Transport(format!("HTTP handshake: {}", chain(&e)));
        if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await.map_err(handshake)?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok((Sender::H2(sender), Arc::new(Driver(driver))))
        } else {
            let (sender, conn) = http1::handshake(io).await.map_err(handshake)?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok((Sender::H1(sender), Arc::new(Driver(driver))))
        }
    }

    fn request(&self, h2: bool, method: Method, path: &str, body: Option<Bytes>) -> Result<Request<Full>, OpError> {
        // HTTP/2 carries the authority in the URI; HTTP/1.1 in Host, with an origin-form path.
        let uri = if h2 {
            format!("{}{path}", self.ep.url)
        } else {
            path.to_string()
        };
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, "skiff-loadgen");
        if !h2 {
            b = b.header(HOST, self.ep.authority.as_str());
        }
        if let Some(a) = &self.dialer.auth {
            b = b.header(AUTHORIZATION, a.clone());
        }
        if body.is_some() {
            b = b.header(CONTENT_TYPE, "application/json");
        }
        b.body(Full(body))
            .map_err(|e| OpError::Transport(format!("building the request for {path}: {e}")))
    }

    /// Sends a request; returns the response with its body unread.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, OpError> {
        self.connect().await?;
        let h2 = self.protocol() == Some("h2");
        let req = self.request(h2, method, path, body)?;
        let Some((sender, _)) = &mut self.live else {
            return Err(OpError::Transport("not connected".into()));
        };
        let sent = match sender {
            Sender::H1(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            Sender::H2(s) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
        };
        sent.map_err(|e| {
            self.live = None;
            OpError::Transport(chain(&e))
        })
    }

    /// Sends a request and reads the whole response.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), OpError> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        match read_all(resp.into_body()).await {
            Ok(b) => Ok((status, b)),
            Err(e) => {
                self.live = None;
                Err(e)
            }
        }
    }

    /// [`Conn::call`], with a non-2xx status turned into [`OpError::Status`].
    pub async fn call_ok(&mut self, method: Method, path: &str, body: Option<Bytes>) -> Result<Bytes, OpError> {
        let (status, body) = self.call(method, path, body).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(status_error(status, &body))
        }
    }
}

/// The next chunk of a response body; None at its end (trailers are skipped).
pub async fn next_data(body: &mut Incoming) -> Option<Result<Bytes, OpError>> {
    loop {
        match poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(OpError::Transport(format!("reading the body: {}", chain(&e))))),
        }
    }
}

async fn read_all(mut body: Incoming) -> Result<Bytes, OpError> {
    let mut buf = Vec::new();
    while let Some(data) = next_data(&mut body).await {
        buf.extend_from_slice(&data?);
        if buf.len() > MAX_BODY {
            return Err(OpError::Check(format!("response body over {MAX_BODY} bytes")));
        }
    }
    Ok(Bytes::from(buf))
}

/// The error for a non-2xx answer: its `metav1.Status` message, else the start of the body.
pub fn status_error(status: StatusCode, body: &[u8]) -> OpError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    OpError::Status {
        code: status.as_u16(),
        message,
    }
}

/// An error with its sources: hyper's own messages ("connection error") say little alone.
pub fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors_carry_the_status_message() {
        let body = br#"{"kind":"Status","status":"Failure","message":"pods \"x\" already exists","code":409}"#;
        match status_error(StatusCode::CONFLICT, body) {
            OpError::Status { code, message } => {
                assert_eq!((code, message.as_str()), (409, "pods \"x\" already exists"))
            }
            e => panic!("{e:?}"),
        }
        let long = vec![b'x'; 1000];
        match status_error(StatusCode::BAD_GATEWAY, &long) {
            OpError::Status { code, message } => assert_eq!((code, message.len()), (502, 200)),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn error_chains_name_the_cause() {
        /// Says little itself, like hyper's errors.
        #[derive(Debug, thiserror::Error)]
        #[error("connection error")]
        struct Terse(#[source] std::io::Error);
        let e = Terse(std::io::Error::other("reset by peer"));
        assert_eq!(chain(&e), "connection error: reset by peer");
    }

    #[test]
    fn full_bodies_report_their_length() {
        assert_eq!(Full(Some(Bytes::from_static(b"abc"))).size_hint().exact(), Some(3));
        assert!(Full(None).is_end_stream());
    }

    /// An HTTPS server on loopback that requires a client certificate from its CA, speaks h2
    /// and HTTP/1.1, and answers `METHOD PATH VERSION AUTHORITY BODY-LENGTH` (404 at /missing).
    mod server {
        use std::net::SocketAddr;

        use hyper::service::service_fn;
        use hyper_util::server::conn::auto;
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        use rustls::pki_types::PrivateKeyDer;
        use rustls::server::WebPkiClientVerifier;
        use rustls::RootCertStore;
        use tokio::net::TcpListener;
        use tokio_rustls::TlsAcceptor;

        use super::*;
        use crate::loadgen::kubeconfig::Credentials;

        pub struct Server {
            pub addr: SocketAddr,
            pub creds: Credentials,
            task: JoinHandle<()>,
        }

        impl Drop for Server {
            fn drop(&mut self) {
                self.task.abort();
            }
        }

        async fn handle(req: Request<Incoming>) -> Result<Response<Full>, Infallible> {
            let authority = req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .or_else(|| {
                    req.headers()
                        .get(HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            let head = format!("{} {} {:?} {authority}", req.method(), req.uri().path(), req.version());
            let (status, body) = if req.uri().path() == "/missing" {
                (404, r#"{"kind":"Status","message":"nope","code":404}"#.to_string())
            } else {
                let status = if req.method() == Method::POST { 201 } else { 200 };
                let len = read_all(req.into_body()).await.map_or(0, |b| b.len());
                (status, format!("{head} {len}"))
            };
            Ok(Response::builder()
                .status(status)
                .body(Full(Some(Bytes::from(body))))
                .expect("response"))
        }

        pub async fn start() -> Server {
            let ca_key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = params.self_signed(&ca_key).expect("ca");
            let leaf = |san: &str| {
                let key = KeyPair::generate().expect("key");
                let cert = CertificateParams::new(vec![san.to_string()])
                    .expect("params")
                    .signed_by(&key, &ca, &ca_key)
                    .expect("sign");
                (cert, key)
            };
            let (srv, srv_key) = leaf("127.0.0.1");
            let (cli, cli_key) = leaf("admin");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut roots = RootCertStore::empty();
            roots.add(ca.der().clone()).expect("root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("verifier");
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_client_cert_verifier(verifier)
                .with_single_cert(
                    vec![srv.der().clone()],
                    PrivateKeyDer::Pkcs8(srv_key.serialize_der().into()),
                )
                .expect("server cert");
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let acceptor = TlsAcceptor::from(Arc::new(config));
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let task = tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service_fn(handle))
                            .await;
                    });
                }
            });
            Server {
                addr,
                creds: Credentials {
                    server: format!("https://{addr}"),
                    ca_pem: ca.pem().into_bytes(),
                    client_cert: Some((cli.pem().into_bytes(), cli_key.serialize_pem().into_bytes())),
                    token: None,
                },
                task,
            }
        }
    }

    #[tokio::test]
    async fn requests_over_h2_and_http1_with_a_client_certificate() {
        let s = server::start().await;
        let ep = Arc::new(Endpoint::parse(&s.creds.server).expect("endpoint"));
        for (http2, version, proto) in [(true, "HTTP/2.0", "h2"), (false, "HTTP/1.1", "http/1.1")] {
            let tls = crate::loadgen::tls::client_config(&s.creds, http2).expect("tls");
            let mut c = Dialer::new(tls, None).expect("dialer").conn(ep.clone());
            let body = c
                .call_ok(Method::POST, "/api/v1/x", Some(Bytes::from_static(b"{\"a\":1}")))
                .await
                .expect("post");
            assert_eq!(body, format!("POST /api/v1/x {version} {} 7", s.addr));
            assert_eq!(c.protocol(), Some(proto));
            match c.call_ok(Method::GET, "/missing", None).await {
                Err(OpError::Status { code: 404, message }) => assert_eq!(message, "nope"),
                r => panic!("{r:?}"),
            }
            assert_eq!(c.share().is_some(), http2, "only h2 connections are shared");
            c.reset();
            assert_eq!(c.protocol(), None);
            let body = c.call_ok(Method::GET, "/again", None).await.expect("redial");
            assert_eq!(body, format!("GET /again {version} {} 0", s.addr));
        }
    }

    #[tokio::test]
    async fn a_server_requiring_a_certificate_refuses_a_client_without_one() {
        let s = server::start().await;
        let mut creds = s.creds.clone();
        creds.client_cert = None;
        creds.token = Some("t".into());
        let tls = crate::loadgen::tls::client_config(&creds, true).expect("tls");
        let ep = Arc::new(Endpoint::parse(&creds.server).expect("endpoint"));
        let mut c = Dialer::new(tls, creds.token.as_deref()).expect("dialer").conn(ep);
        match c.call(Method::GET, "/", None).await {
            Err(OpError::Transport(m)) => assert!(m.to_lowercase().contains("certificate"), "{m}"),
            r => panic!("{r:?}"),
        }
    }
}

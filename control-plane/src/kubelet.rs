//! The API server's client for node agents (kubelet's `:10250`): `pods/log` and `pods/exec`
//! are answered by the agent of the pod's node, and this module makes the call (for exec, an
//! HTTP upgrade whose connection the API server then splices to the client's).
//!
//! Identity: every master issues itself, at start, a client certificate from the cluster CA for
//! [`APISERVER_CLIENT_USER`] in group [`APISERVER_CLIENT_GROUP`] (kube-apiserver's
//! `--kubelet-client-certificate`) and keeps it for the life of the process. The agents admit
//! that user only. The group carries no RBAC rights, so the certificate, if it leaked, would
//! open the agents' logs but not the API.
//!
//! The agent's serving certificate is self-signed and is not verified, as kube-apiserver does
//! not verify kubelets' unless `--kubelet-certificate-authority` is set: the handshake's
//! signature is still checked against the certificate presented, only the chain is not.
//! Requests go over HTTP/1.1, a fresh connection each: log calls are rare and long-lived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, HOST};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::pki::{self, CaBundle};

/// The user of the API servers' client certificate for agents. The agent's `server::auth`
/// admits this name only; change both together.
pub const APISERVER_CLIENT_USER: &str = "skiff:apiserver-kubelet-client";
/// Its group: no RBAC binding names it.
pub const APISERVER_CLIENT_GROUP: &str = "skiff:apiservers";

/// TCP connect, TLS and HTTP handshakes, and the agent's response headers, together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("issuing the API server's client certificate for agents: {0}")]
    Pki(#[from] pki::PkiError),
    #[error("the API server's client certificate for agents: {0}")]
    Tls(String),
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("no answer from {addr} within {CONNECT_TIMEOUT:?}")]
    Timeout { addr: SocketAddr },
    #[error("HTTP to {addr}: {source}")]
    Http { addr: SocketAddr, source: hyper::Error },
    #[error("building the request: {0}")]
    Request(String),
}

/// Calls agents with the API server's certificate.
#[derive(Clone)]
pub struct KubeletClient {
    tls: Arc<ClientConfig>,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeletClient")
    }
}

impl KubeletClient {
    /// A client whose certificate `ca` signs now.
    pub fn new(ca: &CaBundle) -> Result<KubeletClient, KubeletError> {
        let (cert_pem, key_pem) =
            pki::issue_client_cert(ca, APISERVER_CLIENT_USER, &[APISERVER_CLIENT_GROUP.to_string()])?;
        let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| KubeletError::Tls(e.to_string()))?;
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| KubeletError::Tls(e.to_string()))?
            .ok_or_else(|| KubeletError::Tls("no private key".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(UnverifiedChain(provider.signature_verification_algorithms));
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeletError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain, key)
            .map_err(|e| KubeletError::Tls(e.to_string()))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(KubeletClient { tls: Arc::new(tls) })
    }

    /// `GET path_and_query` on the agent at `addr`; the response with its body unread (the
    /// caller streams it).
    pub async fn get(&self, addr: SocketAddr, path_and_query: &str) -> Result<Response<Incoming>, KubeletError> {
        self.send(addr, path_and_query, &[]).await
    }

    /// `GET path_and_query` with `headers` (an upgrade request: `Connection: Upgrade` and the
    /// protocol's own); a 101 answer can be turned into the connection with
    /// `hyper::upgrade::on`.
    pub async fn upgrade(
        &self,
        addr: SocketAddr,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Response<Incoming>, KubeletError> {
        self.send(addr, path_and_query, headers).await
    }

    async fn send(
        &self,
        addr: SocketAddr,
        path_and_query: &str,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<Response<Incoming>, KubeletError> {
        let mut builder = Request::get(path_and_query).header(HOST, addr.to_string());
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        let req = builder
            .body(String::new())
            .map_err(|e| KubeletError::Request(e.to_string()))?;
        let call = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|source| KubeletError::Connect { addr, source })?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::IpAddress(addr.ip().into());
            let tls = TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| KubeletError::Connect { addr, source })?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|source| KubeletError::Http { addr, source })?;
            // Ends with the response body (or when it is dropped: the client left), or hands
            // the connection over after a 101.
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(%addr, error = %e, "agent connection");
                }
            });
            sender
                .send_request(req)
                .await
                .map_err(|source| KubeletError::Http { addr, source })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, call)
            .await
            .map_err(|_| KubeletError::Timeout { addr })?
    }
}

/// Accepts any server certificate chain (see the module docs) but checks that the server
/// holds the key of the certificate it presented.
#[derive(Debug)]
struct UnverifiedChain(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for UnverifiedChain {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_certificate_names_the_agents_user_and_no_powerful_group() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let (cert, _) = pki::issue_client_cert(&ca, APISERVER_CLIENT_USER, &[APISERVER_CLIENT_GROUP.into()]).unwrap();
        let der = rustls_pemfile::certs(&mut cert.as_bytes()).next().unwrap().unwrap();
        let who = pki::identity_from_der(&der).unwrap();
        assert_eq!(who.name, APISERVER_CLIENT_USER);
        assert!(!who.groups.iter().any(|g| g == "system:masters"));
        assert!(KubeletClient::new(&ca).is_ok());
    }
}

//! Who may talk to the agent server, and the certificate it serves with.
//!
//! The serving certificate is self-signed and made at every start (IP SAN = the node's
//! address): kube-apiserver does not verify kubelet serving certificates unless told to, and
//! skiff's API server does not either, so a CA-signed one would buy nothing yet and cost a CSR
//! round trip. Clients are another matter: a container's logs are the pod owner's secrets.
//! The TLS layer verifies any client certificate against the cluster CA (the one in the
//! agent's kubeconfig; a certificate from another CA fails the handshake), then [`check_client`]
//! admits only [`APISERVER_CLIENT_USER`], the identity the API servers present (a node's own
//! certificate, or an admin's, is refused with a 403). The API server checked RBAC for
//! `pods/log` before it called; the agent trusts that decision as kubelet trusts its
//! `--kubelet-client-certificate`.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::route::Rejection;
use super::ServerError;

/// The user (certificate CN) of the API servers' client certificate for agents. The same name
/// is in control-plane's `kubelet` module; change both together.
pub const APISERVER_CLIENT_USER: &str = "skiff:apiserver-kubelet-client";

/// The TLS configuration of the agent server: a fresh self-signed certificate for `node_ip`,
/// client certificates verified against `ca_pem` (requested; a client without one gets a 401
/// from [`check_client`] rather than a bare handshake failure).
pub fn server_config(ca_pem: &[u8], node_ip: IpAddr) -> Result<Arc<ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let cas = rustls_pemfile::certs(&mut &ca_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("reading the cluster CA: {e}")))?;
    if cas.is_empty() {
        return Err(ServerError::Tls(
            "the kubeconfig's cluster CA holds no certificate".into(),
        ));
    }
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| ServerError::Tls(format!("adding the cluster CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Tls(format!("client verifier: {e}")))?;
    let cert = rcgen::generate_simple_self_signed(vec![node_ip.to_string()])
        .map_err(|e| ServerError::Tls(format!("self-signing the serving certificate: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Tls(format!("serving certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether the client of a connection may use the server, from its verified certificate chain
/// (leaf first; `None` or empty: it sent none).
pub fn check_client(peer: Option<&[CertificateDer<'_>]>) -> Result<(), Rejection> {
    let Some(leaf) = peer.and_then(|chain| chain.first()) else {
        return Err(Rejection {
            status: 401,
            message: "Unauthorized: a client certificate from the cluster CA is required".into(),
        });
    };
    let user = common_name(leaf).map_err(|reason| Rejection {
        status: 401,
        message: format!("Unauthorized: unreadable client certificate: {reason}"),
    })?;
    if user != APISERVER_CLIENT_USER {
        return Err(Rejection {
            status: 403,
            message: format!(
                "Forbidden: user {user:?} may not use the agent; only the API servers ({APISERVER_CLIENT_USER}) may"
            ),
        });
    }
    Ok(())
}

fn common_name(der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    // Go's crypto/x509 (and so Kubernetes) keeps the last CN when there are several.
    let cn = cert
        .subject()
        .iter_common_name()
        .last()
        .ok_or_else(|| "no common name".to_string())?;
    cn.as_str().map(str::to_string).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::UnixTime;

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    fn client(ca: &Ca, user: &str, group: &str) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, user);
        params.distinguished_name.push(DnType::OrganizationName, group);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
        CertificateDer::from(cert.der().to_vec())
    }

    /// The verifier the server's TLS layer runs, for the cluster CA `ca`.
    fn handshake_accepts(ca: &Ca, leaf: &CertificateDer<'_>) -> bool {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.cert.der().to_vec())).unwrap();
        let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .unwrap();
        v.verify_client_cert(leaf, &[], UnixTime::now()).is_ok()
    }

    #[test]
    fn only_the_api_servers_identity_is_admitted() {
        let cluster = ca("cluster");
        let apiserver = client(&cluster, APISERVER_CLIENT_USER, "skiff:apiservers");
        assert!(handshake_accepts(&cluster, &apiserver));
        assert_eq!(check_client(Some(&[apiserver])), Ok(()));

        let node = client(&cluster, "system:node:n1", "system:nodes");
        assert!(handshake_accepts(&cluster, &node), "a node cert chains to the CA");
        let e = check_client(Some(&[node])).unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.message.contains("system:node:n1"), "{}", e.message);

        let admin = client(&cluster, "admin", "system:masters");
        assert_eq!(check_client(Some(&[admin])).unwrap_err().status, 403);
    }

    #[test]
    fn a_certificate_from_another_ca_fails_the_handshake() {
        let cluster = ca("cluster");
        let other = ca("cluster");
        let forged = client(&other, APISERVER_CLIENT_USER, "skiff:apiservers");
        assert!(!handshake_accepts(&cluster, &forged));
    }

    #[test]
    fn no_certificate_is_a_401() {
        assert_eq!(check_client(None).unwrap_err().status, 401);
        assert_eq!(check_client(Some(&[])).unwrap_err().status, 401);
    }

    #[test]
    fn serving_config_builds_from_a_pem_ca() {
        let cluster = ca("cluster");
        let pem = cluster.cert.pem();
        let cfg = server_config(pem.as_bytes(), IpAddr::from([10, 0, 0, 1])).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(server_config(b"not a pem", IpAddr::from([10, 0, 0, 1])).is_err());
    }
}

//! The rustls client configuration every connection of a run shares: the kubeconfig's CA as
//! the only root, its client certificate when it has one, ring as the crypto provider.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use super::error::LoadgenError;
use super::kubeconfig::Credentials;

/// ALPN protocols offered: `h2` first when HTTP/2 is wanted, as Go's client does.
pub fn alpn(http2: bool) -> Vec<Vec<u8>> {
    if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    }
}

pub fn client_config(creds: &Credentials, http2: bool) -> Result<Arc<ClientConfig>, LoadgenError> {
    let tls = |m: String| LoadgenError::Tls(m);
    let mut roots = RootCertStore::empty();
    for cert in certs(&creds.ca_pem, "CA")? {
        roots.add(cert).map_err(|e| tls(format!("CA certificate: {e}")))?;
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match &creds.client_cert {
        Some((cert_pem, key_pem)) => {
            let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .map_err(|e| tls(format!("client key: {e}")))?
                .ok_or_else(|| tls("client key: no private key in the PEM".into()))?;
            builder
                .with_client_auth_cert(certs(cert_pem, "client")?, key)
                .map_err(|e| tls(format!("client certificate: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn(http2);
    Ok(Arc::new(config))
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, LoadgenError> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadgenError::Tls(format!("{what} certificate: {e}")))?;
    if certs.is_empty() {
        return Err(LoadgenError::Tls(format!(
            "{what} certificate: no certificate in the PEM"
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(client: bool) -> Credentials {
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).expect("ca");
        let leaf = rcgen::generate_simple_self_signed(vec!["admin".into()]).expect("leaf");
        Credentials {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: ca.cert.pem().into_bytes(),
            client_cert: client.then(|| (leaf.cert.pem().into_bytes(), leaf.key_pair.serialize_pem().into_bytes())),
            token: (!client).then(|| "t".to_string()),
        }
    }

    #[test]
    fn builds_with_and_without_a_client_certificate() {
        let c = client_config(&creds(true), true).expect("config");
        assert!(c.client_auth_cert_resolver.has_certs());
        assert_eq!(c.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        let c = client_config(&creds(false), false).expect("config");
        assert!(!c.client_auth_cert_resolver.has_certs());
        assert_eq!(c.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn refuses_pem_without_certificates_or_keys() {
        let mut c = creds(true);
        c.ca_pem = b"garbage".to_vec();
        assert!(matches!(client_config(&c, true), Err(LoadgenError::Tls(m)) if m.contains("CA")));
        let mut c = creds(true);
        if let Some((_, key)) = &mut c.client_cert {
            *key = b"no key here".to_vec();
        }
        assert!(matches!(client_config(&c, true), Err(LoadgenError::Tls(m)) if m.contains("client key")));
    }
}

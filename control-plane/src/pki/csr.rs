//! Certificates from PKCS#10 certificate signing requests: what the CSR API's signer issues.
//! The request's signature is checked (proof that the requester holds the key), its subject is
//! kept byte for byte, and the certificate is a client certificate from the cluster CA.

use rcgen::{CertificateParams, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};

use super::{finish_leaf, issuer, pem, set_validity, CaBundle, PkiError, LEAF_LIFETIME};

/// Who a request names: its common name and organizations (Kubernetes' user and groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// The raw DER `Name`, kept as is in the certificate.
    raw: Vec<u8>,
}

fn bad(reason: impl std::fmt::Display) -> PkiError {
    PkiError::BadCsr {
        reason: reason.to_string(),
    }
}

fn der_of(csr_pem: &str) -> Result<Vec<u8>, PkiError> {
    let mut reader = csr_pem.as_bytes();
    loop {
        match rustls_pemfile::read_one(&mut reader).map_err(|e| bad(format!("reading the PEM: {e:?}")))? {
            Some(rustls_pemfile::Item::Csr(der)) => return Ok(der.as_ref().to_vec()),
            Some(_) => continue,
            None => return Err(bad("no CERTIFICATE REQUEST block in the PEM")),
        }
    }
}

/// Reads a PEM request, checking its signature.
pub fn read(csr_pem: &str) -> Result<Subject, PkiError> {
    use x509_parser::prelude::FromDer;
    let der = der_of(csr_pem)?;
    let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).map_err(bad)?;
    req.verify_signature()
        .map_err(|_| bad("its signature does not verify"))?;
    let subject = &req.certification_request_info.subject;
    let text = |v: Result<&str, _>| v.map(str::to_string).map_err(|_| bad("a subject name is not a string"));
    let common_name = match subject.iter_common_name().last() {
        Some(cn) => text(cn.as_str())?,
        None => String::new(),
    };
    let organizations = subject
        .iter_organization()
        .map(|o| text(o.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Subject {
        common_name,
        organizations,
        raw: subject.as_raw().to_vec(),
    })
}

/// A client certificate (PEM) for the request's key and subject, signed by the cluster CA.
pub fn sign_client(ca: &CaBundle, csr_pem: &str) -> Result<String, PkiError> {
    let subject = read(csr_pem)?;
    let request = CertificateSigningRequestParams::from_pem(csr_pem).map_err(bad)?;
    let (ca_key, issuer, ca_subject) = issuer(ca)?;
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_LIFETIME)?;
    let draft = params
        .signed_by(&request.public_key, &issuer, &ca_key)
        .map_err(|source| PkiError::Signing { what: "client", source })?;
    let der = finish_leaf(draft.der(), &ca_subject, &subject.raw, &ca_key, "client")?;
    Ok(pem("CERTIFICATE", &der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::identity_from_der;

    /// A CSR for `cn` in `orgs`, as `openssl req -new` or kubelet would send it.
    fn csr(cn: &str, orgs: &[&str]) -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for o in orgs {
            params.distinguished_name.push(rcgen::DnType::OrganizationName, *o);
        }
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.serialize_request(&key).expect("csr").pem().expect("pem")
    }

    #[test]
    fn a_signed_request_names_its_subject() {
        let ca = CaBundle::generate("test-ca").expect("ca");
        let req = csr("system:node:n3", &["system:nodes"]);
        let s = read(&req).expect("readable");
        assert_eq!(s.common_name, "system:node:n3");
        assert_eq!(s.organizations, vec!["system:nodes"]);
        let cert = sign_client(&ca, &req).expect("signed");
        let der = rustls_pemfile::certs(&mut cert.as_bytes())
            .next()
            .expect("one cert")
            .expect("pem");
        let who = identity_from_der(&der).expect("identity");
        assert_eq!(who.name, "system:node:n3");
        assert!(who.groups.contains(&"system:nodes".to_string()));
        // The CA verifies it: a TLS server built on this CA would accept it.
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("x509");
        let ca_der = rustls_pemfile::certs(&mut ca.cert_pem.as_bytes())
            .next()
            .expect("ca")
            .expect("pem");
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).expect("ca x509");
        parsed
            .verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
    }

    #[test]
    fn garbage_and_tampered_requests_are_refused() {
        assert!(matches!(read("not pem"), Err(PkiError::BadCsr { .. })));
        let ca = CaBundle::generate("test-ca").expect("ca");
        assert!(matches!(read(&ca.cert_pem), Err(PkiError::BadCsr { .. })));
        let req = csr("alice", &[]);
        let mut der = der_of(&req).expect("der");
        // Flip a byte of the common name: the signature no longer matches.
        if let Some(pos) = der.windows(5).position(|w| w == b"alice") {
            der[pos] = b'b';
        }
        let tampered = pem("CERTIFICATE REQUEST", &der);
        assert!(read(&tampered).is_err());
    }
}

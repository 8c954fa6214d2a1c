//! Cluster PKI: the CA, serving and client certificates, kubeconfigs, and the identity a client
//! certificate carries (CN = user name, one O attribute per group, as Kubernetes reads them).
//!
//! rcgen 0.13 keeps at most one value per attribute type in a subject, so a certificate naming two
//! groups cannot be expressed with it. Leaf certificates are therefore made in two steps: rcgen
//! builds and signs a draft (key, validity, SANs, extensions), then [`finish_leaf`] swaps the
//! draft's issuer and subject names for DER written here and signs the result again with the CA
//! key. The issuer name is copied byte for byte from the CA certificate, which is what verifiers
//! compare when they build a path, so leaves chain to a CA made by any tool, not only this one.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::SignatureScheme;
use x509_parser::extensions::ParsedExtension;

/// The group Kubernetes adds to every authenticated user.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Names every API server certificate is valid for, whatever the caller asks for.
pub const DEFAULT_SERVER_SANS: [&str; 6] = [
    "localhost",
    "127.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

pub mod csr;

const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Certificates start a little in the past so a peer whose clock lags still accepts them
/// (kubeadm backdates by the same amount).
const BACKDATE: Duration = Duration::from_secs(5 * 60);

// DER tags and the attribute OIDs (2.5.4.3 commonName, 2.5.4.10 organizationName) written here.
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_UTF8: u8 = 0x0c;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_VERSION: u8 = 0xa0;
const OID_COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];
const OID_ORGANIZATION: [u8; 3] = [0x55, 0x04, 0x0a];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating the {what} key: {source}")]
    KeyGeneration { what: &'static str, source: rcgen::Error },
    #[error("signing the {what} certificate: {source}")]
    Signing { what: &'static str, source: rcgen::Error },
    #[error("signing the {what} certificate with the CA key: {source}")]
    Resigning { what: &'static str, source: rustls::Error },
    #[error("the CA key uses an algorithm skiff cannot sign with")]
    UnsupportedCaKey,
    #[error("reading the CA private key: {source}")]
    CaKey { source: rcgen::Error },
    #[error("reading the CA certificate: {reason}")]
    CaCert { reason: String },
    #[error("invalid subject alternative name {san:?}: {reason}")]
    InvalidSan { san: String, reason: String },
    #[error("parsing the client certificate: {reason}")]
    BadCertificate { reason: String },
    #[error("the client certificate has no common name")]
    NoCommonName,
    #[error("the {what} of the client certificate is not a readable string")]
    UnreadableName { what: &'static str },
    #[error("the system clock is before 1970")]
    Clock,
    #[error("malformed DER in the draft certificate: {what}")]
    Der { what: &'static str },
    #[error("invalid certificate signing request: {reason}")]
    BadCsr { reason: String },
}

/// Who a request comes from, as Kubernetes' `user.Info` has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
    /// Empty for certificate users: X.509 subjects carry no UID.
    pub uid: String,
}

impl UserInfo {
    /// Adds `system:authenticated` unless the groups already hold it.
    pub fn authenticated(name: String, uid: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
        UserInfo { name, groups, uid }
    }
}

/// The cluster CA: certificate and PKCS#8 private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl CaBundle {
    /// A self-signed ECDSA P-256 CA valid for ten years.
    pub fn generate(common_name: &str) -> Result<CaBundle, PkiError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|source| PkiError::KeyGeneration { what: "CA", source })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, CA_LIFETIME)?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Signing { what: "CA", source })?;
        Ok(CaBundle {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A serving certificate for the API server, valid for one year, for `sans` (IP addresses or DNS
/// names) plus [`DEFAULT_SERVER_SANS`]. Returns `(cert_pem, key_pem)`.
pub fn issue_server_cert(ca: &CaBundle, common_name: &str, sans: &[String]) -> Result<(String, String), PkiError> {
    let mut names: Vec<&str> = Vec::new();
    for san in sans.iter().map(String::as_str).chain(DEFAULT_SERVER_SANS) {
        if !names.contains(&san) {
            names.push(san);
        }
    }
    let sans = names.into_iter().map(parse_san).collect::<Result<Vec<_>, _>>()?;
    issue(
        ca,
        "server",
        &subject_name(common_name, &[]),
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
    )
}

/// A client certificate for `user` in `groups` (CN = user, one O per group), valid for one year.
/// Returns `(cert_pem, key_pem)`.
pub fn issue_client_cert(ca: &CaBundle, user: &str, groups: &[String]) -> Result<(String, String), PkiError> {
    issue(
        ca,
        "client",
        &subject_name(user, groups),
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
    )
}

/// The user a verified client certificate names: CN is the user, every O a group, plus
/// `system:authenticated`. A certificate without a CN authenticates no one, as in Kubernetes.
pub fn identity_from_der(cert_der: &[u8]) -> Result<UserInfo, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PkiError::BadCertificate { reason: e.to_string() })?;
    let subject = cert.subject();
    // Go's crypto/x509, which Kubernetes relies on, keeps the last CN when there are several.
    let name = match subject.iter_common_name().last() {
        Some(cn) => cn
            .as_str()
            .map_err(|_| PkiError::UnreadableName { what: "common name" })?,
        None => return Err(PkiError::NoCommonName),
    };
    if name.is_empty() {
        return Err(PkiError::NoCommonName);
    }
    let groups = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_string))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PkiError::UnreadableName { what: "organization" })?;
    Ok(UserInfo::authenticated(name.to_string(), String::new(), groups))
}

/// A kubeconfig that authenticates `user` with a client certificate.
pub fn kubeconfig(
    cluster_name: &str,
    server_url: &str,
    ca_pem: &str,
    user: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> String {
    let credentials = [
        ("client-certificate-data", BASE64.encode(client_cert_pem)),
        ("client-key-data", BASE64.encode(client_key_pem)),
    ];
    render_kubeconfig(cluster_name, server_url, ca_pem, user, &credentials)
}

/// A kubeconfig that authenticates `user` with a bearer token.
pub fn token_kubeconfig(cluster_name: &str, server_url: &str, ca_pem: &str, user: &str, token: &str) -> String {
    render_kubeconfig(cluster_name, server_url, ca_pem, user, &[("token", yaml_str(token))])
}

/// One cluster, one user and the context joining them, named `user@cluster` as kubeadm does.
fn render_kubeconfig(
    cluster_name: &str,
    server_url: &str,
    ca_pem: &str,
    user: &str,
    credentials: &[(&str, String)],
) -> String {
    let (cluster, user, context) = (
        yaml_str(cluster_name),
        yaml_str(user),
        yaml_str(&format!("{user}@{cluster_name}")),
    );
    let mut lines = vec![
        "apiVersion: v1".to_string(),
        "kind: Config".to_string(),
        "clusters:".to_string(),
        format!("- name: {cluster}"),
        "  cluster:".to_string(),
        format!("    server: {}", yaml_str(server_url)),
        format!("    certificate-authority-data: {}", BASE64.encode(ca_pem)),
        "users:".to_string(),
        format!("- name: {user}"),
        "  user:".to_string(),
    ];
    lines.extend(credentials.iter().map(|(key, value)| format!("    {key}: {value}")));
    lines.extend([
        "contexts:".to_string(),
        format!("- name: {context}"),
        "  context:".to_string(),
        format!("    cluster: {cluster}"),
        format!("    user: {user}"),
        format!("current-context: {context}"),
        "preferences: {}".to_string(),
        String::new(),
    ]);
    lines.join("\n")
}

/// A JSON string literal is a valid YAML double-quoted scalar, whatever characters it holds.
fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn parse_san(san: &str) -> Result<SanType, PkiError> {
    if san.is_empty() {
        return Err(PkiError::InvalidSan {
            san: String::new(),
            reason: "empty".into(),
        });
    }
    if let Ok(ip) = san.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    rcgen::Ia5String::try_from(san)
        .map(SanType::DnsName)
        .map_err(|e| PkiError::InvalidSan {
            san: san.to_string(),
            reason: e.to_string(),
        })
}

fn set_validity(params: &mut CertificateParams, lifetime: Duration) -> Result<(), PkiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::Clock)?;
    // Whole seconds: X.509 times have no fractions.
    let start = Duration::from_secs(now.saturating_sub(BACKDATE).as_secs());
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + start;
    params.not_after = epoch + start + BACKDATE + lifetime;
    Ok(())
}

/// The CA's key, the CA as rcgen wants an issuer, and the CA's raw subject name. Only the key
/// and key identifier of that issuer reach a draft, since the issuer name is replaced afterwards.
fn issuer(ca: &CaBundle) -> Result<(KeyPair, rcgen::Certificate, Vec<u8>), PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|source| PkiError::CaKey { source })?;
    let (ca_subject, ca_key_id) = read_ca_cert(&ca.cert_pem)?;
    let mut issuer_params = CertificateParams::default();
    issuer_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    issuer_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    if let Some(id) = ca_key_id {
        issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(id);
    }
    let issuer = issuer_params
        .self_signed(&ca_key)
        .map_err(|source| PkiError::Signing { what: "CA", source })?;
    Ok((ca_key, issuer, ca_subject))
}

/// Builds, signs and renames a leaf certificate; see the module docs for why in two steps.
fn issue(
    ca: &CaBundle,
    what: &'static str,
    subject: &[u8],
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String), PkiError> {
    let (ca_key, issuer, ca_subject) = issuer(ca)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| PkiError::KeyGeneration { what, source })?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_LIFETIME)?;
    let draft = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|source| PkiError::Signing { what, source })?;

    let der = finish_leaf(draft.der(), &ca_subject, subject, &ca_key, what)?;
    Ok((pem("CERTIFICATE", &der), key.serialize_pem()))
}

/// The CA certificate's raw subject name and subject key identifier (if it has one).
fn read_ca_cert(cert_pem: &str) -> Result<(Vec<u8>, Option<Vec<u8>>), PkiError> {
    let der = match rustls_pemfile::certs(&mut cert_pem.as_bytes()).next() {
        Some(Ok(der)) => der,
        Some(Err(e)) => return Err(PkiError::CaCert { reason: e.to_string() }),
        None => {
            return Err(PkiError::CaCert {
                reason: "no CERTIFICATE block in the PEM".into(),
            })
        }
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::CaCert { reason: e.to_string() })?;
    let key_id = cert.iter_extensions().find_map(|ext| match ext.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
        _ => None,
    });
    Ok((cert.subject().as_raw().to_vec(), key_id))
}

/// Replaces the issuer and subject names of a signed draft and signs it again with `ca_key`.
///
/// A certificate is `SEQUENCE { tbsCertificate, signatureAlgorithm, signature }` and its
/// tbsCertificate `SEQUENCE { [0] version, serial, signature, issuer, validity, subject, ... }`
/// (RFC 5280 4.1); rcgen always writes the version, so issuer and subject are elements 3 and 5.
fn finish_leaf(
    draft: &[u8],
    issuer: &[u8],
    subject: &[u8],
    ca_key: &KeyPair,
    what: &'static str,
) -> Result<Vec<u8>, PkiError> {
    let (cert, _) = split_tlv(draft)?;
    let (tbs, rest) = split_tlv(cert.content)?;
    let (algorithm, _) = split_tlv(rest)?;
    let mut fields = Vec::new();
    let mut remaining = tbs.content;
    while !remaining.is_empty() {
        let (field, rest) = split_tlv(remaining)?;
        fields.push(field.whole);
        remaining = rest;
    }
    if fields.len() < 7 || fields[0].first() != Some(&TAG_VERSION) {
        return Err(PkiError::Der {
            what: "tbsCertificate fields",
        });
    }
    fields[3] = issuer;
    fields[5] = subject;
    let tbs = der(TAG_SEQUENCE, &fields.concat());

    let scheme = signature_scheme(ca_key.algorithm()).ok_or(PkiError::UnsupportedCaKey)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca_key.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|source| PkiError::Resigning { what, source })?
        .choose_scheme(&[scheme])
        .ok_or(PkiError::UnsupportedCaKey)?;
    let signature = signer
        .sign(&tbs)
        .map_err(|source| PkiError::Resigning { what, source })?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(&signature);
    Ok(der(
        TAG_SEQUENCE,
        &[tbs, algorithm.whole.to_vec(), der(TAG_BIT_STRING, &bits)].concat(),
    ))
}

/// The TLS signature scheme that produces the same signature rcgen would with a key of `alg`.
fn signature_scheme(alg: &'static rcgen::SignatureAlgorithm) -> Option<SignatureScheme> {
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Some(SignatureScheme::ECDSA_NISTP256_SHA256)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Some(SignatureScheme::ECDSA_NISTP384_SHA384)
    } else if alg == &rcgen::PKCS_ED25519 {
        Some(SignatureScheme::ED25519)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        Some(SignatureScheme::RSA_PKCS1_SHA256)
    } else {
        None
    }
}

/// `Name` with one relative distinguished name per group (O) and then the common name, the order
/// Go's crypto/x509 writes them in.
fn subject_name(common_name: &str, groups: &[String]) -> Vec<u8> {
    let attribute = |oid: &[u8], value: &str| {
        let pair = [der(TAG_OID, oid), der(TAG_UTF8, value.as_bytes())].concat();
        der(TAG_SET, &der(TAG_SEQUENCE, &pair))
    };
    let mut rdns: Vec<u8> = groups.iter().flat_map(|g| attribute(&OID_ORGANIZATION, g)).collect();
    rdns.extend(attribute(&OID_COMMON_NAME, common_name));
    der(TAG_SEQUENCE, &rdns)
}

/// One DER element: its full encoding and its content.
struct Tlv<'a> {
    whole: &'a [u8],
    content: &'a [u8],
}

/// Splits the first DER element off `input` (single-byte tags only, which is all X.509 uses).
fn split_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), PkiError> {
    let truncated = PkiError::Der {
        what: "truncated element",
    };
    let first = *input.get(1).ok_or(truncated)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(PkiError::Der {
                what: "length encoding",
            });
        }
        let bytes = input.get(2..2 + count).ok_or(PkiError::Der {
            what: "truncated length",
        })?;
        (2 + count, bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)))
    };
    let end = header.checked_add(len).ok_or(PkiError::Der {
        what: "length overflow",
    })?;
    if end > input.len() {
        return Err(PkiError::Der {
            what: "element longer than its container",
        });
    }
    let tlv = Tlv {
        whole: &input[..end],
        content: &input[header..end],
    };
    Ok((tlv, &input[end..]))
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 output is ASCII, so splitting it by bytes keeps every line valid UTF-8.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use x509_parser::prelude::{GeneralName, X509Certificate};

    /// kubectl (installed on every machine the tests run on, CI included: it is our
    /// compatibility target). `KUBECTL` overrides the path.
    pub(crate) fn kubectl() -> std::path::PathBuf {
        let path = std::env::var_os("KUBECTL")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/usr/bin/kubectl".into());
        assert!(path.is_file(), "kubectl not found at {}", path.display());
        path
    }

    fn first_der(pem: &str) -> Vec<u8> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
        let der = first_der(pem);
        let (rest, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(rest.is_empty());
        f(&cert)
    }

    fn years(cert: &X509Certificate<'_>) -> i64 {
        let v = cert.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) / (365 * 24 * 60 * 60)
    }

    /// Checks `leaf` chains to `ca` with the same verifier rustls uses.
    fn verifies(ca: &CaBundle, leaf_pem: &str, server: bool) -> bool {
        use rustls::client::danger::ServerCertVerifier;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(first_der(&ca.cert_pem).into()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let leaf = rustls::pki_types::CertificateDer::from(first_der(leaf_pem));
        let now = rustls::pki_types::UnixTime::now();
        if server {
            let v = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
            let name = rustls::pki_types::ServerName::try_from("kubernetes.default.svc").unwrap();
            v.verify_server_cert(&leaf, &[], &name, &[], now).is_ok()
        } else {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
            v.verify_client_cert(&leaf, &[], now).is_ok()
        }
    }

    #[test]
    fn ca_is_a_ten_year_signing_ca() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        assert!(!format!("{ca:?}").contains(&ca.key_pem), "Debug must not print the key");
        with_cert(&ca.cert_pem, |cert| {
            assert!(cert.is_ca());
            assert_eq!(
                cert.subject().iter_common_name().next().unwrap().as_str().unwrap(),
                "skiff-ca"
            );
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign() && ku.crl_sign());
            assert_eq!(years(cert), 10);
            assert!(cert.validity().is_valid());
        });
    }

    #[test]
    fn server_cert_has_default_and_requested_sans() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let sans = vec![
            "10.0.0.7".to_string(),
            "master-1.example".to_string(),
            "localhost".to_string(),
        ];
        let (cert_pem, key_pem) = issue_server_cert(&ca, "kube-apiserver", &sans).unwrap();
        assert!(key_pem.contains("PRIVATE KEY"));
        assert!(verifies(&ca, &cert_pem, true));
        with_cert(&cert_pem, |cert| {
            let names = &cert.subject_alternative_name().unwrap().unwrap().value.general_names;
            let mut dns = Vec::new();
            let mut ips = Vec::new();
            for n in names {
                match n {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                    other => panic!("unexpected SAN {other:?}"),
                }
            }
            assert_eq!(
                dns,
                [
                    "master-1.example",
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local"
                ]
            );
            assert_eq!(ips, [vec![10, 0, 0, 7], vec![127, 0, 0, 1]]);
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth && !eku.client_auth);
            assert!(!cert.is_ca());
            assert_eq!(years(cert), 1);
            assert_eq!(
                cert.issuer().as_raw(),
                with_cert(&ca.cert_pem, |ca| ca.subject().as_raw().to_vec())
            );
        });
    }

    #[test]
    fn bad_san_is_an_error() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let err = issue_server_cert(&ca, "x", &["bad\u{e9}name".to_string()]).unwrap_err();
        assert!(matches!(err, PkiError::InvalidSan { .. }), "{err}");
        assert!(issue_server_cert(&ca, "x", &[String::new()]).is_err());
    }

    #[test]
    fn client_cert_carries_user_and_every_group() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let groups = vec![
            "system:masters".to_string(),
            "dev, ops".to_string(),
            "system:nodes".to_string(),
        ];
        let (cert_pem, _) = issue_client_cert(&ca, "alice", &groups).unwrap();
        assert!(verifies(&ca, &cert_pem, false));
        with_cert(&cert_pem, |cert| {
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth && !eku.server_auth);
            // Subject and issuer were rewritten: the AKI must still name the CA's key.
            let aki = cert
                .iter_extensions()
                .any(|e| matches!(e.parsed_extension(), ParsedExtension::AuthorityKeyIdentifier(_)));
            assert!(aki);
        });
        let user = identity_from_der(&first_der(&cert_pem)).unwrap();
        assert_eq!(
            user,
            UserInfo {
                name: "alice".into(),
                groups: vec![
                    "system:masters".into(),
                    "dev, ops".into(),
                    "system:nodes".into(),
                    AUTHENTICATED_GROUP.into()
                ],
                uid: String::new(),
            }
        );
    }

    #[test]
    fn client_cert_without_groups() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let (cert_pem, _) = issue_client_cert(&ca, "system:node:worker-1", &[]).unwrap();
        assert!(verifies(&ca, &cert_pem, false));
        let user = identity_from_der(&first_der(&cert_pem)).unwrap();
        assert_eq!(user.name, "system:node:worker-1");
        assert_eq!(user.groups, [AUTHENTICATED_GROUP]);
    }

    #[test]
    fn leaf_from_another_ca_does_not_verify() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let other = CaBundle::generate("skiff-ca").unwrap();
        let (cert_pem, _) = issue_client_cert(&other, "mallory", &["system:masters".into()]).unwrap();
        assert!(!verifies(&ca, &cert_pem, false));
    }

    #[test]
    fn long_subjects_use_long_form_lengths() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let groups: Vec<String> = (0..40).map(|i| format!("group-{i:03}-{}", "x".repeat(20))).collect();
        let (cert_pem, _) = issue_client_cert(&ca, "bob", &groups).unwrap();
        assert!(verifies(&ca, &cert_pem, false));
        let user = identity_from_der(&first_der(&cert_pem)).unwrap();
        assert_eq!(user.groups.len(), 41);
        assert_eq!(user.groups[39], groups[39]);
    }

    #[test]
    fn certificate_without_cn_is_no_identity() {
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let (cert_pem, _) = issue_client_cert(&ca, "", &["system:masters".into()]).unwrap();
        assert!(matches!(
            identity_from_der(&first_der(&cert_pem)),
            Err(PkiError::NoCommonName)
        ));
        assert!(matches!(
            identity_from_der(b"not a certificate"),
            Err(PkiError::BadCertificate { .. })
        ));
    }

    #[test]
    fn garbage_ca_is_an_error() {
        let mut ca = CaBundle::generate("skiff-ca").unwrap();
        ca.cert_pem = "nothing here".into();
        assert!(matches!(issue_client_cert(&ca, "a", &[]), Err(PkiError::CaCert { .. })));
        let mut ca = CaBundle::generate("skiff-ca").unwrap();
        ca.key_pem = "nothing here".into();
        assert!(matches!(issue_client_cert(&ca, "a", &[]), Err(PkiError::CaKey { .. })));
    }

    #[test]
    fn der_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 70_000] {
            let content = vec![7u8; len];
            let encoded = der(TAG_SEQUENCE, &content);
            let (tlv, rest) = split_tlv(&encoded).unwrap();
            assert_eq!(tlv.content.len(), len);
            assert!(rest.is_empty());
        }
        assert!(split_tlv(&[0x30, 0x05, 1]).is_err());
        assert!(split_tlv(&[0x30]).is_err());
    }

    fn yaml(text: &str) -> serde_yaml::Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn kubeconfig_is_yaml_with_base64_credentials() {
        let text = kubeconfig(
            "skiff",
            "https://127.0.0.1:6443",
            "CA PEM",
            "admin: \"x\"",
            "CERT",
            "KEY",
        );
        let doc = yaml(&text);
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["kind"], "Config");
        assert_eq!(doc["current-context"], "admin: \"x\"@skiff");
        assert_eq!(doc["contexts"][0]["name"], doc["current-context"]);
        assert_eq!(doc["contexts"][0]["context"]["cluster"], "skiff");
        assert_eq!(doc["contexts"][0]["context"]["user"], "admin: \"x\"");
        let cluster = &doc["clusters"][0];
        assert_eq!(cluster["name"], "skiff");
        assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(
            cluster["cluster"]["certificate-authority-data"],
            BASE64.encode("CA PEM").as_str()
        );
        let user = &doc["users"][0]["user"];
        assert_eq!(user["client-certificate-data"], BASE64.encode("CERT").as_str());
        assert_eq!(user["client-key-data"], BASE64.encode("KEY").as_str());

        let doc = yaml(&token_kubeconfig(
            "skiff",
            "https://[::1]:6443",
            "CA PEM",
            "bot",
            "s3cr#t: x",
        ));
        assert_eq!(doc["users"][0]["user"]["token"], "s3cr#t: x");
        assert_eq!(doc["users"][0]["name"], "bot");
        assert_eq!(doc["current-context"], "bot@skiff");
    }

    #[test]
    fn kubectl_reads_the_kubeconfig() {
        let kubectl = kubectl();
        let ca = CaBundle::generate("skiff-ca").unwrap();
        let (cert, key) = issue_client_cert(&ca, "admin", &["system:masters".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            kubeconfig("skiff", "https://127.0.0.1:6443", &ca.cert_pem, "admin", &cert, &key),
        )
        .unwrap();
        let view = |jsonpath: &str| {
            let out = std::process::Command::new(&kubectl)
                .arg("config")
                .arg("view")
                .arg("--kubeconfig")
                .arg(&path)
                .args(["--raw", "-o", &format!("jsonpath={jsonpath}")])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(view("{.current-context}"), "admin@skiff");
        assert_eq!(view("{.users[0].user.client-key-data}"), BASE64.encode(&key));
        assert_eq!(
            view("{.clusters[0].cluster.certificate-authority-data}"),
            BASE64.encode(&ca.cert_pem)
        );
    }
}

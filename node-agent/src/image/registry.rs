//! A client for one repository on a registry speaking the OCI distribution
//! API: manifests and blobs, with authentication on demand, bounded sizes
//! and every error naming the registry and what went wrong.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use tokio::io::AsyncWriteExt;

use super::auth;
use super::digest::{self, Hasher};
use super::manifest;
use super::{Credentials, ImageError, PullOptions, Reference, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while reading a response; large layers may take long in
/// total, so there is no overall limit on blob downloads.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const MANIFEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP client shared by all pulls of a store (keeps connections).
pub fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("skiff-node-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ImageError::Registry {
            registry: "(all)".into(),
            reason: format!("cannot build HTTP client: {}", error_chain(&e)),
        })
}

/// An error and its causes on one line (reqwest's own message hides the
/// interesting part, like "Connection refused", in its sources).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Plain HTTP for loopback registries (as Docker and containerd allow) and
/// those the operator listed; HTTPS for everything else.
pub fn scheme_for(registry: &str, insecure: &[String]) -> &'static str {
    if insecure.iter().any(|i| i == registry || i == host_of(registry)) {
        return "http";
    }
    let host = host_of(registry);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        "http"
    } else {
        "https"
    }
}

/// `host:port` -> `host`, `[::1]:5000` -> `::1`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// A manifest as fetched, already checked against the digest it was asked
/// by or the one the registry announced.
#[derive(Debug)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub digest: String,
}

pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    reference: Reference,
    creds: Option<Credentials>,
    /// `Authorization` value once a challenge has been answered; reused for
    /// the rest of the pull. Never held across an await.
    authorization: Mutex<Option<String>>,
}

impl RegistryClient {
    pub fn new(http: reqwest::Client, reference: &Reference, opts: &PullOptions) -> Self {
        let scheme = scheme_for(reference.registry(), &opts.insecure_registries);
        RegistryClient {
            http,
            base: format!("{scheme}://{}", reference.api_host()),
            reference: reference.clone(),
            creds: opts.auth.clone(),
            authorization: Mutex::new(None),
        }
    }

    fn registry_error(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Registry {
            registry: self.reference.registry().to_string(),
            reason: reason.into(),
        }
    }

    fn current_auth(&self) -> Option<String> {
        self.authorization.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn send_once(&self, url: &str, accept: Option<&str>, timeout: Option<Duration>) -> Result<Response> {
        let mut req = self.http.get(url);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(auth) = self.current_auth() {
            req = req.header(AUTHORIZATION, auth);
        }
        req.send().await.map_err(|e| {
            let what = if e.is_timeout() { "timed out" } else { "request failed" };
            self.registry_error(format!("{what}: GET {url}: {}", error_chain(&e)))
        })
    }

    /// GET with authentication: on a 401, answer the challenge and retry
    /// once. Any other status is returned for the caller to interpret.
    async fn get(&self, url: &str, accept: Option<&str>, timeout: Option<Duration>) -> Result<Response> {
        let resp = self.send_once(url, accept, timeout).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = auth::pick_challenge(
            resp.headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let Some(challenge) = challenge else {
            return Err(self.unauthorized("401 without a usable WWW-Authenticate challenge"));
        };
        let header = match challenge.scheme.as_str() {
            "bearer" => {
                let scope = format!("repository:{}:pull", self.reference.repository());
                let token = auth::fetch_token(&self.http, &challenge, &scope, self.creds.as_ref())
                    .await
                    .map_err(|reason| self.unauthorized(reason))?;
                format!("Bearer {token}")
            }
            "basic" => match &self.creds {
                Some(c) => auth::basic_header(c),
                None => return Err(self.unauthorized("basic authentication required and no credentials given")),
            },
            other => return Err(self.unauthorized(format!("unsupported authentication scheme {other:?}"))),
        };
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(header);
        let resp = self.send_once(url, accept, timeout).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let detail = registry_message(resp).await;
            return Err(self.unauthorized(format!(
                "credentials rejected or access denied (the repository may not exist or need authorization){detail}"
            )));
        }
        Ok(resp)
    }

    fn unauthorized(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Unauthorized {
            registry: self.reference.registry().to_string(),
            reason: reason.into(),
        }
    }

    /// Maps a non-success status to an error (404 is the caller's business).
    async fn status_error(&self, resp: Response, url: &str) -> ImageError {
        let status = resp.status();
        let detail = registry_message(resp).await;
        match status {
            StatusCode::FORBIDDEN => self.unauthorized(format!("access denied to {url}{detail}")),
            StatusCode::TOO_MANY_REQUESTS => self.registry_error(format!("rate limited (429) on {url}{detail}")),
            s => self.registry_error(format!("GET {url} answered {s}{detail}")),
        }
    }

    /// Fetches a manifest by tag or digest. `expected` pins the digest
    /// (pulls by digest, index entries); otherwise the registry's
    /// `Docker-Content-Digest`, when sent, must match the content.
    pub async fn manifest(&self, what: &str, expected: Option<&str>) -> Result<FetchedManifest> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, self.reference.repository(), what);
        let resp = self.get(&url, Some(manifest::ACCEPT), Some(MANIFEST_TIMEOUT)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(ImageError::NotFound {
                reference: self.reference.to_string(),
            });
        }
        if !resp.status().is_success() {
            return Err(self.status_error(resp, &url).await);
        }
        let content_type = header_str(&resp, CONTENT_TYPE.as_str());
        let announced = header_str(&resp, "docker-content-digest");
        let bytes = self.read_limited(resp, manifest::MAX_MANIFEST_BYTES, &url).await?;
        let actual = digest::sha256_of(&bytes);
        let wanted = expected
            .map(str::to_string)
            .or(announced.filter(|d| digest::validate(d).is_ok()));
        if let Some(wanted) = wanted {
            if wanted != actual {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest of {}", self.reference),
                    expected: wanted,
                    actual,
                });
            }
        }
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest: actual,
        })
    }

    async fn blob_response(&self, digest: &str) -> Result<(Response, String)> {
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.reference.repository(), digest);
        let resp = self.get(&url, None, None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(self.registry_error(format!(
                "blob {digest} of {} is missing on the registry",
                self.reference
            )));
        }
        if !resp.status().is_success() {
            return Err(self.status_error(resp, &url).await);
        }
        Ok((resp, url))
    }

    /// A small blob (config) into memory, verified.
    pub async fn blob_bytes(&self, digest: &str, size: u64, limit: u64) -> Result<Vec<u8>> {
        if size > limit {
            return Err(self.registry_error(format!("blob {digest} is {size} bytes, over the {limit} limit")));
        }
        let (resp, url) = self.blob_response(digest).await?;
        let bytes = self.read_limited(resp, size, &url).await?;
        verify(digest, size, &digest::sha256_of(&bytes), bytes.len() as u64)?;
        Ok(bytes)
    }

    /// Streams a blob into `dest` (fsynced), verifying size and digest.
    /// `progress` gets the byte count after each chunk.
    pub async fn blob_to_file(
        &self,
        digest: &str,
        size: u64,
        dest: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let (mut resp, url) = self.blob_response(digest).await?;
        if resp.content_length().is_some_and(|len| len > size) {
            return Err(self.registry_error(format!("blob {digest} is larger than its descriptor says ({size})")));
        }
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| ImageError::io(format!("creating {}", dest.display()), e))?;
        let mut hasher = Hasher::default();
        progress(0);
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                self.registry_error(format!(
                    "reading {url} after {} bytes: {}",
                    hasher.len(),
                    error_chain(&e)
                ))
            })?;
            let Some(chunk) = chunk else { break };
            if hasher.len() + chunk.len() as u64 > size {
                return Err(self.registry_error(format!("blob {digest} is larger than its descriptor says ({size})")));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| ImageError::io(format!("writing {}", dest.display()), e))?;
            progress(hasher.len());
        }
        file.sync_all()
            .await
            .map_err(|e| ImageError::io(format!("syncing {}", dest.display()), e))?;
        let len = hasher.len();
        verify(digest, size, &hasher.finish(), len)
    }

    async fn read_limited(&self, mut resp: Response, limit: u64, url: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| self.registry_error(format!("reading {url}: {}", error_chain(&e))))?;
            let Some(chunk) = chunk else { break };
            if out.len() as u64 + chunk.len() as u64 > limit {
                return Err(self.registry_error(format!("response from {url} is larger than {limit} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// Size first (cheaper to explain), then digest.
pub fn verify(expected_digest: &str, expected_size: u64, actual_digest: &str, actual_size: u64) -> Result<()> {
    if actual_size != expected_size {
        return Err(ImageError::DigestMismatch {
            what: format!("blob {expected_digest} (size {expected_size})"),
            expected: expected_digest.to_string(),
            actual: format!("{actual_digest} ({actual_size} bytes)"),
        });
    }
    if actual_digest != expected_digest {
        return Err(ImageError::DigestMismatch {
            what: format!("blob {expected_digest}"),
            expected: expected_digest.to_string(),
            actual: actual_digest.to_string(),
        });
    }
    Ok(())
}

fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The first error of a registry's JSON error body, as `: CODE: message`,
/// or nothing.
async fn registry_message(resp: Response) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(bytes) = resp.bytes().await else {
        return String::new();
    };
    let Ok(body) = serde_json::from_slice::<Body>(&bytes[..bytes.len().min(64 * 1024)]) else {
        return String::new();
    };
    match body.errors.first() {
        Some(e) => format!(
            ": {}: {}",
            e.code.as_deref().unwrap_or("ERROR"),
            e.message.as_deref().unwrap_or("")
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_use_http() {
        let none: Vec<String> = vec![];
        assert_eq!(scheme_for("127.0.0.1:5000", &none), "http");
        assert_eq!(scheme_for("127.3.2.1", &none), "http");
        assert_eq!(scheme_for("localhost:5000", &none), "http");
        assert_eq!(scheme_for("[::1]:5000", &none), "http");
        assert_eq!(scheme_for("docker.io", &none), "https");
        assert_eq!(scheme_for("10.0.0.1:5000", &none), "https");
        let listed = vec!["reg.lan:5000".to_string(), "other.lan".to_string()];
        assert_eq!(scheme_for("reg.lan:5000", &listed), "http");
        assert_eq!(scheme_for("other.lan:443", &listed), "http");
        assert_eq!(scheme_for("reg.lan:6000", &listed), "https");
    }

    #[test]
    fn verify_checks_size_and_digest() {
        let d = digest::sha256_of(b"abc");
        assert!(verify(&d, 3, &d, 3).is_ok());
        assert!(matches!(verify(&d, 4, &d, 3), Err(ImageError::DigestMismatch { .. })));
        let other = digest::sha256_of(b"abd");
        assert!(matches!(
            verify(&d, 3, &other, 3),
            Err(ImageError::DigestMismatch { .. })
        ));
    }
}

//! Docker-style image references: `busybox`, `quay.io/a/b:v1`,
//! `localhost:5000/x@sha256:...`, normalized the way Docker does it so that
//! `busybox` and `docker.io/library/busybox:latest` name the same image.

use std::fmt;

use super::digest;
use super::ImageError;

const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses `[registry/]repository[:tag][@sha256:hex]`. Without a registry
    /// the image is on Docker Hub (one-component names get `library/`);
    /// without tag or digest the tag is `latest`.
    pub fn parse(input: &str) -> Result<Reference, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty reference"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }

        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                digest::validate(d).map_err(|reason| bad(&reason))?;
                (n, Some(d.to_string()))
            }
            None => (input, None),
        };

        // A ':' after the last '/' starts the tag; one before it is a port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_tag[..at], Some(&name_tag[at + 1..]))
            }
            None => (name_tag, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| bad(&reason))?;
        }

        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                validate_registry(first).map_err(|reason| bad(&reason))?;
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        validate_repository(&repository).map_err(|reason| bad(&reason))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad("name longer than 255 characters"));
        }

        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Registry as written in the reference (`docker.io`, `host:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Host (and port) to send API requests to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry's manifest endpoint for: the digest when
    /// there is one (it pins the content), else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let Some(first) = chars.next() else {
        return Err("empty tag".into());
    };
    if tag.len() > MAX_TAG_LEN {
        return Err(format!("tag longer than {MAX_TAG_LEN} characters"));
    }
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(format!("tag {tag:?} must start with a letter, digit or '_'"));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("tag {tag:?} contains invalid character {c:?}"));
    }
    Ok(())
}

fn validate_registry(host: &str) -> Result<(), String> {
    let ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok || host.starts_with(['.', '-', ':']) || host.ends_with(['.', '-', ':']) {
        return Err(format!("invalid registry host {host:?}"));
    }
    Ok(())
}

/// Components are `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("empty repository name".into());
    }
    if repo.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("repository name {repo:?} must be lowercase"));
    }
    for component in repo.split('/') {
        if !valid_component(component) {
            return Err(format!("invalid repository name component {component:?} in {repo:?}"));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or one or more "-", always followed by
        // an alphanumeric (guaranteed at the end by the check above).
        let sep_len = match b[i] {
            b'.' => 1,
            b'_' if b.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => b[i..].iter().take_while(|&&x| x == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        match b.get(i) {
            Some(&x) if alnum(x) => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn reason(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => panic!("{s} parsed as {r}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn docker_hub_short_names_are_normalized() {
        let r = parse("busybox");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(parse("library/busybox:latest"), r);
        assert_eq!(parse("docker.io/library/busybox"), r);
        assert_eq!(parse("index.docker.io/library/busybox"), r);
        assert_eq!(parse("bitnami/redis:7").to_string(), "docker.io/bitnami/redis:7");
    }

    #[test]
    fn registries_are_recognized_by_dot_colon_or_localhost() {
        let r = parse("127.0.0.1:5000/test/busybox:1");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "test/busybox");
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(parse("localhost/x").registry(), "localhost");
        assert_eq!(parse("quay.io/coreos/etcd").registry(), "quay.io");
        assert_eq!(parse("myhost:5000/x").registry(), "myhost:5000");
        // Without a '.' or ':' the first component is part of the repository.
        assert_eq!(parse("myhost/x").repository(), "myhost/x");
        assert_eq!(parse("[::1]:5000/x:2").registry(), "[::1]:5000");
    }

    #[test]
    fn digests_and_tags() {
        let r = parse(&format!("busybox@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = parse(&format!("localhost:5000/a/b:v1.2_x-y@{D}"));
        assert_eq!(r.tag(), Some("v1.2_x-y"));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("localhost:5000/a/b:v1.2_x-y@{D}"));
        assert_eq!(parse("a:b").manifest_ref(), "b");
    }

    #[test]
    fn invalid_references_name_the_problem() {
        assert!(reason("").contains("empty"));
        assert!(reason("BusyBox").contains("lowercase"));
        assert!(reason("busybox:").contains("empty tag"));
        assert!(reason("busybox:-x").contains("must start"));
        assert!(reason("busybox:a/B").contains("lowercase"));
        assert!(reason("busybox:t@g").contains("digest"));
        assert!(reason("busybox@sha256:abc").contains("64"));
        assert!(reason(&format!("busybox@md5:{}", &D[7..])).contains("unsupported"));
        assert!(reason("a//b").contains("component"));
        assert!(reason("a_-b").contains("component"));
        assert!(reason("-a").contains("component"));
        assert!(reason("a b").contains("whitespace"));
        assert!(reason(&format!("x/{}", "a".repeat(300))).contains("255"));
        assert!(reason(&format!("x:{}", "a".repeat(129))).contains("128"));
    }

    #[test]
    fn separators_in_components() {
        for ok in ["a.b", "a_b", "a__b", "a---b", "a0.b1_c2__d3-e4"] {
            assert!(valid_component(ok), "{ok}");
        }
        for bad in ["a___b", "a.", ".a", "a..b", "a._b", "a-", ""] {
            assert!(!valid_component(bad), "{bad}");
        }
    }
}

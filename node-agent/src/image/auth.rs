//! Registry authentication: parsing `WWW-Authenticate` challenges and
//! exchanging credentials (or nothing, for anonymous pulls) for a bearer
//! token at the challenge's realm, as the distribution token spec describes.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;

use super::Credentials;

const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// One `WWW-Authenticate` challenge: `Bearer realm="...",service="..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase: `bearer` or `basic`.
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses one header value. Registries send one challenge per header, so a
/// value is a scheme followed by comma-separated `key=value` or
/// `key="quoted value"` pairs (quoted values may contain commas, as scopes
/// like `repository:a:pull,push` do).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = match value.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (value, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            val.push(escaped);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
            val = val.trim().to_string();
        }
        params.insert(key, val);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// Picks the challenge to answer: bearer over basic (a registry offering
/// both prefers tokens).
pub fn pick_challenge<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
    let all: Vec<Challenge> = values.filter_map(parse_challenge).collect();
    all.iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| all.iter().find(|c| c.scheme == "basic"))
        .cloned()
}

pub fn basic_header(creds: &Credentials) -> String {
    let raw = format!("{}:{}", creds.username, creds.password);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// Gets a bearer token from the challenge's realm. `default_scope` is used
/// when the challenge names none (pull access to the repository).
pub async fn fetch_token(
    http: &reqwest::Client,
    challenge: &Challenge,
    default_scope: &str,
    creds: Option<&Credentials>,
) -> Result<String, String> {
    let realm = challenge
        .params
        .get("realm")
        .ok_or("bearer challenge without a realm")?;
    let url = reqwest::Url::parse(realm).map_err(|e| format!("invalid token realm {realm:?}: {e}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("token realm {realm:?} is not an http(s) URL"));
    }
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(service) = challenge.params.get("service") {
        query.push(("service", service));
    }
    let scope = challenge.params.get("scope").map_or(default_scope, String::as_str);
    query.push(("scope", scope));
    let mut req = http.get(url).query(&query).timeout(TOKEN_TIMEOUT);
    if let Some(c) = creds {
        req = req.header(reqwest::header::AUTHORIZATION, basic_header(c));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("token request to {realm} failed: {}", super::registry::error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("token service {realm} answered {status}"));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading token from {realm}: {}", super::registry::error_chain(&e)))?;
    if body.len() > MAX_TOKEN_RESPONSE {
        return Err(format!("token response from {realm} is too large"));
    }
    token_from_response(&body).ok_or_else(|| format!("token service {realm} returned no token"))
}

/// `token` or, from OAuth2-style services, `access_token`.
fn token_from_response(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let parsed: TokenResponse = serde_json::from_slice(body).ok()?;
    parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn basic_challenge_and_preference() {
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        let picked =
            pick_challenge([r#"Basic realm="x""#, r#"Bearer realm="https://t/token",service=s"#].into_iter()).unwrap();
        assert_eq!(picked.scheme, "bearer");
        assert_eq!(picked.params["service"], "s");
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn token_fields() {
        assert_eq!(token_from_response(br#"{"token":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(
            token_from_response(br#"{"token":"","access_token":"xyz","expires_in":60}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(token_from_response(br#"{"nothing":1}"#), None);
        assert_eq!(token_from_response(b"not json"), None);
    }

    #[test]
    fn basic_header_encodes_credentials() {
        let creds = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(basic_header(&creds), "Basic dXNlcjpwYXNz");
    }
}

//! An API server address: what to dial, what name to verify, what to send as `:authority`.

use hyper::Uri;
use rustls::pki_types::ServerName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host:port`, as given (without a trailing slash).
    pub url: String,
    /// `host:port` to dial (`[v6]:port` for IPv6).
    pub authority: String,
    /// The TLS server name: the host, without IPv6 brackets.
    pub host: String,
}

impl Endpoint {
    /// Parses `https://host[:port][/]`; the port defaults to 443.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let uri: Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err("must be an https:// URL".into());
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or("no host")?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("must not have a path (the API is served at the root)".into());
        }
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
        ServerName::try_from(bare.clone()).map_err(|e| format!("host {bare:?}: {e}"))?;
        Ok(Endpoint {
            url: s.trim_end_matches('/').to_string(),
            authority: format!("{host}:{port}"),
            host: bare,
        })
    }

    pub fn server_name(&self) -> Result<ServerName<'static>, String> {
        ServerName::try_from(self.host.clone()).map_err(|e| format!("host {:?}: {e}", self.host))
    }
}

/// Which endpoint client `i` goes to: round-robin.
pub fn endpoint_of(i: usize, endpoints: usize) -> usize {
    i % endpoints.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_https_urls() {
        let e = Endpoint::parse("https://127.0.0.2:27793/").expect("parse");
        assert_eq!(
            e,
            Endpoint {
                url: "https://127.0.0.2:27793".into(),
                authority: "127.0.0.2:27793".into(),
                host: "127.0.0.2".into(),
            }
        );
        assert!(matches!(e.server_name(), Ok(ServerName::IpAddress(_))));
        let e = Endpoint::parse("https://kubernetes.default.svc").expect("parse");
        assert_eq!(e.authority, "kubernetes.default.svc:443");
        assert!(matches!(e.server_name(), Ok(ServerName::DnsName(_))));
        let e = Endpoint::parse("https://[::1]:6443").expect("parse");
        assert_eq!((e.authority.as_str(), e.host.as_str()), ("[::1]:6443", "::1"));
    }

    #[test]
    fn refuses_what_it_cannot_dial() {
        for s in [
            "http://127.0.0.1:6443",
            "127.0.0.1:6443",
            "https://h:1/api",
            "",
            "https://h:1/?x=1",
        ] {
            assert!(Endpoint::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn round_robin() {
        assert_eq!(
            (0..5).map(|i| endpoint_of(i, 3)).collect::<Vec<_>>(),
            vec![0, 1, 2, 0, 1]
        );
    }
}

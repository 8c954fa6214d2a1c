//! The agent server's paths and query parameters, as kubelet names them (pure).
//!
//! `GET /containerLogs/{namespace}/{pod}/{container}` with `follow`, `tailLines`, `limitBytes`,
//! `sinceSeconds`, `sinceTime`, `timestamps` and `previous`; `GET` or `POST
//! /exec/{namespace}/{pod}/{container}` with `command` (repeated, one per argument), `input`,
//! `output`, `error` and `tty`. Booleans are read as Go's
//! `strconv.ParseBool` reads them (the API server and kubectl are Go); unknown parameters are
//! ignored, as kubelet ignores them. Values are checked here so a bad one is a 400 naming the
//! parameter, never a half-started stream.

use chrono::{DateTime, Utc};

use crate::logs::LogOptions;

/// A log request the agent can serve.
#[derive(Debug, Clone)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The container's previous run instead of its current one.
    pub previous: bool,
    pub opts: LogOptions,
}

/// An exec request (the WebSocket upgrade is checked by the handler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecQuery {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// What a request path names.
#[derive(Debug)]
pub enum Route {
    Logs(LogRequest),
    Exec(ExecQuery),
    Healthz,
}

/// Why a request cannot be served: the HTTP status and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

impl Rejection {
    pub fn bad_request(message: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Rejection {
        Rejection {
            status: 404,
            message: message.into(),
        }
    }
}

/// The route of `GET path?query`, its parameters checked; `now` anchors `sinceSeconds`.
pub fn parse(method: &str, path: &str, query: Option<&str>, now: DateTime<Utc>) -> Result<Route, Rejection> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let route = match segments.as_slice() {
        ["healthz"] => Route::Healthz,
        ["containerLogs", ns, pod, container] if [ns, pod, container].iter().all(|s| is_name(s)) => {
            let params: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
                .map_err(|e| Rejection::bad_request(format!("malformed query string: {e}")))?;
            let (previous, opts) = log_options(&params, now)?;
            Route::Logs(LogRequest {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
                previous,
                opts,
            })
        }
        ["exec", ns, pod, container] if [ns, pod, container].iter().all(|s| is_name(s)) => {
            if method != "GET" && method != "POST" {
                return Err(Rejection {
                    status: 405,
                    message: format!("method {method} is not allowed on {path}"),
                });
            }
            let params: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
                .map_err(|e| Rejection::bad_request(format!("malformed query string: {e}")))?;
            return exec_query(ns, pod, container, &params).map(Route::Exec);
        }
        ["exec", ..] => return Err(Rejection::bad_request("expected /exec/{namespace}/{pod}/{container}")),
        ["containerLogs", ..] => {
            return Err(Rejection::bad_request(
                "expected /containerLogs/{namespace}/{pod}/{container}",
            ))
        }
        _ => return Err(Rejection::not_found(format!("no such path: {path}"))),
    };
    if method != "GET" {
        return Err(Rejection {
            status: 405,
            message: format!("method {method} is not allowed on {path}"),
        });
    }
    Ok(route)
}

/// A Kubernetes object name (DNS-1123 subdomain characters): the parts of the path become
/// file names under the agent's data dir, so `..` or anything with a `/` never gets that far.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn exec_query(ns: &str, pod: &str, container: &str, params: &[(String, String)]) -> Result<ExecQuery, Rejection> {
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let q = ExecQuery {
        namespace: ns.to_string(),
        pod: pod.to_string(),
        container: container.to_string(),
        command: params
            .iter()
            .filter(|(n, _)| n == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        stdin: boolean(get("input"), "input")?,
        stdout: boolean(get("output"), "output")?,
        stderr: boolean(get("error"), "error")?,
        tty: boolean(get("tty"), "tty")?,
    };
    if q.command.is_empty() || q.command[0].is_empty() {
        return Err(Rejection::bad_request("command: at least one argument is required"));
    }
    if !(q.stdin || q.stdout || q.stderr) {
        return Err(Rejection::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr (input, output, error)",
        ));
    }
    Ok(q)
}

fn log_options(params: &[(String, String)], now: DateTime<Utc>) -> Result<(bool, LogOptions), Rejection> {
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut opts = LogOptions {
        follow: boolean(get("follow"), "follow")?,
        timestamps: boolean(get("timestamps"), "timestamps")?,
        ..LogOptions::default()
    };
    let previous = boolean(get("previous"), "previous")?;
    if let Some(n) = integer(get("tailLines"), "tailLines")? {
        let n = usize::try_from(n)
            .map_err(|_| Rejection::bad_request(format!("tailLines: {n}: must be greater than or equal to 0")))?;
        opts.tail_lines = Some(n);
    }
    if let Some(n) = integer(get("limitBytes"), "limitBytes")? {
        if n < 1 {
            return Err(Rejection::bad_request(format!(
                "limitBytes: {n}: must be greater than 0"
            )));
        }
        opts.limit_bytes = Some(n as u64);
    }
    let since_seconds = integer(get("sinceSeconds"), "sinceSeconds")?;
    let since_time = get("sinceTime").filter(|s| !s.is_empty());
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err(Rejection::bad_request(
                "at most one of sinceTime or sinceSeconds may be specified",
            ))
        }
        (Some(n), None) if n < 1 => {
            return Err(Rejection::bad_request(format!(
                "sinceSeconds: {n}: must be greater than 0"
            )))
        }
        (Some(n), None) => opts.since = Some(now - chrono::Duration::seconds(n.min(i64::from(u32::MAX)))),
        (None, Some(t)) => {
            let t = DateTime::parse_from_rfc3339(t)
                .map_err(|e| Rejection::bad_request(format!("sinceTime: {t:?} is not an RFC 3339 time: {e}")))?;
            opts.since = Some(t.with_timezone(&Utc));
        }
        (None, None) => {}
    }
    Ok((previous, opts))
}

/// Go's `strconv.ParseBool`; absent or empty is false.
fn boolean(v: Option<&str>, name: &str) -> Result<bool, Rejection> {
    match v {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(Rejection::bad_request(format!("{name}: {other:?} is not a boolean"))),
    }
}

fn integer(v: Option<&str>, name: &str) -> Result<Option<i64>, Rejection> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| Rejection::bad_request(format!("{name}: {s:?} is not an integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn logs(path: &str, query: &str) -> Result<LogRequest, Rejection> {
        match parse("GET", path, Some(query), now())? {
            Route::Logs(r) => Ok(r),
            _ => Err(Rejection::bad_request("not a log request")),
        }
    }

    #[test]
    fn kubelet_path_and_every_parameter() {
        let r = logs(
            "/containerLogs/default/web/app",
            "follow=true&tailLines=5&limitBytes=100&sinceSeconds=60&timestamps=1&previous=True",
        )
        .unwrap();
        assert_eq!(
            (r.namespace.as_str(), r.pod.as_str(), r.container.as_str()),
            ("default", "web", "app")
        );
        assert!(r.previous && r.opts.follow && r.opts.timestamps);
        assert_eq!(r.opts.tail_lines, Some(5));
        assert_eq!(r.opts.limit_bytes, Some(100));
        assert_eq!(r.opts.since, Some(now() - chrono::Duration::seconds(60)));
    }

    #[test]
    fn defaults_read_everything_once() {
        let r = logs("/containerLogs/ns/p/c", "").unwrap();
        assert!(!r.previous && !r.opts.follow && !r.opts.timestamps);
        assert_eq!(
            (r.opts.tail_lines, r.opts.limit_bytes, r.opts.since),
            (None, None, None)
        );
    }

    #[test]
    fn since_time_is_rfc3339() {
        let r = logs("/containerLogs/ns/p/c", "sinceTime=2025-01-01T00:00:00%2B01:00").unwrap();
        assert_eq!(
            r.opts.since.map(|t| t.to_rfc3339()),
            Some("2024-12-31T23:00:00+00:00".into())
        );
    }

    #[test]
    fn bad_values_are_400s_naming_the_parameter() {
        for (query, name) in [
            ("tailLines=-1", "tailLines"),
            ("tailLines=x", "tailLines"),
            ("limitBytes=0", "limitBytes"),
            ("sinceSeconds=0", "sinceSeconds"),
            ("sinceTime=yesterday", "sinceTime"),
            ("follow=yes", "follow"),
            ("previous=2", "previous"),
            ("sinceSeconds=5&sinceTime=2025-01-01T00:00:00Z", "sinceSeconds"),
        ] {
            let e = logs("/containerLogs/ns/p/c", query).unwrap_err();
            assert_eq!(e.status, 400, "{query}");
            assert!(e.message.contains(name), "{query}: {}", e.message);
        }
    }

    #[test]
    fn paths() {
        assert!(matches!(parse("GET", "/healthz", None, now()), Ok(Route::Healthz)));
        assert_eq!(logs("/containerLogs/ns/p", "").unwrap_err().status, 400);
        assert_eq!(logs("/containerLogs/ns//c", "").unwrap_err().status, 400);
        for bad in [
            "/containerLogs/ns/p/..",
            "/containerLogs/../p/c",
            "/containerLogs/ns/.p/c",
            "/containerLogs/ns/P/c",
        ] {
            assert_eq!(logs(bad, "").unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(logs("/containerLogs/ns/p/c/extra", "").unwrap_err().status, 400);
        assert_eq!(logs("/nothing/ns/p/c", "").unwrap_err().status, 404);
        assert_eq!(logs("/", "").unwrap_err().status, 404);
        let e = parse("POST", "/containerLogs/ns/p/c", None, now()).unwrap_err();
        assert_eq!(e.status, 405);
    }

    fn exec(method: &str, path: &str, query: &str) -> Result<ExecQuery, Rejection> {
        match parse(method, path, Some(query), now())? {
            Route::Exec(q) => Ok(q),
            _ => Err(Rejection::bad_request("not an exec request")),
        }
    }

    #[test]
    fn exec_takes_kubelets_parameters_and_every_argument_in_order() {
        let q = exec(
            "POST",
            "/exec/prod/web/app",
            "command=sh&command=-c&command=echo+a%26b&input=1&output=1&error=true&tty=0",
        )
        .unwrap();
        assert_eq!(
            (q.namespace.as_str(), q.pod.as_str(), q.container.as_str()),
            ("prod", "web", "app")
        );
        assert_eq!(q.command, ["sh", "-c", "echo a&b"]);
        assert!(q.stdin && q.stdout && q.stderr && !q.tty);
        assert!(exec("GET", "/exec/ns/p/c", "command=ls&output=1").is_ok());
    }

    #[test]
    fn exec_refuses_what_cannot_run() {
        let e = exec("GET", "/exec/ns/p/c", "output=1").unwrap_err();
        assert!(e.message.contains("command"), "{}", e.message);
        let e = exec("GET", "/exec/ns/p/c", "command=ls").unwrap_err();
        assert!(e.message.contains("stdin, stdout, stderr"), "{}", e.message);
        let e = exec("GET", "/exec/ns/p/c", "command=ls&tty=maybe&output=1").unwrap_err();
        assert!(e.message.contains("tty"), "{}", e.message);
        assert_eq!(
            exec("DELETE", "/exec/ns/p/c", "command=ls&output=1")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            exec("GET", "/exec/ns/../c", "command=ls&output=1").unwrap_err().status,
            400
        );
        assert_eq!(
            exec("GET", "/exec/ns/p", "command=ls&output=1").unwrap_err().status,
            400
        );
    }
}

//! `GET pods/{name}/log`: checked here as Kubernetes checks `PodLogOptions`, answered by the
//! agent of the pod's node (`GET /containerLogs/{namespace}/{pod}/{container}` on the port its
//! Node reports in `status.daemonEndpoints.kubeletEndpoint.Port`), whose body is passed on
//! chunk by chunk, so `kubectl logs -f` sees lines as the container writes them.
//!
//! Errors follow kube-apiserver: a malformed value is a 400; values out of range are a 422
//! `PodLogOptions "name" is invalid`; a missing or unknown container is a 400 with Kubernetes'
//! wording. The agent's own 400s and 404s (a container waiting to start, no previous run) are
//! passed on; an agent that cannot be reached is a 503 naming the node.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::request::{Query, Target};
use super::ApiState;
use crate::error::{ApiError, ApiResult, Cause};

/// Largest agent error message read (the agent's are one line).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `PodLogOptions` from the query, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    pub since_seconds: Option<i64>,
    /// RFC 3339, as given (the agent parses it again).
    pub since_time: Option<String>,
}

/// Go's `strconv.ParseBool`, which kube-apiserver's parameter codec uses.
pub(super) fn boolean(q: &Query, k: &str) -> ApiResult<bool> {
    match q.get(k) {
        None | Some("") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(ApiError::bad_request(format!(
            "{k}: Invalid value: {v:?}: must be a boolean"
        ))),
    }
}

impl LogQuery {
    /// Parses and validates the query of a log request for pod `name`.
    pub fn parse(q: &Query, name: &str) -> ApiResult<LogQuery> {
        let lq = LogQuery {
            container: q.get("container").filter(|c| !c.is_empty()).map(str::to_string),
            follow: boolean(q, "follow")?,
            previous: boolean(q, "previous")?,
            timestamps: boolean(q, "timestamps")?,
            tail_lines: q.int("tailLines")?,
            limit_bytes: q.int("limitBytes")?,
            since_seconds: q.int("sinceSeconds")?,
            since_time: q.get("sinceTime").filter(|t| !t.is_empty()).map(str::to_string),
        };
        if let Some(t) = &lq.since_time {
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| ApiError::bad_request(format!("sinceTime: Invalid value: {t:?}: {e}")))?;
        }
        let mut causes = Vec::new();
        if let Some(n) = lq.tail_lines.filter(|n| *n < 0) {
            causes.push(Cause::invalid(
                "tailLines",
                &n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(n) = lq.limit_bytes.filter(|n| *n < 1) {
            causes.push(Cause::invalid("limitBytes", &n.to_string(), "must be greater than 0"));
        }
        if lq.since_seconds.is_some() && lq.since_time.is_some() {
            causes.push(Cause::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            ));
        }
        if let Some(n) = lq.since_seconds.filter(|n| *n < 1) {
            causes.push(Cause::invalid("sinceSeconds", &n.to_string(), "must be greater than 0"));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("", "PodLogOptions", name, causes));
        }
        Ok(lq)
    }

    /// The agent's query string (kubelet's names), container excluded (it is in the path).
    pub fn agent_query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, on) in [
            ("follow", self.follow),
            ("previous", self.previous),
            ("timestamps", self.timestamps),
        ] {
            if on {
                pairs.push((k, "true".into()));
            }
        }
        for (k, v) in [
            ("tailLines", self.tail_lines),
            ("limitBytes", self.limit_bytes),
            ("sinceSeconds", self.since_seconds),
        ] {
            if let Some(v) = v {
                pairs.push((k, v.to_string()));
            }
        }
        if let Some(t) = &self.since_time {
            pairs.push(("sinceTime", t.clone()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container whose logs are read: the one asked for, which must exist, or the pod's only
/// container (Kubernetes' `LogLocation`).
pub fn choose_container(pod: &Value, name: &str, asked: Option<&str>) -> ApiResult<String> {
    let containers = names(pod, "containers");
    let inits = names(pod, "initContainers");
    match asked {
        Some(c) => {
            let ephemeral = names(pod, "ephemeralContainers");
            if containers.iter().chain(&inits).chain(&ephemeral).any(|n| n == c) {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None => match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            many => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !inits.is_empty() {
                    msg.push_str(&format!(" or one of the init containers: [{}]", inits.join(" ")));
                }
                Err(ApiError::bad_request(msg))
            }
        },
    }
}

/// Where the agent of `node` (a Node object) serves: its InternalIP (else ExternalIP) and the
/// port it reports. `Err` says why there is none.
pub fn agent_address(node: &Value) -> Result<SocketAddr, String> {
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .ok_or("it reports no agent port (is its agent running with --listen-kubelet off?)")?;
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) == Some(kind))
                .find_map(|a| a.get("address").and_then(Value::as_str)?.parse::<IpAddr>().ok())
        })
        .ok_or("it reports no InternalIP or ExternalIP address")?;
    Ok(SocketAddr::new(ip, port))
}

/// The node a pod runs on and its agent's address: 400 for a pod not scheduled yet (as
/// Kubernetes words it), 503 naming the node when its agent cannot be reached.
pub(super) async fn reach_agent(st: &Arc<ApiState>, pod: &Value, name: &str) -> ApiResult<(String, SocketAddr)> {
    let Some(node_name) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let nodes = crate::registry::lookup("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node =
        st.storage.get(nodes, None, node_name, true).await?.ok_or_else(|| {
            ApiError::unavailable(format!("pod {name} runs on node {node_name}, which does not exist"))
        })?;
    let addr = agent_address(&node.obj)
        .map_err(|why| ApiError::unavailable(format!("cannot reach the agent of node {node_name}: {why}")))?;
    Ok((node_name.to_string(), addr))
}

/// GET pods/{name}/log.
pub async fn pod_log(st: &Arc<ApiState>, t: &Target, q: &Query) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or("");
    let ns = t.namespace.as_deref().unwrap_or("");
    let lq = LogQuery::parse(q, name)?;
    let pod = st.storage.must_get(t.res, Some(ns), name).await?;
    let container = choose_container(&pod.obj, name, lq.container.as_deref())?;
    let (node_name, addr) = reach_agent(st, &pod.obj, name).await?;
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        encode(ns),
        encode(name),
        encode(&container),
        lq.agent_query()
    );
    let resp = st
        .kubelet
        .get(addr, &path)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot reach the agent of node {node_name} at {addr}: {e}")))?;
    let status = resp.status();
    if status == StatusCode::OK {
        return Ok((
            StatusCode::OK,
            [(CONTENT_TYPE, "text/plain")],
            Body::new(resp.into_body()),
        )
            .into_response());
    }
    let bytes = axum::body::to_bytes(Body::new(resp.into_body()), MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&bytes).trim().to_string();
    Err(match status.as_u16() {
        400 => ApiError::bad_request(message),
        404 => ApiError::new(404, "NotFound", message),
        code => ApiError::new(
            502,
            "InternalError",
            format!("the agent of node {node_name} answered {code}: {message}"),
        ),
    })
}

/// Path segments are object names (DNS labels and subdomains): nothing to escape in valid
/// ones, but a stray character must not change the path.
pub(super) fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(s: &str) -> Query {
        Query::parse(Some(s)).unwrap()
    }

    #[test]
    fn every_option_parsed_and_forwarded_under_kubelets_names() {
        let lq = LogQuery::parse(
            &query("container=app&follow=true&previous=1&timestamps=True&tailLines=3&limitBytes=10&sinceSeconds=5"),
            "web",
        )
        .unwrap();
        assert_eq!(lq.container.as_deref(), Some("app"));
        assert!(lq.follow && lq.previous && lq.timestamps);
        assert_eq!(
            lq.agent_query(),
            "follow=true&previous=true&timestamps=true&tailLines=3&limitBytes=10&sinceSeconds=5"
        );
        let lq = LogQuery::parse(&query("sinceTime=2025-01-01T00:00:00Z"), "web").unwrap();
        assert_eq!(lq.agent_query(), "sinceTime=2025-01-01T00%3A00%3A00Z");
        assert_eq!(LogQuery::parse(&query(""), "web").unwrap().agent_query(), "");
    }

    #[test]
    fn malformed_values_are_400s_and_out_of_range_ones_422s() {
        for q in ["follow=yes", "tailLines=x", "limitBytes=1k", "sinceTime=yesterday"] {
            let e = LogQuery::parse(&query(q), "web").unwrap_err();
            assert_eq!(e.code, 400, "{q}: {}", e.message);
        }
        for (q, field) in [
            ("tailLines=-1", "tailLines"),
            ("limitBytes=0", "limitBytes"),
            ("sinceSeconds=0", "sinceSeconds"),
            ("sinceSeconds=1&sinceTime=2025-01-01T00:00:00Z", "sinceTime"),
        ] {
            let e = LogQuery::parse(&query(q), "web").unwrap_err();
            assert_eq!(e.code, 422, "{q}");
            assert!(e.message.contains(field), "{q}: {}", e.message);
            assert!(
                e.message.starts_with("PodLogOptions \"web\" is invalid"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn container_choice_as_kubernetes_words_it() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(choose_container(&one, "p", None).unwrap(), "app");
        let duo = json!({"spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        }});
        let e = choose_container(&duo, "duo", None).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod duo, choose one of: [a b] or one of the init containers: [setup]"
        );
        assert_eq!(choose_container(&duo, "duo", Some("b")).unwrap(), "b");
        assert_eq!(choose_container(&duo, "duo", Some("setup")).unwrap(), "setup");
        let e = choose_container(&duo, "duo", Some("c")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "container c is not valid for pod duo")
        );
    }

    #[test]
    fn agent_address_from_the_node() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.11"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        }});
        assert_eq!(agent_address(&node).unwrap(), "10.0.0.11:10250".parse().unwrap());
        let off = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.11"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        }});
        assert!(agent_address(&off).unwrap_err().contains("--listen-kubelet off"));
        let nameless = json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert!(agent_address(&nameless).is_err());
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(encode("web-1.x"), "web-1.x");
        assert_eq!(encode("../a?b"), "..%2Fa%3Fb");
    }
}

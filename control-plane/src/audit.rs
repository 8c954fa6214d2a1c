//! The audit log: one JSON line per request (kube-apiserver's `audit.k8s.io/v1` Event at stage
//! ResponseComplete) naming who (user, groups, impersonated user, source IP), did what (verb,
//! resource, namespace, name, URI), with which answer (code, authorization decision) and how
//! long it took (received and completed timestamps, in microseconds; their difference is the
//! latency). A policy in kube-apiserver's format picks each request's level: None, Metadata, or
//! Request (also with the request body). Secrets are never logged with their data: their level
//! is at most Metadata whatever the policy says. Writing never blocks a request: lines go through
//! a bounded channel to a writer task, and lines that do not fit are counted as dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::rbac::Attributes;

/// Lines waiting for the writer; beyond this, lines are dropped (and counted).
const QUEUE: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    /// Accepted in policies; logged as Request (skiff does not log response bodies).
    RequestResponse,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
}

/// kube-apiserver's audit policy: the first matching rule decides; no match is None.
#[derive(Debug, Clone, Deserialize)]
pub struct Policy {
    #[serde(default)]
    rules: Vec<Rule>,
}

impl Policy {
    /// Everything at Metadata: the policy when a log is asked for without one.
    pub fn metadata() -> Policy {
        Policy {
            rules: vec![Rule {
                level: Level::Metadata,
                users: vec![],
                user_groups: vec![],
                verbs: vec![],
                resources: vec![],
                namespaces: vec![],
                non_resource_urls: vec![],
            }],
        }
    }

    /// Parses an `audit.k8s.io/v1` Policy (YAML or JSON).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("Policy") => {}
            other => return Err(format!("kind must be Policy, not {other:?}")),
        }
        serde_yaml::from_value(v).map_err(|e| e.to_string())
    }

    pub fn level(&self, a: &Attributes) -> Level {
        let level = self
            .rules
            .iter()
            .find(|r| r.matches(a))
            .map_or(Level::None, |r| r.level);
        // Secrets' data never reaches the log.
        if a.resource_request && a.api_group.is_empty() && a.resource == "secrets" {
            return level.min(Level::Metadata);
        }
        level
    }
}

impl Rule {
    fn matches(&self, a: &Attributes) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        if !any(&self.users, &a.user.name) || !any(&self.verbs, &a.verb) {
            return false;
        }
        if !self.user_groups.is_empty() && !a.user.groups.iter().any(|g| self.user_groups.contains(g)) {
            return false;
        }
        if a.resource_request {
            if !self.non_resource_urls.is_empty() || !any(&self.namespaces, &a.namespace) {
                return false;
            }
            if self.resources.is_empty() {
                return true;
            }
            let full = if a.subresource.is_empty() {
                a.resource.clone()
            } else {
                format!("{}/{}", a.resource, a.subresource)
            };
            self.resources.iter().any(|gr| {
                gr.group == a.api_group
                    && (gr.resources.is_empty()
                        || gr.resources.iter().any(|r| {
                            r == "*"
                                || *r == full
                                || (a.subresource.is_empty() && *r == a.resource)
                                || r.strip_prefix("*/").is_some_and(|s| s == a.subresource)
                                || r.strip_suffix("/*").is_some_and(|p| p == a.resource)
                        }))
                    && (gr.resource_names.is_empty() || gr.resource_names.contains(&a.name))
            })
        } else {
            if !self.resources.is_empty() || !self.namespaces.is_empty() {
                return false;
            }
            self.non_resource_urls.is_empty()
                || self.non_resource_urls.iter().any(|u| match u.strip_suffix('*') {
                    Some(prefix) => a.path.starts_with(prefix),
                    None => *u == a.path,
                })
        }
    }
}

/// What one request did, for its event.
pub struct Record<'a> {
    pub level: Level,
    pub attrs: &'a Attributes,
    /// The authenticated user when the request impersonated someone (`attrs.user` is then the
    /// impersonated one).
    pub real_user: Option<&'a (String, Vec<String>)>,
    pub uri: &'a str,
    pub source_ip: String,
    pub user_agent: &'a str,
    pub code: u16,
    pub decision: &'a str,
    pub received: chrono::DateTime<chrono::Utc>,
    pub completed: chrono::DateTime<chrono::Utc>,
    /// The request body, decoded (JSON, YAML or protobuf) into its JSON form.
    pub request_object: Option<&'a Value>,
    pub api_version: &'a str,
}

fn micro(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The Event of one request.
pub fn event(r: &Record<'_>) -> Value {
    let a = r.attrs;
    let user = |name: &str, groups: &[String]| json!({"username": name, "groups": groups});
    let level = match r.level {
        Level::None => "None",
        Level::Metadata => "Metadata",
        Level::Request | Level::RequestResponse => "Request",
    };
    let mut e = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": uuid::Uuid::new_v4().to_string(),
        "stage": "ResponseComplete",
        "requestURI": r.uri,
        "verb": a.verb,
        "user": user(&a.user.name, &a.user.groups),
        "sourceIPs": [r.source_ip],
        "userAgent": r.user_agent,
        "responseStatus": {"metadata": {}, "code": r.code},
        "requestReceivedTimestamp": micro(r.received),
        "stageTimestamp": micro(r.completed),
        "annotations": {"authorization.k8s.io/decision": r.decision},
    });
    if let Some((name, groups)) = r.real_user {
        e["impersonatedUser"] = e["user"].take();
        e["user"] = user(name, groups);
    }
    if a.resource_request {
        let mut obj = json!({"resource": a.resource, "apiGroup": a.api_group, "apiVersion": r.api_version});
        for (k, v) in [
            ("namespace", &a.namespace),
            ("name", &a.name),
            ("subresource", &a.subresource),
        ] {
            if !v.is_empty() {
                obj[k] = json!(v);
            }
        }
        e["objectRef"] = obj;
    }
    if r.level >= Level::Request {
        if let Some(body) = r.request_object {
            e["requestObject"] = body.clone();
        }
    }
    e
}

/// The log: a policy and a writer task.
pub struct AuditLog {
    policy: Policy,
    tx: mpsc::Sender<Vec<u8>>,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Opens `path` for appending and starts its writer, which stops at `shutdown` after
    /// writing what is queued.
    pub async fn open(path: &Path, policy: Policy, shutdown: CancellationToken) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_lines(file, rx, path.to_path_buf(), shutdown));
        Ok(AuditLog {
            policy,
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn level(&self, a: &Attributes) -> Level {
        self.policy.level(a)
    }

    pub fn record(&self, r: &Record<'_>) {
        if r.level == Level::None {
            return;
        }
        let mut line = serde_json::to_vec(&event(r)).unwrap_or_default();
        line.push(b'\n');
        if self.tx.try_send(line).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit log writer is behind; events dropped");
            }
        }
    }
}

async fn write_lines(
    mut file: tokio::fs::File,
    mut rx: mpsc::Receiver<Vec<u8>>,
    path: PathBuf,
    shutdown: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            l = rx.recv() => l,
            _ = shutdown.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(mut buf) = line else { break };
        // Whatever else is queued goes in the same write.
        while let Ok(more) = rx.try_recv() {
            buf.extend_from_slice(&more);
        }
        if let Err(e) = file.write_all(&buf).await {
            tracing::warn!(path = %path.display(), error = %e, "writing the audit log");
        }
    }
    let _ = file.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rbac::User;

    fn attrs(user: &str, verb: &str, resource: &str, ns: &str) -> Attributes {
        Attributes::resource(User::new(user, &["devs"]), verb, "", resource, ns)
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  users: ["system:kube-proxy"]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Request
  resources:
  - group: ""
    resources: ["secrets", "configmaps"]
- level: Request
  verbs: ["create"]
  namespaces: ["team"]
- level: Metadata
"#;

    #[test]
    fn the_first_matching_rule_decides() {
        let p = Policy::parse(POLICY).expect("policy");
        assert_eq!(p.level(&attrs("system:kube-proxy", "list", "pods", "a")), Level::None);
        assert_eq!(p.level(&attrs("alice", "get", "configmaps", "a")), Level::Request);
        assert_eq!(p.level(&attrs("alice", "create", "pods", "team")), Level::Request);
        assert_eq!(p.level(&attrs("alice", "create", "pods", "other")), Level::Metadata);
        let health = Attributes::non_resource(User::new("alice", &[]), "get", "/healthz/etcd");
        assert_eq!(p.level(&health), Level::None);
        let metrics = Attributes::non_resource(User::new("alice", &[]), "get", "/metrics");
        assert_eq!(p.level(&metrics), Level::Metadata);
        assert_eq!(Policy { rules: vec![] }.level(&metrics), Level::None);
    }

    #[test]
    fn secrets_never_get_past_metadata() {
        let p = Policy::parse(POLICY).expect("policy");
        assert_eq!(p.level(&attrs("alice", "create", "secrets", "a")), Level::Metadata);
        let a = attrs("alice", "create", "secrets", "a");
        let now = chrono::Utc::now();
        let e = event(&Record {
            level: p.level(&a),
            attrs: &a,
            real_user: None,
            uri: "/api/v1/namespaces/a/secrets",
            source_ip: "127.0.0.1".into(),
            user_agent: "kubectl",
            code: 201,
            decision: "allow",
            received: now,
            completed: now,
            request_object: Some(&json!({"data": {"password": "aHVudGVyMg=="}})),
            api_version: "v1",
        });
        assert!(e.get("requestObject").is_none());
        assert!(!e.to_string().contains("aHVudGVyMg"));
        assert_eq!(e["objectRef"]["resource"], "secrets");
        assert_eq!(e["level"], "Metadata");
    }

    #[test]
    fn events_name_who_did_what() {
        let a = attrs("bob", "create", "configmaps", "team");
        let real = ("admin".to_string(), vec!["system:masters".to_string()]);
        let received = chrono::Utc::now();
        let completed = received + chrono::Duration::microseconds(1500);
        let e = event(&Record {
            level: Level::Request,
            attrs: &a,
            real_user: Some(&real),
            uri: "/api/v1/namespaces/team/configmaps",
            source_ip: "127.0.0.1".into(),
            user_agent: "kubectl/v1.32",
            code: 201,
            decision: "allow",
            received,
            completed,
            request_object: Some(&json!({"metadata": {"name": "c"}})),
            api_version: "v1",
        });
        assert_eq!(e["user"]["username"], "admin");
        assert_eq!(e["impersonatedUser"]["username"], "bob");
        assert_eq!(e["objectRef"]["namespace"], "team");
        assert_eq!(e["responseStatus"]["code"], 201);
        assert_eq!(e["requestObject"]["metadata"]["name"], "c");
        assert!(Policy::parse("kind: Other").is_err());
    }

    #[tokio::test]
    async fn lines_reach_the_file() {
        let dir = std::env::temp_dir().join(format!("skiff-audit-{}", uuid::Uuid::new_v4()));
        let path = dir.join("audit.log");
        let stop = CancellationToken::new();
        let log = AuditLog::open(&path, Policy::metadata(), stop.clone())
            .await
            .expect("open");
        let a = attrs("alice", "get", "pods", "a");
        let now = chrono::Utc::now();
        for _ in 0..3 {
            log.record(&Record {
                level: log.level(&a),
                attrs: &a,
                real_user: None,
                uri: "/api/v1/namespaces/a/pods/x",
                source_ip: "127.0.0.1".into(),
                user_agent: "test",
                code: 404,
                decision: "allow",
                received: now,
                completed: now,
                request_object: None,
                api_version: "v1",
            });
        }
        stop.cancel();
        let mut text = String::new();
        for _ in 0..50 {
            text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
            if text.lines().count() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(text.lines().count(), 3, "{text}");
        let first: Value = serde_json::from_str(text.lines().next().unwrap_or("")).expect("json line");
        assert_eq!(first["verb"], "get");
        let _ = std::fs::remove_dir_all(dir);
    }
}

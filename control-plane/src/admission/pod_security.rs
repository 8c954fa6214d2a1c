//! PodSecurity admission (Pod Security Standards).
//!
//! Kubernetes' plugin (staging/src/k8s.io/pod-security-admission) reads the
//! namespace labels `pod-security.kubernetes.io/{enforce,warn,audit}` (levels
//! `privileged`, `baseline`, `restricted`; a missing label means
//! `privileged`, an invalid one `restricted`) and their `-version` companions.
//! A pod failing the enforce level is refused with `violates PodSecurity
//! "<level>:<version>": <reason> (<detail>), …`; failing the warn level adds
//! a `would violate PodSecurity …` warning (only to allowed requests); failing
//! the audit level adds an audit annotation. Without a warn label, warn
//! follows a stricter enforce label. Checks run in Kubernetes' order: the
//! baseline checks, then the restricted ones, each group sorted by check id;
//! the restricted level replaces the baseline capabilities, hostPath and
//! seccomp checks by its stricter versions.
//!
//! skiff differences: every check is the latest policy version whatever the
//! `-version` label says (the label is still echoed in messages, as upstream
//! does); no exemptions (usernames, runtime classes, namespaces); the
//! user-namespace relaxations (off by default upstream) are not offered, and
//! checks newer than Kubernetes 1.34 are not included. The integrator adds the
//! `pods "<name>" is forbidden: ` prefix, evaluates pods on create and on
//! updates that change more than metadata, and may pass a workload's pod
//! template as `{metadata, spec}` for warnings.

use std::collections::BTreeMap;

use serde_json::Value;

pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
pub const AUDIT_LABEL: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VIOLATIONS_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level with the version text shown in messages (`restricted:latest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub level: Level,
    pub version: String,
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

fn valid_version(v: &str) -> bool {
    v == "latest"
        || v.strip_prefix("v1.").is_some_and(|m| {
            !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) && (m == "0" || !m.starts_with('0'))
        })
}

/// `(enforce, warn, audit)` policies from the namespace labels.
pub fn policies(namespace: &Value) -> (Policy, Policy, Policy) {
    let labels = &namespace["metadata"]["labels"];
    let read = |mode: &str| -> (Option<Level>, bool, Option<String>) {
        let level = labels[mode].as_str().map(|l| match l {
            "privileged" => (Level::Privileged, true),
            "baseline" => (Level::Baseline, true),
            "restricted" => (Level::Restricted, true),
            // Kubernetes evaluates an unparseable level as restricted.
            _ => (Level::Restricted, false),
        });
        let version = labels[format!("{mode}-version")]
            .as_str()
            .filter(|v| valid_version(v))
            .map(String::from);
        (level.map(|l| l.0), level.is_some_and(|l| l.1), version)
    };
    let make = |level: Option<Level>, version: Option<String>| Policy {
        level: level.unwrap_or(Level::Privileged),
        version: version.unwrap_or_else(|| "latest".into()),
    };
    let (e_level, e_valid, e_version) = read(ENFORCE_LABEL);
    let (w_level, _, w_version) = read(WARN_LABEL);
    let (a_level, _, a_version) = read(AUDIT_LABEL);
    let enforce = make(e_level, e_version.clone());
    let mut warn = make(w_level, w_version.clone());
    if w_level.is_none() && e_valid && enforce.level > warn.level {
        warn.level = enforce.level;
        if w_version.is_none() {
            warn.version = enforce.version.clone();
        }
    }
    (enforce, warn, make(a_level, a_version))
}

/// Admission decision: `Err("violates PodSecurity …")` when the enforce
/// level fails, else the warnings to return to the client.
pub fn check(namespace: &Value, pod: &Value) -> Result<Vec<String>, String> {
    let (enforce, warn, _) = policies(namespace);
    let denied = violations(enforce.level, pod);
    if !denied.is_empty() {
        return Err(format!("violates PodSecurity \"{enforce}\": {}", render(&denied)));
    }
    if warn == enforce {
        return Ok(Vec::new());
    }
    let warned = violations(warn.level, pod);
    if warned.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![format!(
        "would violate PodSecurity \"{warn}\": {}",
        render(&warned)
    )])
}

/// Audit annotations (`pod-security.kubernetes.io/audit-violations`) to add
/// to the request's audit event; empty when the audit level passes.
pub fn audit_annotations(namespace: &Value, pod: &Value) -> BTreeMap<String, String> {
    let (_, _, audit) = policies(namespace);
    let found = violations(audit.level, pod);
    let mut out = BTreeMap::new();
    if !found.is_empty() {
        out.insert(
            AUDIT_VIOLATIONS_ANNOTATION.to_string(),
            format!("would violate PodSecurity \"{audit}\": {}", render(&found)),
        );
    }
    out
}

/// `reason (detail), reason (detail)`, as Kubernetes' ForbiddenReason().
pub fn render(found: &[(String, String)]) -> String {
    found
        .iter()
        .map(|(r, d)| if d.is_empty() { r.clone() } else { format!("{r} ({d})") })
        .collect::<Vec<_>>()
        .join(", ")
}

mod checks;
pub use checks::violations;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(labels: Value) -> Value {
        json!({"metadata": {"name": "team", "labels": labels}})
    }

    fn web() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    }

    fn hardened() -> Value {
        json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "web", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "tmp", "emptyDir": {}}]}})
    }

    const RESTRICTED_WEB: &str = "allowPrivilegeEscalation != false (container \"web\" must set \
        securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"web\" \
        must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \
        \"web\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"web\" \
        must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";

    #[test]
    fn unlabelled_namespace_is_privileged() {
        let mut p = web();
        p["spec"]["hostNetwork"] = json!(true);
        assert_eq!(check(&ns(json!({})), &p), Ok(vec![]));
        assert_eq!(check(&json!({}), &p), Ok(vec![]));
    }

    #[test]
    fn restricted_refuses_a_plain_pod_with_kubernetes_text() {
        let got = check(&ns(json!({ENFORCE_LABEL: "restricted"})), &web());
        assert_eq!(
            got,
            Err(format!("violates PodSecurity \"restricted:latest\": {RESTRICTED_WEB}"))
        );
        assert_eq!(
            check(&ns(json!({ENFORCE_LABEL: "restricted"})), &hardened()),
            Ok(vec![])
        );
    }

    #[test]
    fn baseline_host_access_message() {
        let p = json!({"spec": {
            "hostNetwork": true, "hostPID": true,
            "containers": [{"name": "node-exporter", "ports": [{"containerPort": 9100, "hostPort": 9100}],
                            "securityContext": {"privileged": true}}],
            "volumes": [{"name": "proc", "hostPath": {"path": "/proc"}},
                        {"name": "sys", "hostPath": {"path": "/sys"}}]}});
        assert_eq!(
            check(&ns(json!({ENFORCE_LABEL: "baseline"})), &p),
            Err(
                "violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true, hostPID=true), \
                 hostPath volumes (volumes \"proc\", \"sys\"), hostPort (container \"node-exporter\" uses \
                 hostPort 9100), privileged (container \"node-exporter\" must not set \
                 securityContext.privileged=true)"
                    .into()
            )
        );
    }

    #[test]
    fn warn_and_audit_levels() {
        let labels = json!({ENFORCE_LABEL: "baseline", WARN_LABEL: "restricted", AUDIT_LABEL: "restricted",
                            "pod-security.kubernetes.io/warn-version": "v1.24"});
        assert_eq!(
            check(&ns(labels.clone()), &web()),
            Ok(vec![format!(
                "would violate PodSecurity \"restricted:v1.24\": {RESTRICTED_WEB}"
            )])
        );
        let audit = audit_annotations(&ns(labels), &web());
        assert_eq!(
            audit.get(AUDIT_VIOLATIONS_ANNOTATION).map(String::as_str),
            Some(format!("would violate PodSecurity \"restricted:latest\": {RESTRICTED_WEB}").as_str())
        );
        // warn follows a stricter enforce; no duplicate warning.
        let (e, w, a) = policies(&ns(json!({ENFORCE_LABEL: "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.30"})));
        assert_eq!(
            (e.to_string(), w.to_string(), a.to_string()),
            (
                "baseline:v1.30".into(),
                "baseline:v1.30".into(),
                "privileged:latest".into()
            )
        );
    }

    #[test]
    fn invalid_level_means_restricted() {
        let got = check(&ns(json!({ENFORCE_LABEL: "strict"})), &web());
        assert_eq!(
            got,
            Err(format!("violates PodSecurity \"restricted:latest\": {RESTRICTED_WEB}"))
        );
        let got = check(
            &ns(json!({ENFORCE_LABEL: "baseline", "pod-security.kubernetes.io/enforce-version": "1.2"})),
            &web(),
        );
        assert_eq!(got, Ok(vec![]));
    }
}

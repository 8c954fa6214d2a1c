//! Node credentials: bootstrap tokens and the CSR API (certificates.k8s.io/v1), as kubeadm's TLS
//! bootstrap uses them. A bootstrap token (`<id>.<secret>`, a `bootstrap.kubernetes.io/token`
//! secret in kube-system) authenticates as `system:bootstrap:<id>` in `system:bootstrappers`;
//! with it a node creates a CertificateSigningRequest for `system:node:<name>` / `system:nodes`,
//! which is approved automatically (Kubernetes' csrapproving controller) and signed by the
//! cluster CA (its csrsigning controller); the node then talks with its own certificate. Other
//! requests wait for `kubectl certificate approve`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::pki::{self, CaBundle, UserInfo};
use crate::registry::{self, Resource};
use crate::storage::{ListSpec, Storage};

pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
const BOOTSTRAP_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

fn csrs() -> ApiResult<&'static Resource> {
    registry::lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
        .ok_or_else(|| ApiError::internal("certificatesigningrequests are not served"))
}

/// `<id>.<secret>`: 6 and 16 characters of [a-z0-9].
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The user a bootstrap token secret grants for `secret` (the token's secret half), if the secret
/// is a valid, unexpired bootstrap token usable for authentication.
pub fn bootstrap_user(stored: &Value, id: &str, secret: &str, now: chrono::DateTime<chrono::Utc>) -> Option<UserInfo> {
    if stored.get("type").and_then(Value::as_str) != Some(BOOTSTRAP_SECRET_TYPE) {
        return None;
    }
    let field = |k: &str| {
        stored
            .pointer(&format!("/data/{k}"))
            .and_then(Value::as_str)
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
    };
    if field("token-id").as_deref() != Some(id) || field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    let want = field("token-secret")?;
    let same =
        want.len() == secret.len() && want.bytes().zip(secret.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return None;
    }
    if let Some(exp) = field("expiration") {
        match chrono::DateTime::parse_from_rfc3339(&exp) {
            Ok(t) if t > now => {}
            _ => return None,
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    for g in field("auth-extra-groups").unwrap_or_default().split(',') {
        let g = g.trim();
        if g.starts_with("system:bootstrappers:") {
            groups.push(g.to_string());
        }
    }
    Some(UserInfo::authenticated(
        format!("system:bootstrap:{id}"),
        String::new(),
        groups,
    ))
}

/// Looks a bearer token up as a bootstrap token.
pub async fn authenticate_bootstrap(storage: &Storage, token: &str) -> Option<UserInfo> {
    let (id, secret) = parse_bootstrap_token(token)?;
    let secrets = registry::lookup("", "v1", "secrets")?;
    let stored = storage
        .get(secrets, Some("kube-system"), &format!("bootstrap-token-{id}"), true)
        .await
        .ok()??;
    bootstrap_user(&stored.obj, id, secret, chrono::Utc::now())
}

/// The create strategy: the requester is recorded from the request, not from the body, and the
/// request must be a readable, signed CSR.
pub fn prepare_create(obj: &mut Value, user: &UserInfo) -> ApiResult<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let invalid = |field: &str, value: &str, why: &str| {
        ApiError::invalid(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            &name,
            vec![Cause::invalid(field, value, why)],
        )
    };
    let request = obj.pointer("/spec/request").and_then(Value::as_str).unwrap_or("");
    let pem_bytes = STANDARD
        .decode(request)
        .map_err(|_| invalid("spec.request", "", "must be base64-encoded PEM"))?;
    let pem_text = String::from_utf8(pem_bytes).map_err(|_| invalid("spec.request", "", "must be PEM text"))?;
    pki::csr::read(&pem_text).map_err(|e| invalid("spec.request", "", &e.to_string()))?;
    if obj
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApiError::invalid(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            &name,
            vec![Cause::required("spec.signerName")],
        ));
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("username".into(), json!(user.name));
        spec.insert("uid".into(), json!(user.uid));
        spec.insert("groups".into(), json!(user.groups));
    }
    if let Some(o) = obj.as_object_mut() {
        o.insert("status".into(), json!({}));
    }
    Ok(())
}

/// `PUT .../approval`: only the conditions change, the rest stays as stored.
pub fn merge_approval(new: &Value, current: &Value) -> Value {
    let mut out = current.clone();
    let conditions = new.pointer("/status/conditions").cloned().unwrap_or_else(|| json!([]));
    out["status"]["conditions"] = conditions;
    if let Some(rv) = new.pointer("/metadata/resourceVersion") {
        out["metadata"]["resourceVersion"] = rv.clone();
    }
    out
}

fn has_condition(csr: &Value, kind: &str) -> bool {
    csr.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some(kind)
                && c.get("status").and_then(Value::as_str) != Some("False")
        })
}

fn request_pem(csr: &Value) -> Option<String> {
    let b = csr.pointer("/spec/request").and_then(Value::as_str)?;
    String::from_utf8(STANDARD.decode(b).ok()?).ok()
}

/// Whether Kubernetes' csrapproving controller would approve: a kubelet client certificate for
/// `system:node:<name>` in exactly `system:nodes`, asked for by a bootstrapper (a new node) or by
/// that very node (a renewal), with client usages only.
pub fn auto_approvable(csr: &Value) -> bool {
    if csr.pointer("/spec/signerName").and_then(Value::as_str) != Some(KUBELET_CLIENT_SIGNER) {
        return false;
    }
    let Some(subject) = request_pem(csr).and_then(|p| pki::csr::read(&p).ok()) else {
        return false;
    };
    if !subject.common_name.starts_with("system:node:") || subject.organizations != ["system:nodes"] {
        return false;
    }
    let usages_ok = csr.pointer("/spec/usages").and_then(Value::as_array).is_some_and(|u| {
        !u.is_empty()
            && u.iter().all(|x| {
                matches!(
                    x.as_str(),
                    Some("digital signature" | "key encipherment" | "client auth")
                )
            })
    });
    let username = csr.pointer("/spec/username").and_then(Value::as_str).unwrap_or("");
    let bootstrapper = csr
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .is_some_and(|g| g.iter().any(|x| x.as_str() == Some(BOOTSTRAPPERS_GROUP)));
    usages_ok && (bootstrapper || username == subject.common_name)
}

/// What the approver and signer do to one CSR, if anything: the new object to write.
pub fn reconcile(csr: &Value, ca: &CaBundle, now: &str) -> Option<Value> {
    if has_condition(csr, "Denied") || has_condition(csr, "Failed") {
        return None;
    }
    if !has_condition(csr, "Approved") {
        if !auto_approvable(csr) {
            return None;
        }
        let mut out = csr.clone();
        let cond = json!({
            "type": "Approved",
            "status": "True",
            "reason": "AutoApproved",
            "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        });
        match out.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
            Some(list) => list.push(cond),
            None => out["status"]["conditions"] = json!([cond]),
        }
        return Some(out);
    }
    if csr
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        return None;
    }
    let signer = csr.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or("");
    if signer != KUBELET_CLIENT_SIGNER && signer != CLIENT_SIGNER {
        // Another signer's business.
        return None;
    }
    let mut out = csr.clone();
    let pem_text = request_pem(csr).unwrap_or_default();
    let kubelet_ok = signer != KUBELET_CLIENT_SIGNER
        || pki::csr::read(&pem_text)
            .is_ok_and(|s| s.common_name.starts_with("system:node:") && s.organizations == ["system:nodes"]);
    match pki::csr::sign_client(ca, &pem_text) {
        Ok(cert) if kubelet_ok => out["status"]["certificate"] = json!(STANDARD.encode(cert)),
        other => {
            let why = match other {
                Err(e) => e.to_string(),
                Ok(_) => "the kubelet client signer only signs system:node:<name> in system:nodes".to_string(),
            };
            let cond = json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                "message": why, "lastUpdateTime": now, "lastTransitionTime": now});
            match out.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
                Some(list) => list.push(cond),
                None => out["status"]["conditions"] = json!([cond]),
            }
        }
    }
    Some(out)
}

/// One pass of approver and signer over every CSR; each write is a compare-and-swap, so every
/// master may run it.
pub async fn reconcile_all(storage: &Storage, ca: &CaBundle) -> ApiResult<usize> {
    let res = csrs()?;
    let prefix = res.list_prefix(None);
    let page = storage.list(&ListSpec::all(&prefix), None).await?;
    let now = crate::meta::now();
    let mut written = 0;
    for s in page.items {
        let Some(new) = reconcile(&s.obj, ca, &now) else {
            continue;
        };
        let name = crate::meta::name(&new).unwrap_or_default().to_string();
        match storage.update(res, None, &name, &new, s.rv).await {
            Ok(_) => written += 1,
            Err(e) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Runs [`reconcile_all`] every `every` until shutdown.
pub async fn run(
    storage: Storage,
    ca: CaBundle,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = reconcile_all(&storage, &ca).await {
            tracing::debug!(error = %e, "CSR approver/signer pass failed; retrying later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn token_secret(exp: Option<&str>) -> Value {
        let mut data = json!({
            "token-id": b64("abcdef"),
            "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-authentication": b64("true"),
            "auth-extra-groups": b64("system:bootstrappers:worker,evil"),
        });
        if let Some(e) = exp {
            data["expiration"] = json!(b64(e));
        }
        json!({"type": BOOTSTRAP_SECRET_TYPE, "data": data})
    }

    #[test]
    fn bootstrap_tokens() {
        assert_eq!(
            parse_bootstrap_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse_bootstrap_token("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse_bootstrap_token("abcdef.short"), None);
        let now = chrono::Utc::now();
        let u = bootstrap_user(&token_secret(None), "abcdef", "0123456789abcdef", now).expect("valid");
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert_eq!(
            u.groups,
            vec![
                BOOTSTRAPPERS_GROUP,
                "system:bootstrappers:worker",
                "system:authenticated"
            ]
        );
        assert!(bootstrap_user(&token_secret(None), "abcdef", "0123456789abcdeX", now).is_none());
        assert!(bootstrap_user(
            &token_secret(Some("2000-01-01T00:00:00Z")),
            "abcdef",
            "0123456789abcdef",
            now
        )
        .is_none());
        let mut wrong_type = token_secret(None);
        wrong_type["type"] = json!("Opaque");
        assert!(bootstrap_user(&wrong_type, "abcdef", "0123456789abcdef", now).is_none());
    }

    fn csr_pem(cn: &str, orgs: &[&str]) -> String {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for o in orgs {
            params.distinguished_name.push(rcgen::DnType::OrganizationName, *o);
        }
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.serialize_request(&key).expect("csr").pem().expect("pem")
    }

    fn csr_obj(cn: &str, orgs: &[&str], signer: &str, user: &UserInfo) -> Value {
        let mut obj = json!({
            "metadata": {"name": "c"},
            "spec": {"request": b64(&csr_pem(cn, orgs)), "signerName": signer,
                     "usages": ["digital signature", "client auth"], "username": "forged"},
        });
        prepare_create(&mut obj, user).expect("valid");
        obj
    }

    #[test]
    fn node_requests_are_approved_and_signed() {
        let ca = CaBundle::generate("ca").expect("ca");
        let boot = UserInfo::authenticated(
            "system:bootstrap:abcdef".into(),
            String::new(),
            vec![BOOTSTRAPPERS_GROUP.into()],
        );
        let obj = csr_obj("system:node:n3", &["system:nodes"], KUBELET_CLIENT_SIGNER, &boot);
        assert_eq!(
            obj["spec"]["username"], "system:bootstrap:abcdef",
            "the requester comes from the request"
        );
        let approved = reconcile(&obj, &ca, "now").expect("approved");
        assert!(has_condition(&approved, "Approved"));
        let signed = reconcile(&approved, &ca, "now").expect("signed");
        let cert = STANDARD
            .decode(signed["status"]["certificate"].as_str().expect("certificate"))
            .expect("base64");
        assert!(String::from_utf8_lossy(&cert).contains("BEGIN CERTIFICATE"));
        assert!(reconcile(&signed, &ca, "now").is_none(), "nothing more to do");
    }

    #[test]
    fn other_requests_wait_for_a_human() {
        let ca = CaBundle::generate("ca").expect("ca");
        let alice = UserInfo::authenticated("alice".into(), String::new(), vec![]);
        // alice asks for a node's identity: not auto-approved.
        let obj = csr_obj("system:node:n3", &["system:nodes"], KUBELET_CLIENT_SIGNER, &alice);
        assert!(reconcile(&obj, &ca, "now").is_none());
        let client = csr_obj("bob", &["devs"], CLIENT_SIGNER, &alice);
        assert!(reconcile(&client, &ca, "now").is_none());
        let mut approved = client.clone();
        approved["status"]["conditions"] = json!([{"type": "Approved", "status": "True"}]);
        let signed = reconcile(&approved, &ca, "now").expect("signed once approved");
        assert!(signed["status"]["certificate"].is_string());
        let mut denied = client;
        denied["status"]["conditions"] = json!([{"type": "Denied", "status": "True"}]);
        assert!(reconcile(&denied, &ca, "now").is_none());
    }

    #[test]
    fn unreadable_requests_are_invalid() {
        let alice = UserInfo::authenticated("alice".into(), String::new(), vec![]);
        let mut obj =
            json!({"metadata": {"name": "c"}, "spec": {"request": "bm90IGEgY3Ny", "signerName": CLIENT_SIGNER}});
        assert_eq!(prepare_create(&mut obj, &alice).expect_err("garbage").code, 422);
    }
}

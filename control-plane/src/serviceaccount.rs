//! Service accounts: the signing key every master shares (created by the first, kept in the
//! store like the cluster CA), what every namespace gets (the `default` service account and the
//! `kube-root-ca.crt` configmap; Kubernetes' controllers make them a moment after the namespace,
//! skiff makes them with it), the TokenRequest API (`kubectl create token`), the check that a
//! token's service account (and pod) still exist, and the ServiceAccount admission plugin.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::auth::token::{Claims, NameUid, SigningKey, DEFAULT_EXPIRATION};
use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::{self, Resource};
use crate::storage::Storage;
use crate::{defaults, meta};

/// Store key of the service account signing key (PKCS#8, base64 in JSON).
pub const KEY: &str = "/registry/skiff/pki/serviceaccount";
pub const DEFAULT: &str = "default";
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// What kube-apiserver projects: a token a little past an hour, so kubelets refresh it in time.
const PROJECTED_EXPIRATION: i64 = 3607;

fn core(plural: &str) -> ApiResult<&'static Resource> {
    registry::lookup("", "v1", plural).ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

/// The signing key from the store, creating it if this master is the first.
pub async fn adopt_key(storage: &Storage) -> Result<SigningKey, String> {
    let read = |raw: Vec<u8>| -> Result<SigningKey, String> {
        let v: Value = serde_json::from_slice(&raw).map_err(|e| format!("stored key unreadable: {e}"))?;
        let der = STANDARD
            .decode(v.get("pkcs8").and_then(Value::as_str).unwrap_or(""))
            .map_err(|e| format!("stored key unreadable: {e}"))?;
        SigningKey::from_pkcs8(&der).map_err(|e| e.to_string())
    };
    if let Some(raw) = storage.get_raw(KEY).await.map_err(|e| e.to_string())? {
        return read(raw);
    }
    let der = SigningKey::generate_pkcs8().map_err(|e| e.to_string())?;
    let value = serde_json::to_vec(&json!({"pkcs8": STANDARD.encode(der)})).map_err(|e| e.to_string())?;
    storage.put_if_absent(KEY, value).await.map_err(|e| e.to_string())?;
    // Another master may have won the race: use whatever is stored.
    let raw = storage
        .get_raw(KEY)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the key vanished after it was stored")?;
    read(raw)
}

async fn create_if_absent(storage: &Storage, res: &Resource, ns: &str, mut obj: Value) -> ApiResult<()> {
    let name = meta::name(&obj).unwrap_or_default().to_string();
    if storage.get(res, Some(ns), &name, false).await?.is_some() {
        return Ok(());
    }
    meta::prepare_create(&mut obj, res, Some(ns))?;
    defaults::apply(res, &mut obj, true);
    match storage.create(res, Some(ns), &name, &obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `default` service account and the `kube-root-ca.crt` configmap of a namespace.
pub async fn ensure_namespace_defaults(storage: &Storage, ns: &str, ca_pem: &str) -> ApiResult<()> {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT, "namespace": ns}});
    create_if_absent(storage, core("serviceaccounts")?, ns, sa).await?;
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIGMAP,
            "namespace": ns,
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."},
        },
        "data": {"ca.crt": ca_pem},
    });
    create_if_absent(storage, core("configmaps")?, ns, cm).await
}

/// POST serviceaccounts/<name>/token: a TokenRequest answered with a signed token.
pub async fn token_request(
    storage: &Storage,
    key: &SigningKey,
    ns: &str,
    name: &str,
    body: &Value,
    dry_run: bool,
    node: Option<&str>,
) -> ApiResult<Value> {
    let sa = storage.must_get(core("serviceaccounts")?, Some(ns), name).await?;
    let sa_uid = sa
        .obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut spec = match body.get("spec") {
        None | Some(Value::Null) => json!({}),
        Some(s) if s.is_object() => s.clone(),
        Some(_) => return Err(ApiError::bad_request("spec: must be an object")),
    };
    let seconds = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION);
    if seconds > crate::auth::token::MAX_EXPIRATION {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![Cause::invalid(
                "spec.expirationSeconds",
                &seconds.to_string(),
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    if seconds < crate::auth::token::MIN_EXPIRATION {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![Cause::invalid(
                "spec.expirationSeconds",
                &seconds.to_string(),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let pod = match spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        // A node's identity gets only tokens bound to a pod running on it (NodeRestriction).
        None if node.is_some() => {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!("serviceaccounts \"{name}\" is forbidden: node requested token not bound to a pod"),
            ))
        }
        None => None,
        Some(b) => {
            let kind = b.get("kind").and_then(Value::as_str).unwrap_or("");
            let pod_name = b.get("name").and_then(Value::as_str).unwrap_or("");
            if kind != "Pod" {
                return Err(ApiError::invalid(
                    "authentication.k8s.io",
                    "TokenRequest",
                    name,
                    vec![Cause::unsupported("spec.boundObjectRef.kind", kind, &["Pod"])],
                ));
            }
            let p = storage.must_get(core("pods")?, Some(ns), pod_name).await?;
            let uid = p.obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
            let runs_as = p
                .obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if runs_as != name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind a token for service account {name} to pod {pod_name}, which runs as service account {runs_as:?}"
                )));
            }
            if let Some(n) = node {
                if p.obj.pointer("/spec/nodeName").and_then(Value::as_str) != Some(n) {
                    return Err(ApiError::new(
                        403,
                        "Forbidden",
                        format!("serviceaccounts \"{name}\" is forbidden: node requested token bound to a pod scheduled on a different node"),
                    ));
                }
            }
            if let Some(want) = b.get("uid").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                if want != uid {
                    return Err(ApiError::conflict(
                        "",
                        "pods",
                        pod_name,
                        &format!("the UID in the bound object reference ({want}) does not match the pod ({uid})"),
                    ));
                }
            }
            Some(NameUid {
                name: pod_name.to_string(),
                uid: uid.to_string(),
            })
        }
    };
    let now = chrono::Utc::now().timestamp();
    let claims = Claims::new(
        ns,
        NameUid {
            name: name.to_string(),
            uid: sa_uid,
        },
        pod,
        audiences.clone(),
        now,
        seconds,
    );
    let token = if dry_run {
        String::new()
    } else {
        key.sign(&claims).map_err(|e| ApiError::internal(e.to_string()))?
    };
    spec["audiences"] = json!(claims.aud);
    spec["expirationSeconds"] = json!(claims.exp - now);
    let expires = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default();
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": Value::Null},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": meta::timestamp(expires)},
    }))
}

/// Whether the service account (and the pod) a verified token names still exist with the
/// uids it was issued for: a deleted and recreated account's old tokens stop working.
pub async fn token_still_valid(storage: &Storage, claims: &Claims) -> ApiResult<bool> {
    let k = &claims.kubernetes;
    let sa = storage
        .get(
            core("serviceaccounts")?,
            Some(&k.namespace),
            &k.serviceaccount.name,
            true,
        )
        .await?;
    let uid_of = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match sa {
        Some(s) if k.serviceaccount.uid.is_empty() || uid_of(&s.obj) == k.serviceaccount.uid => {}
        _ => return Ok(false),
    }
    if let Some(p) = &k.pod {
        match storage.get(core("pods")?, Some(&k.namespace), &p.name, true).await? {
            Some(pod) if uid_of(&pod.obj) == p.uid => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// ServiceAccount admission for a new pod: `default` unless it names one, the account must
/// exist (`sa` is what the store holds, `None` if missing), and unless automounting is turned
/// off the pod gets the token volume kube-apiserver adds (`kube-api-access-<suffix>`).
pub fn admit_pod(pod: &mut Value, ns: &str, sa: Option<&Value>) -> Result<(), String> {
    let name = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT)
        .to_string();
    let Some(sa) = sa else {
        return Err(format!(
            "error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"
        ));
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| sa.get("automountServiceAccountToken").and_then(Value::as_bool))
        .unwrap_or(true);
    let mounted = ["containers", "initContainers"].iter().any(|list| {
        spec.get(*list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten())
            .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
    });
    if !automount || mounted {
        return Ok(());
    }
    let suffix: String = uuid::Uuid::new_v4().simple().to_string().chars().take(5).collect();
    let volume = format!("kube-api-access-{suffix}");
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(v) = volumes.as_array_mut() {
        v.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": PROJECTED_EXPIRATION, "path": "token"}},
                    {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
    for list in ["containers", "initContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(c) = c.as_object_mut() {
                let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                if let Some(m) = mounts.as_array_mut() {
                    m.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_the_default_account_and_its_token_volume() {
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let sa = json!({"metadata": {"name": "default"}});
        admit_pod(&mut pod, "a", Some(&sa)).expect("admitted");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let vol = &pod["spec"]["volumes"][0];
        assert!(vol["name"].as_str().is_some_and(|n| n.starts_with("kube-api-access-")));
        assert_eq!(vol["projected"]["sources"][0]["serviceAccountToken"]["path"], "token");
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"][0]["mountPath"], MOUNT_PATH);
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"][0]["name"], vol["name"]);
    }

    #[test]
    fn automount_off_and_missing_accounts() {
        let mut pod = json!({"spec": {"automountServiceAccountToken": false, "containers": [{"name": "c"}]}});
        admit_pod(&mut pod, "a", Some(&json!({}))).expect("admitted");
        assert!(pod["spec"].get("volumes").is_none());
        let mut pod = json!({"spec": {"containers": [{"name": "c"}]}});
        let sa = json!({"automountServiceAccountToken": false});
        admit_pod(&mut pod, "a", Some(&sa)).expect("admitted");
        assert!(pod["spec"].get("volumes").is_none());
        let mut pod = json!({"spec": {"serviceAccountName": "ci", "containers": [{"name": "c"}]}});
        assert_eq!(
            admit_pod(&mut pod, "a", None).expect_err("missing"),
            "error looking up service account a/ci: serviceaccount \"ci\" not found"
        );
    }
}

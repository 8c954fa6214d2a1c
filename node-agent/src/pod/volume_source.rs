//! The API reads behind volumes and env: configMaps, secrets, bound service-account tokens
//! (TokenRequest) and the cluster CA, for one pod's start.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use serde_json::json;

use crate::kube::{KubeClient, KubeError};
use crate::spec::{NodeResources, ResolvedEnv};
use crate::volumes::{BoxFuture, SourceError, VolumeSource};

pub struct ApiSource {
    client: Arc<KubeClient>,
    ca_pem: String,
    node: NodeResources,
}

fn source_error(e: KubeError) -> SourceError {
    match e.code() {
        Some(403) => SourceError::Forbidden(e.to_string()),
        _ => SourceError::Unavailable(e.to_string()),
    }
}

impl ApiSource {
    pub fn new(client: Arc<KubeClient>, ca_pem: String, node: NodeResources) -> ApiSource {
        ApiSource { client, ca_pem, node }
    }
}

impl VolumeSource for ApiSource {
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, SourceError>> {
        Box::pin(async move {
            self.client
                .get_opt(&format!("/api/v1/namespaces/{namespace}/configmaps/{name}"))
                .await
                .map_err(source_error)
        })
    }

    fn secret<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, SourceError>> {
        Box::pin(async move {
            self.client
                .get_opt(&format!("/api/v1/namespaces/{namespace}/secrets/{name}"))
                .await
                .map_err(source_error)
        })
    }

    fn service_account_token<'a>(
        &'a self,
        pod: &'a Pod,
        audience: Option<&'a str>,
        expiration_seconds: i64,
    ) -> BoxFuture<'a, Result<String, SourceError>> {
        Box::pin(async move {
            let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let sa = pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into());
            let mut spec = json!({
                "expirationSeconds": expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid},
            });
            if let Some(a) = audience {
                spec["audiences"] = json!([a]);
            }
            let req = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
            let resp: serde_json::Value = self
                .client
                .create(&format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"), &req)
                .await
                .map_err(source_error)?;
            resp["status"]["token"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| SourceError::Unavailable("TokenRequest answer has no status.token".into()))
        })
    }

    fn root_ca(&self) -> BoxFuture<'_, Result<String, SourceError>> {
        Box::pin(async move { Ok(self.ca_pem.clone()) })
    }

    fn node_resources(&self) -> NodeResources {
        self.node
    }
}

/// The configMap and secret values a container's `env` and `envFrom` name, read from the API.
/// A missing object or key is left out: the spec builder decides (optional or an error).
pub async fn resolve_env(source: &ApiSource, pod: &Pod, container: &Container) -> Result<ResolvedEnv, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let mut resolved = ResolvedEnv::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(cm) = &from.config_map_ref {
            match source.config_map(&ns, &cm.name).await.map_err(|e| e.to_string())? {
                Some(c) => c.data.unwrap_or_default(),
                None if cm.optional == Some(true) => continue,
                None => return Err(format!("configmap \"{}\" not found", cm.name)),
            }
        } else if let Some(s) = &from.secret_ref {
            match source.secret(&ns, &s.name).await.map_err(|e| e.to_string())? {
                Some(sec) => secret_strings(&sec),
                None if s.optional == Some(true) => continue,
                None => return Err(format!("secret \"{}\" not found", s.name)),
            }
        } else {
            continue;
        };
        for (k, v) in data {
            resolved.env_from.push((format!("{prefix}{k}"), v));
        }
    }
    for var in container.env.iter().flatten() {
        let Some(vf) = &var.value_from else { continue };
        if let Some(sel) = &vf.config_map_key_ref {
            if let Some(cm) = source.config_map(&ns, &sel.name).await.map_err(|e| e.to_string())? {
                if let Some(v) = cm.data.as_ref().and_then(|d| d.get(&sel.key)) {
                    resolved.key_refs.insert(var.name.clone(), v.clone());
                }
            }
        } else if let Some(sel) = &vf.secret_key_ref {
            if let Some(sec) = source.secret(&ns, &sel.name).await.map_err(|e| e.to_string())? {
                if let Some(v) = secret_strings(&sec).get(&sel.key) {
                    resolved.key_refs.insert(var.name.clone(), v.clone());
                }
            }
        }
    }
    Ok(resolved)
}

fn secret_strings(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s.string_data.clone().unwrap_or_default();
    for (k, v) in s.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

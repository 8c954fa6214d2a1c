//! A container's environment: kubelet's env list, then containerd's merge over the image env.
//!
//! kubelet resolves `envFrom` first and then `env` in order; a plain `value` is expanded with
//! `$(VAR)` against the variables defined *before* it; `valueFrom` values are not expanded.
//! containerd then lays the result over `HOSTNAME=` and the image's env: a name already
//! present keeps its position and takes the new value, a new name is appended.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::expand::expand;
use super::fields::{field_ref_value, resource_field_value, NodeResources};
use super::SpecError;

/// The PATH containerd puts in when neither the image nor the pod sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Inputs to [`container_env`] that the caller resolved from the API.
#[derive(Debug, Clone, Default)]
pub struct ResolvedEnv {
    /// `envFrom` entries (configMaps/secrets read by the caller), prefix applied, in order.
    pub env_from: Vec<(String, String)>,
    /// Values of `env` entries whose `valueFrom` is a configMapKeyRef/secretKeyRef, by env
    /// name. An entry absent here is skipped when its ref is optional and an error otherwise.
    pub key_refs: BTreeMap<String, String>,
}

/// kubelet's env list for `container`: names in first-definition order, last value wins.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    resolved: &ResolvedEnv,
    node: &NodeResources,
) -> Result<Vec<(String, String)>, SpecError> {
    let mut env = EnvList::default();
    for (name, value) in &resolved.env_from {
        env.set(name, value.clone());
    }
    for var in container.env.iter().flatten() {
        let context = format!("env var {}", var.name);
        let value = if let Some(source) = &var.value_from {
            if let Some(field) = &source.field_ref {
                field_ref_value(pod, &field.field_path, &context)?
            } else if let Some(res) = &source.resource_field_ref {
                resource_field_value(container, res, node, &context)?
            } else if let Some(sel) = &source.config_map_key_ref {
                match resolved.key_refs.get(&var.name) {
                    Some(v) => v.clone(),
                    None if sel.optional == Some(true) => continue,
                    None => return Err(missing(pod, &var.name, "configmap", &sel.name, &sel.key)),
                }
            } else if let Some(sel) = &source.secret_key_ref {
                match resolved.key_refs.get(&var.name) {
                    Some(v) => v.clone(),
                    None if sel.optional == Some(true) => continue,
                    None => return Err(missing(pod, &var.name, "secret", &sel.name, &sel.key)),
                }
            } else {
                return Err(SpecError::EmptyValueFrom { env: var.name.clone() });
            }
        } else {
            let raw = var.value.as_deref().unwrap_or_default();
            expand(raw, |name| env.get(name).map(str::to_string))
        };
        env.set(&var.name, value);
    }
    Ok(env.into_vec())
}

fn missing(pod: &Pod, env: &str, kind: &'static str, name: &str, key: &str) -> SpecError {
    SpecError::MissingEnvSource {
        env: env.to_string(),
        kind,
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: name.to_string(),
        key: key.to_string(),
    }
}

/// The final OCI `process.env`: `HOSTNAME`, image env, container env, and a default PATH.
pub fn merge_env(hostname: &str, image_env: &[String], container_env: &[(String, String)]) -> Vec<String> {
    let mut env = EnvList::default();
    env.set("HOSTNAME", hostname.to_string());
    for entry in image_env {
        let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        env.set(name, value.to_string());
    }
    for (name, value) in container_env {
        env.set(name, value.clone());
    }
    if env.get("PATH").is_none() {
        env.set("PATH", DEFAULT_PATH.to_string());
    }
    env.into_vec().into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// An ordered map: replacing keeps the first position (containerd's replace-or-append).
#[derive(Default)]
struct EnvList {
    entries: Vec<(String, String)>,
    index: BTreeMap<String, usize>,
}

impl EnvList {
    fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.entries.len());
                self.entries.push((name.to_string(), value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.entries[i].1.as_str())
    }

    fn into_vec(self) -> Vec<(String, String)> {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"containers": [], "nodeName": "n1"},
            "status": {"podIP": "10.0.0.9"}
        }))
        .unwrap()
    }

    fn container(env: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "c", "env": env})).unwrap()
    }

    #[test]
    fn values_expand_against_earlier_vars_only() {
        let c = container(json!([
            {"name": "A", "value": "a"},
            {"name": "B", "value": "$(A)-$(C)-$$(A)"},
            {"name": "C", "value": "c"},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "D", "value": "$(IP)"},
        ]));
        let env = container_env(&pod(), &c, &ResolvedEnv::default(), &NodeResources::default()).unwrap();
        let got: Vec<_> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(got, ["A=a", "B=a-$(C)-$(A)", "C=c", "IP=10.0.0.9", "D=10.0.0.9"]);
    }

    #[test]
    fn env_from_then_env_override_in_place() {
        let c = container(json!([{"name": "X", "value": "from-env"}, {"name": "Y", "value": "$(X)"}]));
        let resolved = ResolvedEnv {
            env_from: vec![("X".into(), "from-cm".into()), ("Z".into(), "z".into())],
            key_refs: BTreeMap::new(),
        };
        let env = container_env(&pod(), &c, &resolved, &NodeResources::default()).unwrap();
        assert_eq!(
            env,
            [
                ("X".into(), "from-env".into()),
                ("Z".into(), "z".into()),
                ("Y".into(), "from-env".into())
            ]
        );
    }

    #[test]
    fn key_refs_resolved_by_caller() {
        let c = container(json!([
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "O", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}},
            {"name": "V", "value": "$(K)"},
        ]));
        let mut resolved = ResolvedEnv::default();
        resolved.key_refs.insert("K".into(), "kv".into());
        let env = container_env(&pod(), &c, &resolved, &NodeResources::default()).unwrap();
        assert_eq!(
            env,
            [("K".into(), "kv".into()), ("V".into(), "kv".into())],
            "optional missing is skipped"
        );
        let err = container_env(&pod(), &c, &ResolvedEnv::default(), &NodeResources::default()).unwrap_err();
        assert!(err.to_string().contains("configmap prod/cm"), "{err}");
    }

    #[test]
    fn merge_order_image_then_container_then_path() {
        let image = vec!["PATH=/img/bin".to_string(), "LANG=C".to_string(), "FOO=img".to_string()];
        let ctr = vec![
            ("FOO".to_string(), "pod".to_string()),
            ("NEW".to_string(), "1".to_string()),
        ];
        assert_eq!(
            merge_env("h", &image, &ctr),
            ["HOSTNAME=h", "PATH=/img/bin", "LANG=C", "FOO=pod", "NEW=1"]
        );
        assert_eq!(
            merge_env("h", &[], &[]),
            ["HOSTNAME=h".to_string(), format!("PATH={DEFAULT_PATH}")]
        );
    }
}

//! What every pod worker shares: the API client, the runtime, the image store, the pod network,
//! and the node's facts; and the steps of starting a container that need them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use serde_json::json;

use crate::image::{Credentials, Image, ImageError, ImageStore, PullOptions, Reference};
use crate::kube::KubeClient;
use crate::node_network::NodeNetwork;
use crate::runtime::{cgroups, rootfs, sandbox, RuntimeClient};
use crate::spec::{NodeResources, ResolvedEnv};

use super::volume_source::{resolve_env, ApiSource};

pub struct Context {
    pub client: Arc<KubeClient>,
    pub runtime: Arc<RuntimeClient>,
    pub images: Arc<ImageStore>,
    pub network: Arc<NodeNetwork>,
    pub node_name: String,
    pub node_ip: String,
    pub pods_dir: PathBuf,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub insecure_registries: Vec<String>,
    pub node_resources: NodeResources,
    /// The cluster CA (PEM), for `kube-root-ca.crt` in service-account volumes.
    pub ca_pem: String,
}

/// kubelet's default pull policy: Always for `:latest` or an untagged name, else IfNotPresent.
pub fn pull_policy(container: &Container, reference: &Reference) -> String {
    if let Some(p) = &container.image_pull_policy {
        return p.clone();
    }
    if reference.digest().is_none() && reference.tag().is_none_or(|t| t == "latest") {
        "Always".into()
    } else {
        "IfNotPresent".into()
    }
}

impl Context {
    /// The container's image, pulled as its policy says. Errors are (reason, message).
    pub async fn ensure_image(&self, container: &Container, pod: &Pod) -> Result<Image, (&'static str, String)> {
        let name = container.image.clone().unwrap_or_default();
        let reference = Reference::parse(&name).map_err(|e| {
            (
                "InvalidImageName",
                format!("Failed to apply default image tag {name:?}: {e}"),
            )
        })?;
        let policy = pull_policy(container, &reference);
        if policy != "Always" {
            match self.images.get(&reference).await {
                Ok(Some(img)) => return Ok(img),
                Ok(None) if policy == "Never" => {
                    return Err((
                        "ErrImageNeverPull",
                        format!("Container image {name:?} is not present with pull policy of Never"),
                    ));
                }
                Ok(None) => {}
                Err(e) => return Err(("ErrImagePull", e.to_string())),
            }
        }
        self.event(pod, "Normal", "Pulling", &format!("Pulling image {name:?}"))
            .await;
        let started = std::time::Instant::now();
        let opts = PullOptions {
            auth: self.pull_credentials(pod, &reference).await,
            insecure_registries: self.insecure_registries.clone(),
            progress: None,
        };
        match self.images.pull(&reference, &opts).await {
            Ok(img) => {
                let msg = format!(
                    "Successfully pulled image {name:?} in {:.3}s. Image size: {} bytes.",
                    started.elapsed().as_secs_f64(),
                    img.size
                );
                self.event(pod, "Normal", "Pulled", &msg).await;
                Ok(img)
            }
            Err(e) => {
                let msg = match &e {
                    ImageError::NotFound { .. } => format!("Failed to pull image {name:?}: {e}: not found"),
                    _ => format!("Failed to pull image {name:?}: {e}"),
                };
                self.event(pod, "Warning", "Failed", &msg).await;
                Err(("ErrImagePull", msg))
            }
        }
    }

    /// Registry credentials from the pod's imagePullSecrets (`.dockerconfigjson`).
    async fn pull_credentials(&self, pod: &Pod, reference: &Reference) -> Option<Credentials> {
        let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        for s in pod.spec.as_ref()?.image_pull_secrets.iter().flatten() {
            let name = s.name.as_str();
            let Ok(Some(secret)) = self
                .client
                .get_opt::<Secret>(&format!("/api/v1/namespaces/{ns}/secrets/{name}"))
                .await
            else {
                continue;
            };
            let Some(raw) = secret.data.as_ref().and_then(|d| d.get(".dockerconfigjson")) else {
                continue;
            };
            if let Some(c) = docker_config_credentials(&raw.0, reference.registry()) {
                return Some(c);
            }
        }
        None
    }

    fn source(&self) -> ApiSource {
        ApiSource::new(self.client.clone(), self.ca_pem.clone(), self.node_resources)
    }

    pub async fn prepare_volumes(&self, pod: &Pod, dir: &Path) -> Result<BTreeMap<String, PathBuf>, String> {
        crate::volumes::prepare(pod, dir, &self.source())
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn resolve_env(&self, pod: &Pod, container: &Container) -> Result<ResolvedEnv, String> {
        resolve_env(&self.source(), pod, container).await
    }

    /// Mounts the root filesystem and writes the OCI bundle's config.json.
    #[allow(clippy::too_many_arguments)]
    pub fn prepare_bundle(
        &self,
        pod: &Pod,
        container: &Container,
        image: &Image,
        bundle: &Path,
        ns: Option<&sandbox::Namespaces>,
        volumes: Option<&BTreeMap<String, PathBuf>>,
        pod_dir: &Path,
        id: &str,
        uid: &str,
        resolved_env: ResolvedEnv,
        hostname: &str,
    ) -> Result<(), String> {
        let ns = ns.ok_or("the pod has no sandbox")?;
        let root = rootfs::mount(&image.layers, bundle).map_err(|e| e.to_string())?;
        let defaults = crate::spec::ImageDefaults {
            entrypoint: image.config.entrypoint.clone(),
            cmd: image.config.cmd.clone(),
            env: image.config.env.clone(),
            working_dir: image.config.working_dir.clone(),
            user: image.config.user.clone(),
        };
        let termination_log = pod_dir.join("termination").join(id);
        if let Some(parent) = termination_log.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&termination_log, b"").map_err(|e| e.to_string())?;
        let plan = crate::spec::ContainerPlan {
            pod,
            container,
            image: &defaults,
            rootfs: root,
            namespaces: crate::spec::SandboxNamespaces {
                net: ns.net.clone(),
                ipc: Some(ns.ipc.clone()),
                uts: ns.uts.clone(),
            },
            cgroups_path: cgroups::container_path(uid, id),
            volumes: volumes.cloned().unwrap_or_default(),
            etc_hosts: pod_dir.join("etc-hosts"),
            resolv_conf: pod_dir.join("resolv.conf"),
            hostname: hostname.to_string(),
            hostname_file: Some(pod_dir.join("hostname")),
            termination_log: Some(termination_log),
            resolved_env,
            node: self.node_resources,
            pids_limit: None,
        };
        let spec = crate::spec::container_spec(&plan).map_err(|e| e.to_string())?;
        spec.save(bundle.join("config.json")).map_err(|e| e.to_string())
    }

    /// /etc/hosts, /etc/resolv.conf and /etc/hostname of the pod's containers.
    pub fn write_pod_files(&self, pod: &Pod, dir: &Path, pod_ip: &str, hostname: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let hosts = if pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false) {
            crate::spec::etc_hosts_host_network(pod, &std::fs::read_to_string("/etc/hosts").unwrap_or_default())
        } else {
            let ips: Vec<IpAddr> = pod_ip.parse().into_iter().collect();
            crate::spec::etc_hosts(pod, &ips, &self.cluster_domain)
        };
        std::fs::write(dir.join("etc-hosts"), hosts)?;
        std::fs::write(
            dir.join("resolv.conf"),
            crate::spec::resolv_conf(pod, &self.cluster_dns, &self.cluster_domain, &host_resolv),
        )?;
        std::fs::write(dir.join("hostname"), format!("{hostname}\n"))
    }

    pub async fn setup_network(&self, uid: &str, netns: &Path) -> Result<Ipv4Addr, String> {
        self.network.setup(uid, netns).await
    }

    pub async fn teardown_network(&self, uid: &str) {
        self.network.teardown(uid).await;
    }

    /// Records a core/v1 Event about the pod (best effort: an event lost is not an error).
    pub async fn event(&self, pod: &Pod, kind: &str, reason: &str, message: &str) {
        let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = chrono::Utc::now();
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{name}.{:x}", now.timestamp_nanos_opt().unwrap_or(0)), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name, "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "lastTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        });
        if let Err(e) = self
            .client
            .create::<_, serde_json::Value>(&format!("/api/v1/namespaces/{ns}/events"), &ev)
            .await
        {
            tracing::debug!(error = %e, "recording an event");
        }
    }
}

/// Credentials for `registry` in a `.dockerconfigjson` document (`auths.<host>.auth` is
/// base64 "user:password"; `username`/`password` fields also count).
pub fn docker_config_credentials(raw: &[u8], registry: &str) -> Option<Credentials> {
    use base64::Engine;
    let doc: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let auths = doc.get("auths")?.as_object()?;
    let wanted = |k: &str| {
        let host = k
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        host == registry || (registry == "docker.io" && (host == "index.docker.io" || host == "registry-1.docker.io"))
    };
    let entry = auths.iter().find(|(k, _)| wanted(k))?.1;
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(|v| v.as_str()),
        entry.get("password").and_then(|v| v.as_str()),
    ) {
        return Some(Credentials {
            username: u.into(),
            password: p.into(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.into(),
        password: p.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_auth_is_decoded() {
        let raw = br#"{"auths":{"127.0.0.1:5000":{"auth":"dXNlcjpzZWNyZXQ="}}}"#;
        let c = docker_config_credentials(raw, "127.0.0.1:5000");
        assert_eq!(
            c.map(|c| (c.username, c.password)),
            Some(("user".into(), "secret".into()))
        );
        assert!(docker_config_credentials(raw, "other:5000").is_none());
        assert!(docker_config_credentials(b"not json", "x").is_none());
    }

    #[test]
    fn default_pull_policy_follows_the_tag() {
        let c = Container::default();
        let latest = Reference::parse("busybox").ok();
        let tagged = Reference::parse("busybox:1.36").ok();
        assert_eq!(latest.map(|r| pull_policy(&c, &r)).as_deref(), Some("Always"));
        assert_eq!(tagged.map(|r| pull_policy(&c, &r)).as_deref(), Some("IfNotPresent"));
    }
}

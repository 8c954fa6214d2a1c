//! [`prepare`]: a pod's volumes from API reads to files; [`cleanup`]: removing them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Volume};

use super::atomic::write_payload;
use super::host_path;
use super::payload::{add_downward_api, add_keys, FileData, KeyedData, Payload};
use super::{VolumeError, VolumeSource};

/// The API's default for a projected token's lifetime.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;
/// The configMap every namespace gets with the cluster CA.
const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// What to do on disk for one volume; computed before any IO.
enum Plan {
    Dir(PathBuf),
    HostPath { path: PathBuf, typ: String },
    Files { dir: PathBuf, payload: Payload },
}

/// Prepare every volume of `pod` under `pod_dir`; returns volume name -> host path to
/// bind-mount. API errors and missing objects fail the whole pod (kubelet retries).
pub async fn prepare(
    pod: &Pod,
    pod_dir: &Path,
    source: &dyn VolumeSource,
) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut plans = Vec::new();
    for volume in pod.spec.as_ref().and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
        plans.push((volume.name.clone(), plan(pod, pod_dir, volume, source).await?));
    }
    let result = tokio::task::spawn_blocking(move || apply(plans)).await;
    result.map_err(|e| VolumeError::Task(e.to_string()))?
}

fn apply(plans: Vec<(String, Plan)>) -> Result<BTreeMap<String, PathBuf>, VolumeError> {
    let mut out = BTreeMap::new();
    for (name, plan) in plans {
        let io = |op, path: &Path| {
            let (volume, path) = (name.clone(), path.display().to_string());
            move |source| VolumeError::Io {
                volume,
                op,
                path,
                source,
            }
        };
        let path = match plan {
            Plan::Dir(dir) => {
                fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                // emptyDir is world-writable so any container user can use it (kubelet: 0777).
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(io("chmod", &dir))?;
                dir
            }
            Plan::HostPath { path, typ } => {
                host_path::check(&name, &path, &typ)?;
                path
            }
            Plan::Files { dir, payload } => {
                write_payload(&name, &dir, &payload)?;
                dir
            }
        };
        out.insert(name, path);
    }
    Ok(out)
}

fn volume_dir(pod_dir: &Path, plugin: &str, name: &str) -> Result<PathBuf, VolumeError> {
    // Volume names are DNS labels in the API; a static manifest is not validated.
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(VolumeError::InvalidPath {
            volume: name.to_string(),
            path: name.to_string(),
        });
    }
    Ok(pod_dir.join("volumes").join(plugin).join(name))
}

async fn plan(pod: &Pod, pod_dir: &Path, volume: &Volume, source: &dyn VolumeSource) -> Result<Plan, VolumeError> {
    let name = volume.name.as_str();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let src_err = |e| VolumeError::Source {
        volume: name.to_string(),
        source: e,
    };
    if volume.empty_dir.is_some() {
        // medium: Memory is a plain directory too (no tmpfs mount yet).
        return Ok(Plan::Dir(volume_dir(pod_dir, "empty-dir", name)?));
    }
    if let Some(hp) = &volume.host_path {
        host_path::check_absolute(name, &hp.path)?;
        return Ok(Plan::HostPath {
            path: PathBuf::from(&hp.path),
            typ: hp.type_.clone().unwrap_or_default(),
        });
    }
    let mut payload = Payload::new();
    let dir = if let Some(cm_src) = &volume.config_map {
        let optional = cm_src.optional == Some(true);
        match source.config_map(namespace, &cm_src.name).await.map_err(src_err)? {
            Some(cm) => {
                let keys = KeyedData::from_config_map(&cm_src.name, &cm);
                add_keys(
                    &mut payload,
                    name,
                    &keys,
                    cm_src.items.as_ref(),
                    cm_src.default_mode,
                    optional,
                )?;
            }
            None if optional => {}
            None => {
                return Err(VolumeError::ConfigMapNotFound {
                    volume: name.into(),
                    name: cm_src.name.clone(),
                })
            }
        }
        volume_dir(pod_dir, "configmap", name)?
    } else if let Some(s_src) = &volume.secret {
        let optional = s_src.optional == Some(true);
        let secret_name = s_src.secret_name.clone().unwrap_or_default();
        match source.secret(namespace, &secret_name).await.map_err(src_err)? {
            Some(secret) => {
                let keys = KeyedData::from_secret(&secret_name, &secret);
                add_keys(
                    &mut payload,
                    name,
                    &keys,
                    s_src.items.as_ref(),
                    s_src.default_mode,
                    optional,
                )?;
            }
            None if optional => {}
            None => {
                return Err(VolumeError::SecretNotFound {
                    volume: name.into(),
                    name: secret_name,
                })
            }
        }
        volume_dir(pod_dir, "secret", name)?
    } else if let Some(d_src) = &volume.downward_api {
        let items = d_src.items.as_deref().unwrap_or_default();
        add_downward_api(
            &mut payload,
            name,
            pod,
            items,
            d_src.default_mode,
            &source.node_resources(),
        )?;
        volume_dir(pod_dir, "downward-api", name)?
    } else if let Some(p_src) = &volume.projected {
        for projection in p_src.sources.iter().flatten() {
            project(&mut payload, pod, name, projection, p_src.default_mode, source).await?;
        }
        volume_dir(pod_dir, "projected", name)?
    } else {
        return Err(VolumeError::Unsupported {
            volume: name.to_string(),
            kind: volume_kind(volume),
        });
    };
    Ok(Plan::Files { dir, payload })
}

/// Add one source of a projected volume to `payload`.
async fn project(
    payload: &mut Payload,
    pod: &Pod,
    volume: &str,
    projection: &k8s_openapi::api::core::v1::VolumeProjection,
    default_mode: Option<i32>,
    source: &dyn VolumeSource,
) -> Result<(), VolumeError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let src_err = |e| VolumeError::Source {
        volume: volume.to_string(),
        source: e,
    };
    if let Some(cm_src) = &projection.config_map {
        let optional = cm_src.optional == Some(true);
        let mut found = source.config_map(namespace, &cm_src.name).await.map_err(src_err)?;
        if found.is_none() && cm_src.name == ROOT_CA_CONFIG_MAP {
            // The root-CA publisher may not have reached a new namespace yet.
            let ca = source.root_ca().await.map_err(src_err)?;
            found = Some(k8s_openapi::api::core::v1::ConfigMap {
                data: Some([("ca.crt".to_string(), ca)].into_iter().collect()),
                ..Default::default()
            });
        }
        match found {
            Some(cm) => {
                let keys = KeyedData::from_config_map(&cm_src.name, &cm);
                add_keys(payload, volume, &keys, cm_src.items.as_ref(), default_mode, optional)?;
            }
            None if optional => {}
            None => {
                return Err(VolumeError::ConfigMapNotFound {
                    volume: volume.into(),
                    name: cm_src.name.clone(),
                })
            }
        }
    }
    if let Some(s_src) = &projection.secret {
        let optional = s_src.optional == Some(true);
        match source.secret(namespace, &s_src.name).await.map_err(src_err)? {
            Some(secret) => {
                let keys = KeyedData::from_secret(&s_src.name, &secret);
                add_keys(payload, volume, &keys, s_src.items.as_ref(), default_mode, optional)?;
            }
            None if optional => {}
            None => {
                return Err(VolumeError::SecretNotFound {
                    volume: volume.into(),
                    name: s_src.name.clone(),
                })
            }
        }
    }
    if let Some(d_src) = &projection.downward_api {
        let items = d_src.items.as_deref().unwrap_or_default();
        add_downward_api(payload, volume, pod, items, default_mode, &source.node_resources())?;
    }
    if let Some(token) = &projection.service_account_token {
        super::payload::check_path(volume, &token.path)?;
        let seconds = token.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS);
        let jwt = source
            .service_account_token(pod, token.audience.as_deref(), seconds)
            .await
            .map_err(src_err)?;
        let mode = super::payload::mode(None, default_mode);
        payload.insert(
            token.path.clone(),
            FileData {
                data: jwt.into_bytes(),
                mode,
            },
        );
    }
    Ok(())
}

fn volume_kind(volume: &Volume) -> &'static str {
    let v = volume;
    let kinds: [(&'static str, bool); 7] = [
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("nfs", v.nfs.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("image", v.image.is_some()),
        ("gitRepo", v.git_repo.is_some()),
    ];
    kinds.iter().find(|(_, set)| *set).map(|(k, _)| *k).unwrap_or("unknown")
}

/// Remove everything [`prepare`] created for the pod (`pod_dir/volumes`); hostPaths are
/// left alone. Symlinks are removed, never followed.
pub fn cleanup(pod_dir: &Path) -> Result<(), VolumeError> {
    let dir = pod_dir.join("volumes");
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(VolumeError::Io {
            volume: String::new(),
            op: "remove",
            path: dir.display().to_string(),
            source,
        }),
    }
}

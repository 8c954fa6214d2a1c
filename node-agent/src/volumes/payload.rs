//! File payloads of configMap, secret, downwardAPI and projected volumes (pure).
//!
//! Rules are kubelet's: without `items` every key becomes a file named after it; with
//! `items` only the listed keys, at their `path`, a missing key being an error unless the
//! source is optional; a file's mode is the item's `mode`, else the volume's `defaultMode`,
//! else 0644.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret};

use super::VolumeError;
use crate::spec::{field_ref_value, resource_field_value, NodeResources, SpecError};

/// Kubernetes' default file mode for these volumes (420 decimal).
pub const DEFAULT_MODE: u32 = 0o644;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileData {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path -> file.
pub type Payload = BTreeMap<String, FileData>;

/// A mode from the API (an i32, may carry junk above the permission bits).
pub fn mode(item: Option<i32>, default: Option<i32>) -> u32 {
    item.or(default).map(|m| (m as u32) & 0o777).unwrap_or(DEFAULT_MODE)
}

/// A payload path must be relative, without `..`, and not start with `..` (reserved for
/// the writer's own entries).
pub fn check_path(volume: &str, path: &str) -> Result<(), VolumeError> {
    let p = Path::new(path);
    let bad = path.is_empty()
        || path.starts_with("..")
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if bad {
        return Err(VolumeError::InvalidPath {
            volume: volume.to_string(),
            path: path.to_string(),
        });
    }
    Ok(())
}

/// Keys of an object with their bytes, and what they are called in errors.
pub struct KeyedData<'a> {
    pub kind: &'static str,
    pub name: &'a str,
    pub data: BTreeMap<&'a str, &'a [u8]>,
}

impl<'a> KeyedData<'a> {
    pub fn from_config_map(name: &'a str, cm: &'a ConfigMap) -> Self {
        let mut data: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for (k, v) in cm.data.iter().flatten() {
            data.insert(k, v.as_bytes());
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            data.insert(k, &v.0);
        }
        KeyedData {
            kind: "configmap",
            name,
            data,
        }
    }

    pub fn from_secret(name: &'a str, secret: &'a Secret) -> Self {
        let data = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice()))
            .collect();
        KeyedData {
            kind: "secret",
            name,
            data,
        }
    }
}

/// Add the files of a configMap/secret to `payload`.
pub fn add_keys(
    payload: &mut Payload,
    volume: &str,
    source: &KeyedData,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<(), VolumeError> {
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, data) in &source.data {
                check_path(volume, key)?;
                payload.insert(
                    key.to_string(),
                    FileData {
                        data: data.to_vec(),
                        mode: mode(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = source.data.get(item.key.as_str()) else {
                    if optional {
                        continue;
                    }
                    return Err(VolumeError::MissingKey {
                        volume: volume.to_string(),
                        kind: source.kind,
                        name: source.name.to_string(),
                        key: item.key.clone(),
                    });
                };
                check_path(volume, &item.path)?;
                payload.insert(
                    item.path.clone(),
                    FileData {
                        data: data.to_vec(),
                        mode: mode(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(())
}

/// Add downward-API files to `payload`.
pub fn add_downward_api(
    payload: &mut Payload,
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    node: &NodeResources,
) -> Result<(), VolumeError> {
    let field_err = |source: SpecError| VolumeError::Field {
        volume: volume.to_string(),
        source: Box::new(source),
    };
    for item in items {
        check_path(volume, &item.path)?;
        let context = format!("downwardAPI item {}", item.path);
        let value = if let Some(field) = &item.field_ref {
            field_ref_value(pod, &field.field_path, &context).map_err(field_err)?
        } else if let Some(res) = &item.resource_field_ref {
            let spec = pod.spec.as_ref();
            let all = spec.map(|s| s.containers.iter()).into_iter().flatten();
            let init = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten();
            let wanted = res.container_name.as_deref().unwrap_or_default();
            let container = all
                .chain(init)
                .find(|c| c.name == wanted)
                .ok_or_else(|| VolumeError::InvalidPath {
                    volume: volume.to_string(),
                    path: format!("{} (no container {wanted:?})", item.path),
                })?;
            resource_field_value(container, res, node, &context).map_err(field_err)?
        } else {
            continue;
        };
        payload.insert(
            item.path.clone(),
            FileData {
                data: value.into_bytes(),
                mode: mode(item.mode, default_mode),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a.conf": "A", "b": "B"},
            "binaryData": {"bin": "AAEC"}}))
        .unwrap()
    }

    fn items(v: serde_json::Value) -> Vec<KeyToPath> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn all_keys_with_default_mode() {
        let cm = cm();
        let mut p = Payload::new();
        add_keys(
            &mut p,
            "v",
            &KeyedData::from_config_map("cfg", &cm),
            None,
            Some(0o400),
            false,
        )
        .unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a.conf", "b", "bin"]);
        assert_eq!(
            p["bin"],
            FileData {
                data: vec![0, 1, 2],
                mode: 0o400
            }
        );
    }

    #[test]
    fn items_paths_modes_and_missing_keys() {
        let cm = cm();
        let src = KeyedData::from_config_map("cfg", &cm);
        let mut p = Payload::new();
        let it = items(json!([{"key": "a.conf", "path": "etc/app.conf", "mode": 0o600}, {"key": "b", "path": "b"}]));
        add_keys(&mut p, "v", &src, Some(&it), None, false).unwrap();
        assert_eq!(
            p["etc/app.conf"],
            FileData {
                data: b"A".to_vec(),
                mode: 0o600
            }
        );
        assert_eq!(p["b"].mode, 0o644);
        let missing = items(json!([{"key": "nope", "path": "x"}]));
        let err = add_keys(&mut Payload::new(), "v", &src, Some(&missing), None, false).unwrap_err();
        assert!(matches!(err, VolumeError::MissingKey { ref key, .. } if key == "nope"));
        assert!(add_keys(&mut Payload::new(), "v", &src, Some(&missing), None, true).is_ok());
        for bad in ["../x", "/abs", "..data", "a/../../b", ""] {
            let it = items(json!([{"key": "b", "path": bad}]));
            assert!(
                add_keys(&mut Payload::new(), "v", &src, Some(&it), None, false).is_err(),
                "{bad}"
            );
        }
    }
}

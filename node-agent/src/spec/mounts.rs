//! The mount table: runtime defaults, then the pod's volumes, then the files kubelet manages.
//!
//! Defaults are runc/containerd's (`/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`,
//! `/sys`, `/sys/fs/cgroup`). Volume mounts are recursive binds, read-only when asked,
//! with the requested propagation (`rprivate` unless HostToContainer/Bidirectional), sorted
//! by destination depth so a parent is mounted before anything inside it. A user mount
//! replaces a default or managed mount with the same destination, as containerd does.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Container;
use oci_spec::runtime::{Mount, MountBuilder};

use super::expand::expand;
use super::SpecError;

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// The runtime's own mounts; privileged containers get /sys and cgroups writable.
pub fn default_mounts(privileged: bool) -> Result<Vec<Mount>, SpecError> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", sys_mode])?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        )?,
    ])
}

/// A bind mount of a host path.
pub fn bind(dest: &Path, source: &Path, read_only: bool, propagation: &str) -> Result<Mount, SpecError> {
    let rw = if read_only { "ro" } else { "rw" };
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec!["rbind".to_string(), propagation.to_string(), rw.to_string()])
        .build()?)
}

/// The container's `volumeMounts` as bind mounts of the prepared volume paths.
///
/// `env` is the container's kubelet env list, used to expand `subPathExpr`. The subPath
/// source must exist when the container starts; creating it is the caller's (volume code's)
/// job, and so is resolving symlinks inside the volume safely.
pub fn volume_mounts(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    env: &[(String, String)],
) -> Result<Vec<Mount>, SpecError> {
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        if !vm.mount_path.starts_with('/') {
            return Err(SpecError::RelativeMountPath {
                mount_path: vm.mount_path.clone(),
            });
        }
        let root = volumes.get(&vm.name).ok_or_else(|| SpecError::UnknownVolume {
            volume: vm.name.clone(),
            mount_path: vm.mount_path.clone(),
        })?;
        let sub_path = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(expr)) if !expr.is_empty() => {
                let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
                Some(expand(expr, lookup))
            }
            _ => None,
        };
        let source = match sub_path {
            Some(sub) => sub_path_join(root, &sub).ok_or_else(|| SpecError::SubPathEscape {
                volume: vm.name.clone(),
                sub_path: sub.clone(),
            })?,
            None => root.clone(),
        };
        let propagation = match vm.mount_propagation.as_deref() {
            None | Some("None") => "rprivate",
            Some("HostToContainer") => "rslave",
            Some("Bidirectional") => "rshared",
            Some(other) => {
                return Err(SpecError::InvalidPropagation {
                    value: other.to_string(),
                    mount_path: vm.mount_path.clone(),
                })
            }
        };
        mounts.push(bind(
            Path::new(&vm.mount_path),
            &source,
            vm.read_only == Some(true),
            propagation,
        )?);
    }
    // Parents before children; stable, so equal depths keep the pod's order.
    mounts.sort_by_key(|m| m.destination().components().count());
    Ok(mounts)
}

/// `root/sub` if `sub` is relative and has no `..` component; `None` otherwise.
pub fn sub_path_join(root: &Path, sub: &str) -> Option<PathBuf> {
    let sub = Path::new(sub);
    let mut out = root.to_path_buf();
    for component in sub.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Put `mounts` together: defaults, then `user` mounts, then `managed` ones (hosts,
/// resolv.conf, ...), dropping any earlier mount whose destination a later group reuses.
pub fn assemble(defaults: Vec<Mount>, user: Vec<Mount>, managed: Vec<Mount>) -> Vec<Mount> {
    let user_dests: Vec<PathBuf> = user.iter().map(|m| m.destination().clone()).collect();
    let mut out: Vec<Mount> = defaults
        .into_iter()
        .filter(|m| !user_dests.contains(m.destination()))
        .collect();
    out.extend(user);
    out.extend(managed.into_iter().filter(|m| !user_dests.contains(m.destination())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(mounts: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "c", "volumeMounts": mounts})).unwrap()
    }

    fn volumes() -> BTreeMap<String, PathBuf> {
        [("data".to_string(), PathBuf::from("/var/pod/v/data"))]
            .into_iter()
            .collect()
    }

    #[test]
    fn binds_with_ro_and_propagation_sorted_by_depth() {
        let c = container(json!([
            {"name": "data", "mountPath": "/a/b/c", "readOnly": true},
            {"name": "data", "mountPath": "/a", "mountPropagation": "HostToContainer"},
        ]));
        let m = volume_mounts(&c, &volumes(), &[]).unwrap();
        assert_eq!(m[0].destination(), Path::new("/a"));
        assert_eq!(m[0].options().as_ref().unwrap(), &["rbind", "rslave", "rw"]);
        assert_eq!(m[1].destination(), Path::new("/a/b/c"));
        assert_eq!(m[1].options().as_ref().unwrap(), &["rbind", "rprivate", "ro"]);
        assert_eq!(m[1].typ().as_deref(), Some("bind"));
        assert_eq!(m[1].source().as_deref(), Some(Path::new("/var/pod/v/data")));
    }

    #[test]
    fn sub_path_and_expr() {
        let c = container(json!([
            {"name": "data", "mountPath": "/x", "subPath": "logs/app"},
            {"name": "data", "mountPath": "/y", "subPathExpr": "pods/$(POD)"},
        ]));
        let env = vec![("POD".to_string(), "web-1".to_string())];
        let m = volume_mounts(&c, &volumes(), &env).unwrap();
        assert_eq!(m[0].source().as_deref(), Some(Path::new("/var/pod/v/data/logs/app")));
        assert_eq!(m[1].source().as_deref(), Some(Path::new("/var/pod/v/data/pods/web-1")));
    }

    #[test]
    fn sub_path_escape_is_rejected() {
        for bad in ["../etc", "a/../../b", "/etc", "a/.."] {
            let c = container(json!([{"name": "data", "mountPath": "/x", "subPath": bad}]));
            let err = volume_mounts(&c, &volumes(), &[]).unwrap_err();
            assert!(matches!(err, SpecError::SubPathEscape { .. }), "{bad}: {err}");
        }
        let c = container(json!([{"name": "data", "mountPath": "/x", "subPathExpr": "$(P)"}]));
        let env = vec![("P".to_string(), "../../root".to_string())];
        assert!(matches!(
            volume_mounts(&c, &volumes(), &env),
            Err(SpecError::SubPathEscape { .. })
        ));
    }

    #[test]
    fn unknown_volume_and_relative_path() {
        let c = container(json!([{"name": "nope", "mountPath": "/x"}]));
        assert!(matches!(
            volume_mounts(&c, &volumes(), &[]),
            Err(SpecError::UnknownVolume { .. })
        ));
        let c = container(json!([{"name": "data", "mountPath": "x"}]));
        assert!(matches!(
            volume_mounts(&c, &volumes(), &[]),
            Err(SpecError::RelativeMountPath { .. })
        ));
    }

    #[test]
    fn user_mount_replaces_default() {
        let c = container(json!([{"name": "data", "mountPath": "/dev/shm"}]));
        let user = volume_mounts(&c, &volumes(), &[]).unwrap();
        let all = assemble(default_mounts(false).unwrap(), user, vec![]);
        let shm: Vec<_> = all
            .iter()
            .filter(|m| m.destination() == Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].typ().as_deref(), Some("bind"));
    }
}

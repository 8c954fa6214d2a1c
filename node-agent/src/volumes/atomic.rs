//! Writing a payload the way Kubernetes' AtomicWriter does, so a reader never sees a mix of
//! old and new files:
//!
//! ```text
//! <target>/..2024_05_01_10_00_00.123456789/<files>   the payload, written fresh
//! <target>/..data -> ..2024_05_01_10_00_00.123456789 swapped atomically (symlink + rename)
//! <target>/<top-level name> -> ..data/<top-level name>
//! ```
//!
//! After the swap, user-visible links not in the new payload and the previous timestamped
//! directory are removed.

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use chrono::Utc;

use super::payload::{check_path, Payload};
use super::VolumeError;

/// The symlink naming the live payload directory.
pub const DATA_DIR_NAME: &str = "..data";
const DATA_TMP_NAME: &str = "..data_tmp";

/// Write `payload` into `target` (created if needed) and make it live atomically.
pub fn write_payload(volume: &str, target: &Path, payload: &Payload) -> Result<(), VolumeError> {
    let io = |op: &'static str, path: &Path| {
        let (volume, path) = (volume.to_string(), path.display().to_string());
        move |source| VolumeError::Io {
            volume,
            op,
            path,
            source,
        }
    };
    for path in payload.keys() {
        check_path(volume, path)?;
    }
    fs::create_dir_all(target).map_err(io("create", target))?;
    let data_link = target.join(DATA_DIR_NAME);
    let old_dir = fs::read_link(&data_link).ok();

    let stamp = Utc::now().format("..%Y_%m_%d_%H_%M_%S.%9f").to_string();
    let mut ts_name = stamp.clone();
    let mut n = 0;
    while target.join(&ts_name).exists() {
        n += 1;
        ts_name = format!("{stamp}-{n}");
    }
    let ts_dir = target.join(&ts_name);
    fs::create_dir(&ts_dir).map_err(io("create", &ts_dir))?;
    fs::set_permissions(&ts_dir, fs::Permissions::from_mode(0o755)).map_err(io("chmod", &ts_dir))?;
    for (rel, file) in payload {
        let path = ts_dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        fs::write(&path, &file.data).map_err(io("write", &path))?;
        // set_permissions, unlike the create mode, is not reduced by the umask.
        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode)).map_err(io("chmod", &path))?;
    }

    let tmp_link = target.join(DATA_TMP_NAME);
    match fs::remove_file(&tmp_link) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io("remove", &tmp_link)(e)),
        _ => {}
    }
    symlink(&ts_name, &tmp_link).map_err(io("symlink", &tmp_link))?;
    fs::rename(&tmp_link, &data_link).map_err(io("rename", &data_link))?;

    // Top-level names of the payload, each a link through ..data.
    let top: BTreeSet<String> = payload
        .keys()
        .filter_map(|p| p.split('/').find(|c| !c.is_empty() && *c != ".").map(str::to_string))
        .collect();
    for name in &top {
        let link = target.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_DIR_NAME).join(name), &link).map_err(io("symlink", &link))?;
        }
    }
    for entry in fs::read_dir(target).map_err(io("list", target))? {
        let entry = entry.map_err(io("list", target))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || top.contains(&name) {
            continue;
        }
        if entry.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
            fs::remove_file(entry.path()).map_err(io("remove", &entry.path()))?;
        }
    }
    if let Some(old) = old_dir.filter(|o| o.as_os_str() != ts_name.as_str()) {
        let old = target.join(old);
        // Only ever a `..<stamp>` directory of ours inside target.
        if old.parent() == Some(target) && old.file_name().is_some_and(|n| n.to_string_lossy().starts_with("..")) {
            fs::remove_dir_all(&old).map_err(io("remove", &old))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::FileData;
    use std::os::unix::fs::MetadataExt;

    fn payload(entries: &[(&str, &str, u32)]) -> Payload {
        entries
            .iter()
            .map(|(p, d, m)| {
                (
                    p.to_string(),
                    FileData {
                        data: d.as_bytes().to_vec(),
                        mode: *m,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn write_then_update() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("vol");
        write_payload("v", &t, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o600)])).unwrap();
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(t.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::metadata(t.join("sub/b")).unwrap().mode() & 0o777, 0o600);
        assert!(fs::symlink_metadata(t.join("a")).unwrap().file_type().is_symlink());
        let first = fs::read_link(t.join(DATA_DIR_NAME)).unwrap();

        write_payload("v", &t, &payload(&[("a", "new", 0o644), ("c", "3", 0o644)])).unwrap();
        assert_eq!(fs::read_to_string(t.join("a")).unwrap(), "new");
        assert_eq!(fs::read_to_string(t.join("c")).unwrap(), "3");
        assert!(
            fs::symlink_metadata(t.join("sub")).is_err(),
            "dropped entries are unlinked"
        );
        assert!(!t.join(&first).exists(), "old data dir removed");
        let names: Vec<_> = fs::read_dir(&t)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn rejects_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_payload("v", dir.path(), &payload(&[("../x", "1", 0o644)])).unwrap_err();
        assert!(matches!(err, VolumeError::InvalidPath { .. }));
    }
}

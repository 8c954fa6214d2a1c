//! hostPath `type` checks, as kubelet's hostPath plugin does them.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use super::VolumeError;

/// Check (and for the `*OrCreate` types, create) `path` per `typ`.
pub fn check(volume: &str, path: &Path, typ: &str) -> Result<(), VolumeError> {
    let fail = |reason: &str| VolumeError::HostPathType {
        volume: volume.to_string(),
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let io = |op| {
        move |source| VolumeError::Io {
            volume: volume.to_string(),
            op,
            path: path.display().to_string(),
            source,
        }
    };
    // Follows symlinks, as kubelet's os.Stat does.
    let meta = match fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io("stat")(e)),
    };
    let kind = meta.as_ref().map(|m| m.file_type());
    match typ {
        "" => Ok(()),
        "DirectoryOrCreate" => match kind {
            None => {
                fs::create_dir_all(path).map_err(io("create"))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(io("chmod"))
            }
            Some(k) if k.is_dir() => Ok(()),
            Some(_) => Err(fail("is not a directory")),
        },
        // Like kubelet, the parent must exist already.
        "FileOrCreate" => match kind {
            None => {
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io("create"))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(io("chmod"))
            }
            Some(k) if k.is_file() => Ok(()),
            Some(_) => Err(fail("is not a file")),
        },
        "Directory" => expect(kind, |k| k.is_dir(), "does not exist", "is not a directory").map_err(fail),
        "File" => expect(kind, |k| k.is_file(), "does not exist", "is not a file").map_err(fail),
        "Socket" => expect(kind, |k| k.is_socket(), "does not exist", "is not a socket file").map_err(fail),
        "CharDevice" => expect(
            kind,
            |k| k.is_char_device(),
            "does not exist",
            "is not a character device",
        )
        .map_err(fail),
        "BlockDevice" => expect(kind, |k| k.is_block_device(), "does not exist", "is not a block device").map_err(fail),
        other => Err(fail(&format!("has unknown hostPath type {other:?}"))),
    }
}

fn expect(
    kind: Option<fs::FileType>,
    ok: impl Fn(&fs::FileType) -> bool,
    missing: &'static str,
    wrong: &'static str,
) -> Result<(), &'static str> {
    match kind {
        None => Err(missing),
        Some(k) if ok(&k) => Ok(()),
        Some(_) => Err(wrong),
    }
}

/// A hostPath must be absolute (the API validates it; a static manifest may not be).
pub fn check_absolute(volume: &str, path: &str) -> Result<(), VolumeError> {
    if Path::new(path).is_absolute() {
        Ok(())
    } else {
        Err(VolumeError::InvalidPath {
            volume: volume.to_string(),
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = d.join("f");
        fs::write(&file, "x").unwrap();
        assert!(check("v", d, "Directory").is_ok());
        assert!(check("v", &file, "File").is_ok());
        assert!(check("v", &d.join("nope"), "").is_ok());
        let err = check("v", &file, "Directory").unwrap_err();
        assert!(
            err.to_string().contains("is not a directory") && err.to_string().contains("\"v\""),
            "{err}"
        );
        assert!(check("v", &d.join("nope"), "File").is_err());
        assert!(check("v", &file, "Socket").is_err());
        assert!(check("v", d, "Weird").is_err());

        let created = d.join("a/b");
        check("v", &created, "DirectoryOrCreate").unwrap();
        assert!(created.is_dir());
        check("v", &d.join("new-file"), "FileOrCreate").unwrap();
        assert!(d.join("new-file").is_file());
        assert!(check("v", &d.join("missing-parent/file"), "FileOrCreate").is_err());
        assert!(check("v", &file, "DirectoryOrCreate").is_err());
        assert!(check("v", d, "FileOrCreate").is_err());
        let sock = d.join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(check("v", &sock, "Socket").is_ok());
        assert!(check("v", Path::new("/dev/null"), "CharDevice").is_ok());
    }
}

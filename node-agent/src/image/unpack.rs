//! Layer tar to directory, for use as an overlayfs lower dir.
//!
//! Layers come from the network, so every entry is treated as hostile:
//! absolute paths and `..` are refused, and no path is ever resolved through
//! a symlink. Each parent directory is looked up component by component with
//! `lstat`; a symlink there is an error (a layer with `a -> /etc` and then
//! `a/passwd` would otherwise write to the host's `/etc`). Files are created
//! with `O_EXCL` after removing whatever was there, so a final-component
//! symlink is replaced, never followed. This relies on the target directory
//! being private to the unpacker (a fresh temp dir) while it runs.
//!
//! OCI whiteouts become what overlayfs understands: `.wh.<name>` a 0:0
//! character device `<name>`, `.wh..wh..opq` the xattr
//! `trusted.overlay.opaque=y` on its directory. They hide paths of lower
//! layers at mount time; nothing in other layers is touched.

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The only tar-carried xattr applied: file capabilities (e.g. `ping`).
const CAPS_PAX_KEY: &str = "SCHILY.xattr.security.capability";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath { path: String, reason: String },
    #[error("entry {path:?} is truncated: {got} of {expected} bytes")]
    Truncated { path: String, expected: u64, got: u64 },
    /// The archive itself is corrupt or truncated (tar or gzip).
    #[error("reading layer archive: {0}")]
    Read(#[source] io::Error),
    #[error("zstd-compressed layers are not supported")]
    Zstd,
    #[error("{op} {path}: {source}")]
    Write {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn write_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Write {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn nix_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> UnpackError + 'a {
    move |e| UnpackError::Write {
        op,
        path: path.to_path_buf(),
        source: io::Error::from(e),
    }
}

/// Wraps a layer blob in a gzip decoder if it starts with the gzip magic.
pub fn decompress<'a, R: BufRead + 'a>(mut reader: R) -> Result<Box<dyn Read + 'a>, UnpackError> {
    let head = reader.fill_buf().map_err(UnpackError::Read)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(UnpackError::Zstd)
    } else {
        Ok(Box::new(reader))
    }
}

/// Metadata applied to directories after all entries are in, so that
/// creating children neither trips over a read-only mode nor bumps mtimes.
struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: i64,
}

/// Unpacks an uncompressed layer tar into `dest`, an existing empty
/// directory.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path) -> Result<(), UnpackError> {
    let chown = nix::unistd::geteuid().is_root();
    let mut archive = tar::Archive::new(reader);
    let mut dirs: Vec<DirMeta> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw_path = entry.path().map_err(UnpackError::Read)?.into_owned();
        let rel = sanitize(&raw_path)?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(UnpackError::Read)? & 0o7777;
        let mtime = header.mtime().map_err(UnpackError::Read)?;
        let mtime = i64::try_from(mtime).unwrap_or(0);
        let uid = header.uid().ok().and_then(|u| u32::try_from(u).ok()).unwrap_or(0);
        let gid = header.gid().ok().and_then(|g| u32::try_from(g).ok()).unwrap_or(0);
        let owner = chown.then_some((uid, gid));

        let Some((name, parents)) = rel.split_last() else {
            // The layer root itself (`./`): its attributes become `/`'s.
            if kind == EntryType::Directory {
                dirs.push(DirMeta {
                    path: dest.to_path_buf(),
                    mode,
                    mtime,
                });
            }
            continue;
        };
        let name_str = name.to_string_lossy();
        if name_str == OPAQUE_MARKER {
            let dir = ensure_dirs(dest, parents, &raw_path)?;
            set_opaque(&dir)?;
            continue;
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            // `.wh..wh.*` are other aufs bookkeeping files: meaningless here.
            if hidden.starts_with(WHITEOUT_PREFIX) {
                continue;
            }
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(unsafe_path(&raw_path, "whiteout of an invalid name"));
            }
            let dir = ensure_dirs(dest, parents, &raw_path)?;
            let target = dir.join(OsStr::from_bytes(&name.as_bytes()[WHITEOUT_PREFIX.len()..]));
            remove_existing(&target)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(nix_err("mknod", &target))?;
            continue;
        }

        let dir = ensure_dirs(dest, parents, &raw_path)?;
        let target = dir.join(name);
        match kind {
            EntryType::Directory => {
                make_dir(&target, true)?;
                if let Some((u, g)) = owner {
                    std::os::unix::fs::lchown(&target, Some(u), Some(g)).map_err(write_err("chown", &target))?;
                }
                dirs.push(DirMeta {
                    path: target,
                    mode,
                    mtime,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_existing(&target)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .map_err(write_err("create", &target))?;
                let expected = entry.size();
                let got = copy_entry(&mut entry, &mut file, &target)?;
                if kind != EntryType::GNUSparse && got != expected {
                    return Err(UnpackError::Truncated {
                        path: raw_path.display().to_string(),
                        expected,
                        got,
                    });
                }
                if let Some((u, g)) = owner {
                    // Before chmod: chown clears set-uid bits.
                    std::os::unix::fs::fchown(&file, Some(u), Some(g)).map_err(write_err("chown", &target))?;
                }
                file.set_permissions(Permissions::from_mode(mode))
                    .map_err(write_err("chmod", &target))?;
                apply_capabilities(&mut entry, &target);
                set_mtime(&target, mtime)?;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| unsafe_path(&raw_path, "symlink without a target"))?;
                remove_existing(&target)?;
                // The target is not checked: it is resolved inside the
                // container's root at run time, never by us.
                std::os::unix::fs::symlink(&link, &target).map_err(write_err("symlink", &target))?;
                if let Some((u, g)) = owner {
                    std::os::unix::fs::lchown(&target, Some(u), Some(g)).map_err(write_err("chown", &target))?;
                }
                set_mtime(&target, mtime)?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| unsafe_path(&raw_path, "hardlink without a target"))?;
                let link_rel = sanitize(&link)?;
                if link_rel == rel {
                    continue;
                }
                let source = resolve_existing(dest, &link_rel, &link)?;
                remove_existing(&target)?;
                // linkat without AT_SYMLINK_FOLLOW: a link to a symlink links
                // the symlink itself.
                fs::hard_link(&source, &target).map_err(write_err("link", &target))?;
            }
            EntryType::Fifo => {
                remove_existing(&target)?;
                nix::unistd::mkfifo(&target, Mode::from_bits_truncate(mode)).map_err(nix_err("mkfifo", &target))?;
                if let Some((u, g)) = owner {
                    std::os::unix::fs::lchown(&target, Some(u), Some(g)).map_err(write_err("chown", &target))?;
                }
                fs::set_permissions(&target, Permissions::from_mode(mode)).map_err(write_err("chmod", &target))?;
            }
            other => {
                // Device nodes belong to the runtime (it creates /dev), and
                // other types have no meaning in a rootfs.
                tracing::debug!(path = %raw_path.display(), kind = ?other, "skipping layer entry");
            }
        }
    }
    for d in &dirs {
        fs::set_permissions(&d.path, Permissions::from_mode(d.mode)).map_err(write_err("chmod", &d.path))?;
        set_mtime(&d.path, d.mtime)?;
    }
    Ok(())
}

/// `io::copy`, but telling a broken archive (read side) from a full disk.
fn copy_entry<R: Read, W: io::Write>(from: &mut R, to: &mut W, target: &Path) -> Result<u64, UnpackError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(write_err("write", target))?;
        total += n as u64;
    }
}

fn unsafe_path(path: &Path, reason: &str) -> UnpackError {
    UnpackError::UnsafePath {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Splits a tar path into plain components, refusing anything that could
/// leave the layer directory.
fn sanitize(path: &Path) -> Result<Vec<OsString>, UnpackError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path(path, "contains '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path(path, "absolute path")),
        }
    }
    Ok(out)
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Makes sure `dest/parents...` is a chain of real directories, creating
/// missing ones (layers often omit parent entries) and refusing symlinks.
fn ensure_dirs(dest: &Path, parents: &[OsString], raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut cur = dest.to_path_buf();
    for p in parents {
        cur.push(p);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(unsafe_path(raw, "a parent directory is a symlink"));
            }
            Ok(m) if is_whiteout(&m) => make_dir(&cur, false)?,
            Ok(_) => return Err(unsafe_path(raw, "a parent is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .mode(0o755)
                    .create(&cur)
                    .map_err(write_err("mkdir", &cur))?;
            }
            Err(e) => return Err(write_err("stat", &cur)(e)),
        }
    }
    Ok(cur)
}

/// Creates a directory at `path` unless one is there. A whiteout it replaces
/// becomes an opaque directory: the layer deleted the old directory and made
/// a new one, so nothing from below may show through.
fn make_dir(path: &Path, keep_existing_dir: bool) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() && keep_existing_dir => return Ok(()),
        Ok(m) => {
            let was_whiteout = is_whiteout(&m);
            remove_existing(path)?;
            DirBuilder::new()
                .mode(0o755)
                .create(path)
                .map_err(write_err("mkdir", path))?;
            if was_whiteout {
                set_opaque(path)?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(0o755)
                .create(path)
                .map_err(write_err("mkdir", path))?;
        }
        Err(e) => return Err(write_err("stat", path)(e)),
    }
    Ok(())
}

/// The path of an existing non-directory inside the layer, for hardlinks.
fn resolve_existing(dest: &Path, rel: &[OsString], raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut cur = dest.to_path_buf();
    let Some((last, parents)) = rel.split_last() else {
        return Err(unsafe_path(raw, "hardlink to the layer root"));
    };
    for p in parents {
        cur.push(p);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return Err(unsafe_path(raw, "hardlink target is not inside the layer")),
        }
    }
    cur.push(last);
    match fs::symlink_metadata(&cur) {
        Ok(m) if !m.file_type().is_dir() => Ok(cur),
        Ok(_) => Err(unsafe_path(raw, "hardlink to a directory")),
        Err(_) => Err(unsafe_path(raw, "hardlink target does not exist in the layer")),
    }
}

/// Removes whatever is at `path` without following symlinks
/// (`remove_dir_all` does not follow them either).
fn remove_existing(path: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => fs::remove_dir_all(path).map_err(write_err("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(write_err("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(write_err("stat", path)(e)),
    }
}

fn set_opaque(dir: &Path) -> Result<(), UnpackError> {
    xattr::set(dir, OPAQUE_XATTR, b"y").map_err(write_err("set opaque xattr on", dir))
}

fn set_mtime(path: &Path, secs: i64) -> Result<(), UnpackError> {
    let t = TimeSpec::new(secs, 0);
    utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(nix_err("set mtime of", path))
}

/// File capabilities carried as a PAX xattr. A filesystem that cannot store
/// them costs the binary its capabilities, not the whole image: warn only.
fn apply_capabilities<R: Read>(entry: &mut tar::Entry<'_, R>, target: &Path) {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return;
    };
    for ext in exts.flatten() {
        if ext.key_bytes() == CAPS_PAX_KEY.as_bytes() {
            if let Err(e) = xattr::set(target, "security.capability", ext.value_bytes()) {
                tracing::warn!(path = %target.display(), error = %e, "cannot set file capabilities");
            }
        }
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;

//! A container's root filesystem: overlayfs with the image's unpacked layers as read-only lower
//! directories and a per-container upper directory, so layers are shared and never written.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::RuntimeError;

/// Mounts (idempotently) the overlay for a container in `dir` (`upper/`, `work/`, `rootfs/`);
/// `layers` are lowest first. Returns the mounted root.
pub fn mount(layers: &[PathBuf], dir: &Path) -> Result<PathBuf, RuntimeError> {
    let root = dir.join("rootfs");
    if is_mounted(&root) {
        return Ok(root);
    }
    if layers.is_empty() {
        return Err(RuntimeError::Refused("the image has no layers".into()));
    }
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    for d in [&upper, &work, &root] {
        std::fs::create_dir_all(d).map_err(|e| RuntimeError::io("create", d, e))?;
    }
    for l in layers {
        let s = l.to_string_lossy();
        if s.contains(':') || s.contains(',') {
            return Err(RuntimeError::Refused(format!(
                "layer path {s} cannot be an overlay lower directory"
            )));
        }
    }
    // overlayfs lists the uppermost lower directory first.
    let lower: Vec<String> = layers.iter().rev().map(|l| l.to_string_lossy().into_owned()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|e| RuntimeError::Os("mount overlay", e))?;
    Ok(root)
}

/// Unmounts and removes a container's filesystem directory; tolerant of pieces already gone.
pub fn remove(dir: &Path) -> Result<(), RuntimeError> {
    let root = dir.join("rootfs");
    if is_mounted(&root) {
        nix::mount::umount2(&root, MntFlags::MNT_DETACH).map_err(|e| RuntimeError::Os("unmount rootfs", e))?;
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", dir, e)),
    }
}

pub fn is_mounted(path: &Path) -> bool {
    super::is_mount_point(&super::mounts(), path)
}

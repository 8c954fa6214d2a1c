//! A pod's shared namespaces without a pause process: the shim unshares new network, IPC and
//! UTS namespaces, sets the pod's hostname, bind-mounts the namespaces onto files in the pod's
//! directory, and returns to its own namespaces. The bind mounts
//! keep the namespaces alive; every container of the pod joins them by path. Unpinning unmounts
//! the files, and the kernel frees the namespaces once no process uses them.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::RuntimeError;

/// The namespace files of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// `None` for a hostNetwork pod (it uses the node's network and UTS namespaces).
    pub net: Option<PathBuf>,
    pub ipc: PathBuf,
    pub uts: Option<PathBuf>,
}

impl Namespaces {
    pub fn at(dir: &Path, host_network: bool) -> Namespaces {
        Namespaces {
            net: (!host_network).then(|| dir.join("net")),
            ipc: dir.join("ipc"),
            uts: (!host_network).then(|| dir.join("uts")),
        }
    }

    fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut v = vec![("ipc", self.ipc.as_path())];
        if let Some(n) = &self.net {
            v.push(("net", n.as_path()));
        }
        if let Some(u) = &self.uts {
            v.push(("uts", u.as_path()));
        }
        v
    }

    /// True when every namespace file is a live mount (pinned earlier, possibly by an agent
    /// that has since restarted).
    pub fn pinned(&self) -> bool {
        let mounts = super::mounts();
        self.files().iter().all(|(_, p)| super::is_mount_point(&mounts, p))
    }
}

/// Pins new namespaces for a pod from the calling process, then returns it to its own: it
/// unshares, sets the hostname, bind-mounts `/proc/self/ns/*` onto the files, and setns()es
/// back. Cheap (no process to start), but only for a single-threaded caller (the shim): the
/// namespaces of one thread would otherwise diverge from its siblings'. If going back fails the
/// caller is stranded in the pod's namespaces and must exit (`Stranded`).
pub fn pin_here(dir: &Path, hostname: &str, host_network: bool) -> Result<Namespaces, RuntimeError> {
    let ns = Namespaces::at(dir, host_network);
    if ns.pinned() {
        return Ok(ns);
    }
    unpin(dir);
    std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
    for (_, p) in ns.files() {
        std::fs::File::create(p).map_err(|e| RuntimeError::io("create", p, e))?;
    }
    let mut kinds = vec![("ipc", CloneFlags::CLONE_NEWIPC)];
    if !host_network {
        kinds.push(("net", CloneFlags::CLONE_NEWNET));
        kinds.push(("uts", CloneFlags::CLONE_NEWUTS));
    }
    let mut home = Vec::new();
    for (kind, flag) in &kinds {
        let path = format!("/proc/self/ns/{kind}");
        home.push((
            std::fs::File::open(&path).map_err(|e| RuntimeError::io("open", Path::new(&path), e))?,
            *flag,
        ));
    }
    let flags = kinds.iter().fold(CloneFlags::empty(), |a, (_, f)| a | *f);
    nix::sched::unshare(flags).map_err(|e| RuntimeError::Os("unshare", e))?;
    let result = (|| {
        if !host_network {
            nix::unistd::sethostname(hostname).map_err(|e| RuntimeError::Os("sethostname", e))?;
        }
        for (kind, p) in ns.files() {
            let src = format!("/proc/self/ns/{kind}");
            nix::mount::mount(Some(src.as_str()), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| RuntimeError::Os("bind-mount namespace", e))?;
        }
        Ok(())
    })();
    for (file, flag) in &home {
        if let Err(e) = nix::sched::setns(file, *flag) {
            return Err(RuntimeError::Stranded(format!(
                "returning to the shim's own namespaces: {e}"
            )));
        }
    }
    if result.is_err() {
        unpin(dir);
    }
    result.map(|()| ns)
}

/// Releases a pod's namespaces; tolerant of pieces already gone.
pub fn unpin(dir: &Path) {
    for kind in ["net", "ipc", "uts"] {
        let p = dir.join(kind);
        let _ = nix::mount::umount2(&p, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&p);
    }
}

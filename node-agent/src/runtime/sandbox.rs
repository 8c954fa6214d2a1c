//! A pod's shared namespaces without a pause process: a short-lived helper process
//! (`skiff agent-pin-ns`) unshares new network, IPC and UTS namespaces, sets the pod's hostname
//! and bind-mounts the namespaces onto files in the pod's directory, then exits. The bind mounts
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
        let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return false;
        };
        self.files().iter().all(|(_, p)| {
            mounts
                .lines()
                .any(|l| l.split(' ').nth(4) == Some(&*p.to_string_lossy()))
        })
    }
}

/// The body of `skiff agent-pin-ns`: runs in a fresh single-threaded process.
pub fn pin_current_process(dir: &Path, hostname: &str, host_network: bool) -> Result<(), RuntimeError> {
    let ns = Namespaces::at(dir, host_network);
    std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
    for (_, p) in ns.files() {
        std::fs::File::create(p).map_err(|e| RuntimeError::io("create", p, e))?;
    }
    let mut flags = CloneFlags::CLONE_NEWIPC;
    if !host_network {
        flags |= CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS;
    }
    nix::sched::unshare(flags).map_err(|e| RuntimeError::Os("unshare", e))?;
    if !host_network {
        nix::unistd::sethostname(hostname).map_err(|e| RuntimeError::Os("sethostname", e))?;
    }
    for (kind, p) in ns.files() {
        let src = format!("/proc/self/ns/{kind}");
        nix::mount::mount(Some(src.as_str()), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| RuntimeError::Os("bind-mount namespace", e))?;
    }
    Ok(())
}

/// Pins a pod's namespaces under `dir` by running `exe agent-pin-ns`; idempotent.
pub async fn pin(exe: &Path, dir: &Path, hostname: &str, host_network: bool) -> Result<Namespaces, RuntimeError> {
    let ns = Namespaces::at(dir, host_network);
    if ns.pinned() {
        return Ok(ns);
    }
    unpin(dir);
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("agent-pin-ns")
        .arg("--dir")
        .arg(dir)
        .arg("--hostname")
        .arg(hostname);
    if host_network {
        cmd.arg("--host-network");
    }
    let out = cmd.output().await.map_err(|e| RuntimeError::io("spawn", exe, e))?;
    if !out.status.success() {
        return Err(RuntimeError::Refused(format!(
            "pinning namespaces in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(ns)
}

/// Releases a pod's namespaces; tolerant of pieces already gone.
pub fn unpin(dir: &Path) {
    for kind in ["net", "ipc", "uts"] {
        let p = dir.join(kind);
        let _ = nix::mount::umount2(&p, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&p);
    }
}

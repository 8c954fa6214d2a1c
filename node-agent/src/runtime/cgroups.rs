//! The cgroups the agent owns: `/skiff/pod<uid>` under every hierarchy, the parent of each of
//! the pod's container cgroups (which libcontainer creates and removes).

use std::path::{Path, PathBuf};

/// The cgroups path (relative to each hierarchy's root) of one container of a pod.
pub fn container_path(pod_uid: &str, container_id: &str) -> String {
    format!("/skiff/pod{pod_uid}/{container_id}")
}

/// Mount points of the cgroup hierarchies (v1 controllers and the v2 unified one).
fn hierarchies() -> Vec<PathBuf> {
    super::mounts()
        .into_iter()
        .filter(|(_, fstype)| fstype == "cgroup" || fstype == "cgroup2")
        .map(|(point, _)| PathBuf::from(point))
        .collect()
}

/// Removes the pod's cgroup directories (after its containers are deleted). Directories that
/// still hold a container's cgroup are left; the next cleanup gets them.
pub fn remove_pod(pod_uid: &str) -> bool {
    let mut clean = true;
    for h in hierarchies() {
        let dir = h.join("skiff").join(format!("pod{pod_uid}"));
        if !dir.exists() {
            continue;
        }
        if let Ok(children) = std::fs::read_dir(&dir) {
            for c in children.flatten() {
                if c.path().is_dir() {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
        }
        if std::fs::remove_dir(&dir).is_err() {
            clean = false;
        }
    }
    clean
}

/// Whether the kernel's OOM killer killed a process of this container's cgroup (read before
/// the container is deleted, which removes the cgroup).
pub fn oom_killed(cgroups_path: &str) -> bool {
    let rel = cgroups_path.trim_start_matches('/');
    for h in hierarchies() {
        let dir = h.join(rel);
        for (file, key) in [("memory.oom_control", "oom_kill"), ("memory.events", "oom_kill")] {
            if let Some(n) = read_counter(&dir.join(file), key) {
                if n > 0 {
                    return true;
                }
            }
        }
    }
    false
}

fn read_counter(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
    })
}

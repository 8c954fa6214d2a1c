//! `skiff down`: removes everything `skiff up` made, from its `state.json`, and checks that
//! nothing is left: processes (masters, agents, the agents' shims and their containers),
//! mounts under the state dir (overlay roots, pinned pod namespaces), the pods' cgroups, the
//! network namespaces (with the nftables tables and routes inside them), the bridge and the
//! host routes `up` added. Each step goes on when one before it failed; the check at the end
//! says what remains.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::up_cmd::{is_root, run, state_path, UpState};

/// Flags of `skiff down`.
#[derive(Args)]
pub struct DownArgs {
    /// The state dir given to `skiff up`.
    #[arg(long, default_value = "/var/lib/skiff-up")]
    pub dir: PathBuf,
    /// Keep the data dirs and logs (everything else goes).
    #[arg(long)]
    pub keep_data: bool,
}

/// What `tear_down` leaves in the state dir.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Keep {
    Nothing,
    /// The hosts' logs (a failed `up`, for the user to read).
    Logs,
    /// Data dirs, kubeconfigs and logs (`down --keep-data`).
    Data,
}

pub fn run_down(a: DownArgs) -> Result<()> {
    if !is_root() {
        bail!("skiff down must run as root");
    }
    if !state_path(&a.dir).exists() {
        bail!(
            "nothing is up at {} (no {})",
            a.dir.display(),
            state_path(&a.dir).display()
        );
    }
    let dir = std::fs::canonicalize(&a.dir)?;
    let t = Instant::now();
    tear_down(&dir, if a.keep_data { Keep::Data } else { Keep::Nothing })?;
    eprintln!(
        "skiff down: removed everything in {:.1} s; nothing left behind",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The command line of a process, NUL-separated arguments.
fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Gone, or a zombie waiting for its parent.
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGTERM, then SIGKILL for whatever has not gone after `grace`.
fn stop_all(pids: &[i32], grace: Duration) {
    for &p in pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !pids.iter().all(|&p| is_gone(p)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &p in pids.iter().filter(|&&p| !is_gone(p)) {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// The cgroup directories of the pods the agents under `dir` ran, in every hierarchy.
fn pod_cgroups(dir: &Path, st: &UpState) -> Vec<PathBuf> {
    let mut uids = BTreeSet::new();
    for h in st.hosts.iter().filter(|h| !h.master) {
        if let Ok(d) = std::fs::read_dir(dir.join(&h.name).join("pods")) {
            uids.extend(d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)));
        }
    }
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(d.flatten().map(|e| e.path()));
    }
    let mut out = Vec::new();
    for r in roots {
        for uid in &uids {
            let p = r.join("skiff").join(format!("pod{uid}"));
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

/// Every cgroup directory under `root`, deepest first.
fn cgroup_tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(d) = std::fs::read_dir(root) {
        for e in d.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(cgroup_tree(&e.path()));
            }
        }
    }
    out.push(root.to_path_buf());
    out
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let mut out: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out.dedup();
    out
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Undo `skiff up` for the cluster whose state is in `dir`.
pub fn tear_down(dir: &Path, keep: Keep) -> Result<()> {
    if dir.parent().is_none() {
        bail!("{}: must not be the root directory", dir.display());
    }
    let st = UpState::load(dir)?;
    // An argument naming `dir` or a path under it (not `/x/c10` for `/x/c1`).
    let under = |a: &str| Path::new(a).starts_with(dir);
    let ours = |pid: i32| cmdline(pid).is_some_and(|c| c.iter().any(|a| under(a)));

    // Agents first (they would restart containers), then the masters.
    for masters in [false, true] {
        let pids: Vec<i32> = st
            .hosts
            .iter()
            .filter(|h| h.master == masters)
            .filter_map(|h| h.pid.map(|p| p as i32))
            .filter(|&p| ours(p))
            .collect();
        stop_all(&pids, Duration::from_secs(10));
    }
    // Whatever else runs in the hosts' namespaces (a master or agent restarted by hand) goes
    // before the containers, so nothing restarts them.
    let made: Vec<&str> = st
        .hosts
        .iter()
        .filter(|h| h.netns_made && netns_exists(&h.netns))
        .map(|h| h.netns.as_str())
        .collect();
    let strays: Vec<i32> = made
        .iter()
        .filter_map(|ns| run("ip", &["netns", "pids", ns]).ok())
        .flat_map(|p| p.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<i32>>())
        .collect();
    stop_all(&strays, Duration::from_secs(5));
    // The shims outlive their agents by design; their containers outlive them.
    let shims: Vec<i32> = all_pids()
        .into_iter()
        .filter(|&p| cmdline(p).is_some_and(|c| c.iter().any(|a| a == "agent-shim") && c.iter().any(|a| under(a))))
        .collect();
    stop_all(&shims, Duration::ZERO);
    let cgroups = pod_cgroups(dir, &st);
    for _ in 0..3 {
        for cg in &cgroups {
            for d in cgroup_tree(cg) {
                for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                {
                    if let Ok(p) = pid.trim().parse::<i32>() {
                        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for m in mounts_under(dir) {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for cg in &cgroups {
            for d in cgroup_tree(cg) {
                let _ = std::fs::remove_dir(&d);
            }
        }
        if cgroups.iter().all(|c| !c.exists()) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for ns in &made {
        let _ = run("ip", &["netns", "del", ns]);
    }
    if st.bridge_addr.is_some() && Path::new("/sys/class/net").join(&st.bridge).exists() {
        let _ = run("ip", &["link", "del", &st.bridge]);
    }
    if let Some(t) = &st.host_table {
        let _ = run("nft", &["delete", "table", "inet", t]);
    }
    for r in &st.routes {
        let args: Vec<&str> = ["route", "del"].into_iter().chain(r.split_whitespace()).collect();
        let _ = run("ip", &args);
    }

    // What is left?
    let mut left = Vec::new();
    left.extend(
        st.hosts
            .iter()
            .filter_map(|h| h.pid)
            .filter(|&p| !is_gone(p as i32) && ours(p as i32))
            .map(|p| format!("process {p}")),
    );
    left.extend(
        made.iter()
            .filter(|ns| netns_exists(ns))
            .map(|ns| format!("netns {ns}")),
    );
    if st.bridge_addr.is_some() && Path::new("/sys/class/net").join(&st.bridge).exists() {
        left.push(format!("bridge {}", st.bridge));
    }
    if let Some(t) = &st.host_table {
        if run("nft", &["list", "table", "inet", t]).is_ok() {
            left.push(format!("nftables table inet {t}"));
        }
    }
    left.extend(mounts_under(dir).into_iter().map(|m| format!("mount {m}")));
    left.extend(
        cgroups
            .iter()
            .filter(|c| c.exists())
            .map(|c| format!("cgroup {}", c.display())),
    );
    for r in &st.routes {
        let dest = r.split_whitespace().last().unwrap_or("");
        if run("ip", &["-4", "route", "show", "exact", dest]).is_ok_and(|o| !o.trim().is_empty()) {
            left.push(format!("route {r}"));
        }
    }
    if !left.is_empty() {
        bail!("could not remove: {}", left.join(", "));
    }
    remove_files(dir, &st, keep)
}

/// Remove what `up` wrote in `dir` (and nothing else), then `dir` itself if that left it empty.
fn remove_files(dir: &Path, st: &UpState, keep: Keep) -> Result<()> {
    let rm = |p: PathBuf| -> Result<()> {
        let res = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match res {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", p.display()))
            }
            _ => Ok(()),
        }
    };
    let mut files = vec![state_path(dir)];
    if keep != Keep::Data {
        files.extend([dir.join("admin.kubeconfig"), dir.join("sample-image")]);
        for h in &st.hosts {
            files.push(dir.join(&h.name));
            files.push(dir.join(format!("{}.kubeconfig", h.name)));
        }
    }
    if keep == Keep::Nothing {
        files.extend(st.hosts.iter().map(|h| dir.join(format!("{}.log", h.name))));
    }
    for f in files {
        rm(f)?;
    }
    if keep == Keep::Nothing {
        // Only when empty: anything else in it is not ours to delete.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

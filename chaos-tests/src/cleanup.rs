//! Everything a run creates outside its own memory (member processes, namespaces, the host
//! veth) is registered here, so it is torn down by the owners' `Drop` and, if the process is
//! interrupted, by the SIGINT/SIGTERM handler, which cannot run other tasks' destructors.

use std::process::{Command, Stdio};
use std::sync::Mutex;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A child process not yet reaped (so its pid cannot have been reused).
    Pid(u32),
    Netns(String),
    HostLink(String),
}

static REGISTRY: Mutex<Vec<Resource>> = Mutex::new(Vec::new());

pub fn register(r: Resource) {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).push(r);
}

pub fn unregister(r: &Resource) {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).retain(|x| x != r);
}

/// Removes one resource, ignoring "already gone".
pub fn destroy(r: &Resource) {
    let quiet = |cmd: &mut Command| {
        let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
    };
    match r {
        Resource::Pid(pid) => {
            // SIGCONT first is unnecessary: SIGKILL also ends a stopped process.
            quiet(Command::new("kill").args(["-KILL", &pid.to_string()]));
        }
        Resource::Netns(ns) => {
            // Processes left in a namespace keep it alive; kill them before deleting it.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    quiet(Command::new("kill").args(["-KILL", pid]));
                }
            }
            quiet(Command::new("ip").args(["netns", "delete", ns]));
        }
        Resource::HostLink(link) => quiet(Command::new("ip").args(["link", "delete", link])),
    }
    unregister(r);
}

/// Tears down everything registered: processes first, then links, then namespaces.
pub fn teardown_all() {
    let mut all = REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).clone();
    all.sort_by_key(|r| match r {
        Resource::Pid(_) => 0,
        Resource::HostLink(_) => 1,
        Resource::Netns(_) => 2,
    });
    for r in &all {
        destroy(r);
    }
}

/// On SIGINT or SIGTERM: tear everything down and exit 130. Call once, inside a tokio runtime.
pub fn install_signal_handler() {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async {
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            eprintln!("chaos: could not install signal handlers");
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("chaos: interrupted, tearing down");
        teardown_all();
        std::process::exit(130);
    });
}

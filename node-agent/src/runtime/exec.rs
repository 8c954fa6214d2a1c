//! `skiff agent-exec`: one process per exec, which runs a command inside a running container
//! through libcontainer's tenant builder (as `runc exec` does) and waits for it.
//!
//! libcontainer clones and changes process-wide state, so it is not called from the agent's
//! threads: the agent starts this helper (see `exec_client`), which is single-threaded. The
//! command gets the container's process settings (user, groups, capabilities, environment,
//! working directory, no_new_privileges) from the container's own bundle, joins its
//! namespaces and cgroup, and either inherits the helper's stdin/stdout/stderr (pipes from the
//! agent) or, with a terminal, gets a pty made inside the container whose master end
//! libcontainer sends to the agent's console socket.
//!
//! The helper is the command's sub-reaper and waits for it; SIGTERM, SIGINT or SIGHUP to the
//! helper (the client went away) kill the command. How it ended is written to the status file
//! the agent names: `{"exit_code": N}` or `{"error": "..."}` (stderr is the user's stream, so
//! the helper's own errors never go there).

use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::shim::{error_chain, state_dir, ShimExecutor};

/// What the agent asks the helper to run.
#[derive(Debug, Clone)]
pub struct ExecArgs {
    /// The runtime root (the shim's `--root`).
    pub root: PathBuf,
    pub id: String,
    pub command: Vec<String>,
    /// With a terminal: the socket the pty's master end is sent to.
    pub console_socket: Option<PathBuf>,
    pub status: PathBuf,
}

/// How an exec ended, as the helper writes it for the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs the exec and writes its status file. Call it from a process that has started no
/// threads. The helper's own exit code is 0 when the status file was written.
pub fn run(args: &ExecArgs) -> i32 {
    let status = match exec(args) {
        Ok(code) => ExecStatus {
            exit_code: Some(code),
            error: None,
        },
        Err(e) => ExecStatus {
            exit_code: None,
            error: Some(e),
        },
    };
    let text = serde_json::to_vec(&status).unwrap_or_default();
    let tmp = args.status.with_extension("tmp");
    match std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &args.status)) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn exec(args: &ExecArgs) -> Result<i32, String> {
    if args.command.is_empty() {
        return Err("no command given".to_string());
    }
    let process_file = process_file(args)?;
    // The command is re-parented to us when libcontainer's intermediate process exits.
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("set sub-reaper: {e}"))?;
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    // Blocked so `wait` below takes them; ShimExecutor unblocks them in the command.
    mask.thread_block().map_err(|e| format!("block signals: {e}"))?;
    let built = ContainerBuilder::new(args.id.clone(), SyscallType::Linux)
        .with_executor(ShimExecutor)
        .with_root_path(state_dir(&args.root))
        .map(|b| b.with_console_socket(args.console_socket.as_ref()))
        .and_then(|b| {
            b.as_tenant()
                .with_process(Some(&process_file))
                .with_detach(true)
                .build()
        });
    let _ = std::fs::remove_file(&process_file);
    let pid = built.map_err(|e| error_chain(&e))?;
    wait(pid, &mask)
}

/// The container's own process settings with `command` as its arguments, written where
/// libcontainer's tenant builder reads a process from.
fn process_file(args: &ExecArgs) -> Result<PathBuf, String> {
    let container = Container::load(state_dir(&args.root).join(&args.id))
        .map_err(|e| format!("container {}: {}", args.id, error_chain(&e)))?;
    let spec_path = container.bundle().join("config.json");
    let spec = Spec::load(&spec_path).map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| format!("{} has no process", spec_path.display()))?;
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.console_socket.is_some()));
    process.set_console_size(None);
    let path = args.status.with_extension("process.json");
    let text = serde_json::to_vec(&process).map_err(|e| format!("process spec: {e}"))?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Waits for `pid`, killing it if we are told to stop; its exit code (128 + signal if killed).
fn wait(pid: Pid, mask: &SigSet) -> Result<i32, String> {
    loop {
        match mask.wait().map_err(|e| format!("sigwait: {e}"))? {
            Signal::SIGCHLD => loop {
                match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                    Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(128 + sig as i32),
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            _ => {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            }
        }
    }
}

/// Where the agent keeps an exec's files (status, process spec, console socket).
pub fn exec_dir(root: &Path) -> PathBuf {
    root.join("exec")
}

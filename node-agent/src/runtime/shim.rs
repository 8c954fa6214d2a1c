//! The runtime shim: the one process that calls libcontainer.
//!
//! libcontainer clones from its caller, blocks, and changes process-wide state; cloning from a
//! multi-threaded tokio process could deadlock the child on a lock another thread held. So
//! `skiff agent` starts this small single-threaded process (`skiff agent-shim`), which creates,
//! starts, kills and deletes containers on request, is the parent (and sub-reaper) of every
//! container's init process so it collects their exit statuses, and copies their output into
//! CRI log files. It outlives agent restarts: a new agent reconnects to the same shim and finds
//! its containers still running, with their exit codes if they ended meanwhile.
//!
//! One `poll` loop serves the listening socket, clients, exit notifications (a signalfd for
//! SIGCHLD) and the containers' output pipes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use chrono::Utc;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::protocol::{ContainerInfo, Phase, Reply, Request};
use super::RuntimeError;
use crate::logs::{LogWriter, Stream};

/// Where the shim keeps its socket and libcontainer's state.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join("shim.sock")
}

pub(crate) fn state_dir(root: &Path) -> PathBuf {
    root.join("containers")
}

/// Runs the shim until its socket is removed or it is killed. Call it from a process that has
/// started no threads (no tokio runtime).
pub fn run(root: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(state_dir(root)).map_err(|e| RuntimeError::io("create", root, e))?;
    // Our own session: a signal to the agent's process group does not reach the shim.
    let _ = nix::unistd::setsid();
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| RuntimeError::Os("set sub-reaper", e))?;
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(|e| RuntimeError::Os("block SIGCHLD", e))?;
    // A client that goes away mid-reply must not kill the shim.
    mask.add(Signal::SIGPIPE);
    mask.thread_block().map_err(|e| RuntimeError::Os("block SIGPIPE", e))?;
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let signals = SignalFd::with_flags(&chld, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| RuntimeError::Os("signalfd", e))?;

    let sock = socket_path(root);
    if UnixStream::connect(&sock).is_ok() {
        return Err(RuntimeError::ShimRunning { socket: sock });
    }
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| RuntimeError::io("bind", &sock, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| RuntimeError::io("bind", &sock, e))?;

    let mut shim = Shim {
        root: root.to_path_buf(),
        containers: BTreeMap::new(),
        clients: Vec::new(),
        subscribers: Vec::new(),
        pipes: Vec::new(),
        logs: BTreeMap::new(),
    };
    shim.adopt();
    tracing::info!(socket = %sock.display(), adopted = shim.containers.len(), "runtime shim serving");
    loop {
        if !sock.exists() {
            tracing::info!("shim socket removed, exiting");
            return Ok(());
        }
        let ready = shim.poll(&listener, &signals)?;
        if ready.listener {
            shim.accept(&listener);
        }
        if ready.signals {
            while let Ok(Some(_)) = signals.read_signal() {}
            shim.reap();
        }
        for fd in ready.pipes {
            shim.drain_pipe(fd);
        }
        for fd in ready.clients {
            shim.serve_client(fd);
        }
        shim.check_adopted();
    }
}

/// libcontainer's default executor, after restoring the signal mask: the shim blocks SIGCHLD
/// and SIGPIPE for itself, and a blocked mask survives exec.
#[derive(Clone)]
pub(crate) struct ShimExecutor;

impl Executor for ShimExecutor {
    fn exec(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorError> {
        let _ = SigSet::all().thread_unblock();
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// At most this many reads from one pipe per wake-up: a container that writes without pause
/// must not keep the shim from its other work (poll is level-triggered; the rest comes next).
const READS_PER_WAKE: usize = 8;

struct Entry {
    info: ContainerInfo,
    /// Not our child (found after a shim restart): its end is noticed by polling, its exit
    /// status is lost.
    adopted: bool,
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
}

struct Pipe {
    fd: OwnedFd,
    id: String,
    stream: Stream,
}

struct Shim {
    root: PathBuf,
    containers: BTreeMap<String, Entry>,
    clients: Vec<Client>,
    subscribers: Vec<UnixStream>,
    pipes: Vec<Pipe>,
    logs: BTreeMap<String, LogWriter>,
}

#[derive(Default)]
struct Ready {
    listener: bool,
    signals: bool,
    clients: Vec<RawFd>,
    pipes: Vec<RawFd>,
}

impl Shim {
    fn poll(&self, listener: &UnixListener, signals: &SignalFd) -> Result<Ready, RuntimeError> {
        let mut fds = vec![
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        for c in &self.clients {
            fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
        }
        for p in &self.pipes {
            fds.push(PollFd::new(p.fd.as_fd(), PollFlags::POLLIN));
        }
        // A timeout so adopted containers (not our children) are noticed when they end.
        match nix::poll::poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(RuntimeError::Os("poll", e)),
        }
        let hit = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let mut ready = Ready {
            listener: hit(&fds[0]),
            signals: hit(&fds[1]),
            ..Ready::default()
        };
        let n = self.clients.len();
        for (i, c) in self.clients.iter().enumerate() {
            if hit(&fds[2 + i]) {
                ready.clients.push(c.stream.as_raw_fd());
            }
        }
        for (i, p) in self.pipes.iter().enumerate() {
            if hit(&fds[2 + n + i]) {
                ready.pipes.push(p.fd.as_raw_fd());
            }
        }
        Ok(ready)
    }

    /// Containers left by an earlier shim: still listed, ended ones reported without a code.
    fn adopt(&mut self) {
        let Ok(dir) = std::fs::read_dir(state_dir(&self.root)) else {
            return;
        };
        for entry in dir.flatten() {
            let Ok(mut c) = Container::load(entry.path()) else {
                continue;
            };
            let _ = c.refresh_status();
            let Some(pid) = c.pid() else {
                // Died mid-create with the previous shim: nothing to adopt.
                let _ = c.delete(true);
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            };
            let phase = match c.status() {
                ContainerStatus::Created | ContainerStatus::Creating => Phase::Created,
                ContainerStatus::Running | ContainerStatus::Paused => Phase::Running,
                ContainerStatus::Stopped => Phase::Exited,
            };
            let now = Utc::now();
            let created_at = c.created().unwrap_or(now);
            let info = ContainerInfo {
                id: c.id().to_string(),
                pid: pid.as_raw(),
                phase,
                exit_code: None,
                signal: None,
                created_at,
                started_at: (phase != Phase::Created).then_some(created_at),
                finished_at: (phase == Phase::Exited).then_some(now),
            };
            self.containers.insert(info.id.clone(), Entry { info, adopted: true });
        }
    }

    fn check_adopted(&mut self) {
        let mut ended = Vec::new();
        let dir = state_dir(&self.root);
        for e in self.containers.values_mut() {
            if !e.adopted || e.info.phase == Phase::Exited {
                continue;
            }
            // libcontainer's view (a zombie counts as stopped), not a bare kill(pid, 0).
            let stopped = match Container::load(dir.join(&e.info.id)) {
                Ok(mut c) => c.refresh_status().is_err() || c.status() == ContainerStatus::Stopped,
                Err(_) => nix::sys::signal::kill(Pid::from_raw(e.info.pid), None).is_err(),
            };
            if stopped {
                e.info.phase = Phase::Exited;
                e.info.finished_at = Some(Utc::now());
                ended.push(e.info.clone());
            }
        }
        for info in ended {
            self.notify(&info);
        }
    }

    fn accept(&mut self, listener: &UnixListener) {
        while let Ok((stream, _)) = listener.accept() {
            if stream.set_nonblocking(false).is_ok() {
                self.clients.push(Client {
                    stream,
                    buf: Vec::new(),
                });
            }
        }
    }

    fn serve_client(&mut self, fd: RawFd) {
        let Some(i) = self.clients.iter().position(|c| c.stream.as_raw_fd() == fd) else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        let n = match self.clients[i].stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                self.clients.swap_remove(i);
                return;
            }
            Ok(n) => n,
        };
        self.clients[i].buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = self.clients[i].buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.clients[i].buf.drain(..=end).collect();
            let reply = match serde_json::from_slice::<Request>(&line) {
                Ok(Request::Subscribe) => {
                    let client = self.clients.swap_remove(i);
                    self.subscribers.push(client.stream);
                    return;
                }
                Ok(req) => self.handle(req),
                Err(e) => Reply::error(format!("bad request: {e}")),
            };
            let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
            out.push(b'\n');
            if self.clients[i].stream.write_all(&out).is_err() {
                self.clients.swap_remove(i);
                return;
            }
        }
        if self.clients[i].buf.len() > 1 << 20 {
            self.clients.swap_remove(i);
        }
    }

    fn handle(&mut self, req: Request) -> Reply {
        let result = match req {
            Request::Create { id, bundle, log_path } => self.create(&id, &bundle, &log_path).map(|i| vec![i]),
            Request::Start { id } => self.start(&id).map(|i| vec![i]),
            Request::Kill { id, signal, all } => self.kill(&id, signal, all).map(|()| Vec::new()),
            Request::Delete { id, force } => self.delete(&id, force).map(|()| Vec::new()),
            Request::List => Ok(self.containers.values().map(|e| e.info.clone()).collect()),
            Request::Pin {
                dir,
                hostname,
                host_network,
            } => match super::sandbox::pin_here(&dir, &hostname, host_network) {
                Ok(_) => Ok(Vec::new()),
                Err(RuntimeError::Stranded(m)) => {
                    // In a pod's namespaces, every later container would be wrong: leave; the
                    // agent starts a new shim, which adopts the containers.
                    tracing::error!(%m, "shim stranded in a pod's namespaces; exiting");
                    std::process::exit(1);
                }
                Err(e) => Err(e.to_string()),
            },
            Request::Subscribe => Ok(Vec::new()),
        };
        match result {
            Ok(c) => Reply::ok(c),
            Err(message) => Reply::error(message),
        }
    }

    fn create(&mut self, id: &str, bundle: &Path, log_path: &Path) -> Result<ContainerInfo, String> {
        if self.containers.contains_key(id) {
            return Err(format!("container {id} already exists"));
        }
        let log = LogWriter::open(log_path).map_err(|e| format!("open log {}: {e}", log_path.display()))?;
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        // libcontainer writes the container's oom_score_adj into its caller first: keep ours.
        let oom = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
        let built = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_executor(ShimExecutor)
            .with_root_path(state_dir(&self.root))
            .and_then(|b| b.validate_id())
            .map(|b| b.with_stdout(out_w).with_stderr(err_w))
            .and_then(|b| b.as_init(bundle).with_systemd(false).with_detach(true).build());
        if !oom.trim().is_empty() {
            let _ = std::fs::write("/proc/self/oom_score_adj", oom.trim());
        }
        let container = match built {
            Ok(c) => c,
            Err(e) => {
                // A failed create can leave libcontainer's state (and cgroups) behind.
                if let Ok(mut c) = Container::load(state_dir(&self.root).join(id)) {
                    let _ = c.delete(true);
                }
                let _ = std::fs::remove_dir_all(state_dir(&self.root).join(id));
                return Err(error_chain(&e));
            }
        };
        let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
        for (fd, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
            let _ = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
            self.pipes.push(Pipe {
                fd,
                id: id.to_string(),
                stream,
            });
        }
        self.logs.insert(id.to_string(), log);
        let info = ContainerInfo {
            id: id.to_string(),
            pid,
            phase: Phase::Created,
            exit_code: None,
            signal: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        };
        self.containers.insert(
            id.to_string(),
            Entry {
                info: info.clone(),
                adopted: false,
            },
        );
        Ok(info)
    }

    fn load(&self, id: &str) -> Result<Container, String> {
        Container::load(state_dir(&self.root).join(id)).map_err(|e| format!("container {id}: {}", error_chain(&e)))
    }

    fn start(&mut self, id: &str) -> Result<ContainerInfo, String> {
        let mut c = self.load(id)?;
        c.start().map_err(|e| error_chain(&e))?;
        let e = self
            .containers
            .get_mut(id)
            .ok_or_else(|| format!("container {id} not found"))?;
        if e.info.phase == Phase::Created {
            e.info.phase = Phase::Running;
        }
        e.info.started_at = Some(Utc::now());
        Ok(e.info.clone())
    }

    fn kill(&mut self, id: &str, signal: i32, all: bool) -> Result<(), String> {
        if self.containers.get(id).is_some_and(|e| e.info.phase == Phase::Exited) {
            return Ok(());
        }
        let sig = Signal::try_from(signal).map_err(|e| format!("signal {signal}: {e}"))?;
        let mut c = self.load(id)?;
        match c.kill(sig, all) {
            Ok(()) => Ok(()),
            // It ended between our look and the kill: the exit is on its way.
            Err(_) if c.refresh_status().is_ok() && c.status() == ContainerStatus::Stopped => Ok(()),
            Err(e) => Err(error_chain(&e)),
        }
    }

    fn delete(&mut self, id: &str, force: bool) -> Result<(), String> {
        let dir = state_dir(&self.root).join(id);
        // Forget it whatever libcontainer says: a failed delete leaves the state dir, which a
        // later delete (the agent's cleanup) retries.
        let result = if dir.exists() {
            self.load(id)
                .and_then(|mut c| c.delete(force).map_err(|e| error_chain(&e)))
        } else {
            Ok(())
        };
        if let Some(e) = self.containers.remove(id) {
            if e.info.phase != Phase::Exited && !e.adopted {
                // Forced: collect it now rather than leave a zombie until the next SIGCHLD.
                let _ = nix::sys::wait::waitpid(Pid::from_raw(e.info.pid), Some(WaitPidFlag::WNOHANG));
            }
        }
        self.pipes.retain(|p| p.id != id);
        if let Some(mut log) = self.logs.remove(id) {
            let _ = log.flush();
        }
        result
    }

    fn reap(&mut self) {
        loop {
            let status = match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let (pid, code, signal) = match status {
                WaitStatus::Exited(pid, code) => (pid, code, None),
                WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32, Some(sig as i32)),
                _ => continue,
            };
            let Some(e) = self
                .containers
                .values_mut()
                .find(|e| !e.adopted && e.info.pid == pid.as_raw() && e.info.phase != Phase::Exited)
            else {
                continue;
            };
            e.info.phase = Phase::Exited;
            e.info.exit_code = Some(code);
            e.info.signal = signal;
            e.info.finished_at = Some(Utc::now());
            let info = e.info.clone();
            // Output written just before the exit is still in the pipes: take it first.
            let fds: Vec<RawFd> = self
                .pipes
                .iter()
                .filter(|p| p.id == info.id)
                .map(|p| p.fd.as_raw_fd())
                .collect();
            for fd in fds {
                self.drain_pipe(fd);
            }
            self.notify(&info);
        }
    }

    fn drain_pipe(&mut self, fd: RawFd) {
        let Some(i) = self.pipes.iter().position(|p| p.fd.as_raw_fd() == fd) else {
            return;
        };
        let mut buf = [0u8; 64 * 1024];
        for _ in 0..READS_PER_WAKE {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    let p = self.pipes.swap_remove(i);
                    if let Some(log) = self.logs.get_mut(&p.id) {
                        let _ = log.flush();
                    }
                    return;
                }
                Ok(n) => {
                    let p = &self.pipes[i];
                    if let Some(log) = self.logs.get_mut(&p.id) {
                        if let Err(e) = log.write(p.stream, &buf[..n]) {
                            tracing::warn!(container = %p.id, error = %e, "log write failed");
                        }
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }

    fn notify(&mut self, info: &ContainerInfo) {
        let Ok(mut line) = serde_json::to_vec(info) else { return };
        line.push(b'\n');
        self.subscribers.retain_mut(|s| s.write_all(&line).is_ok());
    }
}

/// libcontainer's errors wrap their causes; a user needs the innermost ("executable not found").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        cur = s.source();
    }
    msg
}

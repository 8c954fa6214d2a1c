//! The agent's side of an exec: starts `skiff agent-exec` (see `exec`) for one command in a
//! running container and hands back its streams.
//!
//! Without a terminal the command's stdin, stdout and stderr are pipes to the helper, which it
//! passes on. With one, the agent listens on a console socket for the pty's master end, which
//! libcontainer sends from inside the container; the master carries both directions and takes
//! window size changes.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::sync::oneshot;

use super::exec::{exec_dir, ExecStatus};
use super::RuntimeError;

/// How long the helper may take to send the terminal (it is sent before the command runs).
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One command to run in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The runtime's container id (`<pod uid>_<name>_<attempt>`).
    pub container_id: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub tty: bool,
    /// The terminal's first window size (width, height), set the moment the pty arrives:
    /// before the command has got far enough to ask for it.
    pub size: Option<(u16, u16)>,
}

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    Exited(i32),
    /// The command could not be started, or the helper died (the reason).
    Failed(String),
}

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A running exec. Its files are removed when it ends (see [`ExecProcess::take_end`]).
pub struct ExecProcess {
    pub stdin: Option<Writer>,
    pub stdout: Option<Reader>,
    pub stderr: Option<Reader>,
    /// The pty's master end, with a terminal (for window sizes).
    pty: Option<OwnedFd>,
    pid: Option<u32>,
    end: Option<oneshot::Receiver<ExecEnd>>,
}

impl ExecProcess {
    /// Starts the helper `exe agent-exec` for `req` under the runtime root `root`; `n` names this
    /// exec's files (unique among the running ones).
    pub async fn start(root: &Path, exe: &Path, req: &ExecRequest, n: u64) -> Result<ExecProcess, RuntimeError> {
        let dir = exec_dir(root);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        let status = dir.join(format!("{n}.status"));
        let socket = dir.join(format!("{n}.sock"));
        let _ = std::fs::remove_file(&status);
        let _ = std::fs::remove_file(&socket);
        let listener = if req.tty {
            Some(UnixListener::bind(&socket).map_err(|e| RuntimeError::io("bind", &socket, e))?)
        } else {
            None
        };
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("agent-exec")
            .arg("--root")
            .arg(root)
            .arg("--id")
            .arg(&req.container_id)
            .arg("--status")
            .arg(&status);
        if req.tty {
            cmd.arg("--console-socket").arg(&socket);
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        } else {
            cmd.stdin(if req.stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        cmd.arg("--").args(&req.command);
        let spawned = cmd.spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&socket);
                return Err(RuntimeError::io("spawn", exe, e));
            }
        };
        let pid = child.id();
        let mut p = ExecProcess {
            stdin: child.stdin.take().map(|s| Box::new(s) as Writer),
            stdout: child.stdout.take().map(|s| Box::new(s) as Reader),
            stderr: child.stderr.take().map(|s| Box::new(s) as Reader),
            pty: None,
            pid,
            end: None,
        };
        let (tx, rx) = oneshot::channel();
        let files = (status.clone(), socket.clone());
        let (child_done_tx, mut child_done) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let waited = child.wait().await;
            let _ = child_done_tx.send(());
            let end = match (read_status(&files.0), waited) {
                (Some(ExecStatus { exit_code: Some(c), .. }), _) => ExecEnd::Exited(c),
                (Some(ExecStatus { error: Some(e), .. }), _) => ExecEnd::Failed(e),
                (_, Ok(s)) => ExecEnd::Failed(format!("the exec helper ended ({s}) without a status")),
                (_, Err(e)) => ExecEnd::Failed(format!("waiting for the exec helper: {e}")),
            };
            let _ = std::fs::remove_file(&files.0);
            let _ = std::fs::remove_file(&files.1);
            let _ = tx.send(end);
        });
        if let Some(listener) = listener {
            // The helper may fail before the terminal is sent (no such command): then no
            // terminal comes, and the end says why.
            let got = tokio::select! {
                r = tokio::time::timeout(CONSOLE_TIMEOUT, receive_pty(&listener)) => match r {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no terminal within {CONSOLE_TIMEOUT:?}")),
                },
                _ = &mut child_done => Err("ended".to_string()),
            };
            let _ = std::fs::remove_file(&socket);
            match got {
                Ok(master) => {
                    let (r, w) = pty_streams(&master).map_err(|e| RuntimeError::io("dup", &socket, e))?;
                    p.stdout = Some(r);
                    p.stdin = Some(w);
                    p.pty = Some(master);
                    if let Some((width, height)) = req.size {
                        p.resize(width, height);
                    }
                }
                Err(why) => {
                    tracing::debug!(%why, "exec without a terminal");
                    p.stop();
                }
            }
        }
        p.end = Some(rx);
        Ok(p)
    }

    /// Sets the terminal's window size (no terminal: nothing to do).
    pub fn resize(&self, width: u16, height: u16) {
        if let Some(pty) = &self.pty {
            let size = rustix::termios::Winsize {
                ws_row: height,
                ws_col: width,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            if let Err(e) = rustix::termios::tcsetwinsize(pty.as_fd(), size) {
                tracing::debug!(error = %e, "exec terminal resize");
            }
        }
    }

    /// Tells the helper to kill the command (the client went away).
    pub fn stop(&self) {
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// Resolves when the command has ended (once; later calls get `None`).
    pub fn take_end(&mut self) -> Option<oneshot::Receiver<ExecEnd>> {
        self.end.take()
    }
}

fn read_status(path: &PathBuf) -> Option<ExecStatus> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Accepts libcontainer's connection on the console socket and takes the fd it sends.
async fn receive_pty(listener: &UnixListener) -> std::io::Result<OwnedFd> {
    let (stream, _) = listener.accept().await?;
    loop {
        stream.readable().await?;
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
        let mut name = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut name)];
        match rustix::net::recvmsg(&stream, &mut iov, &mut control, rustix::net::RecvFlags::DONTWAIT) {
            Ok(msg) => {
                for m in control.drain() {
                    if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = m {
                        if let Some(fd) = fds.next() {
                            return Ok(fd);
                        }
                    }
                }
                if msg.bytes == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "console socket closed without a terminal",
                    ));
                }
            }
            Err(rustix::io::Errno::AGAIN) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A reader and a writer over the pty's master end (reads end with EIO once every process
/// holding the terminal has closed it: read as the end of output).
fn pty_streams(master: &OwnedFd) -> std::io::Result<(Reader, Writer)> {
    let r = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
    let w = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
    Ok((Box::new(PtyReader(r)), Box::new(w)))
}

/// A pty master whose EIO (no process has the terminal open any more) reads as end of file.
struct PtyReader(tokio::fs::File);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

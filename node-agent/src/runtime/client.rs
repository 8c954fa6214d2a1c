//! The agent's side of the shim: starts one if none serves the socket, sends requests, and
//! follows container exits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Mutex};

use super::protocol::{ContainerInfo, Reply, Request};
use super::shim::socket_path;
use super::RuntimeError;

type Conn = BufReader<UnixStream>;

/// A connection to the runtime shim, shared by all pod workers (requests are serialized: the
/// shim handles one at a time anyway).
pub struct RuntimeClient {
    root: PathBuf,
    exe: PathBuf,
    socket: PathBuf,
    conn: Mutex<Option<Conn>>,
    /// Names each exec's files (sessions and probes alike).
    execs: AtomicU64,
}

impl RuntimeClient {
    /// Connects to the shim under `root`, starting `exe agent-shim --root ROOT` if none answers.
    pub async fn connect(root: &Path, exe: &Path) -> Result<RuntimeClient, RuntimeError> {
        ensure_shim(root, exe).await?;
        Ok(RuntimeClient {
            root: root.to_path_buf(),
            exe: exe.to_path_buf(),
            socket: socket_path(root),
            conn: Mutex::new(None),
            execs: AtomicU64::new(0),
        })
    }
}

/// Starts a shim under `root` unless one answers there, and waits until it does.
pub async fn ensure_shim(root: &Path, exe: &Path) -> Result<(), RuntimeError> {
    let socket = socket_path(root);
    if UnixStream::connect(&socket).await.is_ok() {
        return Ok(());
    }
    spawn_shim(root, exe)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            return Err(RuntimeError::Shim {
                socket,
                reason: format!("did not start; see {}", root.join("shim.log").display()),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

impl RuntimeClient {
    /// Starts a new shim if the old one is gone (it adopts the containers it finds).
    pub async fn revive(&self) -> Result<(), RuntimeError> {
        ensure_shim(&self.root, &self.exe).await
    }

    async fn call(&self, req: &Request) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut line = serde_json::to_vec(req).map_err(|e| self.broken(e.to_string()))?;
        line.push(b'\n');
        let mut guard = self.conn.lock().await;
        // One retry on a fresh connection: the shim may have been restarted since the last call.
        for attempt in 0..2 {
            if guard.is_none() {
                let s = UnixStream::connect(&self.socket)
                    .await
                    .map_err(|e| self.broken(e.to_string()))?;
                *guard = Some(BufReader::new(s));
            }
            let Some(conn) = guard.as_mut() else { continue };
            match exchange(conn, &line).await {
                Ok(reply) if reply.ok => return Ok(reply.containers),
                Ok(reply) => return Err(RuntimeError::Refused(reply.error.unwrap_or_else(|| "failed".into()))),
                Err(e) => {
                    *guard = None;
                    if attempt == 1 {
                        return Err(self.broken(e.to_string()));
                    }
                }
            }
        }
        Err(self.broken("unreachable".into()))
    }

    fn broken(&self, reason: String) -> RuntimeError {
        RuntimeError::Shim {
            socket: self.socket.clone(),
            reason,
        }
    }

    fn one(&self, mut v: Vec<ContainerInfo>) -> Result<ContainerInfo, RuntimeError> {
        v.pop().ok_or_else(|| self.broken("empty reply".into()))
    }

    pub async fn create(&self, id: &str, bundle: &Path, log_path: &Path) -> Result<ContainerInfo, RuntimeError> {
        let v = self
            .call(&Request::Create {
                id: id.into(),
                bundle: bundle.into(),
                log_path: log_path.into(),
            })
            .await?;
        self.one(v)
    }

    pub async fn start(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let v = self.call(&Request::Start { id: id.into() }).await?;
        self.one(v)
    }

    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuntimeError> {
        self.call(&Request::Kill {
            id: id.into(),
            signal,
            all,
        })
        .await
        .map(drop)
    }

    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        self.call(&Request::Delete { id: id.into(), force }).await.map(drop)
    }

    /// Pins a pod's namespaces under `dir` (idempotent).
    pub async fn pin(
        &self,
        dir: &Path,
        hostname: &str,
        host_network: bool,
    ) -> Result<super::sandbox::Namespaces, RuntimeError> {
        let ns = super::sandbox::Namespaces::at(dir, host_network);
        if ns.pinned() {
            return Ok(ns);
        }
        self.call(&Request::Pin {
            dir: dir.into(),
            hostname: hostname.into(),
            host_network,
        })
        .await?;
        Ok(ns)
    }

    /// Runs a command in a running container (see `exec_client`); `n` names its files.
    pub async fn exec(&self, req: &super::ExecRequest) -> Result<super::ExecProcess, RuntimeError> {
        let n = self.execs.fetch_add(1, Ordering::Relaxed);
        super::ExecProcess::start(&self.root, &self.exe, req, n).await
    }

    pub async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.call(&Request::List).await
    }

    /// Exit events, on a connection of their own. The channel closes if the shim goes away.
    pub async fn subscribe(&self) -> Result<mpsc::Receiver<ContainerInfo>, RuntimeError> {
        let mut s = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.broken(e.to_string()))?;
        let mut line = serde_json::to_vec(&Request::Subscribe).map_err(|e| self.broken(e.to_string()))?;
        line.push(b'\n');
        s.write_all(&line).await.map_err(|e| self.broken(e.to_string()))?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut lines = BufReader::new(s).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                match serde_json::from_str::<ContainerInfo>(&l) {
                    Ok(info) => {
                        if tx.send(info).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "bad event from the shim"),
                }
            }
        });
        Ok(rx)
    }
}

/// A shim that does not answer within this is treated as gone (the call fails, the next one
/// reconnects).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

async fn exchange(conn: &mut Conn, line: &[u8]) -> std::io::Result<Reply> {
    match tokio::time::timeout(CALL_TIMEOUT, exchange_once(conn, line)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the shim did not answer",
        )),
    }
}

async fn exchange_once(conn: &mut Conn, line: &[u8]) -> std::io::Result<Reply> {
    conn.get_mut().write_all(line).await?;
    let mut reply = String::new();
    if conn.read_line(&mut reply).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "shim closed the connection",
        ));
    }
    serde_json::from_str(&reply).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn spawn_shim(root: &Path, exe: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(root).map_err(|e| RuntimeError::io("create", root, e))?;
    let log_path = root.join("shim.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| RuntimeError::io("open", &log_path, e))?;
    let log2 = log.try_clone().map_err(|e| RuntimeError::io("open", &log_path, e))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("agent-shim").arg("--root").arg(root);
    cmd.stdin(std::process::Stdio::null()).stdout(log).stderr(log2);
    // The shim calls setsid() first thing: a signal to the agent's group leaves it alone.
    // Dropped without waiting: tokio reaps it if it ever exits while the agent runs.
    cmd.spawn().map_err(|e| RuntimeError::io("spawn", exe, e))?;
    Ok(())
}

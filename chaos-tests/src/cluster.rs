//! skiff members as OS processes, each inside its own namespace of a [`Net`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions};

use crate::cleanup::{self, Resource};
use crate::net::{sh, Net};

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// The skiff binary: `$SKIFF_BIN`, else the workspace's release build.
pub fn skiff_bin() -> String {
    std::env::var("SKIFF_BIN").unwrap_or_else(|_| "/var/cache/skiff/target/release/skiff".into())
}

pub struct Member {
    pub name: String,
    args: Vec<String>,
    child: Option<Child>,
    pub paused: bool,
    pub log: PathBuf,
}

pub struct Cluster {
    members: Vec<Member>,
    bin: String,
    // Dropped after the members are killed (fields drop after `Drop::drop`).
    pub net: Net,
}

impl Cluster {
    /// Starts members n1..nN, data under `data`, logs under `logs`.
    pub fn start(net: Net, data: &Path, logs: &Path, bin: &str, extra: &[String]) -> Result<Cluster> {
        let initial: Vec<String> = (1..=net.members)
            .map(|i| format!("n{i}={}:{PEER_PORT}", net.ip(i)))
            .collect();
        let mut c = Cluster {
            members: Vec::new(),
            bin: bin.to_string(),
            net,
        };
        for i in 1..=c.net.members {
            let ip = c.net.ip(i);
            let mut args = vec![
                "netns".to_string(),
                "exec".into(),
                c.net.ns(i).to_string(),
                bin.to_string(),
                "master".into(),
                "--name".into(),
                format!("n{i}"),
                "--data-dir".into(),
                data.join(format!("n{i}")).display().to_string(),
                "--listen-peer".into(),
                format!("{ip}:{PEER_PORT}"),
                "--listen-client".into(),
                format!("{ip}:{CLIENT_PORT}"),
                "--listen-api".into(),
                "off".into(),
                "--initial-cluster".into(),
                initial.join(","),
            ];
            args.extend(extra.iter().cloned());
            c.members.push(Member {
                name: format!("n{i}"),
                args,
                child: None,
                paused: false,
                log: logs.join(format!("n{i}.log")),
            });
            c.restart(i)?;
        }
        Ok(c)
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:{CLIENT_PORT}", self.net.ip(i))
    }

    pub fn endpoints(&self) -> Vec<String> {
        (1..=self.size()).map(|i| self.endpoint(i)).collect()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i - 1].child.is_some()
    }

    /// Starts member `i` on its data dir if it is not running. `ip netns exec` execs the
    /// command, so the child's pid is skiff's own.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i - 1];
        if m.child.is_some() {
            return Ok(());
        }
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&m.log)?;
        let err = out.try_clone()?;
        let child = Command::new("ip")
            .args(&m.args)
            .env("SKIFF_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("spawning {} in its namespace ({})", self.bin, m.name))?;
        cleanup::register(Resource::Pid(child.id()));
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i - 1];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            cleanup::unregister(&Resource::Pid(c.id()));
        }
        m.paused = false;
    }

    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.signal(i, "-STOP")?;
        self.members[i - 1].paused = true;
        Ok(())
    }

    pub fn resume(&mut self, i: usize) -> Result<()> {
        if self.members[i - 1].paused {
            self.signal(i, "-CONT")?;
            self.members[i - 1].paused = false;
        }
        Ok(())
    }

    fn signal(&self, i: usize, sig: &str) -> Result<()> {
        let Some(c) = &self.members[i - 1].child else {
            bail!("n{i} is not running")
        };
        sh("kill", &[sig, &c.id().to_string()])
    }

    /// The leader according to the first live member that knows one.
    pub async fn leader(&self) -> Option<usize> {
        for i in 1..=self.size() {
            if !self.is_running(i) || self.members[i - 1].paused {
                continue;
            }
            let Ok(mut c) = connect(&[self.endpoint(i)], Duration::from_secs(1)).await else {
                continue;
            };
            let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(1), c.status()).await else {
                continue;
            };
            if s.leader() == 0 {
                continue;
            }
            // Map the leader's member id to its number by asking each member for its own id.
            for j in 1..=self.size() {
                let Ok(mut cj) = connect(&[self.endpoint(j)], Duration::from_secs(1)).await else {
                    continue;
                };
                if let Ok(Ok(sj)) = tokio::time::timeout(Duration::from_secs(1), cj.status()).await {
                    if sj.header().map(|h| h.member_id()) == Some(s.leader()) {
                        return Some(j);
                    }
                }
            }
        }
        None
    }

    /// Waits until every member serves a linearizable read.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 1..=self.size() {
            loop {
                if let Ok(mut c) = connect(&[self.endpoint(i)], Duration::from_secs(1)).await {
                    if let Ok(Ok(_)) =
                        tokio::time::timeout(Duration::from_secs(2), c.get("chaos-ready-probe", None)).await
                    {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    bail!("n{i} not ready within {timeout:?}\n{}", self.logs());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// The tail of every member's log, for error messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            out.push_str(&format!("--- {} ---\n", m.name));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 1..=self.members.len() {
            self.kill(i);
        }
    }
}

pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(timeout);
    Ok(Client::connect(endpoints, Some(opts)).await?)
}

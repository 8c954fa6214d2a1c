//! Fixtures for multi-process tests: skiff members as child processes on 127.0.0.x.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions, GetOptions};

static NEXT: AtomicU16 = AtomicU16::new(0);

/// A distinct base port per cluster in this process, spread by pid across processes, and below
/// Linux's ephemeral range (32768+) so outgoing connections cannot have taken it.
fn base_port() -> u16 {
    let pid = std::process::id() as u16;
    16000 + (pid % 80) * 200 + NEXT.fetch_add(1, Ordering::Relaxed) * 10
}

pub struct MemberProc {
    pub name: String,
    pub ip: String,
    pub args: Vec<String>,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl MemberProc {
    pub fn client_addr(&self, base: u16) -> String {
        format!("{}:{}", self.ip, base)
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub base: u16,
    pub members: Vec<MemberProc>,
    pub extra_args: Vec<String>,
}

pub fn bin() -> String {
    env!("CARGO_BIN_EXE_skiff").to_string()
}

impl Cluster {
    /// Starts `n` members (m1..mn on 127.0.0.1..n) with `extra` flags for each.
    pub fn start(n: usize, extra: &[&str]) -> Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let base = base_port();
        let initial: Vec<String> = (1..=n).map(|i| format!("m{i}=127.0.0.{i}:{}", base + 1)).collect();
        let mut c = Cluster {
            dir,
            base,
            members: Vec::new(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 1..=n {
            let mut args = c.member_args(i);
            args.push("--initial-cluster".into());
            args.push(initial.join(","));
            c.spawn_member(i, args)?;
        }
        Ok(c)
    }

    fn member_args(&self, i: usize) -> Vec<String> {
        let ip = format!("127.0.0.{i}");
        let mut args = vec![
            "master".into(),
            "--name".into(),
            format!("m{i}"),
            "--data-dir".into(),
            self.dir.path().join(format!("m{i}")).display().to_string(),
            "--listen-api".into(),
            "off".into(),
            "--listen-client".into(),
            format!("{ip}:{}", self.base),
            "--listen-peer".into(),
            format!("{ip}:{}", self.base + 1),
            "--listen-metrics".into(),
            format!("{ip}:{}", self.base + 2),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn_member(&mut self, i: usize, args: Vec<String>) -> Result<()> {
        let log = self.dir.path().join(format!("m{i}.log"));
        let child = spawn(&args, &log)?;
        let m = MemberProc {
            name: format!("m{i}"),
            ip: format!("127.0.0.{i}"),
            args,
            child: Some(child),
            log,
        };
        if let Some(slot) = self.members.iter_mut().find(|m| m.name == format!("m{i}")) {
            *slot = m;
        } else {
            self.members.push(m);
        }
        Ok(())
    }

    /// Starts member `i` (> current size) with `--join` through member 1.
    pub fn join(&mut self, i: usize) -> Result<()> {
        let mut args = self.member_args(i);
        args.push("--join".into());
        args.push(format!("127.0.0.1:{}", self.base));
        self.spawn_member(i, args)
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://{}", m.client_addr(self.base)))
            .collect()
    }

    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.{i}:{}", self.base)
    }

    pub async fn client(&self) -> Result<Client> {
        connect(&self.endpoints()).await
    }

    pub async fn client_of(&self, i: usize) -> Result<Client> {
        connect(&[self.endpoint(i)]).await
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(m) = self.members.iter_mut().find(|m| m.name == format!("m{i}")) {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    pub fn restart(&mut self, i: usize) -> Result<()> {
        let m = self
            .members
            .iter_mut()
            .find(|m| m.name == format!("m{i}"))
            .context("no such member")?;
        if m.child.is_none() {
            m.child = Some(spawn(&m.args, &m.log)?);
        }
        Ok(())
    }

    /// Member number (1-based) of the current leader, asked of every live member.
    pub async fn leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for (idx, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                let Ok(mut c) = self.client_of(idx + 1).await else {
                    continue;
                };
                if let Ok(s) = c.status().await {
                    let me = s.header().map(|h| h.member_id()).unwrap_or(0);
                    if s.leader() != 0 && s.leader() == me {
                        return Ok(idx + 1);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("no leader within {timeout:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a linearizable get works through member `i`.
    pub async fn wait_ready(&self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(mut c) = self.client_of(i).await {
                if c.get("ready-probe", None).await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("member {i} not ready within {timeout:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
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
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn spawn(args: &[String], log: &PathBuf) -> Result<Child> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    Command::new(bin())
        .args(args)
        .env("SKIFF_LOG", "info,openraft=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .context("spawning skiff")
}

pub async fn connect(endpoints: &[String]) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10));
    Ok(Client::connect(endpoints, Some(opts)).await?)
}

/// Serializable read of `key` through member client `c` (its own applied state).
pub async fn local_get(c: &mut Client, key: &str) -> Result<Option<String>> {
    let r = c.get(key, Some(GetOptions::new().with_serializable())).await?;
    Ok(r.kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

//! A member's data directory: clean shutdown on SIGTERM, restart with data, and refusal to
//! start on a corrupted or foreign data dir with a message that names the problem.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use common::{bin, connect};

struct One {
    dir: tempfile::TempDir,
    port: u16,
}

impl One {
    fn new(port: u16) -> Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir()?,
            port,
        })
    }

    fn args(&self, name: &str) -> Vec<String> {
        vec![
            "master".into(),
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            self.dir.path().join("data").display().to_string(),
            "--listen-api".into(),
            "off".into(),
            "--listen-client".into(),
            format!("127.0.0.1:{}", self.port),
            "--listen-peer".into(),
            format!("127.0.0.1:{}", self.port + 1),
        ]
    }

    fn spawn(&self, name: &str) -> Result<std::process::Child> {
        Command::new(bin())
            .args(self.args(name))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn skiff")
    }

    /// Runs a member that must refuse to start; returns its stderr.
    fn refused(&self, name: &str) -> Result<String> {
        let mut child = self.spawn(name)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(!status.success(), "member started on a bad data dir");
                let out = child.wait_with_output()?;
                return Ok(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("member kept running on a bad data dir");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn port() -> u16 {
    10000 + (std::process::id() % 500) as u16 * 10
}

async fn write_keys(port: u16, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if let Ok(mut c) = connect(&[format!("http://127.0.0.1:{port}")]).await {
            if c.get("probe", None).await.is_ok() {
                break c;
            }
        }
        ensure!(Instant::now() < deadline, "member never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for i in 0..n {
        c.put(format!("k{i:04}"), vec![b'x'; 512], None).await?;
    }
    Ok(())
}

fn sigterm_and_wait(child: &mut std::process::Child) -> Result<()> {
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    ensure!(st.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "SIGTERM exit status {status}");
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "no clean exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_clean_and_data_dir_problems_are_named() -> Result<()> {
    let one = One::new(port())?;
    let mut child = one.spawn("solo")?;
    write_keys(one.port, 200).await?;
    sigterm_and_wait(&mut child)?;

    // Restarted on its data dir, it has its data.
    let mut child = one.spawn("solo")?;
    let mut c = connect(&[format!("http://127.0.0.1:{}", one.port)]).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let count = loop {
        if let Ok(r) = c
            .get(
                "k",
                Some(etcd_client::GetOptions::new().with_prefix().with_count_only()),
            )
            .await
        {
            break r.count();
        }
        ensure!(Instant::now() < deadline, "restarted member never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(count == 200, "expected 200 keys after restart, found {count}");
    sigterm_and_wait(&mut child)?;

    // Another member's data dir.
    let err = one.refused("intruder")?;
    ensure!(err.contains("belongs to member"), "unclear refusal: {err}");

    // Corrupt the middle of the biggest data file (a table or the write-ahead log).
    let db = one.dir.path().join("data/db");
    let wal = std::fs::read_dir(&db)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log" || x == "sst"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .context("no data file")?;
    let mut bytes = std::fs::read(&wal)?;
    ensure!(bytes.len() > 4096, "data file unexpectedly small: {}", bytes.len());
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xA5;
    }
    std::fs::write(&wal, &bytes)?;
    let err = one.refused("solo")?;
    ensure!(
        err.contains("data dir") && err.to_lowercase().contains("corrupt"),
        "unclear refusal: {err}"
    );
    Ok(())
}

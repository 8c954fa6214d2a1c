//! The kernel seam: a ruleset script applied as one nftables transaction. The real
//! implementation pipes the script into `nft -f -`, as kube-proxy's nftables mode does: `nft`
//! parses and sends the whole batch in one netlink transaction, so the kernel switches from the
//! old table to the new one atomically or not at all. (The Rust crates that speak nftables'
//! netlink protocol directly are either GPL (`rustables`, `nftnl`) or wrap the `nft` binary
//! anyway (`nftables`); a text transaction keeps the licence clean and the rules readable with
//! `nft list table ip skiff`.)

use std::io::Write;
use std::process::{Command, Stdio};

use parking_lot::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running nft: {0}")]
    Spawn(std::io::Error),
    /// nft refused the script (nothing was changed: the transaction is all or nothing).
    #[error("nft -f refused the ruleset: {0}")]
    Refused(String),
}

/// Applies nftables scripts.
pub trait Nft: Send + Sync {
    fn apply(&self, script: &str) -> Result<(), NftError>;
}

/// `nft -f -` in the calling process's network namespace.
pub struct NftCli;

impl Nft for NftCli {
    fn apply(&self, script: &str) -> Result<(), NftError> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(NftError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A write error shows up as nft's own failure below (it read a truncated script).
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = child.wait_with_output().map_err(NftError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            // nft repeats the offending line; the first lines say what is wrong.
            let first: Vec<&str> = err.lines().take(6).collect();
            Err(NftError::Refused(first.join(" | ")))
        }
    }
}

/// Records scripts instead of applying them (unit tests); fails while `fail` is set.
#[derive(Default)]
pub struct FakeNft {
    pub applied: Mutex<Vec<String>>,
    pub fail: Mutex<bool>,
}

impl Nft for FakeNft {
    fn apply(&self, script: &str) -> Result<(), NftError> {
        if *self.fail.lock() {
            return Err(NftError::Refused("fake failure".into()));
        }
        self.applied.lock().push(script.to_string());
        Ok(())
    }
}

//! The test network of one run.
//!
//! ```text
//!  host: skc<R> 10.251.R.254/24 ──veth── [ns skiff-c<R>-br: bridge br0] ──veth── [ns skiff-c<R>-n1: eth0 10.251.R.1]
//!                                                                      ──veth── [ns skiff-c<R>-n2: eth0 10.251.R.2] ...
//! ```
//! The bridge lives in a namespace of its own and enslaves only the run's veths; no namespace
//! has a default route and there is no NAT, so member traffic can reach nothing but the other
//! members and the host's test address. `R` (1..=250) is picked at random and claimed by
//! creating the bridge namespace, which fails if another run holds it: two runs never collide.
//! Partitions are an nftables table (`inet skiff_chaos`) inside a member's namespace dropping
//! input from chosen peers; client traffic from the host address is never dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use rand::Rng;

use crate::cleanup::{self, Resource};

/// Node -> the nodes whose packets it drops (1-based member numbers).
pub type Grudge = BTreeMap<usize, BTreeSet<usize>>;

pub struct Net {
    pub run: String,
    pub subnet: u8,
    pub members: usize,
    br_ns: String,
    host_if: String,
    ns: Vec<String>,
}

/// Runs a command, failing with its stderr.
pub fn sh(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Net {
    pub fn create(members: usize) -> Result<Net> {
        let mut rng = rand::thread_rng();
        for _ in 0..64 {
            let r: u8 = rng.gen_range(1..=250);
            let br_ns = format!("skiff-c{r}-br");
            let host_if = format!("skc{r}");
            if Command::new("ip")
                .args(["link", "show", &host_if])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(true)
            {
                continue; // a host link of that name exists: another run (or a leftover) owns R
            }
            if sh("ip", &["netns", "add", &br_ns]).is_err() {
                continue;
            }
            cleanup::register(Resource::Netns(br_ns.clone()));
            let mut net = Net {
                run: format!("c{r}-{}", std::process::id()),
                subnet: r,
                members,
                br_ns,
                host_if,
                ns: Vec::new(),
            };
            // On error `net` drops here and tears down what was made.
            net.build()?;
            return Ok(net);
        }
        bail!("no free test subnet 10.251.R.0/24 after 64 tries")
    }

    fn build(&mut self) -> Result<()> {
        let br = self.br_ns.clone();
        sh("ip", &["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        sh("ip", &["-n", &br, "link", "set", "br0", "up"])?;
        for i in 1..=self.members {
            let ns = format!("skiff-c{}-n{i}", self.subnet);
            sh("ip", &["netns", "add", &ns])?;
            cleanup::register(Resource::Netns(ns.clone()));
            self.ns.push(ns.clone());
            let port = format!("m{i}");
            sh(
                "ip",
                &[
                    "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            sh("ip", &["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            sh(
                "ip",
                &["-n", &ns, "addr", "add", &format!("{}/24", self.ip(i)), "dev", "eth0"],
            )?;
            sh("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        sh(
            "ip",
            &[
                "link",
                "add",
                &self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                "hostport",
                "netns",
                &br,
            ],
        )?;
        cleanup::register(Resource::HostLink(self.host_if.clone()));
        sh("ip", &["-n", &br, "link", "set", "hostport", "master", "br0", "up"])?;
        sh(
            "ip",
            &["addr", "add", &format!("{}/24", self.host_ip()), "dev", &self.host_if],
        )?;
        sh("ip", &["link", "set", &self.host_if, "up"])?;
        Ok(())
    }

    /// Address of member `i` (1-based).
    pub fn ip(&self, i: usize) -> String {
        format!("10.251.{}.{i}", self.subnet)
    }

    pub fn host_ip(&self) -> String {
        format!("10.251.{}.254", self.subnet)
    }

    pub fn ns(&self, i: usize) -> &str {
        &self.ns[i - 1]
    }

    /// Replaces every member's drop rules with `grudge` (members absent from it drop nothing).
    pub fn apply(&self, grudge: &Grudge) -> Result<()> {
        for i in 1..=self.members {
            let drops = grudge.get(&i).cloned().unwrap_or_default();
            let mut script = String::from("table inet skiff_chaos\ndelete table inet skiff_chaos\n");
            if !drops.is_empty() {
                script.push_str("table inet skiff_chaos {\n  chain input {\n    type filter hook input priority 0; policy accept;\n");
                for p in drops {
                    script.push_str(&format!("    ip saddr {} drop\n", self.ip(p)));
                }
                script.push_str("  }\n}\n");
            }
            nft(self.ns(i), &script)?;
        }
        Ok(())
    }

    pub fn heal(&self) -> Result<()> {
        self.apply(&Grudge::new())
    }
}

fn nft(ns: &str, script: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    child.stdin.take().context("nft stdin")?.write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft in {ns}: {}\n{script}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Drop for Net {
    fn drop(&mut self) {
        cleanup::destroy(&Resource::HostLink(self.host_if.clone()));
        for ns in &self.ns {
            cleanup::destroy(&Resource::Netns(ns.clone()));
        }
        cleanup::destroy(&Resource::Netns(self.br_ns.clone()));
    }
}

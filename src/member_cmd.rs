//! `skiff member list|add|remove|promote`: the store's membership, through the etcd Cluster
//! API of any member (what `etcdctl member ...` does), with names accepted where etcdctl wants
//! hex ids.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use raft_store::admin::{Admin, MemberRow};

use crate::up_cmd::UpState;

/// Which members to talk to: `--endpoints`, else a `skiff up` cluster's masters, else the
/// default client address.
#[derive(Args, Clone)]
pub struct StoreTarget {
    /// Client addresses of members (host:port, comma-separated); the first that answers is used.
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// A `skiff up` state dir whose masters to use when no `--endpoints` are given.
    #[arg(long, default_value = "/var/lib/skiff-up")]
    pub dir: PathBuf,
}

impl StoreTarget {
    pub fn endpoints(&self) -> Vec<String> {
        if !self.endpoints.is_empty() {
            return self.endpoints.clone();
        }
        match UpState::load(&self.dir) {
            Ok(st) => st
                .hosts
                .iter()
                .filter(|h| h.master)
                .map(|h| format!("{}:2379", h.addr))
                .collect(),
            Err(_) => vec!["127.0.0.1:2379".to_string()],
        }
    }

    pub async fn connect(&self) -> Result<Admin> {
        Ok(Admin::connect(&self.endpoints()).await?)
    }
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Every member: id, name, role (leader, follower, learner), peer and client URLs.
    List {
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Register a member that is not started yet; then start it with `skiff master --join`.
    /// (`--join` alone also works: it adds the member as a learner and promotes it once caught up.)
    Add {
        /// Its name (given again to `skiff master --name`).
        name: String,
        /// Its peer address, host:port.
        #[arg(long)]
        peer: String,
        /// Add it as a non-voting learner (promote it later).
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Remove a member, by name or hex id. Stop it afterwards and delete its data dir.
    Remove {
        member: String,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Make a learner a voter, by name or hex id.
    Promote {
        member: String,
        #[command(flatten)]
        target: StoreTarget,
    },
}

fn role(m: &MemberRow) -> &'static str {
    match (m.leader, m.learner) {
        (true, _) => "leader",
        (false, true) => "learner",
        (false, false) => "follower",
    }
}

/// The table `skiff member list` prints.
fn table(rows: &[MemberRow]) -> String {
    let mut out = format!(
        "{:<16}  {:<10} {:<9} {:<26} {}\n",
        "ID", "NAME", "ROLE", "PEER", "CLIENT"
    );
    for m in rows {
        let name = if m.name.is_empty() { "(unstarted)" } else { &m.name };
        out.push_str(&format!(
            "{:016x}  {:<10} {:<9} {:<26} {}\n",
            m.id,
            name,
            role(m),
            m.peer_urls.join(","),
            m.client_urls.join(",")
        ));
    }
    out
}

pub async fn run_member(cmd: MemberCommand) -> Result<()> {
    match cmd {
        MemberCommand::List { target } => {
            let admin = target.connect().await?;
            print!("{}", table(&admin.members().await?));
        }
        MemberCommand::Add {
            name,
            peer,
            learner,
            target,
        } => {
            let admin = target.connect().await?;
            let m = admin
                .add(&peer, learner)
                .await
                .with_context(|| format!("adding {name} at {peer}"))?;
            println!(
                "Member {:016x} ({name}, peer {peer}) added{}. Start it with:",
                m.id,
                if learner { " as a learner" } else { "" }
            );
            println!(
                "  skiff master --name {name} --listen-peer {peer} --join {} [--listen-client ... --listen-api ...]",
                admin.endpoint()
            );
        }
        MemberCommand::Remove { member, target } => {
            let admin = target.connect().await?;
            let m = admin.find(&member).await?;
            admin.remove(m.id).await.with_context(|| format!("removing {member}"))?;
            println!(
                "Member {:016x} ({}) removed; stop it and delete its data dir.",
                m.id, m.name
            );
        }
        MemberCommand::Promote { member, target } => {
            let admin = target.connect().await?;
            let m = admin.find(&member).await?;
            if !m.learner {
                anyhow::bail!("{member} is a voter already: only a learner can be promoted");
            }
            admin
                .promote(m.id)
                .await
                .with_context(|| format!("promoting {member}"))?;
            println!("Member {:016x} ({}) promoted to voter.", m.id, m.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_marks_roles_and_unstarted_members() {
        let row = |id, name: &str, leader, learner| MemberRow {
            id,
            name: name.into(),
            peer_urls: vec![format!("http://127.0.0.{id}:2380")],
            client_urls: vec![],
            learner,
            leader,
        };
        let t = table(&[
            row(1, "m1", true, false),
            row(2, "", false, true),
            row(3, "m3", false, false),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("0000000000000001  m1") && lines[1].contains("leader"));
        assert!(lines[2].contains("(unstarted)") && lines[2].contains("learner"));
        assert!(lines[3].contains("follower") && lines[3].contains("http://127.0.0.3:2380"));
    }
}

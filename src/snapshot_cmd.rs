//! `skiff snapshot save|status|restore`: backups of the store and disaster recovery into a new
//! cluster (as `etcdctl snapshot save` and `etcdutl snapshot status|restore`). Files written by
//! `etcdctl snapshot save` against skiff restore too: the format is the same stream.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use raft_store::node::{inspect_snapshot, restore_snapshot, RestoreConfig};

use crate::member_cmd::StoreTarget;

#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Stream a consistent snapshot of the store from one member into FILE (verified, fsynced).
    Save {
        file: PathBuf,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// What FILE holds: revision, compacted revision, raft index and term, pairs, size.
    Status { file: PathBuf },
    /// Make one member's data dir of a NEW cluster from FILE. Run it once per member, each with
    /// its own --name and --data-dir and the same --initial-cluster, then start every member
    /// with `skiff master` and that --initial-cluster.
    Restore {
        file: PathBuf,
        /// This member's name in the new cluster.
        #[arg(long)]
        name: String,
        /// The new member's data dir; must be missing or empty.
        #[arg(long)]
        data_dir: PathBuf,
        /// Every member of the new cluster: name=host:port (peer addresses), comma-separated.
        #[arg(long)]
        initial_cluster: String,
    },
}

fn read(file: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

pub async fn run_snapshot(cmd: SnapshotCommand) -> Result<()> {
    match cmd {
        SnapshotCommand::Save { file, target } => {
            let admin = target.connect().await?;
            let s = admin.save_snapshot(&file).await?;
            println!(
                "Snapshot saved at {} ({} bytes, revision {}, from {})",
                file.display(),
                s.bytes,
                s.revision,
                s.endpoint
            );
        }
        SnapshotCommand::Status { file } => {
            let bytes = read(&file)?;
            let s = inspect_snapshot(&bytes).with_context(|| format!("{}", file.display()))?;
            println!("REVISION  COMPACTED  RAFT-INDEX  RAFT-TERM  PAIRS  BYTES");
            println!(
                "{:<9} {:<10} {:<11} {:<10} {:<6} {}",
                s.revision,
                s.compact_revision,
                s.applied_index,
                s.applied_term,
                s.pairs,
                bytes.len()
            );
        }
        SnapshotCommand::Restore {
            file,
            name,
            data_dir,
            initial_cluster,
        } => {
            let bytes = read(&file)?;
            let initial_cluster = crate::parse_initial_cluster(&initial_cluster)?;
            let cfg = RestoreConfig {
                name: name.clone(),
                data_dir: data_dir.clone(),
                initial_cluster: initial_cluster.clone(),
            };
            // RocksDB's open and fsyncs block.
            let r = tokio::task::spawn_blocking(move || restore_snapshot(&bytes, &cfg))
                .await?
                .with_context(|| format!("restoring {} for {name}", file.display()))?;
            let cluster: Vec<String> = initial_cluster.iter().map(|(n, a)| format!("{n}={a}")).collect();
            println!(
                "Restored member {name} ({:016x}, cluster {:016x}) into {} at revision {} (raft index {}, term {}).",
                r.member_id,
                r.cluster_id,
                data_dir.display(),
                r.revision,
                r.applied_index,
                r.applied_term
            );
            println!(
                "Start it with: skiff master --name {name} --data-dir {} --initial-cluster {} [--listen-* flags]",
                data_dir.display(),
                cluster.join(",")
            );
        }
    }
    Ok(())
}

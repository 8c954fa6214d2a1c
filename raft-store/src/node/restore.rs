//! Disaster recovery: a new cluster from a snapshot file (`skiff snapshot restore`, as
//! `etcdutl snapshot restore`). Each member of the new cluster gets its own data dir, restored
//! from the same file and the same `--initial-cluster`; started with that `--initial-cluster`,
//! the members elect a leader and serve the snapshot's keyspace at its revision.
//!
//! The file is what `Maintenance.Snapshot` streams (`etcdctl snapshot save`, `skiff snapshot
//! save`): the state machine's payload, zero-padded to 512 bytes, then its SHA-256.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::config::{initial_cluster_id, initial_members, save_identity, Identity, NodeConfig};
use super::NodeError;
use crate::error::StoreError;
use crate::mvcc::{Backend, MemKv, Mvcc, Pairs, RocksKv};
use crate::raft::db::{self, CF_SM};
use crate::raft::log_store::RocksLogStore;
use crate::raft::member_id;
use crate::raft::state_machine::{applied_of, StateMachine};

/// Where and as whom one member of the new cluster is restored.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// Every member of the new cluster: (name, peer host:port). Must list `name`.
    pub initial_cluster: Vec<(String, String)>,
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub member_id: u64,
    pub cluster_id: u64,
    /// The keyspace's revision; the new cluster's first write gets the next one.
    pub revision: i64,
    /// Raft index and term of the snapshot; the new cluster's log continues after them.
    pub applied_index: u64,
    pub applied_term: u64,
    /// Pairs in the state machine (keys, their revisions and metadata).
    pub pairs: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotFileError {
    #[error("snapshot file is {0} bytes: too short to hold a payload and its SHA-256")]
    TooShort(usize),
    #[error("snapshot file's SHA-256 does not match its content (truncated or corrupted)")]
    Digest,
    #[error("snapshot payload is not a skiff store snapshot: {0}")]
    Payload(String),
}

const DIGEST_LEN: usize = 32;

/// The state machine's pairs in a snapshot file, after checking its digest, the payload's
/// checksum and that only zero padding follows the payload.
pub fn read_snapshot_file(file: &[u8]) -> Result<Pairs, SnapshotFileError> {
    if file.len() < DIGEST_LEN + 4 {
        return Err(SnapshotFileError::TooShort(file.len()));
    }
    let (padded, digest) = file.split_at(file.len() - DIGEST_LEN);
    if Sha256::digest(padded).as_slice() != digest {
        return Err(SnapshotFileError::Digest);
    }
    let (sum, body) = padded.split_at(4);
    let pairs: Pairs = bincode::deserialize(body).map_err(|e| SnapshotFileError::Payload(e.to_string()))?;
    let len = bincode::serialized_size(&pairs).map_err(|e| SnapshotFileError::Payload(e.to_string()))? as usize;
    let (payload, padding) = body.split_at(len.min(body.len()));
    if crc32fast::hash(payload).to_le_bytes() != sum {
        return Err(SnapshotFileError::Payload("checksum mismatch".into()));
    }
    if padding.iter().any(|b| *b != 0) {
        return Err(SnapshotFileError::Payload("bytes after the payload".into()));
    }
    Ok(pairs)
}

/// What a snapshot file holds, read without restoring it (`skiff snapshot status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub revision: i64,
    pub compact_revision: i64,
    pub applied_index: u64,
    pub applied_term: u64,
    pub pairs: usize,
}

pub fn inspect_snapshot(file: &[u8]) -> Result<SnapshotSummary, NodeError> {
    let pairs = read_snapshot_file(file).map_err(|e| NodeError::Config(e.to_string()))?;
    let applied = applied_of(&pairs)?;
    let count = pairs.len();
    let backend = MemKv::new();
    backend
        .replace_all(pairs)
        .map_err(|e| NodeError::Store(StoreError::Internal(e.to_string())))?;
    let mvcc = Mvcc::open(backend).map_err(|e| NodeError::Store(e.into()))?;
    Ok(SnapshotSummary {
        revision: mvcc.current_revision(),
        compact_revision: mvcc.compacted_revision(),
        applied_index: applied.index,
        applied_term: applied.leader_id.term,
        pairs: count,
    })
}

/// Restores one member's data dir from a snapshot file. The dir must be missing or empty; a
/// dir left by a failed restore holds a store without `member.json` and is refused at start.
pub fn restore_snapshot(file: &[u8], cfg: &RestoreConfig) -> Result<Restored, NodeError> {
    let me = cfg
        .initial_cluster
        .iter()
        .find(|(n, _)| *n == cfg.name)
        .ok_or_else(|| NodeError::Config(format!("--initial-cluster does not list --name {}", cfg.name)))?;
    let node_cfg = NodeConfig {
        name: cfg.name.clone(),
        data_dir: cfg.data_dir.clone(),
        listen_peer: me.1.clone(),
        initial_cluster: cfg.initial_cluster.clone(),
        ..NodeConfig::default()
    };
    node_cfg.validate().map_err(NodeError::Config)?;
    let data_err = |reason: String| NodeError::DataDir {
        dir: cfg.data_dir.clone(),
        reason,
    };
    if std::fs::read_dir(&cfg.data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(data_err(
            "is not empty; restore only into a new data dir (remove it, or pick another)".into(),
        ));
    }
    let members = initial_members(&cfg.initial_cluster);
    if members.len() != cfg.initial_cluster.len() {
        return Err(NodeError::Config("--initial-cluster lists a peer address twice".into()));
    }
    let pairs = read_snapshot_file(file).map_err(|e| NodeError::Config(e.to_string()))?;
    applied_of(&pairs)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| data_err(e.to_string()))?;

    let count = pairs.len();
    let db_dir = cfg.data_dir.join("db");
    let db = db::open(&db_dir).map_err(|e| data_err(format!("creating the store: {e}")))?;
    let backend = RocksKv::new(db.clone(), CF_SM).map_err(|e| data_err(e.to_string()))?;
    let sm = StateMachine::open(backend, Some(cfg.data_dir.join("snapshot.bin"))).map_err(NodeError::Store)?;
    let (applied, revision) = sm.restore(pairs, members)?;
    let id = member_id(&me.1);
    RocksLogStore::new(db.clone())
        .mark_restored(applied)
        .map_err(|e| data_err(e.to_string()))?;
    db.flush_wal(true).map_err(|e| data_err(e.to_string()))?;
    // Last: a member identity makes the dir startable.
    let identity = Identity {
        name: cfg.name.clone(),
        member_id: id,
        cluster_id: initial_cluster_id(&cfg.initial_cluster),
    };
    save_identity(&node_cfg, &identity)?;
    Ok(Restored {
        member_id: id,
        cluster_id: identity.cluster_id,
        revision,
        applied_index: applied.index,
        applied_term: applied.leader_id.term,
        pairs: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(payload: &[u8]) -> Vec<u8> {
        let mut f = payload.to_vec();
        f.resize(f.len().div_ceil(512) * 512, 0);
        let d = Sha256::digest(&f);
        f.extend_from_slice(&d);
        f
    }

    fn payload(pairs: &Pairs) -> Vec<u8> {
        crate::raft::log_store::encode_checked(pairs).expect("encode")
    }

    #[test]
    fn a_file_round_trips_and_damage_is_named() {
        let pairs: Pairs = vec![(b"k1".to_vec(), b"v1".to_vec()), (b"k2".to_vec(), vec![0; 700])];
        let good = file_of(&payload(&pairs));
        assert_eq!(good.len() % 512, DIGEST_LEN);
        assert_eq!(read_snapshot_file(&good).expect("read"), pairs);

        let mut flipped = good.clone();
        flipped[10] ^= 1;
        assert_eq!(read_snapshot_file(&flipped), Err(SnapshotFileError::Digest));
        assert_eq!(
            read_snapshot_file(&good[..good.len() - 1]),
            Err(SnapshotFileError::Digest)
        );
        assert_eq!(read_snapshot_file(&good[..20]), Err(SnapshotFileError::TooShort(20)));

        // A digest that matches damaged content: the payload's own checksum catches it.
        let mut p = payload(&pairs);
        let last = p.len() - 1;
        p[last] ^= 1;
        assert!(matches!(
            read_snapshot_file(&file_of(&p)),
            Err(SnapshotFileError::Payload(_))
        ));
        // Garbage after the payload.
        let mut p = payload(&pairs);
        p.push(7);
        assert!(matches!(
            read_snapshot_file(&file_of(&p)),
            Err(SnapshotFileError::Payload(_))
        ));
        // Not bincode pairs at all.
        assert!(matches!(
            read_snapshot_file(&file_of(&[1, 2, 3, 4, 255, 255, 255, 255, 255, 255, 255, 255])),
            Err(SnapshotFileError::Payload(_))
        ));
    }

    #[test]
    fn restore_refuses_a_used_dir_and_a_member_not_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = file_of(&payload(&vec![(b"k".to_vec(), b"v".to_vec())]));
        let cfg = RestoreConfig {
            name: "m9".into(),
            data_dir: dir.path().join("m9"),
            initial_cluster: vec![("m1".into(), "127.0.0.1:2380".into())],
        };
        let e = restore_snapshot(&file, &cfg).unwrap_err().to_string();
        assert!(e.contains("does not list --name m9"), "{e}");

        std::fs::create_dir_all(dir.path().join("m1")).expect("mkdir");
        std::fs::write(dir.path().join("m1/keep"), b"x").expect("write");
        let cfg = RestoreConfig {
            name: "m1".into(),
            data_dir: dir.path().join("m1"),
            ..cfg
        };
        let e = restore_snapshot(&file, &cfg).unwrap_err().to_string();
        assert!(e.contains("is not empty"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("m1/keep")).expect("kept"), b"x");

        // A payload of pairs without the state machine's applied id is not a store snapshot,
        // and is refused before anything is written.
        let cfg = RestoreConfig {
            data_dir: dir.path().join("fresh"),
            ..cfg
        };
        let e = restore_snapshot(&file, &cfg).unwrap_err().to_string();
        assert!(e.contains("no applied index"), "{e}");
        assert!(!dir.path().join("fresh").exists());
    }
}

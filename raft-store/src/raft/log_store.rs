//! `RocksLogStore`: the raft log in RocksDB. Every append, truncate and vote is written with
//! `sync = true` before it is acknowledged, so an acknowledged entry survives power loss.
//! Entries carry a CRC32 so a corrupted log is detected at read time, not silently replayed.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::db::{CF_LOG, CF_RAFT};
use super::types::{LogId, NodeId, StorageError, TypeConfig};

type Entry = openraft::Entry<TypeConfig>;

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<DB>,
}

fn io_err(e: impl std::fmt::Display) -> AnyError {
    AnyError::error(e.to_string())
}

/// crc32 (4 bytes, little-endian) followed by the bincode body.
pub(crate) fn encode_checked<T: Serialize>(v: &T) -> Result<Vec<u8>, bincode::Error> {
    let body = bincode::serialize(v)?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn decode_checked<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    if b.len() < 4 {
        return Err("record shorter than its checksum".into());
    }
    let (sum, body) = b.split_at(4);
    let want = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
    if crc32fast::hash(body) != want {
        return Err("checksum mismatch".into());
    }
    bincode::deserialize(body).map_err(|e| e.to_string())
}

impl RocksLogStore {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageIOError::read_logs(io_err(format!("column family {name} missing"))).into())
    }

    fn sync_opts() -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        wo
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let cf = self.cf(CF_RAFT)?;
        match self.db.get_cf(cf, key).map_err(|e| StorageIOError::read(io_err(e)))? {
            None => Ok(None),
            Some(v) => decode_checked(&v).map(Some).map_err(|e| {
                StorageIOError::read(io_err(format!("raft meta {:?}: {e}", String::from_utf8_lossy(key)))).into()
            }),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], v: &T) -> Result<(), StorageError> {
        let cf = self.cf(CF_RAFT)?;
        let bytes = encode_checked(v).map_err(|e| StorageIOError::write(io_err(e)))?;
        self.db
            .put_cf_opt(cf, key, bytes, &Self::sync_opts())
            .map_err(|e| StorageIOError::write(io_err(e)).into())
    }

    fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let cf = self.cf(CF_LOG)?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item.map_err(|e| StorageIOError::read_logs(io_err(e)))?;
                let e: Entry = decode_checked(&v).map_err(|e| StorageIOError::read_logs(io_err(e)))?;
                Ok(Some(e.log_id))
            }
        }
    }

    /// A restored member's raft state: its log begins after `at` (purged up to it, committed at
    /// it) and its vote is the (uncommitted) one of `at`'s leader, so no vote is below its last
    /// log id, its first election is in a later term, and the entries of the new cluster follow
    /// `at` in both index and term.
    pub(crate) fn mark_restored(&self, at: LogId) -> Result<(), StorageError> {
        self.put_meta(KEY_PURGED, &Some(at))?;
        self.put_meta(KEY_COMMITTED, &Some(at))?;
        self.put_meta(KEY_VOTE, &Vote::new(at.leader_id.term, at.leader_id.node_id))
    }

    /// Whether this data directory has ever held raft state.
    pub fn is_fresh(&self) -> Result<bool, StorageError> {
        Ok(self.get_meta::<Vote<NodeId>>(KEY_VOTE)?.is_none() && self.last_log_id()?.is_none())
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = self.cf(CF_LOG)?;
        let mut out = Vec::new();
        let from = start.to_be_bytes();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&from, Direction::Forward)) {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(io_err(e)))?;
            let idx = u64::from_be_bytes(
                k.as_ref()
                    .try_into()
                    .map_err(|_| StorageIOError::read_logs(io_err("bad log key")))?,
            );
            if !range.contains(&idx) {
                break;
            }
            let e: Entry = decode_checked(&v)
                .map_err(|e| StorageIOError::read_log_at_index(idx, io_err(format!("log entry {idx}: {e}"))))?;
            out.push(e);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta::<Option<LogId>>(KEY_PURGED)?.flatten();
        let last = self.last_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, vote)
            .map_err(|e| StorageIOError::write_vote(io_err(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    /// Not synced: the committed id is only a restart hint (openraft re-learns it from the
    /// leader), a stale one is safe, and RocksDB keeps WAL order, so the next synced append makes
    /// it durable anyway. Syncing it cost one extra fsync per commit on every member.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let cf = self.cf(CF_RAFT)?;
        let bytes = encode_checked(&committed).map_err(|e| StorageIOError::write(io_err(e)))?;
        self.db
            .put_cf(cf, KEY_COMMITTED, bytes)
            .map_err(|e| StorageIOError::write(io_err(e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.cf(CF_LOG)?;
        let mut wb = WriteBatch::default();
        for e in entries {
            let v = encode_checked(&e).map_err(|err| StorageIOError::write_log_entry(e.log_id, io_err(err)))?;
            wb.put_cf(cf, e.log_id.index.to_be_bytes(), v);
        }
        // Durable before acknowledged: the WAL is fsynced by this write.
        let res = self.db.write_opt(wb, &Self::sync_opts());
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(io_err(e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let cf = self.cf(CF_LOG)?;
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(cf, log_id.index.to_be_bytes(), u64::MAX.to_be_bytes());
        wb.delete_cf(cf, u64::MAX.to_be_bytes());
        self.db
            .write_opt(wb, &Self::sync_opts())
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.put_meta(KEY_PURGED, &Some(log_id))?;
        let cf = self.cf(CF_LOG)?;
        let mut wb = WriteBatch::default();
        wb.delete_range_cf(cf, 0u64.to_be_bytes(), (log_id.index + 1).to_be_bytes());
        self.db
            .write_opt(wb, &Self::sync_opts())
            .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
    }
}

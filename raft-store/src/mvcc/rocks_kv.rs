//! `Backend` over one column family of a RocksDB instance shared with the raft log, so that a
//! synced log append also makes earlier state-machine writes durable (one WAL).

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};

use super::backend::{Backend, BackendError, Batch, Pairs};

pub struct RocksKv {
    db: Arc<DB>,
    cf: &'static str,
}

impl RocksKv {
    /// `cf` must have been created when `db` was opened.
    pub fn new(db: Arc<DB>, cf: &'static str) -> Result<Self, BackendError> {
        if db.cf_handle(cf).is_none() {
            return Err(BackendError::MissingColumnFamily(cf));
        }
        Ok(Self { db, cf })
    }

    fn cf(&self) -> Result<&rocksdb::ColumnFamily, BackendError> {
        self.db
            .cf_handle(self.cf)
            .ok_or(BackendError::MissingColumnFamily(self.cf))
    }
}

impl Backend for RocksKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.db.get_cf(self.cf()?, key)?)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        let mut opts = ReadOptions::default();
        if let Some(end) = end {
            opts.set_iterate_upper_bound(end.to_vec());
        }
        let iter = self
            .db
            .iterator_cf_opt(self.cf()?, opts, IteratorMode::From(start, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, batch: Batch) -> Result<(), BackendError> {
        let cf = self.cf()?;
        let mut wb = WriteBatch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => wb.put_cf(cf, k, v),
                None => wb.delete_cf(cf, k),
            }
        }
        // Not synced: the raft log is the source of durability; `sync` runs before a snapshot
        // lets the log be purged.
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    fn sync(&self) -> Result<(), BackendError> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn dump(&self) -> Result<Pairs, BackendError> {
        let snap = self.db.snapshot();
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(self.cf()?, opts, IteratorMode::Start) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn replace_all(&self, pairs: Pairs) -> Result<(), BackendError> {
        let cf = self.cf()?;
        let mut wb = WriteBatch::default();
        // Delete every existing key (a range delete over the whole keyspace of this CF).
        if let Some(last) = self.db.iterator_cf(cf, IteratorMode::End).next() {
            let (last, _) = last?;
            let mut end = last.to_vec();
            end.push(0);
            wb.delete_range_cf(cf, Vec::<u8>::new(), end);
        }
        for (k, v) in pairs {
            wb.put_cf(cf, k, v);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }
}

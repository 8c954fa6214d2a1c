//! The ordered key-value engine under the MVCC store. TiKV-style: this trait knows nothing of
//! RocksDB; `RocksKv` and `MemKv` implement it and the same test suite runs against both.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record under key {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("column family {0} missing")]
    MissingColumnFamily(&'static str),
}

/// Writes applied together, atomically.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Every key-value pair of a backend, in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

pub trait Backend: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Visits `[start, end)` in ascending key order (`end = None`: to the last key) until `f`
    /// returns false.
    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError>;

    /// Applies the batch atomically. Durability is the caller's business (`sync`).
    fn write(&self, batch: Batch) -> Result<(), BackendError>;

    /// Makes everything written so far durable.
    fn sync(&self) -> Result<(), BackendError>;

    /// Every pair, read from one consistent point in time.
    fn dump(&self) -> Result<Pairs, BackendError>;

    /// Atomically replaces the whole content (snapshot install).
    fn replace_all(&self, pairs: Pairs) -> Result<(), BackendError>;
}

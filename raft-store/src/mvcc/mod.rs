//! etcd v3's MVCC keyspace: revisions, tombstones, txn, compaction, leases' key attachment and
//! history for watches, over any ordered key-value `Backend` (`RocksKv` in production, `MemKv`
//! in unit tests; one test suite runs against both).
//!
//! # Layout
//! - `types`: requests, responses, `Revision`, `KeyValue`, `Event`.
//! - `key_index`: in-memory index of each key's generations (etcd's treeIndex).
//! - `backend`, `mem_kv`, `rocks_kv`: the engine trait and its two implementations.
//! - `store`: `Mvcc`, its backend layout and staged writes.
//! - `read`: ranges at a revision, history, hash.
//! - `write`: `WriteOp`s (put, delete, txn, compact, lease grant/revoke) applied as revisions.

mod backend;
mod error;
mod key_index;
mod mem_kv;
mod read;
mod rocks_kv;
mod store;
mod types;
mod write;

#[cfg(test)]
mod tests;

pub use backend::{Backend, BackendError, Batch, Pairs};
pub use error::MvccError;
pub use mem_kv::MemKv;
pub use rocks_kv::RocksKv;
pub use store::Mvcc;
pub use types::*;
pub use write::{Applied, WriteOp, WriteResult};

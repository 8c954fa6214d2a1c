//! openraft's storage conformance suite against our RocksDB log store and our state machine,
//! over both MVCC backends.

#![allow(clippy::result_large_err)]

use openraft::testing::{StoreBuilder, Suite};
use skiff_raft_store::mvcc::{MemKv, RocksKv};
use skiff_raft_store::raft::db;
use skiff_raft_store::raft::log_store::RocksLogStore;
use skiff_raft_store::raft::state_machine::StateMachine;
use skiff_raft_store::raft::{StorageError, TypeConfig};

struct Rocks;
struct RocksLogMemSm;

fn sm_err(e: impl ToString) -> StorageError {
    openraft::StorageIOError::write_state_machine(openraft::AnyError::error(e.to_string())).into()
}

impl StoreBuilder<TypeConfig, RocksLogStore, StateMachine<RocksKv>, tempfile::TempDir> for Rocks {
    async fn build(&self) -> Result<(tempfile::TempDir, RocksLogStore, StateMachine<RocksKv>), StorageError> {
        let dir = tempfile::tempdir().map_err(sm_err)?;
        let db = db::open(dir.path()).map_err(sm_err)?;
        let backend = RocksKv::new(db.clone(), db::CF_SM).map_err(sm_err)?;
        let sm = StateMachine::open(backend, Some(dir.path().join("snapshot.bin"))).map_err(sm_err)?;
        Ok((dir, RocksLogStore::new(db), sm))
    }
}

impl StoreBuilder<TypeConfig, RocksLogStore, StateMachine<MemKv>, tempfile::TempDir> for RocksLogMemSm {
    async fn build(&self) -> Result<(tempfile::TempDir, RocksLogStore, StateMachine<MemKv>), StorageError> {
        let dir = tempfile::tempdir().map_err(sm_err)?;
        let db = db::open(dir.path()).map_err(sm_err)?;
        let sm = StateMachine::open(MemKv::new(), None).map_err(sm_err)?;
        Ok((dir, RocksLogStore::new(db), sm))
    }
}

#[test]
fn openraft_storage_suite_rocksdb() -> Result<(), StorageError> {
    Suite::test_all(Rocks)
}

#[test]
fn openraft_storage_suite_memory_state_machine() -> Result<(), StorageError> {
    Suite::test_all(RocksLogMemSm)
}

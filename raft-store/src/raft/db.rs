//! The member's RocksDB: one instance, one WAL, three column families.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

/// Raft log entries, keyed by big-endian index.
pub const CF_LOG: &str = "log";
/// Vote, committed id, last purged id.
pub const CF_RAFT: &str = "raft";
/// The state machine: MVCC keyspace, applied id, membership.
pub const CF_SM: &str = "sm";

pub fn open(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Verify checksums of everything read, and refuse to open on detected corruption.
    opts.set_paranoid_checks(true);
    // A torn last write after a crash can only be an unacknowledged append (appends are synced
    // before they are acknowledged) and is dropped; corruption anywhere else refuses to open
    // rather than silently replaying a prefix.
    opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    let cfs = [CF_LOG, CF_RAFT, CF_SM].map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

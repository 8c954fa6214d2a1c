//! `StateMachine`: applies committed entries to the MVCC keyspace. The applied log id, the
//! membership and the keyspace changes of a whole apply batch go to the backend in one atomic
//! write, so a restart resumes from the applied id instead of replaying the log.
//!
//! Snapshots are a consistent dump of the state machine's backend (a RocksDB snapshot view),
//! kept in memory and in `<data-dir>/snapshot.bin` (checksummed) so the log can be purged.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use parking_lot::{Mutex, RwLock};

use super::log_store::{decode_checked, encode_checked};
use super::types::*;
use crate::error::StoreError;
use crate::mvcc::{Backend, Event, Mvcc, MvccError};
use crate::watch::{History, WatchHub};

const KEY_APPLIED: &[u8] = b"m/applied";
const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_FENCES: &[u8] = b"m/fences";

type Entry = openraft::Entry<TypeConfig>;
type Meta = SnapshotMeta<NodeId, MemberNode>;

/// Everything the lock protects. Lock order: `SmShared::state` before the watch hub's lock.
pub struct SmState<B: Backend> {
    pub mvcc: Mvcc<B>,
    pub applied: Option<LogId>,
    pub membership: Membership,
    pub fences: FenceLedger,
}

/// What the state machine did with the fenced writes (those of leader-only components), counted
/// by (fence term, term of the leader that appended the entry). Kept with the keyspace and in
/// snapshots, so every member holds the same ledger at the same applied index: failure tests
/// read it to show that no deposed leader's component ever wrote (every admitted pair has equal
/// terms) and how often the fence refused one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FenceLedger {
    pub admitted: BTreeMap<(u64, u64), u64>,
    pub refused: BTreeMap<(u64, u64), u64>,
}

pub struct SmShared<B: Backend> {
    pub state: RwLock<SmState<B>>,
    pub hub: Arc<WatchHub>,
    /// Off only for failure tests' negative control (`skiff master --unsafe-no-fencing`):
    /// fenced writes are then applied whatever term appended them, and counted as such.
    enforce_fences: AtomicBool,
    snapshot_file: Option<PathBuf>,
    current_snapshot: Mutex<Option<(Meta, Vec<u8>)>>,
    snapshot_seq: Mutex<u64>,
}

pub struct StateMachine<B: Backend> {
    pub shared: Arc<SmShared<B>>,
}

impl<B: Backend> Clone for StateMachine<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

struct SmHistory<B: Backend> {
    shared: Weak<SmShared<B>>,
}

impl<B: Backend> History for SmHistory<B> {
    fn history(&self, from: i64, to: i64, max_revs: usize) -> Result<Vec<(i64, Vec<Event>)>, MvccError> {
        match self.shared.upgrade() {
            Some(s) => s.state.read().mvcc.history(from, to, max_revs),
            None => Ok(Vec::new()),
        }
    }

    fn revisions(&self) -> (i64, i64) {
        match self.shared.upgrade() {
            Some(s) => {
                let st = s.state.read();
                (st.mvcc.current_revision(), st.mvcc.compacted_revision())
            }
            None => (0, 0),
        }
    }
}

impl<B: Backend> StateMachine<B> {
    /// Opens the state machine on `backend`; `snapshot_file` persists the last snapshot.
    pub fn open(backend: B, snapshot_file: Option<PathBuf>) -> Result<Self, StoreError> {
        let mvcc = Mvcc::open(backend)?;
        let applied: Option<LogId> = read_meta(&mvcc, KEY_APPLIED)?.flatten();
        let membership: Membership = read_meta(&mvcc, KEY_MEMBERSHIP)?.unwrap_or_default();
        let fences: FenceLedger = read_meta(&mvcc, KEY_FENCES)?.unwrap_or_default();
        let mut current = None;
        if let Some(path) = &snapshot_file {
            if path.exists() {
                let bytes = std::fs::read(path)
                    .map_err(|e| StoreError::Internal(format!("reading snapshot {}: {e}", path.display())))?;
                let snap: (Meta, Vec<u8>) = decode_checked(&bytes)
                    .map_err(|e| StoreError::Internal(format!("snapshot {} is corrupt: {e}", path.display())))?;
                current = Some(snap);
            }
        }
        let rev = mvcc.current_revision();
        let shared = Arc::new_cyclic(|weak: &Weak<SmShared<B>>| SmShared {
            state: RwLock::new(SmState {
                mvcc,
                applied,
                membership,
                fences,
            }),
            hub: WatchHub::new(Arc::new(SmHistory { shared: weak.clone() }), rev),
            enforce_fences: AtomicBool::new(true),
            snapshot_file,
            current_snapshot: Mutex::new(current),
            snapshot_seq: Mutex::new(0),
        });
        Ok(Self { shared })
    }
}

fn read_meta<B: Backend, T: serde::de::DeserializeOwned>(m: &Mvcc<B>, key: &[u8]) -> Result<Option<T>, StoreError> {
    match m.backend().get(key).map_err(|e| StoreError::Internal(e.to_string()))? {
        None => Ok(None),
        Some(v) => decode_checked(&v)
            .map(Some)
            .map_err(|e| StoreError::Internal(format!("state machine meta {}: {e}", String::from_utf8_lossy(key)))),
    }
}

fn meta_value<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    encode_checked(v).map_err(sm_err)
}

impl<B: Backend> SmShared<B> {
    /// Whether a fenced write appended by a leader of another term is refused (the default).
    pub fn set_enforce_fences(&self, on: bool) {
        self.enforce_fences.store(on, Ordering::Relaxed);
    }

    /// A consistent dump of the state machine with the applied id and membership it contains.
    fn dump(&self) -> Result<(Option<LogId>, Membership, Vec<u8>), StorageError> {
        // Not under the state lock: the dump reads one consistent RocksDB view while apply goes
        // on, and every apply batch is one atomic write, so the view holds whole batches only.
        let backend = self.state.read().mvcc.backend_arc();
        // Make the state durable before anyone purges the log on the strength of it.
        backend.sync().map_err(sm_err)?;
        let pairs = backend.dump().map_err(sm_err)?;
        let mut applied = None;
        let mut membership = Membership::default();
        for (k, v) in &pairs {
            if k == KEY_APPLIED {
                applied = decode_checked::<Option<LogId>>(v).map_err(sm_err)?;
            } else if k == KEY_MEMBERSHIP {
                membership = decode_checked(v).map_err(sm_err)?;
            }
        }
        let data = encode_checked(&pairs).map_err(sm_err)?;
        Ok((applied, membership, data))
    }

    /// Bytes of a consistent copy of the whole state (etcd's Maintenance.Snapshot).
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>, StoreError> {
        self.dump()
            .map(|(_, _, d)| d)
            .map_err(|e| StoreError::Internal(e.to_string()))
    }
}

impl<B: Backend> RaftSnapshotBuilder<TypeConfig> for StateMachine<B> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (applied, membership, data) = self.shared.dump()?;
        let seq = {
            let mut s = self.shared.snapshot_seq.lock();
            *s += 1;
            *s
        };
        let snapshot_id = match applied {
            Some(id) => format!("{}-{}-{seq}", id.leader_id.term, id.index),
            None => format!("0-0-{seq}"),
        };
        let meta = Meta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        self.save_snapshot(&meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<B: Backend> StateMachine<B> {
    fn save_snapshot(&self, meta: &Meta, data: &[u8]) -> Result<(), StorageError> {
        if let Some(path) = &self.shared.snapshot_file {
            let bytes = encode_checked(&(meta.clone(), data.to_vec())).map_err(sm_err)?;
            let tmp = path.with_extension("tmp");
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)?;
                if let Some(dir) = path.parent() {
                    std::fs::File::open(dir)?.sync_all()?;
                }
                Ok(())
            };
            write()
                .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e.to_string())))?;
        }
        *self.shared.current_snapshot.lock() = Some((meta.clone(), data.to_vec()));
        Ok(())
    }
}

/// The applied log id a snapshot's payload records: where a cluster restored from it resumes.
pub(crate) fn applied_of(pairs: &crate::mvcc::Pairs) -> Result<LogId, StoreError> {
    let bad = |what: String| StoreError::InvalidArgument(format!("snapshot: {what}"));
    pairs
        .iter()
        .find(|(k, _)| k == KEY_APPLIED)
        .map(|(_, v)| decode_checked::<Option<LogId>>(v))
        .transpose()
        .map_err(|e| bad(format!("applied index unreadable: {e}")))?
        .flatten()
        .ok_or_else(|| bad("holds no applied index; not a skiff store snapshot".into()))
}

impl<B: Backend> StateMachine<B> {
    /// Disaster recovery: replaces the whole state with `pairs` (a snapshot's payload, possibly
    /// of another cluster) under a new membership of `members`, all voters, recorded at the
    /// snapshot's own applied log id. Every member of the new cluster is restored from the same
    /// payload and member list, so they all start at the same applied id with the same
    /// membership and keyspace. Also keeps it as this member's current snapshot, so a member that
    /// joins later can be sent it. Returns the applied id and the keyspace's revision.
    pub(crate) fn restore(
        &self,
        mut pairs: crate::mvcc::Pairs,
        members: BTreeMap<NodeId, MemberNode>,
    ) -> Result<(LogId, i64), StoreError> {
        let applied = applied_of(&pairs)?;
        let voters = members.keys().copied().collect();
        let membership = Membership::new(Some(applied), openraft::Membership::new(vec![voters], members));
        let encoded = encode_checked(&membership).map_err(|e| StoreError::Internal(e.to_string()))?;
        pairs.retain(|(k, _)| k != KEY_MEMBERSHIP);
        pairs.push((KEY_MEMBERSHIP.to_vec(), encoded));
        pairs.sort();
        let data = encode_checked(&pairs).map_err(|e| StoreError::Internal(e.to_string()))?;
        let rev = {
            let mut st = self.shared.state.write();
            st.mvcc
                .backend()
                .replace_all(pairs)
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            st.mvcc.reload()?;
            st.applied = Some(applied);
            st.membership = membership.clone();
            st.fences = read_meta(&st.mvcc, KEY_FENCES)?.unwrap_or_default();
            st.mvcc
                .backend()
                .sync()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            st.mvcc.current_revision()
        };
        let meta = Meta {
            last_log_id: Some(applied),
            last_membership: membership,
            snapshot_id: format!("restored-{}-{}", applied.leader_id.term, applied.index),
        };
        self.save_snapshot(&meta, &data)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok((applied, rev))
    }
}

impl<B: Backend> RaftStateMachine<TypeConfig> for StateMachine<B> {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        let st = self.shared.state.read();
        Ok((st.applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut events: Vec<(i64, Vec<Event>)> = Vec::new();
        let mut st = self.shared.state.write();
        let mut membership_changed = false;
        let mut fences_changed = false;
        let enforce = self.shared.enforce_fences.load(Ordering::Relaxed);
        for entry in entries {
            st.applied = Some(entry.log_id);
            let rev = st.mvcc.current_revision();
            match entry.payload {
                EntryPayload::Blank => out.push(CommandResponse::Noop { revision: rev }),
                EntryPayload::Membership(m) => {
                    st.membership = Membership::new(Some(entry.log_id), m);
                    membership_changed = true;
                    out.push(CommandResponse::Noop { revision: rev });
                }
                EntryPayload::Normal(cmd) => {
                    let term = entry.log_id.leader_id.term;
                    if let Some(fence) = cmd.fence_term {
                        fences_changed = true;
                        if enforce && fence != term {
                            *st.fences.refused.entry((fence, term)).or_default() += 1;
                            out.push(CommandResponse::Rejected(StoreError::FenceMismatch { fence, term }));
                            continue;
                        }
                        *st.fences.admitted.entry((fence, term)).or_default() += 1;
                    }
                    match st.mvcc.apply(&cmd.op) {
                        Ok(a) => {
                            if !a.events.is_empty() {
                                events.push((a.revision, a.events));
                            }
                            out.push(CommandResponse::Applied {
                                revision: a.revision,
                                result: a.result,
                            });
                        }
                        Err(MvccError::Backend(e)) => {
                            return Err(StorageIOError::apply(entry.log_id, AnyError::error(e.to_string())).into())
                        }
                        Err(e) => out.push(CommandResponse::Rejected(e.into())),
                    }
                }
            }
        }
        let applied = meta_value(&st.applied)?;
        st.mvcc.stage(KEY_APPLIED.to_vec(), Some(applied));
        if membership_changed {
            let m = meta_value(&st.membership)?;
            st.mvcc.stage(KEY_MEMBERSHIP.to_vec(), Some(m));
        }
        if fences_changed {
            let f = meta_value(&st.fences)?;
            st.mvcc.stage(KEY_FENCES.to_vec(), Some(f));
        }
        st.mvcc.flush().map_err(sm_err)?;
        let rev = st.mvcc.current_revision();
        self.shared.hub.publish(&events, rev);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<Cursor<Vec<u8>>>) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = decode_checked(&data).map_err(|e| {
            StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::error(format!("snapshot is corrupt: {e}")),
            )
        })?;
        let rev = {
            let mut st = self.shared.state.write();
            st.mvcc.backend().replace_all(pairs).map_err(sm_err)?;
            st.mvcc.reload().map_err(sm_err)?;
            st.applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
            st.fences = read_meta(&st.mvcc, KEY_FENCES).map_err(sm_err)?.unwrap_or_default();
            let rev = st.mvcc.current_revision();
            self.shared.hub.resync(rev);
            rev
        };
        tracing::info!(snapshot = %meta.snapshot_id, revision = rev, "installed snapshot");
        self.save_snapshot(meta, &data)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self
            .shared
            .current_snapshot
            .lock()
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: Box::new(Cursor::new(data.clone())),
            }))
    }
}

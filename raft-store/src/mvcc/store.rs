//! `Mvcc`: etcd's revisioned keyspace over any `Backend`.
//!
//! Backend layout (one keyspace, prefixes keep kinds apart):
//! - `r` + revision(16 bytes, big-endian main, sub) -> a `Record` (the key's version, or a tombstone)
//! - `l` + lease id (8 bytes, big-endian) -> TTL in seconds
//! - `m/...` -> current revision, compacted revision, and whatever the caller (the raft state
//!   machine) stores beside the keyspace in the same batch (applied log id, membership).
//!
//! Writes are staged in `pending` (visible to later reads of the same apply batch, e.g. a range
//! inside a txn after a put) and reach the backend in one batch at `flush`.
//! Not thread-safe by itself: the state machine wraps it in a lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::backend::{Backend, BackendError, Batch};
use super::error::{show_key, MvccError};
use super::key_index::TreeIndex;
use super::types::*;

pub(super) const REV_PREFIX: u8 = b'r';
const LEASE_PREFIX: u8 = b'l';
const META_REV: &[u8] = b"m/rev";
const META_COMPACT: &[u8] = b"m/compact";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub kv: KeyValue,
    pub tombstone: bool,
}

pub(super) fn rev_key(rev: Revision) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(REV_PREFIX);
    k.extend_from_slice(&rev.encode());
    k
}

fn lease_key(id: i64) -> Vec<u8> {
    let mut k = vec![LEASE_PREFIX];
    k.extend_from_slice(&(id as u64).to_be_bytes());
    k
}

fn corrupt(key: &[u8], reason: impl ToString) -> BackendError {
    BackendError::Corrupt {
        key: show_key(key),
        reason: reason.to_string(),
    }
}

fn decode_i64(key: &[u8], v: &[u8]) -> Result<i64, BackendError> {
    let arr: [u8; 8] = v.try_into().map_err(|_| corrupt(key, "expected 8 bytes"))?;
    Ok(i64::from_be_bytes(arr))
}

#[derive(Debug, Default, Clone)]
pub(super) struct LeaseState {
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
}

pub struct Mvcc<B: Backend> {
    /// Shared so that snapshots can read a consistent view without holding the store's lock.
    pub(super) backend: Arc<B>,
    pub(super) index: TreeIndex,
    pub(super) current_rev: i64,
    pub(super) compact_rev: i64,
    pub(super) leases: BTreeMap<i64, LeaseState>,
    pending: HashMap<Vec<u8>, Option<Vec<u8>>>,
    batch: Batch,
}

impl<B: Backend> Mvcc<B> {
    /// Loads the keyspace from `backend`, rebuilding the in-memory index.
    pub fn open(backend: B) -> Result<Self, MvccError> {
        let mut me = Self {
            backend: Arc::new(backend),
            index: TreeIndex::default(),
            current_rev: 0,
            compact_rev: 0,
            leases: BTreeMap::new(),
            pending: HashMap::new(),
            batch: Batch::default(),
        };
        me.reload()?;
        Ok(me)
    }

    /// Rebuilds every in-memory structure from the backend (start, snapshot install).
    pub fn reload(&mut self) -> Result<(), MvccError> {
        self.index.clear();
        self.leases.clear();
        self.pending.clear();
        self.batch = Batch::default();
        self.current_rev = match self.backend.get(META_REV)? {
            Some(v) => decode_i64(META_REV, &v)?,
            None => 0,
        };
        self.compact_rev = match self.backend.get(META_COMPACT)? {
            Some(v) => decode_i64(META_COMPACT, &v)?,
            None => 0,
        };
        let mut err = None;
        self.backend
            .scan(&[LEASE_PREFIX], Some(&[LEASE_PREFIX + 1]), &mut |k, v| match (
                k.get(1..).and_then(|b| <[u8; 8]>::try_from(b).ok()),
                decode_i64(k, v),
            ) {
                (Some(id), Ok(ttl)) => {
                    self.leases.insert(
                        u64::from_be_bytes(id) as i64,
                        LeaseState {
                            ttl,
                            keys: BTreeSet::new(),
                        },
                    );
                    true
                }
                (_, Err(e)) => {
                    err = Some(e);
                    false
                }
                (None, _) => {
                    err = Some(corrupt(k, "bad lease key"));
                    false
                }
            })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        let mut latest_lease: HashMap<Vec<u8>, i64> = HashMap::new();
        let index = &mut self.index;
        self.backend.scan(&[REV_PREFIX], Some(&[REV_PREFIX + 1]), &mut |k, v| {
            let Some(rev) = Revision::decode(&k[1..]) else {
                err = Some(corrupt(k, "bad revision key"));
                return false;
            };
            let rec: Record = match bincode::deserialize(v) {
                Ok(r) => r,
                Err(e) => {
                    err = Some(corrupt(k, e));
                    return false;
                }
            };
            if rec.tombstone {
                index.tombstone(&rec.kv.key, rev);
                latest_lease.remove(&rec.kv.key);
            } else {
                index.put(&rec.kv.key, rev);
                latest_lease.insert(rec.kv.key, rec.kv.lease);
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e.into());
        }
        for (key, lease) in latest_lease {
            if lease != 0 {
                if let Some(l) = self.leases.get_mut(&lease) {
                    l.keys.insert(key);
                }
            }
        }
        Ok(())
    }

    pub fn current_revision(&self) -> i64 {
        self.current_rev
    }

    pub fn compacted_revision(&self) -> i64 {
        self.compact_rev
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_arc(&self) -> Arc<B> {
        self.backend.clone()
    }

    // ---- staged writes -------------------------------------------------------------------

    /// Stages a raw backend write; the caller's own meta keys go through here too so that they
    /// land in the same batch as the keyspace change.
    pub fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.pending.insert(key.clone(), value.clone());
        self.batch.ops.push((key, value));
    }

    pub(super) fn read_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if let Some(v) = self.pending.get(key) {
            return Ok(v.clone());
        }
        self.backend.get(key)
    }

    /// Writes every staged change in one atomic batch.
    pub fn flush(&mut self) -> Result<(), MvccError> {
        self.pending.clear();
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            self.backend.write(batch)?;
        }
        Ok(())
    }

    pub(super) fn record_at(&self, rev: Revision) -> Result<Record, MvccError> {
        let k = rev_key(rev);
        let v = self
            .read_raw(&k)?
            .ok_or_else(|| corrupt(&k, "indexed revision missing"))?;
        Ok(bincode::deserialize(&v).map_err(|e| corrupt(&k, e))?)
    }

    pub(super) fn kv_at(&self, rev: Revision) -> Result<KeyValue, MvccError> {
        Ok(self.record_at(rev)?.kv)
    }

    fn stage_record(&mut self, rev: Revision, rec: &Record) {
        // Serializing our own plain struct into a Vec cannot fail.
        let v = bincode::serialize(rec).unwrap_or_default();
        self.stage(rev_key(rev), Some(v));
    }

    pub(super) fn set_current_rev(&mut self, rev: i64) {
        self.current_rev = rev;
        self.stage(META_REV.to_vec(), Some(rev.to_be_bytes().to_vec()));
    }

    // ---- primitive changes, used by apply ----------------------------------------------

    /// Writes a new version of `key` at `rev`. Returns the event.
    pub(super) fn put_at(&mut self, rev: Revision, req: &PutRequest) -> Result<Event, MvccError> {
        let prev = match self.index.latest(&req.key) {
            Some(r) => Some(self.kv_at(r)?),
            None => None,
        };
        let value = if req.ignore_value {
            prev.as_ref().map(|p| p.value.clone()).unwrap_or_default()
        } else {
            req.value.clone()
        };
        let lease = if req.ignore_lease {
            prev.as_ref().map_or(0, |p| p.lease)
        } else {
            req.lease
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(rev.main, |p| p.create_revision),
            mod_revision: rev.main,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        self.stage_record(
            rev,
            &Record {
                kv: kv.clone(),
                tombstone: false,
            },
        );
        self.index.put(&req.key, rev);
        let old_lease = prev.as_ref().map_or(0, |p| p.lease);
        if old_lease != lease {
            if let Some(l) = self.leases.get_mut(&old_lease) {
                l.keys.remove(&req.key);
            }
        }
        if lease != 0 {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.insert(req.key.clone());
            }
        }
        Ok(Event {
            kind: EventType::Put,
            kv,
            prev_kv: prev,
        })
    }

    /// Deletes a live key at `rev`. Returns the event (prev_kv always filled).
    pub(super) fn delete_at(&mut self, rev: Revision, key: &[u8]) -> Result<Option<Event>, MvccError> {
        let Some(prev_rev) = self.index.latest(key) else {
            return Ok(None);
        };
        let prev = self.kv_at(prev_rev)?;
        let kv = KeyValue {
            key: key.to_vec(),
            mod_revision: rev.main,
            ..Default::default()
        };
        self.stage_record(
            rev,
            &Record {
                kv: kv.clone(),
                tombstone: true,
            },
        );
        self.index.tombstone(key, rev);
        if let Some(l) = self.leases.get_mut(&prev.lease) {
            l.keys.remove(key);
        }
        Ok(Some(Event {
            kind: EventType::Delete,
            kv,
            prev_kv: Some(prev),
        }))
    }

    pub(super) fn grant_lease(&mut self, id: i64, ttl: i64) -> Result<(), MvccError> {
        if self.leases.contains_key(&id) {
            return Err(MvccError::LeaseExists { id });
        }
        self.leases.insert(
            id,
            LeaseState {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        self.stage(lease_key(id), Some(ttl.to_be_bytes().to_vec()));
        Ok(())
    }

    pub(super) fn drop_lease(&mut self, id: i64) -> Option<LeaseState> {
        let l = self.leases.remove(&id)?;
        self.stage(lease_key(id), None);
        Some(l)
    }

    pub(super) fn set_compacted(&mut self, rev: i64) {
        self.compact_rev = rev;
        self.stage(META_COMPACT.to_vec(), Some(rev.to_be_bytes().to_vec()));
    }

    /// Leases with their TTL and attached keys.
    pub fn leases(&self) -> Vec<Lease> {
        self.leases
            .iter()
            .map(|(id, l)| Lease {
                id: *id,
                ttl: l.ttl,
                keys: l.keys.iter().cloned().collect(),
            })
            .collect()
    }

    pub fn lease(&self, id: i64) -> Option<Lease> {
        self.leases.get(&id).map(|l| Lease {
            id,
            ttl: l.ttl,
            keys: l.keys.iter().cloned().collect(),
        })
    }
}

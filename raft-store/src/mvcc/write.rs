//! Mutations: one `WriteOp` is one request and, if it changes anything, one revision.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::backend::Backend;
use super::error::{show_key, MvccError};
use super::store::{rev_key, Mvcc, REV_PREFIX};
use super::types::*;

/// A mutating request as it travels through the raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact { revision: i64 },
    LeaseGrant { id: i64, ttl: i64 },
    LeaseRevoke { id: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact,
    LeaseGrant { id: i64, ttl: i64 },
    LeaseRevoke,
}

/// What applying one op did: the store revision after it, its answer, and its events (all at
/// `revision` when there are any).
#[derive(Debug, Clone)]
pub struct Applied {
    pub revision: i64,
    pub result: WriteResult,
    pub events: Vec<Event>,
}

/// Per-request write cursor: the revision being written and the next sub-revision.
struct Cursor {
    main: i64,
    sub: i64,
    events: Vec<Event>,
}

impl Cursor {
    fn next(&mut self) -> Revision {
        let r = Revision::new(self.main, self.sub);
        self.sub += 1;
        r
    }

    fn changed(&self) -> bool {
        self.sub > 0
    }
}

impl<B: Backend> Mvcc<B> {
    /// Applies one request. Validation happens before anything is staged, so an error leaves
    /// the store untouched.
    pub fn apply(&mut self, op: &WriteOp) -> Result<Applied, MvccError> {
        let mut cur = Cursor {
            main: self.current_rev + 1,
            sub: 0,
            events: Vec::new(),
        };
        let result = match op {
            WriteOp::Put(p) => {
                self.check_put(p)?;
                WriteResult::Put(self.do_put(&mut cur, p)?)
            }
            WriteOp::DeleteRange(d) => WriteResult::DeleteRange(self.do_delete(&mut cur, d)?),
            WriteOp::Txn(t) => {
                let succeeded = self.compare_all(&t.compare, self.current_rev)?;
                let ops = if succeeded { &t.success } else { &t.failure };
                self.check_ops(ops, &mut HashSet::new(), &mut Vec::new())?;
                WriteResult::Txn(self.do_txn_ops(&mut cur, succeeded, ops)?)
            }
            WriteOp::Compact { revision } => {
                self.do_compact(*revision)?;
                WriteResult::Compact
            }
            WriteOp::LeaseGrant { id, ttl } => {
                self.grant_lease(*id, *ttl)?;
                WriteResult::LeaseGrant { id: *id, ttl: *ttl }
            }
            WriteOp::LeaseRevoke { id } => {
                let lease = self.lease(*id).ok_or(MvccError::LeaseNotFound { id: *id })?;
                for key in &lease.keys {
                    let rev = cur.next();
                    if let Some(ev) = self.delete_at(rev, key)? {
                        cur.events.push(ev);
                    }
                }
                self.drop_lease(*id);
                WriteResult::LeaseRevoke
            }
        };
        if cur.changed() {
            self.set_current_rev(cur.main);
        }
        Ok(Applied {
            revision: self.current_rev,
            result,
            events: cur.events,
        })
    }

    fn check_put(&self, p: &PutRequest) -> Result<(), MvccError> {
        if p.lease != 0 && !p.ignore_lease && !self.leases.contains_key(&p.lease) {
            return Err(MvccError::LeaseNotFound { id: p.lease });
        }
        if (p.ignore_value || p.ignore_lease) && self.index.latest(&p.key).is_none() {
            return Err(MvccError::KeyNotFound { key: show_key(&p.key) });
        }
        Ok(())
    }

    /// Checks the ops of the branch a txn will take: leases exist, no key is written twice, no
    /// put overlaps a delete of the same txn (etcd refuses these too).
    fn check_ops(
        &self,
        ops: &[RequestOp],
        puts: &mut HashSet<Vec<u8>>,
        dels: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), MvccError> {
        for op in ops {
            match op {
                RequestOp::Put(p) => {
                    self.check_put(p)?;
                    if !puts.insert(p.key.clone()) || dels.iter().any(|(s, e)| in_range(&p.key, s, e)) {
                        return Err(MvccError::DuplicateKey { key: show_key(&p.key) });
                    }
                }
                RequestOp::DeleteRange(d) => {
                    if let Some(k) = puts.iter().find(|k| in_range(k, &d.key, &d.range_end)) {
                        return Err(MvccError::DuplicateKey { key: show_key(k) });
                    }
                    dels.push((d.key.clone(), d.range_end.clone()));
                }
                RequestOp::Txn(t) => {
                    let ok = self.compare_all(&t.compare, self.current_rev)?;
                    self.check_ops(if ok { &t.success } else { &t.failure }, puts, dels)?;
                }
                RequestOp::Range(_) => {}
            }
        }
        Ok(())
    }

    fn do_put(&mut self, cur: &mut Cursor, p: &PutRequest) -> Result<PutResponse, MvccError> {
        let rev = cur.next();
        let ev = self.put_at(rev, p)?;
        let prev_kv = if p.prev_kv { ev.prev_kv.clone() } else { None };
        cur.events.push(ev);
        Ok(PutResponse { prev_kv })
    }

    fn do_delete(&mut self, cur: &mut Cursor, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        let mut keys = Vec::new();
        let read_rev = self.read_rev(cur);
        self.index.range(&d.key, &d.range_end, read_rev, |k, _| {
            keys.push(k.to_vec());
            true
        });
        let mut resp = DeleteRangeResponse::default();
        for key in keys {
            let rev = cur.next();
            if let Some(ev) = self.delete_at(rev, &key)? {
                resp.deleted += 1;
                if d.prev_kv {
                    if let Some(p) = &ev.prev_kv {
                        resp.prev_kvs.push(p.clone());
                    }
                }
                cur.events.push(ev);
            }
        }
        Ok(resp)
    }

    /// The revision reads inside a request see: its own writes once it has made some.
    fn read_rev(&self, cur: &Cursor) -> i64 {
        if cur.changed() {
            cur.main
        } else {
            self.current_rev
        }
    }

    fn do_txn_ops(&mut self, cur: &mut Cursor, succeeded: bool, ops: &[RequestOp]) -> Result<TxnResponse, MvccError> {
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match op {
                RequestOp::Range(r) => {
                    let at = self.read_rev(cur);
                    ResponseOp::Range(self.range_at(r, at)?)
                }
                RequestOp::Put(p) => ResponseOp::Put(self.do_put(cur, p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.do_delete(cur, d)?),
                RequestOp::Txn(t) => {
                    let at = self.read_rev(cur);
                    let ok = self.compare_all(&t.compare, at)?;
                    let branch = if ok { &t.success } else { &t.failure };
                    ResponseOp::Txn(self.do_txn_ops(cur, ok, branch)?)
                }
            };
            responses.push(r);
        }
        Ok(TxnResponse { succeeded, responses })
    }

    /// Evaluates every compare at revision `at`; a compare over a range holds when it holds for
    /// every key in it (and, as in etcd, a range with no keys compares as a missing key).
    pub(super) fn compare_all(&self, cmps: &[Compare], at: i64) -> Result<bool, MvccError> {
        for c in cmps {
            let mut kvs = Vec::new();
            let mut revs = Vec::new();
            self.index.range(&c.key, &c.range_end, at, |_, r| {
                revs.push(r);
                true
            });
            for r in revs {
                kvs.push(self.kv_at(r)?);
            }
            let ok = if kvs.is_empty() {
                if c.range_end.is_empty() {
                    compare_one(c, None)
                } else {
                    true
                }
            } else {
                kvs.iter().all(|kv| compare_one(c, Some(kv)))
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn do_compact(&mut self, rev: i64) -> Result<(), MvccError> {
        if rev <= self.compact_rev {
            return Err(MvccError::Compacted {
                requested: rev,
                compacted: self.compact_rev,
            });
        }
        if rev > self.current_rev {
            return Err(MvccError::FutureRevision {
                requested: rev,
                current: self.current_rev,
            });
        }
        // Earlier ops of this batch must be in the backend before it is scanned.
        self.flush()?;
        let keep = self.index.compact(rev);
        let mut doomed = Vec::new();
        let end = rev_key(Revision::new(rev, 0));
        self.backend.scan(&[REV_PREFIX], Some(&end), &mut |k, _| {
            if let Some(r) = Revision::decode(&k[1..]) {
                if !keep.contains(&r) {
                    doomed.push(k.to_vec());
                }
            }
            true
        })?;
        for k in doomed {
            self.stage(k, None);
        }
        self.set_compacted(rev);
        Ok(())
    }
}

/// One compare against one key (None: the key does not exist, every number compares as 0).
fn compare_one(c: &Compare, kv: Option<&KeyValue>) -> bool {
    use std::cmp::Ordering;
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.map_or(0, |k| k.version).cmp(v),
        CompareTarget::Create(v) => kv.map_or(0, |k| k.create_revision).cmp(v),
        CompareTarget::Mod(v) => kv.map_or(0, |k| k.mod_revision).cmp(v),
        CompareTarget::Lease(v) => kv.map_or(0, |k| k.lease).cmp(v),
        CompareTarget::Value(v) => match kv {
            Some(k) => k.value.as_slice().cmp(v.as_slice()),
            None => return false,
        },
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

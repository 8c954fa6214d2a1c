//! Reads: ranges at a revision and history for watchers.

use super::backend::Backend;
use super::error::MvccError;
use super::store::{rev_key, Mvcc, Record, REV_PREFIX};
use super::types::*;

impl<B: Backend> Mvcc<B> {
    /// etcd's Range at `req.revision` (0: current).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        self.range_at(req, self.current_rev)
    }

    /// `cur` is the newest revision the read may see (inside a txn: the txn's own revision).
    pub(super) fn range_at(&self, req: &RangeRequest, cur: i64) -> Result<RangeResponse, MvccError> {
        let at = if req.revision <= 0 { cur } else { req.revision };
        if at > cur {
            return Err(MvccError::FutureRevision {
                requested: at,
                current: cur,
            });
        }
        if at < self.compact_rev {
            return Err(MvccError::Compacted {
                requested: at,
                compacted: self.compact_rev,
            });
        }
        let filtered = req.min_mod_revision > 0
            || req.max_mod_revision > 0
            || req.min_create_revision > 0
            || req.max_create_revision > 0;
        let order = match (req.sort_order, req.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::Ascend,
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        let natural = req.sort_target == SortTarget::Key && order == SortOrder::Ascend;

        let mut count = 0i64;
        let mut revs = Vec::new();
        // Without sorting or filtering only `limit + 1` values are read; the rest are counted.
        let want = if natural && !filtered && req.limit > 0 {
            req.limit as usize + 1
        } else {
            usize::MAX
        };
        self.index.range(&req.key, &req.range_end, at, |_, rev| {
            count += 1;
            if revs.len() < want && !req.count_only {
                revs.push(rev);
            }
            true
        });
        if req.count_only {
            return Ok(RangeResponse {
                kvs: Vec::new(),
                more: false,
                count,
            });
        }
        let mut kvs = Vec::with_capacity(revs.len());
        for rev in revs {
            let kv = self.kv_at(rev)?;
            if filtered && !passes_filters(req, &kv) {
                continue;
            }
            kvs.push(kv);
        }
        if !natural {
            sort_kvs(&mut kvs, req.sort_target, order);
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse { kvs, more, count })
    }

    /// Events with `from <= revision <= to`, grouped by revision, at most `max_revs` revisions.
    /// Reads the backend directly: call it outside an apply batch.
    pub fn history(&self, from: i64, to: i64, max_revs: usize) -> Result<Vec<(i64, Vec<Event>)>, MvccError> {
        if from < self.compact_rev {
            return Err(MvccError::Compacted {
                requested: from,
                compacted: self.compact_rev,
            });
        }
        let mut out: Vec<(i64, Vec<Event>)> = Vec::new();
        if to < from {
            return Ok(out);
        }
        let start = rev_key(Revision::new(from, 0));
        let end = rev_key(Revision::new(to.saturating_add(1), 0));
        let mut records = Vec::new();
        let mut err = None;
        let mut revs_seen = 0usize;
        let mut last_main = i64::MIN;
        self.backend.scan(&start, Some(&end), &mut |k, v| {
            debug_assert_eq!(k[0], REV_PREFIX);
            let Some(rev) = Revision::decode(&k[1..]) else {
                return true;
            };
            if rev.main != last_main {
                if revs_seen == max_revs {
                    return false;
                }
                revs_seen += 1;
                last_main = rev.main;
            }
            match bincode::deserialize::<Record>(v) {
                Ok(r) => records.push((rev, r)),
                Err(e) => {
                    err = Some(MvccError::Backend(super::backend::BackendError::Corrupt {
                        key: format!("{k:?}"),
                        reason: e.to_string(),
                    }));
                    return false;
                }
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        for (rev, rec) in records {
            let prev_kv = match self.index.get(&rec.kv.key, rev.main - 1) {
                Some(p) if rev.main > self.compact_rev => self.kv_at(p).ok(),
                _ => None,
            };
            let kind = if rec.tombstone {
                EventType::Delete
            } else {
                EventType::Put
            };
            let ev = Event {
                kind,
                kv: rec.kv,
                prev_kv,
            };
            match out.last_mut() {
                Some((m, evs)) if *m == rev.main => evs.push(ev),
                _ => out.push((rev.main, vec![ev])),
            }
        }
        Ok(out)
    }

    /// etcd's HashKV: a hash of every revision record up to `rev` (0: current) still kept.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64), MvccError> {
        let rev = if rev <= 0 { self.current_rev } else { rev };
        if rev > self.current_rev {
            return Err(MvccError::FutureRevision {
                requested: rev,
                current: self.current_rev,
            });
        }
        let mut h = crc32fast::Hasher::new();
        let end = rev_key(Revision::new(rev.saturating_add(1), 0));
        self.backend.scan(&[REV_PREFIX], Some(&end), &mut |k, v| {
            h.update(k);
            h.update(v);
            true
        })?;
        Ok((h.finalize(), rev))
    }
}

fn passes_filters(req: &RangeRequest, kv: &KeyValue) -> bool {
    (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
        && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
        && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
}

fn sort_kvs(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    // Stable sort keeps key order among equal targets, as etcd's does.
    match target {
        SortTarget::Key => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
        SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
        SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
        SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
        SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}

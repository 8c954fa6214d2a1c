//! The in-memory index from user key to its revisions, as etcd's `treeIndex`: values live in the
//! backend under their revision; this index says which revision holds a key at a given point in
//! history. It is rebuilt from the backend on start.
//!
//! A key's life is a list of generations. A generation starts with a put on a key that does not
//! exist and ends with a delete (its last revision is then the tombstone). Example, key `k`:
//! put@2 put@3 del@5 put@7 gives generations `[{2,3,5(tomb)}, {7}]`; at revision 4 the key is
//! the value written at 3; at revision 6 it does not exist.
//!
//! Compaction at `c` keeps, per generation, the newest revision `<= c` and everything above, so
//! that a read at `c` still sees what it saw before. Revisions `< c` that are shadowed go; a
//! generation whose tombstone is `< c` goes entirely (nobody can read it any more). Revisions at
//! exactly `c` are always kept, tombstones too, so a watch from `c` still sees a delete at `c`.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use super::types::Revision;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Generation {
    revs: Vec<Revision>,
    tombstone: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndex {
    gens: Vec<Generation>,
}

impl KeyIndex {
    /// The revision holding the key's value at `at`, or None if the key did not exist then.
    pub fn get(&self, at: i64) -> Option<Revision> {
        for g in self.gens.iter().rev() {
            let Some(first) = g.revs.first() else { continue };
            if first.main > at {
                continue;
            }
            let pos = g.revs.partition_point(|r| r.main <= at);
            // pos >= 1 because first.main <= at.
            let idx = pos - 1;
            if g.tombstone && idx == g.revs.len() - 1 {
                return None;
            }
            return Some(g.revs[idx]);
        }
        None
    }

    /// The live (non-deleted) latest revision.
    pub fn latest(&self) -> Option<Revision> {
        let g = self.gens.last()?;
        if g.tombstone {
            None
        } else {
            g.revs.last().copied()
        }
    }

    pub fn put(&mut self, rev: Revision) {
        match self.gens.last_mut() {
            Some(g) if !g.tombstone => g.revs.push(rev),
            _ => self.gens.push(Generation {
                revs: vec![rev],
                tombstone: false,
            }),
        }
    }

    /// Ends the current generation. Returns false if the key was not live.
    pub fn tombstone(&mut self, rev: Revision) -> bool {
        match self.gens.last_mut() {
            Some(g) if !g.tombstone => {
                g.revs.push(rev);
                g.tombstone = true;
                true
            }
            _ => false,
        }
    }

    /// Applies compaction at `at`; the kept revisions are added to `keep`. Returns true when the
    /// index is now empty and can be dropped.
    pub fn compact(&mut self, at: i64, keep: &mut HashSet<Revision>) -> bool {
        let mut out = Vec::with_capacity(self.gens.len());
        for mut g in std::mem::take(&mut self.gens) {
            let Some(last) = g.revs.last().copied() else { continue };
            if g.tombstone && last.main < at {
                continue;
            }
            let pos = g.revs.partition_point(|r| r.main <= at);
            if pos > 1 {
                // Keep the newest revision <= at (one key has at most one revision per main).
                g.revs.drain(..pos - 1);
            }
            keep.extend(g.revs.iter().copied());
            out.push(g);
        }
        self.gens = out;
        self.gens.is_empty()
    }
}

/// The whole index: ordered by key so ranges are ordered scans.
#[derive(Debug, Default)]
pub struct TreeIndex {
    keys: BTreeMap<Vec<u8>, KeyIndex>,
}

impl TreeIndex {
    pub fn get(&self, key: &[u8], at: i64) -> Option<Revision> {
        self.keys.get(key)?.get(at)
    }

    pub fn latest(&self, key: &[u8]) -> Option<Revision> {
        self.keys.get(key)?.latest()
    }

    pub fn put(&mut self, key: &[u8], rev: Revision) {
        self.keys.entry(key.to_vec()).or_default().put(rev);
    }

    pub fn tombstone(&mut self, key: &[u8], rev: Revision) -> bool {
        self.keys.get_mut(key).is_some_and(|k| k.tombstone(rev))
    }

    /// Calls `f(key, rev)` for each key in etcd range `[start, end)` that existed at `at`, in key
    /// order; stops when `f` returns false.
    pub fn range(&self, start: &[u8], end: &[u8], at: i64, mut f: impl FnMut(&[u8], Revision) -> bool) {
        if end.is_empty() {
            if let Some(rev) = self.get(start, at) {
                f(start, rev);
            }
            return;
        }
        let upper = if end == [0] {
            Bound::Unbounded
        } else {
            Bound::Excluded(end)
        };
        if end != [0] && start >= end {
            return;
        }
        for (k, idx) in self.keys.range::<[u8], _>((Bound::Included(start), upper)) {
            if let Some(rev) = idx.get(at) {
                if !f(k, rev) {
                    return;
                }
            }
        }
    }

    /// Compacts every key at `at`; returns the set of revisions that must stay in the backend.
    pub fn compact(&mut self, at: i64) -> HashSet<Revision> {
        let mut keep = HashSet::new();
        self.keys.retain(|_, idx| !idx.compact(at, &mut keep));
        keep
    }

    pub fn clear(&mut self) {
        self.keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn generations_answer_reads_at_revisions() {
        let mut k = KeyIndex::default();
        k.put(r(2));
        k.put(r(3));
        assert!(k.tombstone(r(5)));
        k.put(r(7));
        assert_eq!(k.get(1), None);
        assert_eq!(k.get(2), Some(r(2)));
        assert_eq!(k.get(4), Some(r(3)));
        assert_eq!(k.get(5), None);
        assert_eq!(k.get(6), None);
        assert_eq!(k.get(7), Some(r(7)));
        assert_eq!(k.latest(), Some(r(7)));
        assert!(!KeyIndex::default().tombstone(r(1)));
    }

    #[test]
    fn compaction_keeps_what_a_read_at_the_compacted_revision_sees() {
        let mut k = KeyIndex::default();
        k.put(r(2));
        k.put(r(3));
        k.tombstone(r(5));
        k.put(r(7));
        k.put(r(9));
        let mut keep = HashSet::new();
        assert!(!k.compact(8, &mut keep));
        // The first generation died at 5 < 8: gone. Of the second, 7 is the newest <= 8.
        assert_eq!(keep, [r(7), r(9)].into_iter().collect());
        assert_eq!(k.get(8), Some(r(7)));

        let mut k = KeyIndex::default();
        k.put(r(2));
        k.tombstone(r(4));
        let mut keep = HashSet::new();
        // A tombstone exactly at the compaction revision stays (watch from 4 sees the delete).
        assert!(!k.compact(4, &mut keep));
        assert_eq!(keep, [r(4)].into_iter().collect());
        let mut keep = HashSet::new();
        assert!(k.compact(5, &mut keep));
        assert!(keep.is_empty());
    }
}

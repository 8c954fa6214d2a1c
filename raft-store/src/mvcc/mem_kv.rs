//! In-memory `Backend` for unit tests of the MVCC logic.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

use super::backend::{Backend, BackendError, Batch, Pairs};

#[derive(Debug, Default)]
pub struct MemKv {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.map.read().get(key).cloned())
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        let map = self.map.read();
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        for (k, v) in map.range::<[u8], _>((Bound::Included(start), upper)) {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, batch: Batch) -> Result<(), BackendError> {
        let mut map = self.map.write();
        for (k, v) in batch.ops {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }

    fn sync(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn dump(&self) -> Result<Pairs, BackendError> {
        Ok(self.map.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn replace_all(&self, pairs: Pairs) -> Result<(), BackendError> {
        *self.map.write() = pairs.into_iter().collect();
        Ok(())
    }
}

//! One client task's view of a workload: which operation op `n` is, on which key.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::Workload;
use super::error::OpError;
use super::keys::KeyGen;
use super::mix::Mix;
use super::op_kind::OpKind;
use super::ops::{self, Kv};

/// A completed operation.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub kind: OpKind,
    /// A txn-cas whose compare failed.
    pub conflict: bool,
}

impl Done {
    fn ok(kind: OpKind) -> Self {
        Done { kind, conflict: false }
    }
}

/// What every worker of a run shares.
#[derive(Clone)]
pub struct Shared {
    pub workload: Workload,
    pub keys: KeyGen,
    pub value: Arc<Vec<u8>>,
    pub serializable: bool,
    pub mix: Mix,
    /// Timestamps in watch values are nanoseconds since this instant.
    pub base: Instant,
    /// Revisions of acknowledged puts (watch workload only).
    pub acked: Option<Arc<Mutex<Vec<i64>>>>,
}

pub struct Worker {
    kv: Kv,
    rng: StdRng,
    shared: Shared,
}

impl Worker {
    pub fn new(kv: Kv, seed: u64, shared: Shared) -> Self {
        Worker {
            kv,
            rng: StdRng::seed_from_u64(seed),
            shared,
        }
    }

    fn key(&mut self, n: u64) -> Vec<u8> {
        let r = self.rng.gen();
        let k = &self.shared.keys;
        k.key(k.index(n, r))
    }

    pub async fn op(&mut self, n: u64) -> Result<Done, OpError> {
        match self.shared.workload {
            Workload::Put => self.put(n).await,
            Workload::Range => self.get(n, self.shared.serializable).await,
            Workload::TxnCas => self.txn_cas(n).await,
            Workload::List => {
                let prefix = self.shared.keys.prefix().to_vec();
                let expect = self.shared.keys.key_space();
                ops::list(&mut self.kv, &prefix, self.shared.serializable, expect).await?;
                Ok(Done::ok(OpKind::List))
            }
            Workload::Watch => self.timestamped_put(n).await,
            Workload::Mixed => match self.shared.mix.pick(self.rng.gen()) {
                OpKind::Range => self.get(n, true).await,
                OpKind::TxnCas => self.txn_cas(n).await,
                OpKind::List => self.group_list().await,
                _ => self.put(n).await,
            },
        }
    }

    async fn put(&mut self, n: u64) -> Result<Done, OpError> {
        let key = self.key(n);
        ops::put(&mut self.kv, key, self.shared.value.to_vec()).await?;
        Ok(Done::ok(OpKind::Put))
    }

    async fn get(&mut self, n: u64, serializable: bool) -> Result<Done, OpError> {
        let key = self.key(n);
        ops::get(&mut self.kv, key, serializable).await?;
        Ok(Done::ok(OpKind::Range))
    }

    async fn txn_cas(&mut self, n: u64) -> Result<Done, OpError> {
        let key = self.key(n);
        let ok = ops::txn_cas(&mut self.kv, key, self.shared.value.to_vec(), self.shared.serializable).await?;
        Ok(Done {
            kind: OpKind::TxnCas,
            conflict: !ok,
        })
    }

    /// Lists one random group of 256 keys (a namespace, in Kubernetes terms).
    async fn group_list(&mut self) -> Result<Done, OpError> {
        let k = &self.shared.keys;
        let g = self.rng.gen_range(0..k.groups());
        let (prefix, expect) = (k.group_prefix(g), k.group_len(g));
        ops::list(&mut self.kv, &prefix, self.shared.serializable, expect).await?;
        Ok(Done::ok(OpKind::List))
    }

    /// A put whose value starts with the send time (ns since `base`, little-endian), for the
    /// watchers to compute put-to-event latency.
    async fn timestamped_put(&mut self, n: u64) -> Result<Done, OpError> {
        let key = self.key(n);
        let mut value = self.shared.value.to_vec();
        let ts = u64::try_from(self.shared.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        value[..8].copy_from_slice(&ts.to_le_bytes());
        let rev = ops::put(&mut self.kv, key, value).await?;
        if let Some(acked) = &self.shared.acked {
            acked.lock().push(rev);
        }
        Ok(Done::ok(OpKind::Put))
    }
}

/// The send time a watch value carries (see [`Worker::timestamped_put`]).
pub fn value_timestamp(value: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trip() {
        let mut v = vec![7u8; 32];
        v[..8].copy_from_slice(&123_456_789u64.to_le_bytes());
        assert_eq!(value_timestamp(&v), Some(123_456_789));
        assert_eq!(value_timestamp(&[1, 2, 3]), None);
    }
}

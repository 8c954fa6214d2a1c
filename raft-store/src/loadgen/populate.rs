//! Pre-population: every key of the key space exists before a read workload is measured.

use futures::{StreamExt, TryStreamExt};
use tonic::transport::Channel;

use super::error::{LoadgenError, OpError};
use super::keys::KeyGen;
use super::ops::{put_batch, Kv};

/// Puts per Txn: under etcd's default `--max-txn-ops` of 128.
const BATCH: u64 = 100;
/// Txns in flight.
const PARALLEL: usize = 8;
/// Attempts per batch (a member may be briefly busy electing right after start).
const ATTEMPTS: usize = 5;

/// Writes keys `0..key_space` with `value`, in parallel batched Txns over `channels`.
pub async fn populate(channels: &[Channel], keys: &KeyGen, value: &[u8]) -> Result<(), LoadgenError> {
    let space = keys.key_space();
    let batches = space.div_ceil(BATCH);
    futures::stream::iter(0..batches)
        .map(|b| {
            let mut kv = Kv::new(channels[(b as usize) % channels.len()].clone());
            let batch: Vec<Vec<u8>> = (b * BATCH..((b + 1) * BATCH).min(space)).map(|i| keys.key(i)).collect();
            async move {
                let mut last = None;
                for attempt in 0..ATTEMPTS {
                    match put_batch(&mut kv, batch.clone(), value).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                Err(last.unwrap_or_else(|| OpError::Check("no attempt made".into())))
            }
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await
        .map_err(|e| LoadgenError::Populate {
            keys: space,
            source: Box::new(e),
        })?;
    Ok(())
}

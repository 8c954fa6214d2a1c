//! Lease expiry. Only the leader counts time; expiry is replicated as a `LeaseRevoke`, so every
//! member deletes the lease's keys at the same revision. When a member becomes leader it gives
//! every lease its full TTL again (etcd does the same) rather than expiring them at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::leader_ops::LeaderOp;
use super::Inner;
use crate::mvcc::WriteOp;
use crate::raft::Command;

const TICK: Duration = Duration::from_millis(250);

pub(super) async fn run(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut was_leader = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        if !inner.is_leader() {
            if was_leader {
                inner.lease_deadlines.lock().clear();
            }
            was_leader = false;
            continue;
        }
        let now = Instant::now();
        let leases = inner.sm.state.read().mvcc.leases();
        let expired: Vec<i64> = {
            let mut d = inner.lease_deadlines.lock();
            if !was_leader {
                d.clear();
            }
            d.retain(|id, _| leases.iter().any(|l| l.id == *id));
            for l in &leases {
                d.entry(l.id)
                    .or_insert_with(|| now + Duration::from_secs(l.ttl.max(0) as u64));
            }
            d.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect()
        };
        was_leader = true;
        for id in expired {
            let cmd = Command {
                op: WriteOp::LeaseRevoke { id },
                fence_term: None,
            };
            match inner.execute_local(LeaderOp::Write(cmd)).await {
                Ok(_) => {
                    inner.lease_deadlines.lock().remove(&id);
                    tracing::debug!(lease = id, "lease expired");
                }
                Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease"),
            }
        }
    }
}

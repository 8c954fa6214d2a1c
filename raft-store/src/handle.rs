//! `StoreHandle`: what the gRPC services (and later the API server) call. It hides raft: writes
//! go through the log (forwarded to the leader when needed), reads are linearizable through
//! read-index unless asked to be serializable.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::StoreError;
use crate::handle_types::*;
use crate::mvcc::{RangeRequest, RangeResponse, WriteOp, WriteResult};
use crate::node::leader_ops::{LeaderOp, LeaderReply};
use crate::raft::{member_id, Command, CommandResponse, MemberNode};
use crate::watch::WatchHub;

/// The version reported by Maintenance.Status: the etcd API level skiff implements.
pub const ETCD_API_VERSION: &str = "3.5.8";

#[derive(Clone)]
pub struct StoreHandle {
    pub(crate) inner: Arc<crate::node::Inner>,
}

impl StoreHandle {
    /// Header for a response, with the current applied revision.
    pub fn header(&self) -> Header {
        let revision = self.inner.sm.state.read().mvcc.current_revision();
        Header {
            cluster_id: self.inner.cluster_id.load(Ordering::Relaxed),
            member_id: self.inner.id,
            revision,
            raft_term: self.inner.raft.metrics().borrow().current_term,
        }
    }

    pub fn member_id(&self) -> u64 {
        self.inner.id
    }

    /// Replicates a write; returns the store revision after it and its result.
    pub async fn write(&self, op: WriteOp) -> Result<(i64, WriteResult), StoreError> {
        self.write_fenced(op, None).await
    }

    /// A write that only applies if the leader appending it is in `fence_term` (leader-only
    /// components use this; see ARCHITECTURE.md, fenced leadership).
    pub async fn write_fenced(&self, op: WriteOp, fence_term: Option<u64>) -> Result<(i64, WriteResult), StoreError> {
        match self.inner.execute(LeaderOp::Write(Command { op, fence_term })).await? {
            LeaderReply::Write(CommandResponse::Applied { revision, result }) => Ok((revision, result)),
            LeaderReply::Write(CommandResponse::Rejected(e)) => Err(e),
            other => Err(StoreError::Internal(format!("unexpected reply to a write: {other:?}"))),
        }
    }

    /// The state machine's ledger of fenced writes (as of the last applied entry here).
    pub fn fence_ledger(&self) -> crate::raft::state_machine::FenceLedger {
        self.inner.sm.state.read().fences.clone()
    }

    /// False only under `--unsafe-no-fencing` (a failure test's negative control).
    pub fn fencing_enforced(&self) -> bool {
        !self.inner.config.unsafe_no_fencing
    }

    /// A range: linearizable unless `req.serializable`. Returns the header revision with it.
    pub async fn range(&self, req: RangeRequest) -> Result<(i64, RangeResponse), StoreError> {
        if !req.serializable {
            self.inner.linearizable_barrier().await?;
        }
        let st = self.inner.sm.state.read();
        let resp = st.mvcc.range(&req)?;
        Ok((st.mvcc.current_revision(), resp))
    }

    pub fn watch_hub(&self) -> Arc<WatchHub> {
        self.inner.sm.hub.clone()
    }

    /// `id == 0`: the store picks one. Returns (id, ttl).
    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<(i64, i64), StoreError> {
        if id < 0 {
            return Err(StoreError::InvalidArgument(
                "etcdserver: lease ID must be positive".into(),
            ));
        }
        let id = if id == 0 {
            rand::random::<i64>().abs().max(1)
        } else {
            id
        };
        match self.write(WriteOp::LeaseGrant { id, ttl }).await? {
            (_, WriteResult::LeaseGrant { id, ttl }) => Ok((id, ttl)),
            (_, other) => Err(StoreError::Internal(format!("unexpected result {other:?}"))),
        }
    }

    /// Returns the revision after the revoke.
    pub async fn lease_revoke(&self, id: i64) -> Result<i64, StoreError> {
        Ok(self.write(WriteOp::LeaseRevoke { id }).await?.0)
    }

    /// Renews a lease; returns its TTL (the leader does it; followers forward).
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, StoreError> {
        match self.inner.execute(LeaderOp::KeepAlive { lease: id }).await? {
            LeaderReply::Ttl(t) => Ok(t),
            other => Err(StoreError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    pub async fn lease_time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTtl, StoreError> {
        match self.inner.execute(LeaderOp::TimeToLive { lease: id, keys }).await {
            Ok(r) => crate::node::Inner::lease_ttl_reply(r, id),
            Err(StoreError::LeaseNotFound { .. }) => Ok(LeaseTtl {
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    pub async fn lease_list(&self) -> Result<Vec<i64>, StoreError> {
        self.inner.linearizable_barrier().await?;
        Ok(self
            .inner
            .sm
            .state
            .read()
            .mvcc
            .leases()
            .into_iter()
            .map(|l| l.id)
            .collect())
    }

    pub async fn member_list(&self) -> Result<Vec<MemberInfo>, StoreError> {
        // Membership changes are log entries: wait for the ones committed before this call.
        self.inner.linearizable_barrier().await?;
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        Ok(membership
            .nodes()
            .map(|(id, n)| MemberInfo {
                id: *id,
                name: n.name.clone(),
                peer_urls: vec![format!("http://{}", n.peer_addr)],
                client_urls: if n.client_addr.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("http://{}", n.client_addr)]
                },
                is_learner: !voters.contains(id),
            })
            .collect())
    }

    /// Adds a member by its peer URLs (not started yet; it starts later with `--join`).
    pub async fn member_add(&self, peer_urls: Vec<String>, is_learner: bool) -> Result<MemberInfo, StoreError> {
        let Some(url) = peer_urls.first() else {
            return Err(StoreError::InvalidArgument(
                "etcdserver: member add needs a peer URL".into(),
            ));
        };
        let addr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
            return Err(StoreError::InvalidArgument(format!(
                "etcdserver: peer URL {url:?} has no host:port"
            )));
        }
        let id = member_id(&addr);
        let node = MemberNode {
            name: String::new(),
            peer_addr: addr.clone(),
            client_addr: String::new(),
        };
        self.inner
            .execute(LeaderOp::AddMember {
                id,
                node,
                learner: is_learner,
                wait: false,
            })
            .await?;
        Ok(MemberInfo {
            id,
            name: String::new(),
            peer_urls: vec![format!("http://{addr}")],
            client_urls: vec![],
            is_learner,
        })
    }

    pub async fn member_remove(&self, id: u64) -> Result<(), StoreError> {
        self.inner.execute(LeaderOp::RemoveMember { id }).await.map(|_| ())
    }

    pub async fn member_promote(&self, id: u64) -> Result<(), StoreError> {
        self.inner.execute(LeaderOp::PromoteMember { id }).await.map(|_| ())
    }

    pub async fn status(&self) -> Result<StatusInfo, StoreError> {
        let m = self.inner.raft.metrics().borrow().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        let db_size = dir_size(&self.inner.config.data_dir.join("db")) as i64;
        let in_use = self
            .inner
            .db
            .property_int_value("rocksdb.estimate-live-data-size")
            .ok()
            .flatten()
            .unwrap_or(0) as i64;
        Ok(StatusInfo {
            version: ETCD_API_VERSION.into(),
            db_size,
            db_size_in_use: in_use.min(db_size),
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            is_learner: !voters.contains(&self.inner.id),
            errors: Vec::new(),
        })
    }

    /// (hash, compact revision, hashed revision)
    pub async fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64), StoreError> {
        let st = self.inner.sm.state.read();
        let (h, rev) = st.mvcc.hash_kv(revision)?;
        Ok((h, st.mvcc.compacted_revision(), rev))
    }

    /// A consistent copy of the whole state machine, as bytes (etcdctl snapshot save).
    pub async fn snapshot_bytes(&self) -> Result<Vec<u8>, StoreError> {
        let sm = self.inner.sm.clone();
        tokio::task::spawn_blocking(move || sm.snapshot_bytes())
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Raft metrics, for tests and tools.
    pub fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    /// Follows this member's leadership: leader-only components start when it wins an election
    /// and stop when it loses one.
    pub fn leadership(&self) -> Leadership {
        Leadership {
            rx: self.inner.raft.metrics(),
            id: self.inner.id,
        }
    }
}

/// This member's leadership, from raft's metrics.
pub struct Leadership {
    rx: tokio::sync::watch::Receiver<openraft::RaftMetrics<crate::raft::NodeId, MemberNode>>,
    id: u64,
}

impl Leadership {
    /// `Some(term)` while this member is the leader of `term`.
    pub fn current(&mut self) -> Option<u64> {
        let m = self.rx.borrow_and_update();
        (m.current_leader == Some(self.id) && m.state == openraft::ServerState::Leader).then_some(m.current_term)
    }

    /// Waits for raft's state to change; false once raft has stopped.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

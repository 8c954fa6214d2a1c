//! Operations that only the leader may perform, and the forwarding that gets them there from
//! any member: a follower sends the op to the leader's peer port (`Propose`), the leader runs it.
//!
//! Retries: an op is resent to a new leader only when the old one answered `NotLeader` (it did
//! not append anything). A transport failure after sending is reported to the client as
//! unavailable, because a write might have been committed: the client decides, as with etcd.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;
use proto::raftpb::{JoinRequest, RaftMessage};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Inner, REQUEST_TIMEOUT};
use crate::error::StoreError;
use crate::handle_types::LeaseTtl;
use crate::raft::{Command, CommandResponse, MemberNode, NodeId};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderOp {
    Write(Command),
    /// Add a member; `wait` blocks until it has caught up (used by `--join`) and then promotes
    /// it unless `learner`.
    AddMember {
        id: NodeId,
        node: MemberNode,
        learner: bool,
        wait: bool,
    },
    RemoveMember {
        id: NodeId,
    },
    PromoteMember {
        id: NodeId,
    },
    /// Update a member's name and client address (a starting member publishes them).
    SetMember {
        id: NodeId,
        node: MemberNode,
    },
    KeepAlive {
        lease: i64,
    },
    TimeToLive {
        lease: i64,
        keys: bool,
    },
    /// The log index a linearizable read must wait for.
    ReadIndex,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LeaderReply {
    Write(CommandResponse),
    Done,
    Ttl(i64),
    TimeToLive { ttl: i64, granted: i64, keys: Vec<Vec<u8>> },
    ReadIndex(u64),
}

fn write_err(e: RaftError<NodeId, ClientWriteError<NodeId, MemberNode>>) -> StoreError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => StoreError::NotLeader { leader: f.leader_id },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => StoreError::InvalidArgument(c.to_string()),
        RaftError::Fatal(f) => StoreError::Unavailable(format!("raft stopped: {f}")),
    }
}

impl Inner {
    pub fn leader(&self) -> Option<(NodeId, MemberNode)> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.id)
    }

    /// Runs `op` on the leader, wherever it is, retrying until `REQUEST_TIMEOUT`.
    pub async fn execute(&self, op: LeaderOp) -> Result<LeaderReply, StoreError> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let res = match self.leader() {
                Some((id, _)) if id == self.id => self.execute_local(op.clone()).await,
                Some((id, node)) => self.forward(id, &node, &op).await,
                None => Err(StoreError::Unavailable("etcdserver: no leader".into())),
            };
            match res {
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(StoreError::NotLeader { .. }) | Err(StoreError::Unavailable(_)) if Instant::now() >= deadline => {
                    return Err(StoreError::Unavailable("etcdserver: request timed out".into()))
                }
                other => return other,
            }
        }
    }

    async fn forward(&self, leader: NodeId, node: &MemberNode, op: &LeaderOp) -> Result<LeaderReply, StoreError> {
        let payload = bincode::serialize(op).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut client = self
            .pool
            .client(&node.peer_addr)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut req = tonic::Request::new(RaftMessage { payload });
        req.set_timeout(REQUEST_TIMEOUT);
        match client.propose(req).await {
            Ok(r) => bincode::deserialize::<Result<LeaderReply, StoreError>>(&r.into_inner().payload)
                .map_err(|e| StoreError::Internal(format!("bad reply from leader {leader:x}: {e}")))?,
            Err(s) => {
                // Safe to retry only if nothing can have been appended: reads and renewals, or
                // a connection that was never made.
                let idempotent = matches!(
                    op,
                    LeaderOp::ReadIndex | LeaderOp::KeepAlive { .. } | LeaderOp::TimeToLive { .. }
                );
                if idempotent || s.code() == tonic::Code::Unavailable && s.message().contains("connect") {
                    Err(StoreError::Unavailable(format!(
                        "leader {leader:x} unreachable: {}",
                        s.message()
                    )))
                } else {
                    Err(StoreError::Internal(format!(
                        "etcdserver: request to leader {leader:x} failed, outcome unknown: {}",
                        s.message()
                    )))
                }
            }
        }
    }

    /// Runs `op` here; answers `NotLeader` if this member is not (or stops being) the leader.
    pub async fn execute_local(&self, op: LeaderOp) -> Result<LeaderReply, StoreError> {
        let raft = &self.raft;
        match op {
            LeaderOp::Write(cmd) => {
                let r = raft.client_write(cmd).await.map_err(write_err)?;
                Ok(LeaderReply::Write(r.data))
            }
            LeaderOp::AddMember {
                id,
                node,
                learner,
                wait,
            } => {
                let exists = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .cloned();
                if let Some(old) = exists {
                    if !wait {
                        return Err(StoreError::MemberExists {
                            peer_url: format!("http://{}", old.peer_addr),
                        });
                    }
                    // A member added by `etcdctl member add` now starts with --join: record its
                    // name and client address, then promote it below.
                    raft.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node.clone())])), true)
                        .await
                        .map_err(write_err)?;
                } else {
                    raft.add_learner(id, node, wait).await.map_err(write_err)?;
                }
                if !learner {
                    let voters = self
                        .raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .voter_ids()
                        .collect::<BTreeSet<_>>();
                    if !voters.contains(&id) {
                        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                            .await
                            .map_err(write_err)?;
                    }
                }
                Ok(LeaderReply::Done)
            }
            LeaderOp::RemoveMember { id } => {
                let m = self.raft.metrics().borrow().membership_config.membership().clone();
                if m.get_node(&id).is_none() {
                    return Err(StoreError::MemberNotFound { id });
                }
                let change = if m.voter_ids().any(|v| v == id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                raft.change_membership(change, false).await.map_err(write_err)?;
                Ok(LeaderReply::Done)
            }
            LeaderOp::PromoteMember { id } => {
                let m = self.raft.metrics().borrow().membership_config.membership().clone();
                if m.get_node(&id).is_none() {
                    return Err(StoreError::MemberNotFound { id });
                }
                if m.voter_ids().any(|v| v == id) {
                    return Err(StoreError::NotLearner { id });
                }
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(write_err)?;
                Ok(LeaderReply::Done)
            }
            LeaderOp::SetMember { id, node } => {
                raft.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true)
                    .await
                    .map_err(write_err)?;
                Ok(LeaderReply::Done)
            }
            LeaderOp::KeepAlive { lease } => {
                self.ensure_leader()?;
                let ttl = self
                    .sm
                    .state
                    .read()
                    .mvcc
                    .lease(lease)
                    .map(|l| l.ttl)
                    .ok_or(StoreError::LeaseNotFound { id: lease })?;
                self.lease_deadlines
                    .lock()
                    .insert(lease, Instant::now() + Duration::from_secs(ttl.max(0) as u64));
                Ok(LeaderReply::Ttl(ttl))
            }
            LeaderOp::TimeToLive { lease, keys } => {
                self.ensure_leader()?;
                let l = self
                    .sm
                    .state
                    .read()
                    .mvcc
                    .lease(lease)
                    .ok_or(StoreError::LeaseNotFound { id: lease })?;
                let remaining = match self.lease_deadlines.lock().get(&lease) {
                    Some(d) => d.saturating_duration_since(Instant::now()).as_secs_f64().round() as i64,
                    None => l.ttl,
                };
                Ok(LeaderReply::TimeToLive {
                    ttl: remaining,
                    granted: l.ttl,
                    keys: if keys { l.keys } else { Vec::new() },
                })
            }
            LeaderOp::ReadIndex => {
                let (read, _) = raft.get_read_log_id().await.map_err(|e| match e {
                    RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f)) => {
                        StoreError::NotLeader { leader: f.leader_id }
                    }
                    RaftError::APIError(openraft::error::CheckIsLeaderError::QuorumNotEnough(q)) => {
                        StoreError::Unavailable(format!("etcdserver: leader lost quorum: {q}"))
                    }
                    RaftError::Fatal(f) => StoreError::Unavailable(f.to_string()),
                })?;
                Ok(LeaderReply::ReadIndex(read.map_or(0, |l| l.index)))
            }
        }
    }

    fn ensure_leader(&self) -> Result<(), StoreError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(StoreError::NotLeader {
                leader: self.raft.metrics().borrow().current_leader,
            })
        }
    }

    /// Waits until this member has applied everything the leader had committed when asked.
    /// Concurrent reads share one read-index round (`ReadBatcher`).
    pub async fn linearizable_barrier(self: &Arc<Self>) -> Result<(), StoreError> {
        let (rx, start) = self.read_batcher.enqueue();
        if start {
            let me = self.clone();
            tokio::spawn(async move {
                let inner = me.clone();
                me.read_batcher
                    .drive(move || {
                        let inner = inner.clone();
                        async move {
                            match inner.execute(LeaderOp::ReadIndex).await? {
                                LeaderReply::ReadIndex(i) => Ok(i),
                                other => Err(StoreError::Internal(format!("unexpected reply {other:?}"))),
                            }
                        }
                    })
                    .await;
            });
        }
        let index = rx
            .await
            .map_err(|_| StoreError::Unavailable("etcdserver: request timed out".into()))??;
        self.raft
            .wait(Some(REQUEST_TIMEOUT))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map_err(|e| StoreError::Unavailable(format!("etcdserver: request timed out: {e}")))?;
        Ok(())
    }

    pub fn lease_ttl_reply(reply: LeaderReply, id: i64) -> Result<LeaseTtl, StoreError> {
        match reply {
            LeaderReply::TimeToLive { ttl, granted, keys } => Ok(LeaseTtl {
                id,
                ttl,
                granted_ttl: granted,
                keys,
            }),
            other => Err(StoreError::Internal(format!("unexpected reply {other:?}"))),
        }
    }
}

/// `--join`: ask a running member (through its client port) to add us; retried until admitted.
pub(super) async fn join_cluster(inner: Arc<Inner>, join: String, shutdown: CancellationToken) {
    let req = JoinRequest {
        name: inner.name.clone(),
        peer_addr: inner.config.advertise_peer(),
        client_addr: inner.config.advertise_client(),
        cluster_id: 0,
    };
    loop {
        let attempt = async {
            let mut c = inner.pool.client(&join).map_err(|e| e.to_string())?;
            let mut r = tonic::Request::new(req.clone());
            // Catching up may take a while: the leader streams a snapshot first.
            r.set_timeout(Duration::from_secs(120));
            c.join(r)
                .await
                .map(|r| r.into_inner())
                .map_err(|s| s.message().to_string())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            res = attempt => match res {
                Ok(resp) => {
                    inner.cluster_id.store(resp.cluster_id, Ordering::Relaxed);
                    let id = super::Identity { name: inner.name.clone(), member_id: inner.id, cluster_id: resp.cluster_id };
                    if let Err(e) = super::save_identity(&inner.config, &id) {
                        tracing::error!(error = %e, "saving identity after join");
                    }
                    tracing::info!(via = %join, cluster = format!("{:x}", resp.cluster_id), "joined the cluster");
                    return;
                }
                Err(e) => {
                    tracing::warn!(via = %join, error = %e, "join failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Makes sure the membership records this member's current name and client address (members
/// of `--initial-cluster` only know each other's peer addresses), like etcd's publish.
pub(super) async fn publish_self(inner: Arc<Inner>, published: CancellationToken, shutdown: CancellationToken) {
    let me = MemberNode {
        name: inner.name.clone(),
        peer_addr: inner.config.advertise_peer(),
        client_addr: inner.config.advertise_client(),
    };
    loop {
        let current = inner
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&inner.id)
            .cloned();
        match current {
            Some(n) if n == me => {
                published.cancel();
                return;
            }
            Some(_) if inner.leader().is_some() => {
                match inner
                    .execute(LeaderOp::SetMember {
                        id: inner.id,
                        node: me.clone(),
                    })
                    .await
                {
                    Ok(_) => tracing::info!("published member attributes"),
                    Err(e) => tracing::debug!(error = %e, "publishing member attributes"),
                }
            }
            _ => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

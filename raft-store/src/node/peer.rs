//! The member-to-member gRPC service: raft RPCs, proposals forwarded by followers, and joins.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use proto::raftpb::raft_service_server::{RaftService, RaftServiceServer};
use proto::raftpb::{JoinRequest, JoinResponse, RaftMessage, ReadIndexRequest, ReadIndexResponse};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::leader_ops::{LeaderOp, LeaderReply};
use super::Inner;
use crate::raft::{member_id, MemberNode, NodeId, TypeConfig};

pub struct PeerService {
    inner: Arc<Inner>,
}

pub fn peer_service(inner: Arc<Inner>) -> RaftServiceServer<PeerService> {
    RaftServiceServer::new(PeerService { inner })
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

pub(super) async fn serve_peer(inner: Arc<Inner>, listener: tokio::net::TcpListener, shutdown: CancellationToken) {
    // TCP_NODELAY: small gRPC replies must not wait for a delayed ACK (Nagle costs ~40 ms).
    let incoming = match tonic::transport::server::TcpIncoming::from_listener(listener, true, None) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "listener");
            return;
        }
    };
    let res = tonic::transport::Server::builder()
        .add_service(peer_service(inner))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "peer server stopped");
    }
}

fn decode<T: serde::de::DeserializeOwned>(m: &RaftMessage) -> Result<T, Status> {
    bincode::deserialize(&m.payload).map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    bincode::serialize(v)
        .map(|payload| Response::new(RaftMessage { payload }))
        .map_err(|e| Status::internal(e.to_string()))
}

#[tonic::async_trait]
impl RaftService for PeerService {
    async fn append_entries(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        encode(&self.inner.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode(req.get_ref())?;
        encode(&self.inner.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(req.get_ref())?;
        encode(&self.inner.raft.install_snapshot(rpc).await)
    }

    async fn propose(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let op: LeaderOp = decode(req.get_ref())?;
        // Only run here if we lead; otherwise say so and let the sender find the leader.
        let res = self.inner.execute_local(op).await;
        encode(&res)
    }

    async fn read_index(&self, _req: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        match self.inner.execute_local(LeaderOp::ReadIndex).await {
            Ok(LeaderReply::ReadIndex(index)) => {
                let term = self.inner.raft.metrics().borrow().current_term;
                Ok(Response::new(ReadIndexResponse { index, term }))
            }
            Ok(other) => Err(Status::internal(format!("unexpected reply {other:?}"))),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn join(&self, req: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let j = req.into_inner();
        if j.name.is_empty() || j.peer_addr.is_empty() {
            return Err(Status::invalid_argument("join: name and peer_addr are required"));
        }
        let cluster_id = self.inner.cluster_id.load(Ordering::Relaxed);
        if j.cluster_id != 0 && j.cluster_id != cluster_id {
            return Err(Status::failed_precondition(format!(
                "join: member belongs to cluster {:x}, this is cluster {cluster_id:x}",
                j.cluster_id
            )));
        }
        let id = member_id(&j.peer_addr);
        let node = MemberNode {
            name: j.name,
            peer_addr: j.peer_addr,
            client_addr: j.client_addr,
        };
        match self
            .inner
            .execute(LeaderOp::AddMember {
                id,
                node,
                learner: false,
                wait: true,
            })
            .await
        {
            Ok(_) => Ok(Response::new(JoinResponse {
                member_id: id,
                cluster_id,
            })),
            Err(e) => Err(Status::unavailable(format!("join: {e}"))),
        }
    }
}

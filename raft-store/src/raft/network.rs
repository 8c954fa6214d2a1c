//! Member-to-member RPC, client side. openraft's messages travel bincode-encoded inside
//! `skiff.raft.v1.RaftMessage`; the reply carries `Result<Response, RaftError>` the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use parking_lot::Mutex;
use proto::raftpb::raft_service_client::RaftServiceClient;
use proto::raftpb::RaftMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::types::{MemberNode, NodeId, TypeConfig};

/// Lazily connected channels to peers, shared by raft replication and request forwarding.
#[derive(Clone, Default)]
pub struct PeerPool {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl PeerPool {
    pub fn client(&self, addr: &str) -> Result<RaftServiceClient<Channel>, tonic::transport::Error> {
        let mut map = self.channels.lock();
        if let Some(ch) = map.get(addr) {
            return Ok(RaftServiceClient::new(ch.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX));
        }
        let ch = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(RaftServiceClient::new(ch)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }
}

#[derive(Clone)]
pub struct GrpcNetwork {
    pub pool: PeerPool,
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    pool: PeerPool,
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> Self::Network {
        PeerClient {
            target,
            addr: node.peer_addr.clone(),
            pool: self.pool.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

enum Rpc {
    Append,
    Snapshot,
    Vote,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &self,
        which: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, MemberNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self
            .pool
            .client(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage { payload });
        request.set_timeout(option.hard_ttl());
        let reply = match which {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
            Rpc::Vote => client.vote(request).await,
        };
        let reply = reply.map_err(|s| {
            let e = Msg(format!("{}: {}", s.code(), s.message()));
            match s.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                    RPCError::Unreachable(Unreachable::new(&e))
                }
                _ => RPCError::Network(NetworkError::new(&e)),
            }
        })?;
        let res: Result<Resp, RaftError<NodeId, E>> =
            bincode::deserialize(&reply.into_inner().payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}

//! etcd's Lease service over `StoreHandle`.

use std::pin::Pin;

use futures::Stream;
use proto::etcdserverpb as pb;
use proto::etcdserverpb::lease_server::Lease;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::header;
use super::status::*;
use crate::error::StoreError;
use crate::handle::StoreHandle;

/// etcd's `MaxLeaseTTL`.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Keep-alive responses buffered per stream; the stream waits for the client beyond this.
const KEEPALIVE_BUFFER: usize = 16;

pub struct LeaseService {
    pub handle: StoreHandle,
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

pub fn check_grant(r: &pb::LeaseGrantRequest) -> Result<(), Status> {
    if r.ttl > MAX_LEASE_TTL {
        return Err(Status::out_of_range(LEASE_TTL_TOO_LARGE));
    }
    Ok(())
}

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = request.into_inner();
        check_grant(&r)?;
        let (id, ttl) = self.handle.lease_grant(r.id, r.ttl).await.map_err(store_status)?;
        let h = self.handle.header();
        Ok(Response::new(pb::LeaseGrantResponse {
            header: header(h, h.revision),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let rev = self
            .handle
            .lease_revoke(request.into_inner().id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: header(self.handle.header(), rev),
        }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(KEEPALIVE_BUFFER);
        tokio::spawn(keep_alive_loop(self.handle.clone(), inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        let h = self.handle.header();
        let resp = match self.handle.lease_time_to_live(r.id, r.keys).await {
            Ok(t) => pb::LeaseTimeToLiveResponse {
                header: header(h, h.revision),
                id: t.id,
                ttl: t.ttl,
                granted_ttl: t.granted_ttl,
                keys: t.keys,
            },
            // etcd answers an unknown lease with TTL -1 rather than an error.
            Err(StoreError::LeaseNotFound { .. }) => pb::LeaseTimeToLiveResponse {
                header: header(h, h.revision),
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(store_status(e)),
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let ids = self.handle.lease_list().await.map_err(store_status)?;
        let h = self.handle.header();
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: header(h, h.revision),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}

/// Renews leases one request at a time until the client ends the stream or stops listening.
/// An unknown lease is answered with TTL 0 (as etcd); other errors end the stream.
async fn keep_alive_loop(
    handle: StoreHandle,
    mut inbound: Streaming<pb::LeaseKeepAliveRequest>,
    tx: mpsc::Sender<Result<pb::LeaseKeepAliveResponse, Status>>,
) {
    loop {
        let id = tokio::select! {
            _ = tx.closed() => return,
            m = inbound.message() => match m {
                Ok(Some(req)) => req.id,
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(%status, "lease keep-alive stream receive failed");
                    return;
                }
            },
        };
        let ttl = match handle.lease_keep_alive(id).await {
            Ok(ttl) => ttl,
            Err(StoreError::LeaseNotFound { .. }) => 0,
            Err(e) => {
                let _ = tx.send(Err(store_status(e))).await;
                return;
            }
        };
        let h = handle.header();
        let resp = pb::LeaseKeepAliveResponse {
            header: header(h, h.revision),
            id,
            ttl,
        };
        if tx.send(Ok(resp)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_ttl_limit() {
        assert!(check_grant(&pb::LeaseGrantRequest {
            ttl: MAX_LEASE_TTL,
            id: 0
        })
        .is_ok());
        let e = check_grant(&pb::LeaseGrantRequest {
            ttl: MAX_LEASE_TTL + 1,
            id: 0,
        })
        .expect_err("too large");
        assert_eq!((e.code(), e.message()), (tonic::Code::OutOfRange, LEASE_TTL_TOO_LARGE));
    }
}

//! etcd's Maintenance service over `StoreHandle`.
//!
//! Snapshot stream format, as etcd sends it and `etcdctl snapshot save` checks it: the data in
//! 32 KiB chunks (`remaining_bytes` counting down to 0), then one more message whose blob is
//! the SHA-256 of all the data. etcdctl refuses a file whose size is not 32 more than a multiple
//! of 512 (etcd's bbolt file always is), so the data is zero-padded to a multiple of 512 first;
//! the checksum covers the padded data. A skiff restore must therefore drop the 32-byte trailer
//! (optionally checking it) and tolerate trailing zero padding.

use std::pin::Pin;

use futures::Stream;
use proto::etcdserverpb as pb;
use proto::etcdserverpb::maintenance_server::Maintenance;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use super::convert::header;
use super::status::*;
use crate::handle::StoreHandle;

/// The etcd server version reported by Status. A plain release number: a suffix such as
/// `-skiff` would make it a semver pre-release, which sorts below 3.5.8 in clients' checks.
pub const ETCD_VERSION: &str = "3.5.8";

/// etcd's snapshot send buffer.
pub const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// etcdctl checks `size % 512 == 32` (data padded to sectors, plus the SHA-256).
const SNAPSHOT_ALIGN: usize = 512;

pub struct MaintenanceService {
    pub handle: StoreHandle,
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

impl MaintenanceService {
    fn header(&self) -> Option<pb::ResponseHeader> {
        let h = self.handle.header();
        header(h, h.revision)
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    async fn alarm(&self, request: Request<pb::AlarmRequest>) -> Result<Response<pb::AlarmResponse>, Status> {
        // skiff raises no alarms: GET lists none; ACTIVATE/DEACTIVATE are accepted and ignored.
        let _ = request.into_inner();
        Ok(Response::new(pb::AlarmResponse {
            header: self.header(),
            alarms: Vec::new(),
        }))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.handle.status().await.map_err(store_status)?;
        Ok(Response::new(pb::StatusResponse {
            header: self.header(),
            version: if s.version.is_empty() {
                ETCD_VERSION.to_string()
            } else {
                s.version
            },
            db_size: s.db_size,
            leader: s.leader,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: s.errors,
            db_size_in_use: s.db_size_in_use,
            is_learner: s.is_learner,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        // RocksDB compacts in the background; there is nothing to defragment.
        Ok(Response::new(pb::DefragmentResponse { header: self.header() }))
    }

    async fn hash(&self, _request: Request<pb::HashRequest>) -> Result<Response<pb::HashResponse>, Status> {
        let (hash, _, rev) = self.handle.hash_kv(0).await.map_err(store_status)?;
        Ok(Response::new(pb::HashResponse {
            header: header(self.handle.header(), rev),
            hash,
        }))
    }

    async fn hash_kv(&self, request: Request<pb::HashKvRequest>) -> Result<Response<pb::HashKvResponse>, Status> {
        let (hash, compact_revision, rev) = self
            .handle
            .hash_kv(request.into_inner().revision)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::HashKvResponse {
            header: header(self.handle.header(), rev),
            hash,
            compact_revision,
        }))
    }

    async fn snapshot(&self, _request: Request<pb::SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        let data = self.handle.snapshot_bytes().await.map_err(store_status)?;
        let chunks = SnapshotChunks::new(data, self.header());
        Ok(Response::new(Box::pin(futures::stream::iter(chunks.map(Ok)))))
    }

    async fn move_leader(
        &self,
        _request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: move leader is not supported by skiff",
        ))
    }
}

/// The snapshot's messages, produced lazily from the (padded) data.
pub struct SnapshotChunks {
    data: Vec<u8>,
    sent: usize,
    hasher: Option<Sha256>,
    header: Option<pb::ResponseHeader>,
}

impl SnapshotChunks {
    pub fn new(mut data: Vec<u8>, header: Option<pb::ResponseHeader>) -> Self {
        let padded = data.len().div_ceil(SNAPSHOT_ALIGN) * SNAPSHOT_ALIGN;
        data.resize(padded, 0);
        Self {
            data,
            sent: 0,
            hasher: Some(Sha256::new()),
            header,
        }
    }
}

impl Iterator for SnapshotChunks {
    type Item = pb::SnapshotResponse;

    fn next(&mut self) -> Option<pb::SnapshotResponse> {
        let hasher = self.hasher.as_mut()?;
        if self.sent < self.data.len() {
            let end = (self.sent + SNAPSHOT_CHUNK).min(self.data.len());
            let blob = self.data[self.sent..end].to_vec();
            hasher.update(&blob);
            self.sent = end;
            let remaining_bytes = (self.data.len() - end) as u64;
            return Some(pb::SnapshotResponse {
                header: self.header,
                remaining_bytes,
                blob,
                version: String::new(),
            });
        }
        let digest = self.hasher.take()?.finalize();
        Some(pb::SnapshotResponse {
            header: self.header,
            remaining_bytes: 0,
            blob: digest.to_vec(),
            version: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_padded_chunked_and_checksummed() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let msgs: Vec<_> = SnapshotChunks::new(data.clone(), None).collect();
        let total: usize = msgs.iter().map(|m| m.blob.len()).sum();
        assert_eq!(total % 512, 32, "etcdctl's hasChecksum");
        let body: Vec<u8> = msgs[..msgs.len() - 1].iter().flat_map(|m| m.blob.clone()).collect();
        assert_eq!(&body[..data.len()], &data[..]);
        assert!(body[data.len()..].iter().all(|b| *b == 0));
        assert_eq!(
            msgs.last().map(|m| m.blob.clone()),
            Some(Sha256::digest(&body).to_vec())
        );
        assert!(msgs[..msgs.len() - 1].iter().all(|m| m.blob.len() <= SNAPSHOT_CHUNK));
        let remaining: Vec<u64> = msgs.iter().map(|m| m.remaining_bytes).collect();
        assert_eq!(remaining.last(), Some(&0));
        assert_eq!(remaining[msgs.len() - 2], 0);
        assert_eq!(remaining[0], (body.len() - SNAPSHOT_CHUNK) as u64);
    }

    #[test]
    fn empty_snapshot_is_just_the_checksum() {
        let msgs: Vec<_> = SnapshotChunks::new(Vec::new(), None).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].blob.len(), 32);
    }
}

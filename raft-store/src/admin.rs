//! The operator's side of a running store (`skiff member ...`, `skiff snapshot save`): a client
//! of the etcd v3 Cluster and Maintenance services, so it works against any member, and its
//! results are what `etcdctl member list` and `etcdctl snapshot save` would give.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::etcdserverpb as pb;
use proto::etcdserverpb::cluster_client::ClusterClient;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};

use crate::loadgen::conn::uri;
use crate::node::read_snapshot_file;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A snapshot of a large store streams for a while; bounded anyway.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no endpoint given")]
    NoEndpoint,
    #[error("cannot reach any of {endpoints}: {last}")]
    Unreachable { endpoints: String, last: String },
    #[error("{endpoint}: {message}")]
    Call { endpoint: String, message: String },
    #[error("no member named or numbered {0:?} (see `skiff member list`)")]
    NoSuchMember(String),
    #[error("{path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("the snapshot received is damaged: {0}")]
    Damaged(String),
}

/// One member as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub id: u64,
    /// Empty until the member has started and published itself.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
    pub leader: bool,
}

impl MemberRow {
    fn from_pb(m: pb::Member, leader: u64) -> Self {
        Self {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            learner: m.is_learner,
            leader: m.id == leader,
        }
    }
}

/// What `save_snapshot` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    pub bytes: u64,
    /// The revision of the member that streamed it, when the snapshot started.
    pub revision: i64,
    pub endpoint: String,
}

/// A connection to one member: the first of the endpoints that answers.
pub struct Admin {
    channel: Channel,
    endpoint: String,
}

impl Admin {
    pub async fn connect(endpoints: &[String]) -> Result<Self, AdminError> {
        let mut last = String::new();
        for ep in endpoints {
            let attempt = async {
                Endpoint::from_shared(uri(ep))
                    .map_err(|e| e.to_string())?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(CALL_TIMEOUT)
                    .connect()
                    .await
                    .map_err(|e| format!("{ep}: {e}"))
            };
            match attempt.await {
                Ok(channel) => {
                    return Ok(Self {
                        channel,
                        endpoint: ep.clone(),
                    })
                }
                Err(e) => last = e,
            }
        }
        if endpoints.is_empty() {
            return Err(AdminError::NoEndpoint);
        }
        Err(AdminError::Unreachable {
            endpoints: endpoints.join(","),
            last,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn call_err(&self, s: tonic::Status) -> AdminError {
        AdminError::Call {
            endpoint: self.endpoint.clone(),
            message: s.message().to_string(),
        }
    }

    /// The member this endpoint believes leads (0 when none).
    async fn leader(&self) -> Result<u64, AdminError> {
        let r = MaintenanceClient::new(self.channel.clone())
            .status(pb::StatusRequest {})
            .await
            .map_err(|s| self.call_err(s))?;
        Ok(r.into_inner().leader)
    }

    pub async fn members(&self) -> Result<Vec<MemberRow>, AdminError> {
        let leader = self.leader().await?;
        let r = ClusterClient::new(self.channel.clone())
            .member_list(pb::MemberListRequest { linearizable: true })
            .await
            .map_err(|s| self.call_err(s))?;
        let mut rows: Vec<MemberRow> = r
            .into_inner()
            .members
            .into_iter()
            .map(|m| MemberRow::from_pb(m, leader))
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(rows)
    }

    /// A member by name, or by id in hex as `etcdctl member list` prints it.
    pub async fn find(&self, name_or_id: &str) -> Result<MemberRow, AdminError> {
        let rows = self.members().await?;
        let by_id = u64::from_str_radix(name_or_id, 16).ok();
        rows.into_iter()
            .find(|m| m.name == name_or_id || Some(m.id) == by_id)
            .ok_or_else(|| AdminError::NoSuchMember(name_or_id.to_string()))
    }

    /// Registers a member that is not started yet (it starts with `--join`).
    pub async fn add(&self, peer: &str, learner: bool) -> Result<MemberRow, AdminError> {
        let r = ClusterClient::new(self.channel.clone())
            .member_add(pb::MemberAddRequest {
                peer_ur_ls: vec![uri(peer)],
                is_learner: learner,
            })
            .await
            .map_err(|s| self.call_err(s))?;
        let m = r.into_inner().member.ok_or_else(|| AdminError::Call {
            endpoint: self.endpoint.clone(),
            message: "member add answered without the member".into(),
        })?;
        Ok(MemberRow::from_pb(m, 0))
    }

    pub async fn remove(&self, id: u64) -> Result<(), AdminError> {
        ClusterClient::new(self.channel.clone())
            .member_remove(pb::MemberRemoveRequest { id })
            .await
            .map_err(|s| self.call_err(s))?;
        Ok(())
    }

    pub async fn promote(&self, id: u64) -> Result<(), AdminError> {
        ClusterClient::new(self.channel.clone())
            .member_promote(pb::MemberPromoteRequest { id })
            .await
            .map_err(|s| self.call_err(s))?;
        Ok(())
    }

    /// Streams a snapshot into `path`: written to `<path>.part`, checked (digest and payload),
    /// fsynced, then renamed, so `path` is either absent or a whole, verified snapshot.
    pub async fn save_snapshot(&self, path: &Path) -> Result<SavedSnapshot, AdminError> {
        let mut req = tonic::Request::new(pb::SnapshotRequest {});
        req.set_timeout(SNAPSHOT_TIMEOUT);
        let mut stream = MaintenanceClient::new(self.channel.clone())
            .snapshot(req)
            .await
            .map_err(|s| self.call_err(s))?
            .into_inner();
        let mut data = Vec::new();
        let mut revision = 0;
        while let Some(msg) = stream.message().await.map_err(|s| self.call_err(s))? {
            if revision == 0 {
                revision = msg.header.map_or(0, |h| h.revision);
            }
            data.extend_from_slice(&msg.blob);
        }
        read_snapshot_file(&data).map_err(|e| AdminError::Damaged(e.to_string()))?;
        let file_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| AdminError::File { path: p, source }
        };
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        write_synced(&part, &data).map_err(file_err(&part))?;
        std::fs::rename(&part, path).map_err(file_err(path))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(file_err(dir))?;
        }
        Ok(SavedSnapshot {
            bytes: data.len() as u64,
            revision,
            endpoint: self.endpoint.clone(),
        })
    }
}

fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

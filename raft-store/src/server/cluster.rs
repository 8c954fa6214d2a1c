//! etcd's Cluster service over `StoreHandle`. Member IDs are u64 (etcdctl prints them in hex).

use proto::etcdserverpb as pb;
use proto::etcdserverpb::cluster_server::Cluster;
use tonic::{Request, Response, Status};

use super::convert::{header, member};
use super::status::*;
use crate::handle::StoreHandle;
use crate::handle_types::MemberInfo;

pub struct ClusterService {
    pub handle: StoreHandle,
}

impl ClusterService {
    async fn members(&self) -> Result<Vec<pb::Member>, Status> {
        Ok(self
            .handle
            .member_list()
            .await
            .map_err(store_status)?
            .into_iter()
            .map(member)
            .collect())
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        let h = self.handle.header();
        header(h, h.revision)
    }
}

/// etcd's URL check for member peer URLs: at least one, each `http(s)://host:port` without a
/// path.
pub fn check_peer_urls(urls: &[String]) -> Result<(), Status> {
    let ok = |u: &str| {
        let Some(rest) = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://")) else {
            return false;
        };
        let host_port = rest.strip_suffix('/').unwrap_or(rest);
        if host_port.contains('/') {
            return false;
        }
        match host_port.rsplit_once(':') {
            Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
            None => false,
        }
    };
    if urls.is_empty() || !urls.iter().all(|u| ok(u)) {
        return Err(invalid(MEMBER_BAD_URLS));
    }
    Ok(())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let r = request.into_inner();
        check_peer_urls(&r.peer_ur_ls)?;
        let added: MemberInfo = self
            .handle
            .member_add(r.peer_ur_ls, r.is_learner)
            .await
            .map_err(store_status)?;
        // The member is in; if the list cannot be read now, answer with the new member alone.
        let members = match self.members().await {
            Ok(m) => m,
            Err(status) => {
                tracing::warn!(%status, "member list after member add");
                vec![member(added.clone())]
            }
        };
        Ok(Response::new(pb::MemberAddResponse {
            header: self.header(),
            member: Some(member(added)),
            members,
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        self.handle
            .member_remove(request.into_inner().id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.header(),
            members: self.members().await?,
        }))
    }

    async fn member_update(
        &self,
        _request: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(
            "etcdserver: member update is not supported by skiff; remove the member and add it again",
        ))
    }

    async fn member_list(
        &self,
        _request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(pb::MemberListResponse {
            header: self.header(),
            members: self.members().await?,
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        self.handle
            .member_promote(request.into_inner().id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.header(),
            members: self.members().await?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls() {
        let v = |u: &[&str]| check_peer_urls(&u.iter().map(|s| s.to_string()).collect::<Vec<_>>()).is_ok();
        assert!(v(&["http://127.0.0.1:2380"]));
        assert!(v(&["https://m1.example:2380/", "http://[::1]:2380"]));
        assert!(!v(&[]));
        assert!(!v(&["127.0.0.1:2380"]));
        assert!(!v(&["http://127.0.0.1"]));
        assert!(!v(&["http://127.0.0.1:2380/path"]));
    }
}

//! Member configuration and the identity file (`<data-dir>/member.json`) that ties a data dir
//! to one member of one cluster, so a data dir of another cluster is refused at start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::NodeError;
use crate::raft::{member_id, MemberNode, NodeId};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_peer: String,
    pub listen_client: String,
    pub listen_metrics: Option<String>,
    pub advertise_peer: Option<String>,
    pub advertise_client: Option<String>,
    /// (name, peer host:port); empty means a one-member cluster of this member.
    pub initial_cluster: Vec<(String, String)>,
    /// A client address of a running member to join through.
    pub join: Option<String>,
    /// Take a snapshot (and allow purging the log) after this many applied entries.
    pub snapshot_count: u64,
    /// Entries kept in the log behind a snapshot so slightly lagging members catch up by log.
    pub snapshot_catchup_entries: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Failure tests' negative control only: fenced writes are applied whatever term appended
    /// them. Every member must be given the same value: it is not replicated, and members that
    /// disagree apply the same log differently.
    pub unsafe_no_fencing: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            data_dir: PathBuf::from("/var/lib/skiff/master"),
            listen_peer: "127.0.0.1:2380".into(),
            listen_client: "127.0.0.1:2379".into(),
            listen_metrics: None,
            advertise_peer: None,
            advertise_client: None,
            initial_cluster: Vec::new(),
            join: None,
            snapshot_count: 100_000,
            snapshot_catchup_entries: 5_000,
            heartbeat_ms: 100,
            election_timeout_ms: 1000,
            unsafe_no_fencing: false,
        }
    }
}

impl NodeConfig {
    pub fn advertise_peer(&self) -> String {
        self.advertise_peer.clone().unwrap_or_else(|| self.listen_peer.clone())
    }

    pub fn advertise_client(&self) -> String {
        self.advertise_client
            .clone()
            .unwrap_or_else(|| self.listen_client.clone())
    }

    /// Fills the defaults that depend on other fields and checks consistency.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("--name must not be empty".into());
        }
        if self.join.is_some() && !self.initial_cluster.is_empty() {
            return Err("--join and --initial-cluster exclude each other".into());
        }
        if !self.initial_cluster.is_empty() {
            match self.initial_cluster.iter().find(|(n, _)| *n == self.name) {
                None => {
                    return Err(format!(
                        "--initial-cluster does not list this member's --name {}",
                        self.name
                    ))
                }
                Some((_, addr)) if *addr != self.advertise_peer() => {
                    return Err(format!(
                        "--initial-cluster lists {} at {addr} but this member's peer address is {}",
                        self.name,
                        self.advertise_peer()
                    ))
                }
                Some(_) => {}
            }
            let mut names: Vec<_> = self.initial_cluster.iter().map(|(n, _)| n).collect();
            names.sort();
            names.dedup();
            if names.len() != self.initial_cluster.len() {
                return Err("--initial-cluster lists a name twice".into());
            }
        }
        if self.heartbeat_ms == 0 || self.election_timeout_ms < 3 * self.heartbeat_ms {
            return Err("election timeout must be at least 3 heartbeats".into());
        }
        Ok(())
    }

    /// The initial cluster with this member alone when none was given.
    pub fn effective_initial_cluster(&self) -> Vec<(String, String)> {
        if self.initial_cluster.is_empty() {
            vec![(self.name.clone(), self.advertise_peer())]
        } else {
            self.initial_cluster.clone()
        }
    }

    pub fn raft_config(&self) -> openraft::Config {
        openraft::Config {
            cluster_name: "skiff".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms * 2,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_count),
            max_in_snapshot_log_to_keep: self.snapshot_catchup_entries,
            snapshot_max_chunk_size: 4 * 1024 * 1024,
            max_payload_entries: 512,
            ..Default::default()
        }
    }
}

/// Cluster id of a cluster formed from `--initial-cluster`: a hash of its sorted member list,
/// so every initial member computes the same one.
pub fn initial_cluster_id(members: &[(String, String)]) -> u64 {
    let mut m: Vec<String> = members.iter().map(|(n, a)| format!("{n}={a}")).collect();
    m.sort();
    member_id(&m.join(","))
}

/// The membership a cluster starts with: each listed member by the id of its peer address, with
/// no client address yet (each member publishes its own once it runs, `publish_self`). Every
/// member computes the same map from the same list. A peer listed twice appears once.
pub(crate) fn initial_members(cluster: &[(String, String)]) -> BTreeMap<NodeId, MemberNode> {
    cluster
        .iter()
        .map(|(name, addr)| {
            let node = MemberNode {
                name: name.clone(),
                peer_addr: addr.clone(),
                client_addr: String::new(),
            };
            (member_id(addr), node)
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub member_id: NodeId,
    /// 0 until a joining member has been admitted.
    pub cluster_id: u64,
}

pub(super) fn load_or_create_identity(cfg: &NodeConfig) -> Result<Identity, NodeError> {
    let path = cfg.data_dir.join("member.json");
    let initial = cfg.effective_initial_cluster();
    let expected_cluster = if cfg.join.is_some() {
        0
    } else {
        initial_cluster_id(&initial)
    };
    let data_err = |reason: String| NodeError::DataDir {
        dir: cfg.data_dir.clone(),
        reason,
    };
    if path.exists() {
        let raw = std::fs::read(&path).map_err(|e| data_err(format!("reading {}: {e}", path.display())))?;
        let id: Identity = serde_json::from_slice(&raw)
            .map_err(|e| data_err(format!("{} is not a skiff member identity: {e}", path.display())))?;
        if id.name != cfg.name {
            return Err(data_err(format!(
                "belongs to member {:?}, not {:?}; use that member's --name or another --data-dir",
                id.name, cfg.name
            )));
        }
        if cfg.join.is_none()
            && !cfg.initial_cluster.is_empty()
            && id.cluster_id != 0
            && id.cluster_id != expected_cluster
        {
            return Err(data_err(format!(
                "belongs to cluster {:x}, but --initial-cluster describes cluster {:x}; refusing to mix clusters",
                id.cluster_id, expected_cluster
            )));
        }
        return Ok(id);
    }
    if std::fs::read_dir(cfg.data_dir.join("db"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        return Err(data_err(
            "has a store but no member.json; refusing to guess whose it is".into(),
        ));
    }
    let id = Identity {
        name: cfg.name.clone(),
        member_id: member_id(&cfg.advertise_peer()),
        cluster_id: expected_cluster,
    };
    save_identity(cfg, &id)?;
    Ok(id)
}

pub(crate) fn save_identity(cfg: &NodeConfig, id: &Identity) -> Result<(), NodeError> {
    let path = cfg.data_dir.join("member.json");
    let data_err = |reason: String| NodeError::DataDir {
        dir: cfg.data_dir.clone(),
        reason,
    };
    let body = serde_json::to_vec_pretty(id).map_err(|e| data_err(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(|e| data_err(format!("writing {}: {e}", tmp.display())))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| data_err(e.to_string()))?;
    std::fs::rename(&tmp, &path).map_err(|e| data_err(format!("writing {}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<(String, String)> {
        (1..=3)
            .map(|i| (format!("m{i}"), format!("127.0.0.{i}:2380")))
            .collect()
    }

    #[test]
    fn validate_names_the_problem() {
        let mut c = NodeConfig {
            name: "m1".into(),
            initial_cluster: three(),
            ..Default::default()
        };
        assert!(c.validate().is_ok());
        c.name = "m9".into();
        assert!(c.validate().unwrap_err().contains("does not list"));
        c.name = "m2".into();
        assert!(c.validate().unwrap_err().contains("peer address"));
        c.join = Some("127.0.0.1:2379".into());
        assert!(c.validate().unwrap_err().contains("exclude"));
    }

    #[test]
    fn cluster_id_ignores_order_and_identity_refuses_foreign_dirs() {
        let mut rev = three();
        rev.reverse();
        assert_eq!(initial_cluster_id(&three()), initial_cluster_id(&rev));
        let dir = tempfile::tempdir().expect("tempdir");
        let c = NodeConfig {
            name: "m1".into(),
            data_dir: dir.path().into(),
            initial_cluster: three(),
            ..Default::default()
        };
        let id = load_or_create_identity(&c).expect("create");
        assert_eq!(load_or_create_identity(&c).expect("reload"), id);
        let other = NodeConfig {
            name: "m2".into(),
            listen_peer: "127.0.0.2:2380".into(),
            ..c.clone()
        };
        assert!(load_or_create_identity(&other)
            .unwrap_err()
            .to_string()
            .contains("belongs to member"));
        let mut foreign = c.clone();
        foreign.initial_cluster = vec![("m1".into(), "127.0.0.1:2380".into())];
        assert!(load_or_create_identity(&foreign)
            .unwrap_err()
            .to_string()
            .contains("belongs to cluster"));
    }
}

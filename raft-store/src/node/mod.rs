//! One store member: opens the data directory, starts raft, serves the peer, client and metrics
//! ports, and runs the leader-side lease keeper.
//!
//! # Layout
//! - `config`: `NodeConfig` and the identity file that ties a data dir to one member and cluster.
//! - `leader_ops`: operations that must run on the leader, and forwarding them there.
//! - `peer`: the member-to-member gRPC service (raft RPCs, forwarded proposals, join).
//! - `lease_keeper`: lease expiry, decided by the leader and replicated as revokes.
//! - `read_batcher`: one read-index round serves every linearizable read waiting for it.
//! - `http`: `/metrics` and `/healthz`.
//! - `restore`: a new cluster's data dirs from a snapshot file (disaster recovery).

mod config;
mod http;
pub(crate) mod leader_ops;
mod lease_keeper;
mod peer;
mod read_batcher;
mod restore;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rocksdb::DB;
use tokio_util::sync::CancellationToken;

pub(crate) use config::save_identity;
pub use config::{Identity, NodeConfig};
pub use restore::{
    inspect_snapshot, read_snapshot_file, restore_snapshot, RestoreConfig, Restored, SnapshotFileError, SnapshotSummary,
};

use crate::error::StoreError;
use crate::handle::StoreHandle;
use crate::mvcc::RocksKv;
use crate::raft::db::{self, CF_SM};
use crate::raft::log_store::RocksLogStore;
use crate::raft::network::{GrpcNetwork, PeerPool};
use crate::raft::state_machine::{SmShared, StateMachine};
use crate::raft::{NodeId, Raft};

/// State shared by every part of a running member.
pub struct Inner {
    pub id: NodeId,
    pub name: String,
    /// 0 while a joining member waits to be admitted.
    pub cluster_id: AtomicU64,
    pub raft: Raft,
    pub sm: Arc<SmShared<RocksKv>>,
    pub pool: PeerPool,
    pub config: NodeConfig,
    pub db: Arc<DB>,
    /// Leader only: when each lease expires. Not replicated (as in etcd); a new leader starts
    /// every lease's clock afresh.
    pub lease_deadlines: Mutex<HashMap<i64, Instant>>,
    pub read_batcher: read_batcher::ReadBatcher,
}

/// A running member; dropping it does not stop it: cancel the token given to `start`.
pub struct Member {
    pub handle: StoreHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("data dir {dir}: {reason}")]
    DataDir { dir: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Member {
    /// Opens the data dir, starts raft and every listener. Returns once the ports are bound.
    pub async fn start(config: NodeConfig, shutdown: CancellationToken) -> Result<Member, NodeError> {
        config.validate().map_err(NodeError::Config)?;
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| NodeError::DataDir {
            dir: dir.clone(),
            reason: e.to_string(),
        })?;
        let db_dir = dir.join("db");
        let identity = config::load_or_create_identity(&config)?;
        let db = db::open(&db_dir).map_err(|e| NodeError::DataDir {
            dir: db_dir.clone(),
            reason: format!("cannot open the store (corrupted or from another program?): {e}"),
        })?;
        let log_store = RocksLogStore::new(db.clone());
        let fresh = log_store.is_fresh().map_err(|e| NodeError::DataDir {
            dir: db_dir.clone(),
            reason: e.to_string(),
        })?;
        let backend = RocksKv::new(db.clone(), CF_SM).map_err(|e| NodeError::DataDir {
            dir: db_dir.clone(),
            reason: e.to_string(),
        })?;
        let sm = StateMachine::open(backend, Some(dir.join("snapshot.bin"))).map_err(|e| NodeError::DataDir {
            dir: db_dir.clone(),
            reason: format!("cannot load the state machine (corrupted?): {e}"),
        })?;
        let shared = sm.shared.clone();
        shared.set_enforce_fences(!config.unsafe_no_fencing);
        if config.unsafe_no_fencing {
            tracing::warn!(
                "--unsafe-no-fencing: writes of deposed leaders' components are applied (a test's negative control)"
            );
        }
        let pool = PeerPool::default();
        let raft_config = Arc::new(
            config
                .raft_config()
                .validate()
                .map_err(|e| NodeError::Config(e.to_string()))?,
        );
        let raft = Raft::new(
            identity.member_id,
            raft_config,
            GrpcNetwork { pool: pool.clone() },
            log_store,
            sm,
        )
        .await
        .map_err(|e| NodeError::DataDir {
            dir: db_dir.clone(),
            reason: format!("raft state unreadable: {e}"),
        })?;

        let inner = Arc::new(Inner {
            id: identity.member_id,
            name: config.name.clone(),
            cluster_id: AtomicU64::new(identity.cluster_id),
            raft: raft.clone(),
            sm: shared.clone(),
            pool,
            config: config.clone(),
            db,
            lease_deadlines: Mutex::new(HashMap::new()),
            read_batcher: read_batcher::ReadBatcher::default(),
        });
        let handle = StoreHandle { inner: inner.clone() };
        let mut tasks = Vec::new();

        // Listeners first, so peers can reach us before we try to form or join the cluster.
        let peer_listener = bind(&config.listen_peer).await?;
        let client_listener = bind(&config.listen_client).await?;
        let metrics_listener = match &config.listen_metrics {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        tasks.push(tokio::spawn(peer::serve_peer(
            inner.clone(),
            peer_listener,
            shutdown.clone(),
        )));
        // Like etcd, serve clients once this member's attributes are in the membership (so a
        // client that sees it healthy also sees it in `member list`), or after a grace period.
        let published = CancellationToken::new();
        tasks.push(tokio::spawn(serve_client(
            handle.clone(),
            client_listener,
            published.clone(),
            shutdown.clone(),
        )));
        if let Some(l) = metrics_listener {
            tasks.push(tokio::spawn(http::serve(handle.clone(), l, shutdown.clone())));
        }
        tasks.push(tokio::spawn(shared.hub.clone().run(shutdown.clone())));
        tasks.push(tokio::spawn(lease_keeper::run(inner.clone(), shutdown.clone())));

        if fresh {
            match &config.join {
                None => {
                    // Identical on every initial member: each appends this as the same log
                    // entry (term 0, index 0), so its content must not differ.
                    let members = config::initial_members(&config.effective_initial_cluster());
                    // Every initial member initializes with the same config; openraft accepts the
                    // first and the others see a non-empty log and refuse harmlessly.
                    if let Err(e) = raft.initialize(members).await {
                        tracing::info!(error = %e, "initialize skipped");
                    }
                }
                Some(join) => {
                    tasks.push(tokio::spawn(leader_ops::join_cluster(
                        inner.clone(),
                        join.clone(),
                        shutdown.clone(),
                    )));
                }
            }
        }
        tasks.push(tokio::spawn(leader_ops::publish_self(
            inner.clone(),
            published,
            shutdown.clone(),
        )));
        tracing::info!(name = %config.name, id = format!("{:x}", inner.id), cluster = format!("{:x}", identity.cluster_id),
            peer = %config.listen_peer, client = %config.listen_client, fresh, "member started");
        Ok(Member { handle, tasks })
    }

    /// Waits for every task to end (after the shutdown token is cancelled), then stops raft.
    pub async fn wait(self) {
        let raft = self.handle.inner.raft.clone();
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        // Make everything applied durable before the process exits.
        if let Err(e) = self.handle.inner.db.flush_wal(true) {
            tracing::warn!(error = %e, "final WAL sync");
        }
    }
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen {
            addr: addr.to_string(),
            source,
        })
}

async fn serve_client(
    handle: StoreHandle,
    listener: tokio::net::TcpListener,
    published: CancellationToken,
    shutdown: CancellationToken,
) {
    tokio::select! {
        _ = published.cancelled() => {}
        _ = tokio::time::sleep(PUBLISH_GRACE) => tracing::warn!("serving clients before this member's attributes were published"),
        _ = shutdown.cancelled() => return,
    }
    // TCP_NODELAY: small gRPC replies must not wait for a delayed ACK (Nagle costs ~40 ms).
    let incoming = match tonic::transport::server::TcpIncoming::from_listener(listener, true, None) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "listener");
            return;
        }
    };
    let inner = handle.inner.clone();
    let router = crate::server::add_etcd_services(tonic::transport::Server::builder(), handle)
        .add_service(peer::peer_service(inner));
    if let Err(e) = router
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await
    {
        tracing::error!(error = %e, "client server stopped");
    }
}

/// How long the client port waits for the member to publish its attributes.
const PUBLISH_GRACE: Duration = Duration::from_secs(5);

/// How long a request may wait for a leader, a quorum or a forward.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

//! Starting the API server on a master: wait for the store, adopt the cluster CA (the first
//! master to get there creates it and shares it through the store), issue this master's serving
//! certificate and the admin kubeconfig, create the system namespaces and the bootstrap RBAC
//! policy, fill the RBAC cache, then serve HTTPS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use raft_store::StoreHandle;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::auth;
use crate::error::ApiError;
use crate::pki::{self, CaBundle};
use crate::registry;
use crate::storage::Storage;
use crate::tls;

/// How often quota usage is recomputed from the objects (gives back what deletes freed).
const QUOTA_RESYNC: Duration = Duration::from_secs(2);

/// How often namespaces are checked for their default service account.
const NAMESPACE_DEFAULTS_PASS: Duration = Duration::from_secs(5);

/// How often CSRs are looked at for approval and signing.
const CSR_PASS: Duration = Duration::from_secs(1);

/// Store key of the cluster CA.
pub const CA_KEY: &str = "/registry/skiff/pki/ca";

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// host:port to listen on.
    pub listen: String,
    /// host:port clients use (defaults to `listen`).
    pub advertise: String,
    /// The master's data dir; PKI files go to `<data_dir>/pki`.
    pub data_dir: PathBuf,
    /// kube-apiserver `--token-auth-file` format.
    pub token_file: Option<PathBuf>,
    /// Extra names or IPs for the serving certificate.
    pub sans: Vec<String>,
    /// Audit log file (JSON lines), if any.
    pub audit_log: Option<PathBuf>,
    /// kube-apiserver audit policy (YAML); everything at Metadata when unset.
    pub audit_policy: Option<PathBuf>,
    /// The controllers run beside this API server (on the leader) with these settings.
    pub controllers: crate::controllers::Settings,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("the store was not ready after {0:?}: {1}")]
    StoreNotReady(Duration, String),
    #[error("cluster CA: {0}")]
    Pki(String),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("token file: {0}")]
    Tokens(String),
    #[error("audit: {0}")]
    Audit(String),
    #[error("scheduler configuration: {0}")]
    Scheduler(String),
}

#[derive(Serialize, Deserialize)]
struct StoredCa {
    cert_pem: String,
    key_pem: String,
}

/// Paths of the PKI files of a master.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

fn write_file(path: &Path, data: &str, private: bool) -> Result<(), ServerError> {
    let werr = |source| ServerError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(werr)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(werr)?;
    }
    std::fs::rename(&tmp, path).map_err(werr)
}

/// The cluster CA from the store, creating it if this master is the first.
async fn adopt_ca(storage: &Storage) -> Result<CaBundle, ServerError> {
    let read = |raw: Vec<u8>| -> Result<CaBundle, ServerError> {
        let s: StoredCa =
            serde_json::from_slice(&raw).map_err(|e| ServerError::Pki(format!("stored CA unreadable: {e}")))?;
        Ok(CaBundle {
            cert_pem: s.cert_pem,
            key_pem: s.key_pem,
        })
    };
    if let Some(raw) = storage
        .get_raw(CA_KEY)
        .await
        .map_err(|e| ServerError::Pki(e.to_string()))?
    {
        return read(raw);
    }
    let ca = CaBundle::generate("skiff-ca").map_err(|e| ServerError::Pki(e.to_string()))?;
    let value = serde_json::to_vec(&StoredCa {
        cert_pem: ca.cert_pem.clone(),
        key_pem: ca.key_pem.clone(),
    })
    .map_err(|e| ServerError::Pki(e.to_string()))?;
    storage
        .put_if_absent(CA_KEY, value)
        .await
        .map_err(|e| ServerError::Pki(e.to_string()))?;
    // Another master may have won the race: use whatever is stored.
    let raw = storage
        .get_raw(CA_KEY)
        .await
        .map_err(|e| ServerError::Pki(e.to_string()))?
        .ok_or_else(|| ServerError::Pki("CA vanished after it was stored".into()))?;
    read(raw)
}

/// Waits until the store answers a linearizable read (it has a leader and a quorum). No
/// deadline: a master started before its peers keeps waiting for them, as its store does.
async fn wait_for_store(storage: &Storage, shutdown: &CancellationToken) -> Result<(), ServerError> {
    let started = tokio::time::Instant::now();
    let mut last_log = started;
    loop {
        match storage.get_raw(CA_KEY).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                if last_log.elapsed() >= Duration::from_secs(10) {
                    tracing::warn!(waited = ?started.elapsed(), error = %e, "API server waiting for the store (no quorum yet?)");
                    last_log = tokio::time::Instant::now();
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Err(ServerError::StoreNotReady(started.elapsed(), "shutting down".into())),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Creates `obj` unless an object of that name exists (whoever created it, a peer master or an
/// operator, wins: bootstrap objects are never overwritten).
async fn ensure(storage: &Storage, res: &'static registry::Resource, mut obj: Value) -> Result<(), ApiError> {
    let name = crate::meta::name(&obj).unwrap_or_default().to_string();
    if storage.get(res, None, &name, false).await?.is_some() {
        return Ok(());
    }
    crate::meta::prepare_create(&mut obj, res, None)?;
    crate::defaults::apply(res, &mut obj, true);
    match storage.create(res, None, &name, &obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The system namespaces (each with its default service account and root CA configmap) and
/// Kubernetes' bootstrap RBAC policy.
async fn bootstrap(storage: &Storage, ca_pem: &str) -> Result<(), ApiError> {
    for ns in registry::SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ensure(storage, registry::namespaces(), obj).await?;
        crate::serviceaccount::ensure_namespace_defaults(storage, ns, ca_pem).await?;
    }
    let rbac = |plural| {
        registry::lookup("rbac.authorization.k8s.io", "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
    };
    let (roles, bindings) = (rbac("clusterroles")?, rbac("clusterrolebindings")?);
    for obj in auth::bootstrap::cluster_roles() {
        ensure(storage, roles, obj).await?;
    }
    for obj in auth::bootstrap::cluster_role_bindings() {
        ensure(storage, bindings, obj).await?;
    }
    // kubeadm's binding that lets bootstrap tokens ask for node certificates.
    let node_bootstrap = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "skiff:node-bootstrapper"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": crate::csr::BOOTSTRAPPERS_GROUP}],
    });
    ensure(storage, bindings, node_bootstrap).await?;
    let classes = registry::lookup("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or_else(|| ApiError::internal("priorityclasses are not served"))?;
    for obj in crate::admission::priority::system_classes() {
        ensure(storage, classes, obj).await?;
    }
    Ok(())
}

fn host_of(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => addr.to_string(),
    }
}

/// Everything up to serving; returns the task serving HTTPS.
/// Starts the leader-only components (the scheduler) on this master: they run whenever it
/// leads the Raft group, whether or not it serves the API. The scheduler configuration is read
/// and checked here, before anything runs.
pub fn start_leader_components(
    store: StoreHandle,
    scheduler_config: Option<&Path>,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let profiles = match scheduler_config {
        None => vec![crate::scheduler::framework::Profile::default()],
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ServerError::Scheduler(format!("reading {}: {e}", p.display())))?;
            crate::scheduler::config::load(&text)
                .map_err(|e| ServerError::Scheduler(format!("{}: {e}", p.display())))?
        }
    };
    Ok(tokio::spawn(crate::leader::run(
        Storage::new(store),
        vec![crate::scheduler::component(profiles)],
        shutdown,
    )))
}

pub async fn start(
    store: StoreHandle,
    cfg: ApiConfig,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let storage = Storage::new(store);
    wait_for_store(&storage, &shutdown).await?;
    let ca = adopt_ca(&storage).await?;
    let mut sans = vec![host_of(&cfg.listen), host_of(&cfg.advertise)];
    sans.extend(cfg.sans.iter().cloned());
    sans.sort();
    sans.dedup();
    let (cert, key) =
        pki::issue_server_cert(&ca, "skiff-apiserver", &sans).map_err(|e| ServerError::Pki(e.to_string()))?;
    let dir = pki_dir(&cfg.data_dir);
    write_file(&dir.join("ca.crt"), &ca.cert_pem, false)?;
    write_file(&dir.join("ca.key"), &ca.key_pem, true)?;
    write_file(&dir.join("apiserver.crt"), &cert, false)?;
    write_file(&dir.join("apiserver.key"), &key, true)?;
    let (acert, akey) = pki::issue_client_cert(&ca, "admin", &["system:masters".to_string()])
        .map_err(|e| ServerError::Pki(e.to_string()))?;
    let kubeconfig = pki::kubeconfig(
        "skiff",
        &format!("https://{}", cfg.advertise),
        &ca.cert_pem,
        "admin",
        &acert,
        &akey,
    );
    write_file(&cfg.data_dir.join("admin.kubeconfig"), &kubeconfig, true)?;

    let rbac = auth::Rbac::start(&storage, &shutdown);
    let admission = crate::admission::Admission::start(&storage, &shutdown);
    tokio::spawn(crate::csr::run(storage.clone(), ca.clone(), CSR_PASS, shutdown.clone()));
    tokio::spawn(crate::admission::run_quota_resync(
        storage.clone(),
        QUOTA_RESYNC,
        shutdown.clone(),
    ));
    while let Err(e) = bootstrap(&storage, &ca.cert_pem).await {
        // Retryable (an election, a lost quorum): keep trying until shutdown.
        tracing::warn!(error = %e, "creating the system namespaces and RBAC policy; retrying");
        tokio::select! {
            _ = shutdown.cancelled() => return Err(ServerError::StoreNotReady(Duration::ZERO, "shutting down".into())),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }

    tokio::spawn(crate::master_endpoints::run(
        storage.clone(),
        cfg.advertise.clone(),
        shutdown.clone(),
    ));
    let sa_key = Arc::new(
        crate::serviceaccount::adopt_key(&storage)
            .await
            .map_err(|e| ServerError::Pki(format!("service account key: {e}")))?,
    );
    let tokens = match &cfg.token_file {
        Some(p) => tls::TokenFile::load(p).map_err(|e| ServerError::Tokens(e.to_string()))?,
        None => tls::TokenFile::default(),
    }
    .with_service_accounts(sa_key.clone());
    let tls_config = tls::server_config(&ca.cert_pem, &cert, &key).map_err(|e| ServerError::Pki(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen.clone(),
            source,
        })?;
    // Serve only once the RBAC cache holds the policy: until then every request would be a 403.
    loop {
        let rev = storage.revision();
        if rbac.wait_for(rev, Duration::from_secs(10)).await && admission.wait_for(rev, Duration::from_secs(10)).await {
            break;
        }
        if shutdown.is_cancelled() {
            return Err(ServerError::StoreNotReady(Duration::ZERO, "shutting down".into()));
        }
        tracing::warn!("API server waiting for the RBAC and admission caches");
    }
    let audit = match &cfg.audit_log {
        None => None,
        Some(path) => {
            let policy = match &cfg.audit_policy {
                None => crate::audit::Policy::metadata(),
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| ServerError::Audit(format!("reading {}: {e}", p.display())))?;
                    crate::audit::Policy::parse(&text)
                        .map_err(|e| ServerError::Audit(format!("policy {}: {e}", p.display())))?
                }
            };
            Some(Arc::new(
                crate::audit::AuditLog::open(path, policy, shutdown.clone())
                    .await
                    .map_err(|e| ServerError::Audit(format!("opening {}: {e}", path.display())))?,
            ))
        }
    };
    let kubelet = Arc::new(crate::kubelet::KubeletClient::new(&ca).map_err(|e| ServerError::Pki(e.to_string()))?);
    let state = Arc::new(ApiState {
        kubelet,
        audit,
        authz: Arc::new(auth::Authorizer { rbac }),
        admission: Arc::new(admission),
        sa_key,
        ca_pem: ca.cert_pem.clone(),
        storage,
        advertise: cfg.advertise.clone(),
        metrics: Default::default(),
        shutdown: shutdown.clone(),
    });
    tokio::spawn(run_namespace_defaults(state.clone(), shutdown.clone()));
    // The controllers write through the API pipeline, so they run where the API does; they
    // follow this master's leadership on their own, fenced like the scheduler.
    tokio::spawn(crate::leader::run(
        state.storage.clone(),
        vec![crate::controllers::component(state.clone(), cfg.controllers.clone())],
        shutdown.clone(),
    ));

    let app = api::router(state);
    tracing::info!(listen = %cfg.listen, "API server serving");
    Ok(tokio::spawn(tls::serve(
        listener,
        tls_config,
        app,
        Arc::new(tokens),
        shutdown,
    )))
}

/// Gives every namespace its `default` service account and `kube-root-ca.crt` when it lacks them
/// (Kubernetes' service account and root CA publisher controllers). Idempotent creates, so every
/// master may run it.
async fn run_namespace_defaults(state: Arc<ApiState>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(NAMESPACE_DEFAULTS_PASS) => {}
        }
        for ns in state.admission.namespaces_without_default_account() {
            if let Err(e) = crate::serviceaccount::ensure_namespace_defaults(&state.storage, &ns, &state.ca_pem).await {
                tracing::debug!(namespace = %ns, error = %e, "namespace defaults; retrying later");
            }
        }
    }
}

/// `skiff kubeconfig`: a kubeconfig for `user` in `groups`, signed by the CA in `data_dir`.
pub fn kubeconfig_for(data_dir: &Path, server: &str, user: &str, groups: &[String]) -> Result<String, ServerError> {
    let dir = pki_dir(data_dir);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            ServerError::Pki(format!(
                "{}: {e} (has a master with --listen-api run on this data dir?)",
                dir.join(name).display()
            ))
        })
    };
    let ca = CaBundle {
        cert_pem: read("ca.crt")?,
        key_pem: read("ca.key")?,
    };
    let (cert, key) = pki::issue_client_cert(&ca, user, groups).map_err(|e| ServerError::Pki(e.to_string()))?;
    Ok(pki::kubeconfig("skiff", server, &ca.cert_pem, user, &cert, &key))
}

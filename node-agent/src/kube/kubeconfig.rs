//! The parts of a kubeconfig the agent needs: the current context's servers, the cluster CA and
//! the user's client certificate or token (inline `-data` fields or file paths).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::KubeError;

#[derive(Debug, Clone)]
pub struct Kubeconfig {
    pub server: String,
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key, PEM, concatenated as reqwest wants them.
    pub identity_pem: Option<Vec<u8>>,
    pub token: Option<String>,
    pub insecure: bool,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default, rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(default, rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(default, rename = "certificate-authority")]
    ca_file: Option<PathBuf>,
    #[serde(default, rename = "insecure-skip-tls-verify")]
    insecure: bool,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default, rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(default, rename = "client-key-data")]
    key_data: Option<String>,
    #[serde(default, rename = "client-certificate")]
    cert_file: Option<PathBuf>,
    #[serde(default, rename = "client-key")]
    key_file: Option<PathBuf>,
    #[serde(default)]
    token: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
}

impl Kubeconfig {
    pub fn load(path: &Path) -> Result<Kubeconfig, KubeError> {
        let fail = |reason: String| KubeError::Kubeconfig {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let raw: Raw = serde_yaml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let ctx = match &raw.current_context {
            Some(name) => raw.contexts.iter().find(|c| &c.name == name).map(|c| &c.context),
            None => raw.contexts.first().map(|c| &c.context),
        };
        let cluster = match ctx {
            Some(c) => raw.clusters.iter().find(|x| x.name == c.cluster),
            None => raw.clusters.first(),
        }
        .map(|c| &c.cluster)
        .ok_or_else(|| fail("no cluster for the current context".into()))?;
        let user = match ctx.and_then(|c| c.user.as_ref()) {
            Some(u) => raw.users.iter().find(|x| &x.name == u).map(|u| &u.user),
            None => raw.users.first().map(|u| &u.user),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let read = |data: &Option<String>, file: &Option<PathBuf>, what: &str| -> Result<Option<Vec<u8>>, KubeError> {
            if let Some(d) = data {
                return base64::engine::general_purpose::STANDARD
                    .decode(d.trim())
                    .map(Some)
                    .map_err(|e| fail(format!("{what}: {e}")));
            }
            if let Some(f) = file {
                return std::fs::read(dir.join(f))
                    .map(Some)
                    .map_err(|e| fail(format!("{what} {}: {e}", f.display())));
            }
            Ok(None)
        };
        let ca_pem = read(&cluster.ca_data, &cluster.ca_file, "certificate-authority")?;
        let (mut identity_pem, mut token) = (None, None);
        if let Some(u) = user {
            let cert = read(&u.cert_data, &u.cert_file, "client-certificate")?;
            let key = read(&u.key_data, &u.key_file, "client-key")?;
            if let (Some(mut c), Some(k)) = (cert, key) {
                c.push(b'\n');
                c.extend_from_slice(&k);
                identity_pem = Some(c);
            }
            token = u.token.clone();
        }
        Ok(Kubeconfig {
            server: cluster.server.trim_end_matches('/').to_string(),
            ca_pem,
            identity_pem,
            token,
            insecure: cluster.insecure,
        })
    }
}

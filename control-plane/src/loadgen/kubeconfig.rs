//! The credentials of a kubeconfig's current context: server URL, CA, and a client
//! certificate and key (inline `*-data` in base64, or file paths relative to the kubeconfig)
//! or a bearer token.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;

use super::error::LoadgenError;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub server: String,
    pub ca_pem: Vec<u8>,
    /// Client certificate chain and private key, PEM.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print keys or tokens.
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("client_cert", &self.client_cert.is_some())
            .field("token", &self.token.is_some())
            .finish()
    }
}

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    current_context: String,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<String>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: Option<String>,
    client_certificate: Option<String>,
    client_key_data: Option<String>,
    client_key: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: String,
}

/// Reads and parses the kubeconfig at `path`.
pub fn load(path: &Path) -> Result<Credentials, LoadgenError> {
    let err = |reason: String| LoadgenError::Kubeconfig {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(err)
}

/// Parses a kubeconfig; relative file references are resolved against `base`.
pub fn parse(yaml: &str, base: &Path) -> Result<Credentials, String> {
    let kc: Kubeconfig = serde_yaml::from_str(yaml).map_err(|e| format!("not a kubeconfig: {e}"))?;
    let context = match (kc.current_context.as_str(), kc.contexts.as_slice()) {
        ("", [only]) => only,
        ("", _) => return Err("no current-context".into()),
        (name, all) => all
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("current-context {name:?} is not among the contexts"))?,
    };
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.context.cluster)
        .map(|c| &c.cluster)
        .ok_or_else(|| format!("cluster {:?} not found", context.context.cluster))?;
    let no_user = User::default();
    let user = kc
        .users
        .iter()
        .find(|u| u.name == context.context.user)
        .map(|u| &u.user)
        .unwrap_or(&no_user);
    let ca_pem = material(
        "certificate-authority",
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
        base,
    )?
    .ok_or("the cluster has no certificate-authority(-data)")?;
    let cert = material(
        "client-certificate",
        &user.client_certificate_data,
        &user.client_certificate,
        base,
    )?;
    let key = material("client-key", &user.client_key_data, &user.client_key, base)?;
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("the user has a client certificate without a key, or a key without one".into()),
    };
    let token = user.token.clone().filter(|t| !t.is_empty());
    if client_cert.is_none() && token.is_none() {
        return Err(format!(
            "user {:?} has neither a client certificate nor a token",
            context.context.user
        ));
    }
    Ok(Credentials {
        server: cluster.server.clone(),
        ca_pem,
        client_cert,
        token,
    })
}

/// PEM from a base64 `*-data` field, else from the file a path field names.
fn material(field: &str, data: &Option<String>, file: &Option<String>, base: &Path) -> Result<Option<Vec<u8>>, String> {
    if let Some(d) = data.as_deref().filter(|d| !d.is_empty()) {
        let compact: String = d.chars().filter(|c| !c.is_whitespace()).collect();
        return BASE64
            .decode(compact)
            .map(Some)
            .map_err(|e| format!("{field}-data: not base64: {e}"));
    }
    match file.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => std::fs::read(base.join(f))
            .map(Some)
            .map_err(|e| format!("{field} {f:?}: {e}")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `skiff kubeconfig` prints (see `pki::kubeconfig`).
    fn skiff_kubeconfig(ca: &str, cert: &str, key: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: \"skiff\"\n  cluster:\n    server: \"https://127.0.0.1:6443\"\n    certificate-authority-data: {}\nusers:\n- name: \"admin\"\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: \"admin@skiff\"\n  context:\n    cluster: \"skiff\"\n    user: \"admin\"\ncurrent-context: \"admin@skiff\"\npreferences: {{}}\n",
            BASE64.encode(ca),
            BASE64.encode(cert),
            BASE64.encode(key)
        )
    }

    #[test]
    fn reads_inline_certificates_of_the_current_context() {
        let c = parse(&skiff_kubeconfig("CA PEM", "CERT PEM", "KEY PEM"), Path::new(".")).expect("parse");
        assert_eq!(c.server, "https://127.0.0.1:6443");
        assert_eq!(c.ca_pem, b"CA PEM");
        assert_eq!(c.client_cert, Some((b"CERT PEM".to_vec(), b"KEY PEM".to_vec())));
        assert_eq!(c.token, None);
        assert!(!format!("{c:?}").contains("KEY"), "keys are not printed");
    }

    #[test]
    fn reads_files_relative_to_the_kubeconfig_and_tokens() {
        let dir = std::env::temp_dir().join(format!("skiff-loadgen-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("ca.crt"), "FILE CA").expect("write");
        let yaml = "clusters:\n- name: c\n  cluster:\n    server: https://h:6443\n    certificate-authority: ca.crt\nusers:\n- name: u\n  user:\n    token: s3cret\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n";
        let c = parse(yaml, &dir).expect("parse");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(c.ca_pem, b"FILE CA");
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert_eq!(c.client_cert, None);
    }

    #[test]
    fn explains_what_is_wrong() {
        let cases = [
            ("not: [yaml", "not a kubeconfig"),
            ("contexts: []\nclusters: []\n", "no current-context"),
            (
                "current-context: nope\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n",
                "not among the contexts",
            ),
            (
                "contexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://h', certificate-authority-data: '!!'}\n",
                "not base64",
            ),
            (
                "contexts:\n- name: x\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://h', certificate-authority-data: 'QQ=='}\n",
                "neither a client certificate nor a token",
            ),
        ];
        for (yaml, want) in cases {
            let e = parse(yaml, Path::new(".")).expect_err(yaml);
            assert!(e.contains(want), "{yaml:?}: {e}");
        }
    }
}

//! Image store tests against a small hand-written registry on loopback:
//! bearer and basic authentication, platform choice from an index, digest
//! verification, shared layers and garbage collection, concurrent pulls.
//! The server speaks just enough HTTP/1.1 (one request per connection) and
//! logs every request so tests can assert what the client sent.

// Fixture helpers outside #[test] fns: a failure there should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use skiff_node_agent::image::{ImageError, ImageStore, Progress, ProgressState, PullOptions, Reference};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const TOKEN: &str = "tok-123";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[derive(Clone, Copy, PartialEq)]
enum AuthMode {
    Anonymous,
    /// Token realm on the same server; it wants these basic credentials.
    Bearer,
    Basic,
}

#[derive(Default)]
struct State {
    /// path -> (content type, body)
    routes: HashMap<String, (String, Vec<u8>)>,
    /// (path, Authorization header) of every request, in order.
    log: Vec<(String, String)>,
}

struct FakeRegistry {
    addr: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

impl FakeRegistry {
    async fn start(mode: AuthMode) -> Result<FakeRegistry> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let (st, a) = (state.clone(), addr.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (st, a) = (st.clone(), a.clone());
                tokio::spawn(async move {
                    let _ = serve_one(sock, st, mode, &a).await;
                });
            }
        });
        Ok(FakeRegistry { addr, state, task })
    }

    fn route(&self, path: &str, content_type: &str, body: Vec<u8>) {
        let mut st = self.state.lock().unwrap();
        st.routes.insert(path.to_string(), (content_type.to_string(), body));
    }

    fn log(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().log.clone()
    }

    fn count(&self, path_part: &str) -> usize {
        self.log().iter().filter(|(p, _)| p.contains(path_part)).count()
    }

    /// Serves `image` as `repo:tag` (and by digest).
    fn serve(&self, repo: &str, tag: &str, image: &TestImage) {
        let mt = "application/vnd.oci.image.manifest.v1+json";
        self.route(&format!("/v2/{repo}/manifests/{tag}"), mt, image.manifest.clone());
        self.route(
            &format!("/v2/{repo}/manifests/{}", sha(&image.manifest)),
            mt,
            image.manifest.clone(),
        );
        self.route(
            &format!("/v2/{repo}/blobs/{}", sha(&image.config)),
            "application/octet-stream",
            image.config.clone(),
        );
        for layer in &image.layers {
            self.route(
                &format!("/v2/{repo}/blobs/{}", sha(layer)),
                "application/octet-stream",
                layer.clone(),
            );
        }
    }
}

async fn serve_one(sock: tokio::net::TcpStream, st: Arc<Mutex<State>>, mode: AuthMode, addr: &str) -> Result<()> {
    let mut reader = BufReader::new(sock);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = v.trim().to_string();
            }
        }
    }
    st.lock().unwrap().log.push((path.clone(), auth.clone()));
    let (path_only, _) = path.split_once('?').unwrap_or((&path, ""));
    let (status, headers, body): (&str, Vec<String>, Vec<u8>) = if path_only == "/token" {
        if auth == basic("alice", "secret") {
            ("200 OK", vec![], format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes())
        } else {
            ("401 Unauthorized", vec![], b"{}".to_vec())
        }
    } else {
        let authorized = match mode {
            AuthMode::Anonymous => true,
            AuthMode::Bearer => auth == format!("Bearer {TOKEN}"),
            AuthMode::Basic => auth == basic("alice", "secret"),
        };
        let route = st.lock().unwrap().routes.get(path_only).cloned();
        match (authorized, route) {
            (false, _) => {
                let challenge = match mode {
                    AuthMode::Bearer => format!(
                        r#"WWW-Authenticate: Bearer realm="http://{addr}/token",service="fake",scope="repository:test/img:pull""#
                    ),
                    _ => r#"WWW-Authenticate: Basic realm="fake""#.to_string(),
                };
                ("401 Unauthorized", vec![challenge], b"{}".to_vec())
            }
            (true, Some((ct, body))) => (
                "200 OK",
                vec![
                    format!("Content-Type: {ct}"),
                    format!("Docker-Content-Digest: {}", sha(&body)),
                ],
                body,
            ),
            (true, None) => (
                "404 Not Found",
                vec![],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.to_vec(),
            ),
        }
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        resp.push_str(&h);
        resp.push_str("\r\n");
    }
    resp.push_str("\r\n");
    let mut sock = reader.into_inner();
    sock.write_all(resp.as_bytes()).await?;
    sock.write_all(&body).await?;
    sock.shutdown().await?;
    Ok(())
}

/// An image built in memory: one gzipped layer per file list.
struct TestImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
}

fn layer_tar(files: &[(&str, &str)]) -> Result<(Vec<u8>, String)> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, content.as_bytes())?;
    }
    let tar = b.into_inner()?;
    let diff_id = sha(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar)?;
    Ok((gz.finish()?, diff_id))
}

fn test_image(layers: &[&[(&str, &str)]], cmd: &str) -> Result<TestImage> {
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let (gz, diff) = layer_tar(files)?;
        blobs.push(gz);
        diff_ids.push(format!("\"{diff}\""));
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["{cmd}"],"Env":["A=1"]}},
            "rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes();
    let layer_descs: Vec<String> = blobs
        .iter()
        .map(|b| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}"#,
                sha(b),
                b.len()
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},
            "layers":[{}]}}"#,
        sha(&config),
        config.len(),
        layer_descs.join(",")
    )
    .into_bytes();
    Ok(TestImage {
        manifest,
        config,
        layers: blobs,
    })
}

fn simple_image() -> Result<TestImage> {
    test_image(&[&[("hello.txt", "hello")]], "/hello")
}

fn creds() -> PullOptions {
    PullOptions {
        auth: Some(skiff_node_agent::image::Credentials {
            username: "alice".into(),
            password: "secret".into(),
        }),
        ..Default::default()
    }
}

fn reference(reg: &FakeRegistry, rest: &str) -> Reference {
    Reference::parse(&format!("{}/{rest}", reg.addr)).unwrap()
}

fn layer_dirs(root: &Path) -> usize {
    std::fs::read_dir(root.join("layers")).unwrap().count()
}

#[tokio::test]
async fn bearer_token_is_fetched_with_credentials_and_used() -> Result<()> {
    let reg = FakeRegistry::start(AuthMode::Bearer).await?;
    let image = simple_image()?;
    reg.serve("test/img", "1", &image);
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;
    let pulled = store.pull(&reference(&reg, "test/img:1"), &creds()).await?;
    assert_eq!(std::fs::read_to_string(pulled.layers[0].join("hello.txt"))?, "hello");
    assert_eq!(pulled.config.cmd, vec!["/hello"]);
    assert_eq!(pulled.digest, sha(&image.manifest));

    let log = reg.log();
    let token_requests: Vec<_> = log.iter().filter(|(p, _)| p.starts_with("/token")).collect();
    assert_eq!(token_requests.len(), 1, "one token for the whole pull: {log:?}");
    let (token_path, token_auth) = token_requests[0];
    assert_eq!(token_auth, &basic("alice", "secret"), "realm gets the credentials");
    assert!(token_path.contains("service=fake"), "{token_path}");
    assert!(
        token_path.contains("scope=repository%3Atest%2Fimg%3Apull"),
        "{token_path}"
    );
    // Everything after the first challenge carries the token.
    let after: Vec<_> = log.iter().skip(2).filter(|(p, _)| p.starts_with("/v2/")).collect();
    assert!(after.len() >= 3, "manifest, config and layer: {log:?}");
    assert!(after.iter().all(|(_, a)| a == &format!("Bearer {TOKEN}")), "{log:?}");
    Ok(())
}

#[tokio::test]
async fn rejected_credentials_and_basic_auth() -> Result<()> {
    let reg = FakeRegistry::start(AuthMode::Bearer).await?;
    reg.serve("test/img", "1", &simple_image()?);
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;
    let err = store
        .pull(&reference(&reg, "test/img:1"), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.addr), "names the registry: {err}");

    let basic_reg = FakeRegistry::start(AuthMode::Basic).await?;
    basic_reg.serve("test/img", "1", &simple_image()?);
    let r = reference(&basic_reg, "test/img:1");
    let err = store.pull(&r, &PullOptions::default()).await.unwrap_err();
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    let pulled = store.pull(&r, &creds()).await?;
    assert_eq!(pulled.layers.len(), 1);
    assert!(basic_reg
        .log()
        .iter()
        .any(|(p, a)| p.contains("/blobs/") && a == &basic("alice", "secret")));
    Ok(())
}

#[tokio::test]
async fn index_resolves_to_this_platform_and_digest_lookup_works() -> Result<()> {
    let reg = FakeRegistry::start(AuthMode::Anonymous).await?;
    let image = simple_image()?;
    reg.serve("test/multi", "ignored", &image);
    let other = format!("sha256:{}", "e".repeat(64));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
           {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{other}","size":10,
             "platform":{{"os":"linux","architecture":"arm64"}}}},
           {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},
             "platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
        sha(&image.manifest),
        image.manifest.len()
    )
    .into_bytes();
    let index_digest = sha(&index);
    reg.route(
        "/v2/test/multi/manifests/2",
        "application/vnd.oci.image.index.v1+json",
        index,
    );
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;
    let r = reference(&reg, "test/multi:2");
    let pulled = store.pull(&r, &PullOptions::default()).await?;
    assert_eq!(pulled.digest, sha(&image.manifest), "the amd64 manifest");
    assert_eq!(pulled.repo_digest, index_digest);
    assert_eq!(reg.count(&other), 0, "arm64 manifest never fetched");

    let by_digest = reference(&reg, &format!("test/multi@{index_digest}"));
    let found = store.get(&by_digest).await?.expect("found by repo digest");
    assert_eq!(found.digest, pulled.digest);
    assert_eq!(store.get(&r).await?.expect("found by name"), pulled);
    assert!(store.get(&reference(&reg, "test/multi:3")).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn tampered_blobs_and_bad_manifests_are_rejected() -> Result<()> {
    let reg = FakeRegistry::start(AuthMode::Anonymous).await?;
    let image = simple_image()?;
    reg.serve("test/img", "1", &image);
    // Same size, different bytes.
    let mut evil = image.layers[0].clone();
    let last = evil.len() - 1;
    evil[last] ^= 0xff;
    reg.route(&format!("/v2/test/img/blobs/{}", sha(&image.layers[0])), "x", evil);
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;
    let err = store
        .pull(&reference(&reg, "test/img:1"), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert_eq!(layer_dirs(store.root()), 0, "no layer from a bad blob");
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp"))?.count(),
        0,
        "download removed"
    );
    assert!(store.list().await?.is_empty());

    // A manifest asked for by digest must hash to it.
    let wanted = format!("sha256:{}", "a".repeat(64));
    reg.route(&format!("/v2/test/img/manifests/{wanted}"), "x", image.manifest.clone());
    let err = store
        .pull(&reference(&reg, &format!("test/img@{wanted}")), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");

    reg.route(
        "/v2/test/img/manifests/junk",
        "application/json",
        b"<html>oops</html>".to_vec(),
    );
    let err = store
        .pull(&reference(&reg, "test/img:junk"), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::BadManifest { .. }), "{err}");

    let err = store
        .pull(&reference(&reg, "test/img:nope"), &PullOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ImageError::NotFound { reference } if reference.ends_with("test/img:nope")),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn unreachable_registry_is_a_clear_retryable_error() -> Result<()> {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;
    let r = Reference::parse(&format!("127.0.0.1:{port}/x/y:1"))?;
    let err = store.pull(&r, &PullOptions::default()).await.unwrap_err();
    assert!(matches!(err, ImageError::Registry { .. }), "{err}");
    assert!(err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "says why: {msg}");
    Ok(())
}

#[tokio::test]
async fn shared_layers_survive_removal_and_prune_frees_space() -> Result<()> {
    let reg = FakeRegistry::start(AuthMode::Anonymous).await?;
    let base: &[(&str, &str)] = &[("base.txt", "shared base")];
    let a = test_image(&[base, &[("a.txt", "a")]], "a")?;
    let b = test_image(&[base, &[("b.txt", "b")]], "b")?;
    reg.serve("test/a", "1", &a);
    reg.serve("test/b", "1", &b);
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;
    let events = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let ev = events.clone();
    let opts = PullOptions {
        progress: Some(Arc::new(move |p: &Progress| ev.lock().unwrap().push(p.clone()))),
        ..Default::default()
    };
    let img_a = store.pull(&reference(&reg, "test/a:1"), &opts).await?;
    events.lock().unwrap().clear();
    let img_b = store.pull(&reference(&reg, "test/b:1"), &opts).await?;
    assert_eq!(img_a.layers[0], img_b.layers[0], "base layer unpacked once, shared");
    let base_digest = sha(&a.layers[0]);
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.layer == base_digest && p.state == ProgressState::Cached));
    assert_eq!(
        reg.count(&format!("/v2/test/b/blobs/{base_digest}")),
        0,
        "not downloaded again"
    );
    assert_eq!(layer_dirs(store.root()), 3);
    let full = store.disk_usage().await?;

    assert!(store.remove(&reference(&reg, "test/a:1")).await?);
    assert!(
        !store.remove(&reference(&reg, "test/a:1")).await?,
        "second removal finds nothing"
    );
    assert!(img_b.layers.iter().all(|l| l.is_dir()), "b keeps its layers");
    assert!(!img_a.layers[1].exists(), "a's own layer is gone");
    assert!(!store.root().join("blobs/sha256").join(&img_a.digest[7..]).exists());
    assert!(store.root().join("blobs/sha256").join(&img_b.digest[7..]).exists());
    assert_eq!(store.list().await?.len(), 1);
    assert!(store.disk_usage().await? < full);

    let removed = store.prune(|_| false).await?;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].digest, img_b.digest);
    assert_eq!(layer_dirs(store.root()), 0);
    assert_eq!(std::fs::read_dir(store.root().join("blobs/sha256"))?.count(), 0);
    Ok(())
}

#[tokio::test]
async fn concurrent_pulls_download_and_unpack_once() -> Result<()> {
    let reg = FakeRegistry::start(AuthMode::Anonymous).await?;
    let image = simple_image()?;
    reg.serve("test/img", "1", &image);
    let dir = tempfile::tempdir()?;
    let store = ImageStore::open(dir.path())?;
    let r = reference(&reg, "test/img:1");
    let opts = PullOptions::default();
    let (s1, s2) = (store.clone(), store.clone());
    let (x, y) = tokio::join!(s1.pull(&r, &opts), s2.pull(&r, &opts));
    assert_eq!(x?.layers, y?.layers);
    assert_eq!(reg.count(&sha(&image.layers[0])), 1, "layer fetched once");
    assert_eq!(layer_dirs(store.root()), 1);
    // The pull future can be spawned (it is Send).
    let s3 = store.clone();
    let r3 = r.clone();
    tokio::spawn(async move { s3.pull(&r3, &PullOptions::default()).await }).await??;
    // A reopened store still has the image.
    drop(store);
    let reopened = ImageStore::open(dir.path())?;
    assert!(reopened.get(&r).await?.is_some());
    Ok(())
}

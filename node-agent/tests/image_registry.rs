//! The image store against real tools: Debian's `docker-registry` on
//! loopback, an image built by `tests/busybox-image.sh` (umoci, from the
//! host's static busybox) and pushed with skopeo. Missing tools fail the
//! test with the package to install; nothing is skipped.

// Fixture helpers outside #[test] fns: a failure there should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use skiff_node_agent::image::{ImageError, ImageStore, Progress, ProgressState, PullOptions, Reference};

fn require_tool(tool: &str, package: &str) -> Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()?
        .success();
    ensure!(found, "required tool {tool} is missing: apt-get install {package}");
    Ok(())
}

/// `tests/busybox-image.sh` at the repository root.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/busybox-image.sh")
}

/// Builds the busybox OCI layout, pushing it to `dest` if given.
fn build_image(layout: &Path, dest: Option<&str>) -> Result<()> {
    require_tool("umoci", "umoci")?;
    require_tool("busybox", "busybox-static")?;
    let mut cmd = Command::new("bash");
    cmd.arg(script()).arg(layout);
    if let Some(d) = dest {
        require_tool("skopeo", "skopeo")?;
        cmd.arg(d);
    }
    let out = cmd.output().context("running busybox-image.sh")?;
    ensure!(
        out.status.success(),
        "busybox-image.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A `docker-registry` on a free loopback port, killed on drop.
struct Registry {
    child: Option<Child>,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Result<Registry> {
        require_tool("docker-registry", "docker-registry")?;
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry")?;
        let reg = Registry {
            child: Some(child),
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on {} within 15s", reg.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(reg)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn skopeo_digest(image: &str) -> Result<String> {
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{image}"))
        .output()?;
    ensure!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Checks the unpacked busybox image, the same whichever way it came in.
fn check_busybox(image: &skiff_node_agent::image::Image) -> Result<()> {
    ensure!(image.layers.len() == 2, "two layers: {:?}", image.layers);
    let (lower, upper) = (&image.layers[0], &image.layers[1]);
    ensure!(lower.is_absolute());
    let busybox = lower.join("bin/busybox");
    let mode = std::fs::metadata(&busybox).context("bin/busybox")?.permissions().mode();
    ensure!(mode & 0o111 != 0, "busybox is executable ({mode:o})");
    ensure!(std::fs::read_link(lower.join("bin/sh"))? == Path::new("busybox"));
    let out = Command::new(&busybox).args(["echo", "alive"]).output()?;
    ensure!(String::from_utf8_lossy(&out.stdout).trim() == "alive", "busybox runs");
    // Layer 2 deleted /etc/skiff-old: a whiteout there, the file intact below.
    let wh = std::fs::symlink_metadata(upper.join("etc/skiff-old"))?;
    ensure!(wh.file_type().is_char_device() && wh.rdev() == 0, "whiteout device");
    ensure!(lower.join("etc/skiff-old").is_file(), "lower layer untouched");
    ensure!(std::fs::read_to_string(upper.join("etc/skiff-release"))?.trim() == "skiff test image");
    let c = &image.config;
    ensure!(c.entrypoint == ["/bin/sh", "-c"], "entrypoint {:?}", c.entrypoint);
    ensure!(c.cmd == ["echo hello from skiff"], "cmd {:?}", c.cmd);
    ensure!(c.env.iter().any(|e| e == "SKIFF_TEST=1"), "env {:?}", c.env);
    ensure!(c.working_dir.as_deref() == Some("/"));
    ensure!(c.labels.contains(&("skiff.test".to_string(), "busybox".to_string())));
    Ok(())
}

#[tokio::test]
async fn pull_from_real_registry() -> Result<()> {
    let mut registry = Registry::start()?;
    let work = tempfile::tempdir()?;
    let name = format!("{}/test/busybox:1", registry.addr);
    build_image(&work.path().join("layout"), Some(&name))?;
    let expected_digest = skopeo_digest(&name)?;

    let store = ImageStore::open(&work.path().join("store"))?;
    let events = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let ev = events.clone();
    let opts = PullOptions {
        progress: Some(Arc::new(move |p: &Progress| ev.lock().unwrap().push(p.clone()))),
        ..Default::default()
    };
    let reference = Reference::parse(&name)?;
    let image = store.pull(&reference, &opts).await?;
    ensure!(
        image.digest == expected_digest,
        "{} != skopeo's {expected_digest}",
        image.digest
    );
    ensure!(image.repo_digest == expected_digest);
    check_busybox(&image)?;
    {
        let ev = events.lock().unwrap();
        let downloaded: Vec<_> = ev
            .iter()
            .filter(|p| p.state == ProgressState::Downloading && p.done > 0)
            .collect();
        ensure!(!downloaded.is_empty(), "progress reported while downloading");
        ensure!(downloaded.iter().all(|p| p.done <= p.total));
        ensure!(ev.iter().filter(|p| p.state == ProgressState::Done).count() == 2);
    }

    events.lock().unwrap().clear();
    let again = store.pull(&reference, &opts).await?;
    ensure!(again == image, "same image on the second pull");
    {
        let ev = events.lock().unwrap();
        ensure!(
            !ev.iter().any(|p| p.state == ProgressState::Downloading),
            "second pull downloaded nothing: {ev:?}"
        );
        ensure!(ev.iter().filter(|p| p.state == ProgressState::Cached).count() == 2);
    }

    // By digest too, and a name that does not exist.
    let by_digest = Reference::parse(&format!("{}/test/busybox@{expected_digest}", registry.addr))?;
    ensure!(store.pull(&by_digest, &opts).await?.digest == expected_digest);
    let missing = Reference::parse(&format!("{}/test/busybox:nope", registry.addr))?;
    match store.pull(&missing, &opts).await {
        Err(ImageError::NotFound { reference }) => ensure!(reference.ends_with("test/busybox:nope")),
        other => bail!("expected NotFound, got {other:?}"),
    }
    let missing_repo = Reference::parse(&format!("{}/no/such:1", registry.addr))?;
    ensure!(matches!(
        store.pull(&missing_repo, &opts).await,
        Err(ImageError::NotFound { .. })
    ));

    registry.stop();
    let err = store.pull(&reference, &opts).await.unwrap_err();
    let msg = err.to_string();
    ensure!(matches!(err, ImageError::Registry { .. }), "{msg}");
    ensure!(msg.contains(&registry.addr), "names the registry: {msg}");
    // The image pulled earlier is still usable.
    ensure!(store.get(&reference).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn import_umoci_layout() -> Result<()> {
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    build_image(&layout, None)?;
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let expected = index["manifests"][0]["digest"]
        .as_str()
        .context("digest in index.json")?
        .to_string();

    let store = ImageStore::open(&work.path().join("store"))?;
    let name = Reference::parse("skiff.local/busybox:latest")?;
    let image = store.import_layout(&layout, &name).await?;
    ensure!(image.digest == expected, "{} != {expected}", image.digest);
    check_busybox(&image)?;
    ensure!(store.get(&name).await?.as_ref() == Some(&image));
    let listed = store.list().await?;
    ensure!(listed.len() == 1 && listed[0].name == "skiff.local/busybox:latest");
    ensure!(listed[0].size > 1_000_000, "size counts busybox: {}", listed[0].size);

    // A tag the layout does not have, and a layout with a damaged blob.
    let err = store
        .import_layout(&layout, &Reference::parse("skiff.local/busybox:other")?)
        .await;
    ensure!(err.is_ok(), "a single-image layout is taken whatever the tag: {err:?}");
    let blobs = layout.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)?
        .filter_map(|e| e.ok())
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .context("a blob")?
        .path();
    let mut bytes = std::fs::read(&biggest)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&biggest, bytes)?;
    let fresh = ImageStore::open(&work.path().join("store2"))?;
    let err = fresh.import_layout(&layout, &name).await.unwrap_err();
    ensure!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    Ok(())
}

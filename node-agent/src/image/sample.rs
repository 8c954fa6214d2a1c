//! The sample image `skiff up` gives every agent, so that `kubectl create deployment hello
//! --image=skiff.local/hello:1` works with no registry at all.
//!
//! It is built here, as an OCI image layout, from a statically linked busybox found on the
//! host (Debian's `busybox-static`): one gzip layer with `/bin/busybox`, a symlink per applet,
//! `/etc/passwd`, `/etc/group`, `/tmp` and `/www`. Its default command writes a page naming
//! the pod and serves it with busybox's httpd on port 8080, so a Service in front of it answers
//! "hello from <pod name>". Every other use (a client pod, `kubectl exec`) overrides the command.
//!
//! The layer is deterministic (fixed mtimes, sorted entries): the same busybox gives the same
//! digests, so re-importing it is a no-op.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use serde_json::json;

use super::digest::sha256_of;
use super::manifest::{host_platform, OCI_INDEX, OCI_MANIFEST};

/// The name `skiff up` imports the sample image under.
pub const SAMPLE_IMAGE: &str = "skiff.local/hello:1";

/// The port the sample image's default command serves on.
pub const SAMPLE_PORT: u16 = 8080;

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Errors building the sample image.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("busybox at {path} is not a statically linked ELF executable (Debian: apt-get install busybox-static)")]
    NotStatic { path: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// True when `bytes` is a 64-bit little-endian ELF executable without a program interpreter
/// (`PT_INTERP`): it runs in an image that has no libc.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| {
        let b = bytes.get(o..o + 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        usize::try_from(u64::from_le_bytes(a)).ok()
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    let table_end = phnum.checked_mul(phentsize).and_then(|n| n.checked_add(phoff));
    if phentsize < 4 || phnum == 0 || table_end.is_none_or(|end| end > bytes.len()) {
        return false;
    }
    (0..phnum).all(|i| {
        let at = phoff.saturating_add(i.saturating_mul(phentsize));
        match bytes.get(at..at + 4) {
            Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != PT_INTERP,
            None => false,
        }
    })
}

/// Busybox applet names fit for a symlink in `/bin`: plain names, no path separators.
fn valid_applet(name: &str) -> bool {
    !name.is_empty()
        && name != "busybox"
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.[".contains(&b))
        && name != "."
        && name != ".."
}

/// The uncompressed layer: busybox, its applets as symlinks, a minimal /etc.
pub fn layer_tar(busybox: &[u8], applets: &[String]) -> Result<Vec<u8>, std::io::Error> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("www", 0o755),
    ] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, dir, std::io::empty())?;
    }
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", busybox)?;
    let mut names: Vec<&str> = applets.iter().map(String::as_str).filter(|a| valid_applet(a)).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{name}"), "busybox")?;
    }
    let files: [(&str, &[u8]); 4] = [
        (
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        ("etc/skiff-release", b"skiff sample image\n"),
        ("www/index.html", b"hello from skiff\n"),
    ];
    for (path, data) in files {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append_data(&mut h, path, data)?;
    }
    b.into_inner()
}

/// The default command: a page naming the pod, served on [`SAMPLE_PORT`]; one line logged.
fn default_cmd() -> Vec<String> {
    let script = format!(
        "echo \"hello from $(hostname)\" >/www/index.html; echo \"hello: serving /www on :{SAMPLE_PORT}\"; \
         exec httpd -f -p {SAMPLE_PORT} -h /www"
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// Write an OCI image layout of the sample image to `dir` (created, or replaced), tagged
/// with [`SAMPLE_IMAGE`]'s tag. Returns the manifest digest.
pub fn write_layout(dir: &Path, busybox_path: &Path, applets: &[String]) -> Result<String, SampleError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |source| SampleError::Io { op, path, source }
    };
    let busybox = std::fs::read(busybox_path).map_err(io("reading", busybox_path))?;
    if !is_static_elf(&busybox) {
        return Err(SampleError::NotStatic {
            path: busybox_path.display().to_string(),
        });
    }
    let tar = layer_tar(&busybox, applets).map_err(io("building the layer of", dir))?;
    let diff_id = sha256_of(&tar);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).map_err(io("compressing the layer of", dir))?;
    let layer = gz.finish().map_err(io("compressing the layer of", dir))?;
    let layer_digest = sha256_of(&layer);

    let (os, arch) = host_platform();
    let config = json!({
        "architecture": arch,
        "os": os,
        "config": {
            "Env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],
            "Cmd": default_cmd(),
            "WorkingDir": "/",
            "ExposedPorts": { format!("{SAMPLE_PORT}/tcp"): {} },
            "Labels": { "org.opencontainers.image.title": "skiff sample (busybox)" },
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "skiff up: busybox-static from the host" }],
    });
    let config = serde_json::to_vec(&config).map_err(|e| io("encoding the config of", dir)(e.into()))?;
    let config_digest = sha256_of(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len() }],
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| io("encoding the manifest of", dir)(e.into()))?;
    let manifest_digest = sha256_of(&manifest);
    let tag = SAMPLE_IMAGE.rsplit(':').next().unwrap_or("latest");
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    let index = serde_json::to_vec(&index).map_err(|e| io("encoding the index of", dir)(e.into()))?;

    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io("removing", dir))?;
    }
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(io("creating", &blobs))?;
    for (digest, bytes) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        let path = blobs.join(super::digest::hex_of(digest));
        std::fs::write(&path, bytes).map_err(io("writing", &path))?;
    }
    let path = dir.join("index.json");
    std::fs::write(&path, index).map_err(io("writing", &path))?;
    let path = dir.join("oci-layout");
    std::fs::write(&path, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io("writing", &path))?;
    Ok(manifest_digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one program header of type `p_type`.
    fn elf(p_type: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&p_type.to_le_bytes());
        b
    }

    #[test]
    fn static_elf_is_one_without_an_interpreter() {
        assert!(is_static_elf(&elf(1)));
        assert!(!is_static_elf(&elf(3)), "PT_INTERP means dynamically linked");
        assert!(!is_static_elf(b"#!/bin/sh\necho hi\n"));
        let mut truncated = elf(1);
        truncated.truncate(80);
        assert!(!is_static_elf(&truncated), "program headers past the end");
    }

    #[test]
    fn layer_has_busybox_applets_and_etc_and_is_deterministic() {
        let applets: Vec<String> = ["sh", "httpd", "../evil", "busybox", "sh", "wget"]
            .map(String::from)
            .into();
        let tar1 = layer_tar(b"BUSYBOX", &applets).expect("tar");
        let tar2 = layer_tar(b"BUSYBOX", &applets).expect("tar");
        assert_eq!(sha256_of(&tar1), sha256_of(&tar2));
        let mut archive = tar::Archive::new(&tar1[..]);
        let mut seen = Vec::new();
        for e in archive.entries().expect("entries") {
            let e = e.expect("entry");
            let path = e.path().expect("path").display().to_string();
            if e.header().entry_type() == tar::EntryType::Symlink {
                let target = e.link_name().expect("link").expect("target");
                assert_eq!(target.to_str(), Some("busybox"), "{path}");
            }
            seen.push(path);
        }
        for want in [
            "bin/busybox",
            "bin/sh",
            "bin/httpd",
            "bin/wget",
            "etc/passwd",
            "tmp",
            "www/index.html",
        ] {
            assert!(
                seen.iter().any(|p| p.trim_end_matches('/') == want),
                "{want} missing from {seen:?}"
            );
        }
        assert!(
            !seen.iter().any(|p| p.contains("evil")),
            "applet names with a path are refused"
        );
        assert_eq!(seen.iter().filter(|p| *p == "bin/sh").count(), 1, "duplicates dropped");
    }

    #[test]
    fn refuses_a_dynamic_busybox() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("busybox");
        std::fs::write(&bin, elf(3)).expect("write");
        let err = write_layout(&dir.path().join("layout"), &bin, &[]).expect_err("dynamic");
        assert!(err.to_string().contains("busybox-static"), "{err}");
    }

    #[tokio::test]
    async fn layout_imports_into_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("busybox");
        std::fs::write(&bin, elf(1)).expect("write");
        let layout = dir.path().join("layout");
        let digest = write_layout(&layout, &bin, &["sh".into()]).expect("layout");
        let store = super::super::ImageStore::open(&dir.path().join("store")).expect("store");
        let name = super::super::Reference::parse(SAMPLE_IMAGE).expect("reference");
        let img = store.import_layout(&layout, &name).await.expect("import");
        assert_eq!(img.digest, digest);
        assert_eq!(img.config.cmd.len(), 3);
        assert_eq!(img.config.exposed_ports, vec!["8080/tcp".to_string()]);
        let again = store.import_layout(&layout, &name).await.expect("import twice");
        assert_eq!(again.digest, digest);
    }
}

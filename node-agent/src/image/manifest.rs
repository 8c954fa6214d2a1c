//! Manifest, index and config documents (OCI and Docker v2 flavours, which
//! share one shape), read with `oci-spec`'s types, plus the decisions made
//! on them: which platform to pick from an index and which layers we can
//! unpack. No IO here.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::{digest, ImageConfig};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The `Accept` header for manifest requests, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Manifests and configs are small; anything bigger is refused before it is
/// read into memory (containerd uses the same 4 MiB limit for manifests).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A fetched manifest document.
#[derive(Debug)]
pub enum Document {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

/// Parses a manifest or index. The kind comes from the document's own
/// `mediaType`, else the HTTP `Content-Type`, else its shape (some
/// registries send `application/json`).
pub fn parse_document(bytes: &[u8], content_type: Option<&str>) -> Result<Document, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let schema = value.get("schemaVersion").and_then(|v| v.as_u64());
    match schema {
        Some(2) => {}
        Some(1) => return Err("Docker schema 1 manifests are not supported".into()),
        Some(n) => return Err(format!("unsupported schemaVersion {n}")),
        None => return Err("missing schemaVersion".into()),
    }
    let own_type = value.get("mediaType").and_then(|v| v.as_str());
    let header_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    let is_index = match own_type.or(header_type) {
        Some(OCI_INDEX | DOCKER_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        _ => value.get("manifests").is_some(),
    };
    if is_index {
        let index: ImageIndex = serde_json::from_value(value).map_err(|e| format!("invalid image index: {e}"))?;
        for d in index.manifests() {
            check_descriptor(d)?;
        }
        Ok(Document::Index(Box::new(index)))
    } else {
        let manifest: ImageManifest =
            serde_json::from_value(value).map_err(|e| format!("invalid image manifest: {e}"))?;
        check_descriptor(manifest.config())?;
        let config_type = manifest.config().media_type().to_string();
        if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
            return Err(format!("not a container image (config media type {config_type})"));
        }
        for layer in manifest.layers() {
            check_descriptor(layer)?;
            check_layer_type(layer.media_type().as_ref())?;
        }
        Ok(Document::Manifest(Box::new(manifest)))
    }
}

/// Digests become file names, so they are checked before anything else.
fn check_descriptor(d: &Descriptor) -> Result<(), String> {
    digest::validate(d.digest().as_ref())
}

/// Accepts gzip and plain tar layers; which of the two a blob is gets
/// decided by its magic bytes when unpacking, because registries are not
/// always truthful about it.
pub fn check_layer_type(media_type: &str) -> Result<(), String> {
    if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
        return Err(format!("zstd-compressed layers are not supported ({media_type})"));
    }
    if media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
    {
        return Ok(());
    }
    Err(format!("not a container image layer (media type {media_type})"))
}

/// The platform to run: always Linux, this machine's CPU in Go's spelling.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    ("linux", arch)
}

/// Picks the manifest for `os/arch` from an index. A single entry without
/// a platform (common in OCI layouts) is taken as is. On failure returns the
/// platforms on offer, for the error message.
pub fn select_platform<'a>(index: &'a ImageIndex, os: &str, arch: &str) -> Result<&'a Descriptor, String> {
    let manifests = index.manifests();
    let matching = manifests.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
    });
    if let Some(d) = matching {
        return Ok(d);
    }
    if let [only] = manifests.as_slice() {
        if only.platform().is_none() {
            return Ok(only);
        }
    }
    let available: Vec<String> = manifests
        .iter()
        .map(|d| match d.platform() {
            Some(p) => match p.variant() {
                Some(v) => format!("{}/{}/{}", p.os(), p.architecture(), v),
                None => format!("{}/{}", p.os(), p.architecture()),
            },
            None => "unspecified".to_string(),
        })
        .collect();
    Err(if available.is_empty() {
        "none".to_string()
    } else {
        available.join(", ")
    })
}

pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid image config: {e}"))
}

/// The diff IDs (digests of the uncompressed layers), checked against the
/// manifest's layer count: they name the unpacked layer directories.
pub fn diff_ids(config: &ImageConfiguration, layer_count: usize) -> Result<Vec<String>, String> {
    let ids = config.rootfs().diff_ids();
    if ids.len() != layer_count {
        return Err(format!(
            "config lists {} diff IDs for {} layers",
            ids.len(),
            layer_count
        ));
    }
    for id in ids {
        digest::validate(id)?;
    }
    Ok(ids.clone())
}

/// The runtime fields of an image config.
pub fn image_config(config: &ImageConfiguration) -> ImageConfig {
    let Some(c) = config.config() else {
        return ImageConfig::default();
    };
    let mut exposed_ports = c.exposed_ports().clone().unwrap_or_default();
    exposed_ports.sort();
    let mut labels: Vec<(String, String)> = c
        .labels()
        .as_ref()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    labels.sort();
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    ImageConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: non_empty(c.working_dir()),
        user: non_empty(c.user()),
        exposed_ports,
        labels,
        stop_signal: non_empty(c.stop_signal()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: char) -> String {
        format!("sha256:{}", n.to_string().repeat(64))
    }

    fn index_json(entries: &[(&str, &str, char)]) -> String {
        let ms: Vec<String> = entries
            .iter()
            .map(|(os, arch, n)| {
                format!(
                    r#"{{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":10,"platform":{{"os":"{os}","architecture":"{arch}"}}}}"#,
                    d(*n)
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{}]}}"#,
            ms.join(",")
        )
    }

    fn manifest_json(config_type: &str, layer_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
               "config":{{"mediaType":"{config_type}","digest":"{}","size":3}},
               "layers":[{{"mediaType":"{layer_type}","digest":"{}","size":5}}]}}"#,
            d('a'),
            d('b')
        )
    }

    #[test]
    fn index_resolves_to_requested_platform() {
        let json = index_json(&[
            ("linux", "arm64", '1'),
            ("linux", "amd64", '2'),
            ("windows", "amd64", '3'),
        ]);
        let Ok(Document::Index(index)) = parse_document(json.as_bytes(), None) else {
            panic!("not parsed as index");
        };
        let chosen = select_platform(&index, "linux", "amd64").unwrap();
        assert_eq!(chosen.digest().to_string(), d('2'));
        let chosen = select_platform(&index, "linux", "arm64").unwrap();
        assert_eq!(chosen.digest().to_string(), d('1'));
        let err = select_platform(&index, "linux", "s390x").unwrap_err();
        assert_eq!(err, "linux/arm64, linux/amd64, windows/amd64");
    }

    #[test]
    fn single_unlabelled_entry_is_taken() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}]}}"#,
            d('c')
        );
        let Ok(Document::Index(index)) = parse_document(json.as_bytes(), Some(OCI_INDEX)) else {
            panic!("not parsed as index");
        };
        assert_eq!(
            select_platform(&index, "linux", "amd64").unwrap().digest().to_string(),
            d('c')
        );
    }

    #[test]
    fn manifests_are_recognized_and_checked() {
        let ok = manifest_json(DOCKER_CONFIG, "application/vnd.docker.image.rootfs.diff.tar.gzip");
        assert!(matches!(
            parse_document(ok.as_bytes(), Some("application/json")),
            Ok(Document::Manifest(_))
        ));
        let helm = manifest_json("application/vnd.cncf.helm.config.v1+json", "application/tar");
        assert!(parse_document(helm.as_bytes(), None)
            .unwrap_err()
            .contains("not a container image"));
        let zstd = manifest_json(OCI_CONFIG, "application/vnd.oci.image.layer.v1.tar+zstd");
        assert!(parse_document(zstd.as_bytes(), None).unwrap_err().contains("zstd"));
        let bad_digest = ok.replace(&d('b'), "sha256:../../../etc");
        assert!(parse_document(bad_digest.as_bytes(), None).is_err());
        assert!(parse_document(br#"{"schemaVersion":1,"fsLayers":[]}"#, None)
            .unwrap_err()
            .contains("schema 1"));
        assert!(parse_document(b"<html>", None).unwrap_err().contains("JSON"));
        assert!(parse_document(br#"{"schemaVersion":2}"#, None).is_err());
    }

    #[test]
    fn config_fields_and_diff_ids() {
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux",
               "config":{{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"Env":["A=1"],
                          "WorkingDir":"/srv","User":"","ExposedPorts":{{"80/tcp":{{}},"53/udp":{{}}}}}},
               "rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            d('e')
        );
        let cfg = parse_config(json.as_bytes()).unwrap();
        let ic = image_config(&cfg);
        assert_eq!(ic.entrypoint, vec!["/bin/sh", "-c"]);
        assert_eq!(ic.cmd, vec!["echo hi"]);
        assert_eq!(ic.env, vec!["A=1"]);
        assert_eq!(ic.working_dir.as_deref(), Some("/srv"));
        assert_eq!(ic.user, None);
        assert_eq!(ic.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(diff_ids(&cfg, 1).unwrap(), vec![d('e')]);
        assert!(diff_ids(&cfg, 2).unwrap_err().contains("1 diff IDs for 2 layers"));
    }
}

//! `ImageStore::import_layout`: an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/...`, as written by umoci or
//! `skopeo copy ... oci:DIR:TAG`) into the store. Every blob is verified as
//! if it came from the network.

use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};

use super::digest::{self, hex_of};
use super::install::{BlobSource, LayerFile, ManifestInfo};
use super::manifest::{self, Document};
use super::registry::verify;
use super::store::blocking;
use super::{Image, ImageError, ImageStore, PullOptions, Reference, Result};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

struct LayoutSource {
    dir: PathBuf,
}

impl LayoutSource {
    fn err(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Layout {
            dir: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// Digests were validated when the document naming them was parsed, so
    /// the hex is a safe file name.
    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(hex_of(digest))
    }

    fn read_small(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        let digest = desc.digest().to_string();
        if desc.size() > limit {
            return Err(self.err(format!(
                "blob {digest} is {} bytes, over the {limit} limit",
                desc.size()
            )));
        }
        let path = self.blob_path(&digest);
        let file = std::fs::File::open(&path).map_err(|e| self.err(format!("blob {digest}: {e}")))?;
        let mut bytes = Vec::new();
        // One byte more than allowed, so an oversized file fails verify().
        file.take(desc.size() + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.err(format!("reading blob {digest}: {e}")))?;
        verify(&digest, desc.size(), &digest::sha256_of(&bytes), bytes.len() as u64)?;
        Ok(bytes)
    }
}

impl BlobSource for LayoutSource {
    async fn small_blob(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        self.read_small(desc, limit)
    }

    async fn layer_blob(&self, desc: &Descriptor, _tmp: PathBuf, _opts: &PullOptions) -> Result<LayerFile> {
        let digest = desc.digest().to_string();
        let size = desc.size();
        let path = self.blob_path(&digest);
        let layout = self.dir.clone();
        let checked = path.clone();
        let (actual, len) = blocking(move || {
            digest::sha256_file(&checked).map_err(|e| ImageError::Layout {
                dir: layout,
                reason: format!("reading blob {}: {e}", checked.display()),
            })
        })
        .await?;
        verify(&digest, size, &actual, len)?;
        Ok(LayerFile { path, temporary: false })
    }
}

impl ImageStore {
    /// Imports the image of an OCI layout whose `index.json` entry is
    /// annotated with `name`'s tag (or its full name), or the only entry;
    /// with a digest in `name`, the entry with that digest. Recorded under
    /// `name`.
    pub async fn import_layout(&self, dir: &Path, name: &Reference) -> Result<Image> {
        let _gc = self.inner.gc.read().await;
        let source = LayoutSource { dir: dir.to_path_buf() };
        let layout_file = dir.join("oci-layout");
        let marker = std::fs::read(&layout_file).map_err(|e| source.err(format!("no oci-layout file: {e}")))?;
        let version = serde_json::from_slice::<serde_json::Value>(&marker)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_string));
        if version.is_none() {
            return Err(source.err("oci-layout has no imageLayoutVersion"));
        }
        let index_bytes =
            std::fs::read(dir.join("index.json")).map_err(|e| source.err(format!("reading index.json: {e}")))?;
        let index = match manifest::parse_document(&index_bytes, Some(manifest::OCI_INDEX)) {
            Ok(Document::Index(index)) => index,
            Ok(Document::Manifest(_)) => return Err(source.err("index.json is not an image index")),
            Err(reason) => return Err(source.err(format!("index.json: {reason}"))),
        };
        let top = select_entry(&index, name).map_err(|reason| source.err(reason))?;
        let bad = |reason: String| ImageError::BadManifest {
            reference: name.to_string(),
            reason,
        };
        let repo_digest = top.digest().to_string();
        let bytes = source.read_small(top, manifest::MAX_MANIFEST_BYTES)?;
        let info = match manifest::parse_document(&bytes, Some(top.media_type().as_ref())).map_err(bad)? {
            Document::Manifest(manifest) => ManifestInfo {
                digest: repo_digest.clone(),
                repo_digest,
                bytes,
                manifest: *manifest,
            },
            Document::Index(nested) => {
                let (os, arch) = manifest::host_platform();
                let desc = manifest::select_platform(&nested, os, arch).map_err(|available| {
                    ImageError::NoMatchingPlatform {
                        reference: name.to_string(),
                        wanted: format!("{os}/{arch}"),
                        available,
                    }
                })?;
                let bytes = source.read_small(desc, manifest::MAX_MANIFEST_BYTES)?;
                match manifest::parse_document(&bytes, Some(desc.media_type().as_ref())).map_err(bad)? {
                    Document::Manifest(manifest) => ManifestInfo {
                        digest: desc.digest().to_string(),
                        repo_digest,
                        bytes,
                        manifest: *manifest,
                    },
                    Document::Index(_) => return Err(bad("nested index more than one level deep".into())),
                }
            }
        };
        self.install(&source, name, info, &PullOptions::default()).await
    }
}

/// The `index.json` entry for `name`: by digest if it has one, else by the
/// ref-name annotation (the tag, or the whole name as some tools write it),
/// else the only entry.
fn select_entry<'a>(index: &'a ImageIndex, name: &Reference) -> Result<&'a Descriptor, String> {
    let entries = index.manifests();
    if let Some(digest) = name.digest() {
        return entries
            .iter()
            .find(|d| d.digest().as_ref() == digest)
            .ok_or_else(|| format!("no entry with digest {digest}"));
    }
    let full = name.to_string();
    let ref_name = |d: &Descriptor| d.annotations().as_ref().and_then(|a| a.get(REF_NAME)).cloned();
    let found = entries
        .iter()
        .find(|d| ref_name(d).is_some_and(|r| Some(r.as_str()) == name.tag() || r == full));
    if let Some(d) = found {
        return Ok(d);
    }
    match entries.as_slice() {
        [only] => Ok(only),
        [] => Err("index.json lists no images".to_string()),
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|d| ref_name(d).unwrap_or_else(|| "(unnamed)".into()))
                .collect();
            Err(format!(
                "no entry named {:?} among {}",
                name.tag().unwrap_or(""),
                names.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, Option<&str>)]) -> ImageIndex {
        let ms: Vec<String> = entries
            .iter()
            .map(|(hexchar, name)| {
                let ann = name.map_or(String::new(), |n| format!(r#","annotations":{{"{REF_NAME}":"{n}"}}"#));
                format!(
                    r#"{{"mediaType":"{}","digest":"sha256:{}","size":1{ann}}}"#,
                    manifest::OCI_MANIFEST,
                    hexchar.repeat(64)
                )
            })
            .collect();
        let json = format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, ms.join(","));
        serde_json::from_str(&json).unwrap()
    }

    fn pick(idx: &ImageIndex, name: &str) -> Result<String, String> {
        select_entry(idx, &Reference::parse(name).unwrap()).map(|d| d.digest().to_string())
    }

    #[test]
    fn entries_are_chosen_by_tag_full_name_digest_or_uniqueness() {
        let idx = index(&[
            ("a", Some("latest")),
            ("b", Some("v2")),
            ("c", Some("docker.io/library/x:v3")),
        ]);
        assert!(pick(&idx, "x").unwrap().ends_with(&"a".repeat(64)));
        assert!(pick(&idx, "x:v2").unwrap().ends_with(&"b".repeat(64)));
        assert!(pick(&idx, "x:v3").unwrap().ends_with(&"c".repeat(64)));
        assert!(pick(&idx, &format!("x@sha256:{}", "b".repeat(64)))
            .unwrap()
            .ends_with(&"b".repeat(64)));
        let err = pick(&idx, "x:v9").unwrap_err();
        assert!(err.contains("latest, v2"), "{err}");
        let single = index(&[("d", None)]);
        assert!(pick(&single, "anything:tag").unwrap().ends_with(&"d".repeat(64)));
        assert!(pick(&index(&[]), "x").unwrap_err().contains("no images"));
    }
}

//! `ImageStore::pull`: resolve a reference on its registry (an index to
//! this machine's platform), then install config and layers from it.

use std::path::PathBuf;

use oci_spec::image::Descriptor;

use super::install::{BlobSource, LayerFile, ManifestInfo};
use super::manifest::{self, Document};
use super::registry::RegistryClient;
use super::{Image, ImageError, ImageStore, Progress, ProgressState, PullOptions, Reference, Result};

struct RegistrySource {
    client: RegistryClient,
}

impl BlobSource for RegistrySource {
    async fn small_blob(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        self.client.blob_bytes(desc.digest().as_ref(), desc.size(), limit).await
    }

    async fn layer_blob(&self, desc: &Descriptor, tmp: PathBuf, opts: &PullOptions) -> Result<LayerFile> {
        let digest = desc.digest().to_string();
        let total = desc.size();
        let progress = |done| {
            opts.report(Progress {
                layer: digest.clone(),
                state: ProgressState::Downloading,
                done,
                total,
            })
        };
        match self.client.blob_to_file(&digest, total, &tmp, &progress).await {
            Ok(()) => Ok(LayerFile {
                path: tmp,
                temporary: true,
            }),
            Err(e) => {
                // Best effort: tmp/ is emptied on the next open anyway.
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }
}

impl ImageStore {
    /// Pulls an image (linux and this machine's architecture from a
    /// multi-platform index) and records it under `reference`. Layers
    /// already in the store are not downloaded again.
    pub async fn pull(&self, reference: &Reference, opts: &PullOptions) -> Result<Image> {
        let _gc = self.inner.gc.read().await;
        let client = RegistryClient::new(self.inner.http.clone(), reference, opts);
        let bad = |reason: String| ImageError::BadManifest {
            reference: reference.to_string(),
            reason,
        };
        let top = client.manifest(reference.manifest_ref(), reference.digest()).await?;
        let repo_digest = top.digest.clone();
        let info = match manifest::parse_document(&top.bytes, top.content_type.as_deref()).map_err(bad)? {
            Document::Manifest(manifest) => ManifestInfo {
                digest: top.digest,
                repo_digest,
                bytes: top.bytes,
                manifest: *manifest,
            },
            Document::Index(index) => {
                let (os, arch) = manifest::host_platform();
                let desc = manifest::select_platform(&index, os, arch).map_err(|available| {
                    ImageError::NoMatchingPlatform {
                        reference: reference.to_string(),
                        wanted: format!("{os}/{arch}"),
                        available,
                    }
                })?;
                let digest = desc.digest().to_string();
                let fetched = client.manifest(&digest, Some(&digest)).await?;
                match manifest::parse_document(&fetched.bytes, fetched.content_type.as_deref()).map_err(bad)? {
                    Document::Manifest(manifest) => ManifestInfo {
                        digest,
                        repo_digest,
                        bytes: fetched.bytes,
                        manifest: *manifest,
                    },
                    Document::Index(_) => return Err(bad("index entry for the platform is itself an index".into())),
                }
            }
        };
        let source = RegistrySource { client };
        self.install(&source, reference, info, opts).await
    }
}

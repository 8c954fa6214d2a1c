//! Adding an image's content to the store, whatever it comes from (a
//! registry or an OCI layout): config blob, layers unpacked once each, then
//! the manifest and the name. The name is recorded last, so an image that is
//! listed is complete.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageManifest};

use super::digest::HashingReader;
use super::manifest;
use super::store::{blocking, sync_parent, Record};
use super::unpack;
use super::{Image, ImageError, ImageStore, Progress, ProgressState, PullOptions, Reference, Result};

/// Layers fetched at once (Docker's default too).
const LAYER_CONCURRENCY: usize = 3;

/// A verified layer blob on disk.
pub(crate) struct LayerFile {
    pub(crate) path: PathBuf,
    /// Delete after unpacking (a download, not someone else's file).
    pub(crate) temporary: bool,
}

/// Where blobs come from. Implementations verify digest and size.
pub(crate) trait BlobSource: Sync {
    /// A small blob (the config) into memory.
    async fn small_blob(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>>;
    /// A layer blob as a file; `tmp` is a free path in the store's `tmp/`.
    async fn layer_blob(&self, desc: &Descriptor, tmp: PathBuf, opts: &PullOptions) -> Result<LayerFile>;
}

/// What `install` needs to know about the manifest being installed.
pub(crate) struct ManifestInfo {
    pub(crate) digest: String,
    pub(crate) repo_digest: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) manifest: ImageManifest,
}

impl ImageStore {
    pub(crate) async fn install<S: BlobSource>(
        &self,
        source: &S,
        reference: &Reference,
        info: ManifestInfo,
        opts: &PullOptions,
    ) -> Result<Image> {
        let bad = |reason: String| ImageError::BadManifest {
            reference: reference.to_string(),
            reason,
        };
        let m = &info.manifest;
        let config_digest = m.config().digest().to_string();
        let stored = self
            .blob_path(&config_digest)
            .is_file()
            .then(|| self.read_blob(&config_digest).ok());
        let config_bytes = match stored.flatten() {
            Some(bytes) => bytes,
            None => {
                let bytes = source.small_blob(m.config(), manifest::MAX_CONFIG_BYTES).await?;
                self.write_blob(&config_digest, bytes.clone()).await?;
                bytes
            }
        };
        let config = manifest::parse_config(&config_bytes).map_err(bad)?;
        let diff_ids = manifest::diff_ids(&config, m.layers().len()).map_err(bad)?;

        // Collected first: a lazy `map` closure in the stream type trips
        // rustc's higher-ranked lifetime check and the future loses `Send`.
        let mut jobs = Vec::with_capacity(diff_ids.len());
        for (desc, diff_id) in m.layers().iter().zip(diff_ids.iter()) {
            jobs.push(self.ensure_layer(source, desc, diff_id, opts));
        }
        let layers: Vec<PathBuf> = futures::stream::iter(jobs)
            .buffered(LAYER_CONCURRENCY)
            .try_collect()
            .await?;

        self.write_blob(&info.digest, info.bytes).await?;
        let record = Record {
            digest: info.digest.clone(),
            repo_digest: info.repo_digest.clone(),
            pulled_at: chrono::Utc::now().to_rfc3339(),
        };
        self.record(reference.to_string(), record).await?;
        tracing::info!(image = %reference, digest = %info.digest, layers = layers.len(), "image stored");
        Ok(Image {
            reference: reference.clone(),
            digest: info.digest,
            repo_digest: info.repo_digest,
            config_digest,
            config: manifest::image_config(&config),
            layers,
            size: m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>(),
        })
    }

    /// The unpacked directory of one layer, fetching and unpacking it unless
    /// it is already there. Serialized per layer.
    async fn ensure_layer<S: BlobSource>(
        &self,
        source: &S,
        desc: &Descriptor,
        diff_id: &str,
        opts: &PullOptions,
    ) -> Result<PathBuf> {
        let lock = self.layer_lock(diff_id);
        let result = async {
            let _guard = lock.lock().await;
            let dir = self.layer_path(diff_id);
            let digest = desc.digest().to_string();
            let total = desc.size();
            let report = |state, done| {
                opts.report(Progress {
                    layer: digest.clone(),
                    state,
                    done,
                    total,
                })
            };
            if dir.is_dir() {
                report(ProgressState::Cached, total);
                return Ok(dir);
            }
            let file = source.layer_blob(desc, self.tmp_path("download"), opts).await?;
            report(ProgressState::Extracting, total);
            let unpacked = self.unpack_into_store(&file.path, diff_id, &digest).await;
            if file.temporary {
                if let Err(e) = tokio::fs::remove_file(&file.path).await {
                    tracing::warn!(path = %file.path.display(), error = %e, "cannot remove downloaded layer");
                }
            }
            unpacked?;
            report(ProgressState::Done, total);
            Ok(dir)
        }
        .await;
        self.release_layer_lock(diff_id, lock);
        result
    }

    /// Unpacks a (verified) layer blob into `tmp/`, checks the uncompressed
    /// digest against the diff ID, syncs, and renames it into `layers/`.
    async fn unpack_into_store(&self, blob: &Path, diff_id: &str, digest: &str) -> Result<()> {
        let work = self.tmp_path("layer");
        let dest = self.layer_path(diff_id);
        let blob = blob.to_path_buf();
        let diff_id = diff_id.to_string();
        let digest = digest.to_string();
        blocking(move || {
            let result = unpack_verified(&blob, &work, &dest, &diff_id, &digest);
            if result.is_err() && work.exists() {
                if let Err(e) = std::fs::remove_dir_all(&work) {
                    tracing::warn!(path = %work.display(), error = %e, "cannot remove partial layer");
                }
            }
            result
        })
        .await
    }
}

fn unpack_verified(blob: &Path, work: &Path, dest: &Path, diff_id: &str, digest: &str) -> Result<()> {
    let unpack_err = |source| ImageError::Unpack {
        layer: digest.to_string(),
        source,
    };
    std::fs::create_dir(work).map_err(|e| ImageError::io(format!("creating {}", work.display()), e))?;
    let file = std::fs::File::open(blob).map_err(|e| ImageError::io(format!("opening {}", blob.display()), e))?;
    let reader = unpack::decompress(std::io::BufReader::with_capacity(256 * 1024, file)).map_err(unpack_err)?;
    let mut hashing = HashingReader::new(reader);
    unpack::unpack_layer(&mut hashing, work).map_err(unpack_err)?;
    let (actual, _) = hashing.finish().map_err(|e| unpack_err(unpack::UnpackError::Read(e)))?;
    if actual != diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("uncompressed layer {digest}"),
            expected: diff_id.to_string(),
            actual,
        });
    }
    // One syncfs instead of an fsync per file: the layer must be on disk
    // before its name says it is complete.
    let dir = std::fs::File::open(work).map_err(|e| ImageError::io(format!("opening {}", work.display()), e))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir))
        .map_err(|e| ImageError::io(format!("syncing {}", work.display()), e.into()))?;
    std::fs::rename(work, dest).map_err(|e| ImageError::io(format!("renaming to {}", dest.display()), e))?;
    sync_parent(dest)
}

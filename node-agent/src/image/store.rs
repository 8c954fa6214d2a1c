//! The on-disk, content-addressed image store (layout in the module docs):
//! opening, lookups, removal and garbage collection. Pulls and imports
//! (`pull.rs`, `layout.rs`) add content through `install.rs`.
//!
//! Locks, always taken in this order, none of them std locks held across an
//! await:
//! 1. `gc` (RwLock): pulls and imports hold it shared for their whole run,
//!    removal and pruning exclusively, so garbage collection never deletes
//!    a blob or layer that a running pull has written but not yet recorded.
//! 2. per-layer mutexes: two pulls of the same layer unpack it once.
//! 3. `index`: serializes read-modify-write of `images.json`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::digest::{self, hex_of};
use super::manifest::{self, Document};
use super::registry;
use super::{Image, ImageError, ImageSummary, Reference, Result};

const INDEX_FILE: &str = "images.json";

/// A handle on the store; cheap to clone, safe to share between tasks.
/// Only one `ImageStore` (one process) may use a root at a time.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) http: reqwest::Client,
    pub(crate) gc: tokio::sync::RwLock<()>,
    layer_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    index: tokio::sync::Mutex<()>,
    tmp_counter: AtomicU64,
}

/// `images.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub(crate) images: BTreeMap<String, Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Platform manifest digest.
    pub(crate) digest: String,
    pub(crate) repo_digest: String,
    pub(crate) pulled_at: String,
}

/// Runs blocking filesystem work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::io("blocking task", io::Error::other(e.to_string())))?
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, clearing what a
    /// previous run left half-done in `tmp/`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        for dir in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(|e| ImageError::io(format!("creating {}", p.display()), e))?;
        }
        let tmp = root.join("tmp");
        let entries = fs::read_dir(&tmp).map_err(|e| ImageError::io(format!("reading {}", tmp.display()), e))?;
        for entry in entries.flatten() {
            remove_any(&entry.path()).map_err(|e| ImageError::io(format!("cleaning {}", entry.path().display()), e))?;
        }
        let root = fs::canonicalize(root).map_err(|e| ImageError::io(format!("resolving {}", root.display()), e))?;
        let store = ImageStore {
            inner: Arc::new(Inner {
                root,
                http: registry::http_client()?,
                gc: tokio::sync::RwLock::new(()),
                layer_locks: Mutex::new(HashMap::new()),
                index: tokio::sync::Mutex::new(()),
                tmp_counter: AtomicU64::new(0),
            }),
        };
        // Refuse to start on a damaged index rather than silently forget
        // every image.
        store.read_index()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(hex_of(digest))
    }

    pub(crate) fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.inner.root.join("layers").join(hex_of(diff_id))
    }

    /// A fresh, unused path under `tmp/`.
    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        let n = self.inner.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.inner
            .root
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// The per-layer lock, created on first use. Entries are dropped again
    /// by `release_layer_lock` once nobody waits on them.
    pub(crate) fn layer_lock(&self, diff_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inner.layer_locks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(diff_id.to_string()).or_default().clone()
    }

    pub(crate) fn release_layer_lock(&self, diff_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.inner.layer_locks.lock().unwrap_or_else(|p| p.into_inner());
        // One reference in the map, one here: nobody else wants it.
        if Arc::strong_count(&lock) == 2 {
            map.remove(diff_id);
        }
    }

    pub(crate) fn read_index(&self) -> Result<IndexFile> {
        let path = self.inner.root.join(INDEX_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt {
                path,
                reason: format!("unreadable image index: {e}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(e) => Err(ImageError::io(format!("reading {}", path.display()), e)),
        }
    }

    fn write_index(&self, index: &IndexFile) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| ImageError::Corrupt {
            path: self.inner.root.join(INDEX_FILE),
            reason: format!("cannot encode image index: {e}"),
        })?;
        write_atomic(&self.tmp_path("index"), &self.inner.root.join(INDEX_FILE), &bytes)
    }

    /// Records `name -> record` in the index.
    pub(crate) async fn record(&self, name: String, record: Record) -> Result<()> {
        let _index = self.inner.index.lock().await;
        let store = self.clone();
        blocking(move || {
            let mut index = store.read_index()?;
            index.images.insert(name, record);
            store.write_index(&index)
        })
        .await
    }

    /// Stores a small blob (manifest, config) after checking its digest.
    pub(crate) async fn write_blob(&self, digest: &str, bytes: Vec<u8>) -> Result<()> {
        let actual = digest::sha256_of(&bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: "blob".into(),
                expected: digest.to_string(),
                actual,
            });
        }
        let dest = self.blob_path(digest);
        if dest.is_file() {
            return Ok(());
        }
        let tmp = self.tmp_path("blob");
        blocking(move || write_atomic(&tmp, &dest, &bytes)).await
    }

    /// Reads a stored blob, re-checking its digest (a flipped bit on disk
    /// should not become a wrong container).
    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
        let actual = digest::sha256_of(&bytes);
        if actual != digest {
            return Err(ImageError::Corrupt {
                path,
                reason: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// The image stored under this reference. A reference with a digest also
    /// finds an image of the same repository pulled by tag that resolved to
    /// that digest. `None` when absent or when its content is incomplete
    /// (pull it again).
    pub async fn get(&self, reference: &Reference) -> Result<Option<Image>> {
        let store = self.clone();
        let reference = reference.clone();
        blocking(move || store.get_blocking(&reference)).await
    }

    fn get_blocking(&self, reference: &Reference) -> Result<Option<Image>> {
        let index = self.read_index()?;
        let name = reference.to_string();
        let record = index.images.get(&name).cloned().or_else(|| {
            let digest = reference.digest()?;
            let repo = reference.name();
            index.images.iter().find_map(|(n, r)| {
                let same_repo = Reference::parse(n).is_ok_and(|p| p.name() == repo);
                (same_repo && (r.digest == digest || r.repo_digest == digest)).then(|| r.clone())
            })
        });
        let Some(record) = record else {
            return Ok(None);
        };
        match self.load_image(reference.clone(), &record) {
            Ok(image) => Ok(Some(image)),
            Err(e) => {
                tracing::warn!(image = %name, error = %e, "stored image is incomplete; it must be pulled again");
                Ok(None)
            }
        }
    }

    /// Builds an `Image` from stored blobs; fails if any part is missing.
    pub(crate) fn load_image(&self, reference: Reference, record: &Record) -> Result<Image> {
        let bad = |reason: String| ImageError::Corrupt {
            path: self.blob_path(&record.digest),
            reason,
        };
        let doc = manifest::parse_document(&self.read_blob(&record.digest)?, None).map_err(bad)?;
        let Document::Manifest(m) = doc else {
            return Err(bad("stored manifest is an index".into()));
        };
        let config_digest = m.config().digest().to_string();
        let config = manifest::parse_config(&self.read_blob(&config_digest)?).map_err(bad)?;
        let diff_ids = manifest::diff_ids(&config, m.layers().len()).map_err(bad)?;
        let mut layers = Vec::with_capacity(diff_ids.len());
        for id in &diff_ids {
            let dir = self.layer_path(id);
            if !dir.is_dir() {
                return Err(bad(format!("layer {id} is missing")));
            }
            layers.push(dir);
        }
        let size = m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>();
        Ok(Image {
            reference,
            digest: record.digest.clone(),
            repo_digest: record.repo_digest.clone(),
            config_digest,
            config: manifest::image_config(&config),
            layers,
            size,
        })
    }

    /// All named images.
    pub async fn list(&self) -> Result<Vec<ImageSummary>> {
        let store = self.clone();
        blocking(move || {
            let index = store.read_index()?;
            Ok(index.images.iter().map(|(name, r)| store.summary(name, r)).collect())
        })
        .await
    }

    fn summary(&self, name: &str, r: &Record) -> ImageSummary {
        let size = Reference::parse(name)
            .and_then(|reference| self.load_image(reference, r))
            .map_or(0, |i| i.size);
        ImageSummary {
            name: name.to_string(),
            digest: r.digest.clone(),
            size,
            pulled_at: r.pulled_at.clone(),
        }
    }

    /// Removes a name; blobs and layers no other image uses are deleted.
    /// Returns whether the name existed.
    pub async fn remove(&self, reference: &Reference) -> Result<bool> {
        let name = reference.to_string();
        let removed = self.prune_names(move |n, _| n == name).await?;
        Ok(!removed.is_empty())
    }

    /// Removes every image for which `keep` is false (the agent passes the
    /// images its containers use), then unreferenced content. Images whose
    /// content is damaged are removed too. Returns what was removed.
    pub async fn prune(&self, keep: impl Fn(&Image) -> bool + Send + 'static) -> Result<Vec<ImageSummary>> {
        self.prune_names(move |_, image| !image.is_some_and(&keep)).await
    }

    /// Removes the names for which `select(name, image)` is true (`image` is
    /// `None` when its content is damaged), then collects garbage.
    async fn prune_names(
        &self,
        select: impl Fn(&str, Option<&Image>) -> bool + Send + 'static,
    ) -> Result<Vec<ImageSummary>> {
        let _gc = self.inner.gc.write().await;
        let _index = self.inner.index.lock().await;
        let store = self.clone();
        blocking(move || {
            let mut index = store.read_index()?;
            let mut removed = Vec::new();
            let names: Vec<String> = index.images.keys().cloned().collect();
            for name in names {
                let Some(record) = index.images.get(&name).cloned() else {
                    continue;
                };
                let image = Reference::parse(&name).and_then(|r| store.load_image(r, &record)).ok();
                if select(&name, image.as_ref()) {
                    removed.push(store.summary(&name, &record));
                    index.images.remove(&name);
                }
            }
            if !removed.is_empty() {
                store.write_index(&index)?;
            }
            store.collect_garbage(&index)?;
            Ok(removed)
        })
        .await
    }

    /// Deletes blobs and layers that no indexed image references. Runs with
    /// the gc lock held exclusively.
    fn collect_garbage(&self, index: &IndexFile) -> Result<()> {
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for record in index.images.values() {
            blobs.insert(hex_of(&record.digest).to_string());
            let Ok(bytes) = self.read_blob(&record.digest) else {
                continue;
            };
            let Ok(Document::Manifest(m)) = manifest::parse_document(&bytes, None) else {
                continue;
            };
            let config_digest = m.config().digest().to_string();
            blobs.insert(hex_of(&config_digest).to_string());
            let Ok(config_bytes) = self.read_blob(&config_digest) else {
                continue;
            };
            let Ok(config) = manifest::parse_config(&config_bytes) else {
                continue;
            };
            for id in config.rootfs().diff_ids() {
                layers.insert(hex_of(id).to_string());
            }
        }
        self.delete_unlisted(&self.inner.root.join("blobs/sha256"), &blobs)?;
        self.delete_unlisted(&self.inner.root.join("layers"), &layers)
    }

    fn delete_unlisted(&self, dir: &Path, keep: &HashSet<String>) -> Result<()> {
        let entries = fs::read_dir(dir).map_err(|e| ImageError::io(format!("reading {}", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::io(format!("reading {}", dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) {
                continue;
            }
            // Out of sight first: a crash halfway through deleting must not
            // leave a partial layer under its real name.
            let doomed = self.tmp_path("gc");
            fs::rename(entry.path(), &doomed)
                .map_err(|e| ImageError::io(format!("moving {} aside", entry.path().display()), e))?;
            remove_any(&doomed).map_err(|e| ImageError::io(format!("deleting {}", doomed.display()), e))?;
            tracing::debug!(item = %name, "garbage collected");
        }
        Ok(())
    }

    /// Bytes the store occupies on disk (allocated blocks; hardlinked files
    /// counted once), for the agent's image garbage collection thresholds.
    pub async fn disk_usage(&self) -> Result<u64> {
        let root = self.inner.root.clone();
        blocking(move || {
            let mut seen = HashSet::new();
            disk_usage_of(&root, &mut seen).map_err(|e| ImageError::io(format!("measuring {}", root.display()), e))
        })
        .await
    }
}

fn disk_usage_of(path: &Path, seen: &mut HashSet<(u64, u64)>) -> io::Result<u64> {
    let meta = fs::symlink_metadata(path)?;
    if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
        return Ok(0);
    }
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            total += disk_usage_of(&entry?.path(), seen)?;
        }
    }
    Ok(total)
}

fn remove_any(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Writes `bytes` to `tmp`, fsyncs, renames over `dest` and fsyncs the
/// directory, so `dest` is either old or new content after a crash.
pub(crate) fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let io_err = |what: &str, p: &Path| {
        let context = format!("{what} {}", p.display());
        move |e| ImageError::io(context, e)
    };
    let mut file = fs::File::create(tmp).map_err(io_err("creating", tmp))?;
    file.write_all(bytes).map_err(io_err("writing", tmp))?;
    file.sync_all().map_err(io_err("syncing", tmp))?;
    drop(file);
    fs::rename(tmp, dest).map_err(io_err("renaming to", dest))?;
    sync_parent(dest)
}

pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    let Some(parent) = path.parent() else { return Ok(()) };
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io(format!("syncing {}", parent.display()), e))
}

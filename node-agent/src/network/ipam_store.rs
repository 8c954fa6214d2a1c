//! On-disk IPAM store: a directory with one file per reserved address, named by the address and
//! containing the owner id, plus a `last_reserved_ip` cursor file (the layout of the CNI
//! host-local plugin, so an operator can `ls` and `cat` it).
//!
//! Why files per address rather than one JSON document: a reservation is a single atomic
//! filesystem operation that fails if the address is taken, so no interleaving of writers (or a
//! crash half-way through) can produce a duplicate, and a crash never loses other reservations.
//! The owner is written to a temporary file and fsynced first, then hard-linked to the address
//! name: `link(2)` fails with `EEXIST` like `O_EXCL` does, and the name never appears with
//! empty contents (which plain `O_EXCL` + write would allow after a crash).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::ipam::{IpamError, IpamStore};

const CURSOR_FILE: &str = "last_reserved_ip";
const TMP_PREFIX: &str = ".tmp-";

/// Reservations as files in one directory.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Uses `dir`, creating it if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, IpamError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| IpamError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, path: &Path) -> impl FnOnce(io::Error) -> IpamError {
        let path = path.to_owned();
        move |source| IpamError::Io { path, source }
    }

    /// Makes renames, links and unlinks in the directory durable.
    fn sync_dir(&self) -> Result<(), IpamError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io(&self.dir))
    }

    /// Writes `contents` to a fresh temporary file in the directory, fsynced.
    fn write_tmp(&self, tag: &str, contents: &str) -> Result<PathBuf, IpamError> {
        let tmp = self.dir.join(format!("{TMP_PREFIX}{tag}-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(contents.as_bytes())?;
            f.sync_all()
        };
        write().map_err(self.io(&tmp))?;
        Ok(tmp)
    }
}

impl IpamStore for DirStore {
    fn load(&mut self) -> Result<BTreeMap<Ipv4Addr, String>, IpamError> {
        let mut reserved = BTreeMap::new();
        let entries = fs::read_dir(&self.dir).map_err(self.io(&self.dir))?;
        for entry in entries {
            let entry = entry.map_err(self.io(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                // Left by a crash between writing and linking; never a reservation.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Ok(ip) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            let owner = fs::read_to_string(entry.path()).map_err(self.io(&entry.path()))?;
            reserved.insert(ip, owner.trim_end_matches('\n').to_owned());
        }
        Ok(reserved)
    }

    fn reserve(&mut self, ip: Ipv4Addr, owner: &str) -> Result<bool, IpamError> {
        let tmp = self.write_tmp(&ip.to_string(), owner)?;
        let path = self.dir.join(ip.to_string());
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                self.sync_dir()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(IpamError::Io { path, source: e }),
        }
    }

    fn release(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IpamError::Io { path, source: e }),
        }
    }

    fn last_reserved(&mut self) -> Result<Option<Ipv4Addr>, IpamError> {
        let path = self.dir.join(CURSOR_FILE);
        match fs::read_to_string(&path) {
            // A garbled cursor only costs round-robin order, so it is ignored.
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IpamError::Io { path, source: e }),
        }
    }

    fn set_last_reserved(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        let tmp = self.write_tmp(CURSOR_FILE, &ip.to_string())?;
        let path = self.dir.join(CURSOR_FILE);
        fs::rename(&tmp, &path).map_err(self.io(&path))?;
        self.sync_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ipam::Ipam;
    use super::*;
    use std::collections::HashSet;

    fn net(s: &str) -> super::super::Ipv4Net {
        s.parse().expect("test cidr")
    }

    #[test]
    fn reservations_survive_reopen_as_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ipam");
        let a;
        let b;
        {
            let mut ipam = Ipam::open(net("10.244.1.0/24"), DirStore::open(&dir).expect("store")).expect("open");
            a = ipam.allocate("pod-a").expect("a");
            b = ipam.allocate("pod-b").expect("b");
        }
        assert_eq!(fs::read_to_string(dir.join(a.to_string())).expect("file"), "pod-a");
        assert_eq!(
            fs::read_to_string(dir.join(CURSOR_FILE)).expect("cursor"),
            b.to_string()
        );
        let mut ipam = Ipam::open(net("10.244.1.0/24"), DirStore::open(&dir).expect("store")).expect("open");
        assert_eq!(ipam.allocate("pod-b").expect("b"), b);
        let c = ipam.allocate("pod-c").expect("c");
        assert!(c != a && c != b);
        ipam.release("pod-a").expect("release");
        assert!(!dir.join(a.to_string()).exists());
        let live: HashSet<String> = ["pod-c".to_owned()].into();
        ipam.release_all_except(&live).expect("gc");
        assert!(!dir.join(b.to_string()).exists());
        assert!(dir.join(c.to_string()).exists());
    }

    #[test]
    fn reserve_is_exclusive_and_tmp_leftovers_are_ignored() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut store = DirStore::open(tmp.path()).expect("store");
        let ip: Ipv4Addr = "10.0.0.2".parse().expect("ip");
        assert!(store.reserve(ip, "a").expect("first"));
        assert!(!store.reserve(ip, "b").expect("second"));
        fs::write(tmp.path().join(".tmp-10.0.0.3-1"), "crashed").expect("leftover");
        fs::write(tmp.path().join("not-an-ip"), "x").expect("junk");
        let loaded = store.load().expect("load");
        assert_eq!(loaded, BTreeMap::from([(ip, "a".to_owned())]));
        assert!(!tmp.path().join(".tmp-10.0.0.3-1").exists());
        store.release(ip).expect("release");
        store.release(ip).expect("release again is fine");
        assert!(store.load().expect("load").is_empty());
    }
}

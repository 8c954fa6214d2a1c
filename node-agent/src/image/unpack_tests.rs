//! Unit tests for `unpack`: tars are built in memory, hostile ones with raw
//! header bytes because `tar::Builder` refuses to write them.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn raw(mut self, path: &str, kind: EntryType, link: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_000_000);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(self, path: &str) -> Self {
        self.raw(path, EntryType::Directory, "", 0o750, b"")
    }

    fn file(self, path: &str, data: &[u8]) -> Self {
        self.raw(path, EntryType::Regular, "", 0o755, data)
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.raw(path, EntryType::Symlink, target, 0o777, b"")
    }

    fn hardlink(self, path: &str, target: &str) -> Self {
        self.raw(path, EntryType::Link, target, 0o644, b"")
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn unpack_bytes(bytes: &[u8], dest: &Path) -> Result<(), UnpackError> {
    let reader = decompress(io::BufReader::new(bytes))?;
    unpack_layer(reader, dest)
}

#[test]
fn files_dirs_links_modes_and_owners() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .dir("./")
        .dir("bin/")
        .file("bin/tool", b"#!/bin/sh\n")
        .symlink("bin/sh", "tool")
        .hardlink("bin/tool2", "bin/tool")
        .file("deep/implicit/parent.txt", b"x")
        .raw("dev/null", EntryType::Char, "", 0o666, b"")
        .bytes();
    // gzip and plain tar both work.
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    unpack_bytes(&tar, &plain).unwrap();
    let gz = tmp.path().join("gz");
    fs::create_dir(&gz).unwrap();
    unpack_bytes(&gzip(&tar), &gz).unwrap();

    for root in [&plain, &gz] {
        let tool = fs::symlink_metadata(root.join("bin/tool")).unwrap();
        assert!(tool.is_file());
        assert_eq!(tool.mode() & 0o7777, 0o755);
        assert_eq!(tool.mtime(), 1_000_000);
        assert_eq!(fs::read(root.join("bin/tool")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("tool"));
        let linked = fs::metadata(root.join("bin/tool2")).unwrap();
        assert_eq!(linked.ino(), tool.ino(), "hardlink shares the inode");
        let bin = fs::metadata(root.join("bin")).unwrap();
        assert_eq!(bin.mode() & 0o7777, 0o750);
        assert_eq!(bin.mtime(), 1_000_000, "dir mtime set after its children");
        assert_eq!(
            fs::metadata(root).unwrap().mode() & 0o7777,
            0o750,
            "./ applies to the root"
        );
        assert_eq!(fs::read(root.join("deep/implicit/parent.txt")).unwrap(), b"x");
        assert!(!root.join("dev/null").exists(), "device nodes are skipped");
        if nix::unistd::geteuid().is_root() {
            assert_eq!((tool.uid(), tool.gid()), (1000, 1001));
            assert_eq!(fs::symlink_metadata(root.join("bin/sh")).unwrap().uid(), 1000);
        }
    }
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .file("etc/.wh.old", b"")
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .file("var/new", b"n")
        .file(".wh..wh.plnk", b"")
        .bytes();
    unpack_bytes(&tar, tmp.path()).unwrap();
    let wh = fs::symlink_metadata(tmp.path().join("etc/old")).unwrap();
    assert!(wh.file_type().is_char_device(), "whiteout is a char device");
    assert_eq!(wh.rdev(), 0, "whiteout device is 0:0");
    assert!(!tmp.path().join("etc/.wh.old").exists());
    assert!(!tmp.path().join("var/.wh..wh..opq").exists());
    assert_eq!(
        xattr::get(tmp.path().join("var"), OPAQUE_XATTR).unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(tmp.path().join("var/new")).unwrap(), b"n");
    assert!(!tmp.path().join(".wh..wh.plnk").exists());
    assert!(fs::symlink_metadata(tmp.path().join(".wh.plnk")).is_err());
}

#[test]
fn a_directory_replacing_a_whiteout_is_opaque() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new().file(".wh.d", b"").dir("d/").file("d/f", b"1").bytes();
    unpack_bytes(&tar, tmp.path()).unwrap();
    assert!(fs::symlink_metadata(tmp.path().join("d")).unwrap().is_dir());
    assert_eq!(
        xattr::get(tmp.path().join("d"), OPAQUE_XATTR).unwrap().as_deref(),
        Some(&b"y"[..])
    );
}

fn assert_unsafe(tar: Vec<u8>, outside: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_bytes(&tar, tmp.path()).unwrap_err();
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err}");
    assert!(
        fs::read_dir(outside).unwrap().next().is_none(),
        "nothing may be written outside the layer"
    );
}

#[test]
fn path_traversal_is_rejected() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap();
    assert_unsafe(Tar::new().file("../x", b"evil").bytes(), outside.path());
    assert_unsafe(Tar::new().file("a/../../x", b"evil").bytes(), outside.path());
    assert_unsafe(Tar::new().file(&format!("{out}/abs"), b"evil").bytes(), outside.path());
    // A symlink to a directory outside, then a file written "through" it.
    assert_unsafe(
        Tar::new().symlink("a", out).file("a/passwd", b"evil").bytes(),
        outside.path(),
    );
    // Same through a relative symlink climbing out of the layer.
    assert_unsafe(
        Tar::new()
            .symlink("up", "../../../../../../..")
            .file("up/x", b"evil")
            .bytes(),
        outside.path(),
    );
    // A directory entry through a symlink.
    assert_unsafe(Tar::new().symlink("a", out).dir("a/sub/").bytes(), outside.path());
    // Whiteouts through a symlink, and of "..".
    assert_unsafe(
        Tar::new().symlink("a", out).file("a/.wh.x", b"").bytes(),
        outside.path(),
    );
    assert_unsafe(Tar::new().file(".wh...", b"").bytes(), outside.path());
    // Hardlinks to files outside the layer.
    assert_unsafe(Tar::new().hardlink("h", "../../etc/passwd").bytes(), outside.path());
    assert_unsafe(Tar::new().hardlink("h", "/etc/passwd").bytes(), outside.path());
    let secret = outside.path().join("secret");
    assert_unsafe(
        Tar::new().symlink("a", out).hardlink("h", "a/secret").bytes(),
        outside.path(),
    );
    assert!(!secret.exists());
}

#[test]
fn a_final_symlink_is_replaced_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"original").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .symlink("x", victim.to_str().unwrap())
        .file("x", b"new content")
        .bytes();
    unpack_bytes(&tar, tmp.path()).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    assert!(fs::symlink_metadata(tmp.path().join("x")).unwrap().is_file());
    assert_eq!(fs::read(tmp.path().join("x")).unwrap(), b"new content");
}

#[test]
fn hardlink_to_a_symlink_links_the_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new().symlink("s", "/etc/passwd").hardlink("h", "s").bytes();
    unpack_bytes(&tar, tmp.path()).unwrap();
    let h = fs::symlink_metadata(tmp.path().join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(h.ino(), fs::symlink_metadata(tmp.path().join("s")).unwrap().ino());
}

#[test]
fn truncated_and_corrupt_archives_are_errors() {
    let data = vec![7u8; 100_000];
    let tar = Tar::new().file("big", &data).file("after", b"x").bytes();
    let gz = gzip(&tar);

    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_bytes(&gz[..gz.len() / 2], tmp.path()).unwrap_err();
    assert!(matches!(err, UnpackError::Read(_)), "{err}");

    // Cut inside the file's data: the plain tar just ends early.
    let tmp = tempfile::tempdir().unwrap();
    let err = unpack_bytes(&tar[..50_000], tmp.path()).unwrap_err();
    assert!(matches!(err, UnpackError::Truncated { .. }), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let mut bad_gz = gz.clone();
    let mid = bad_gz.len() / 2;
    bad_gz[mid] ^= 0xff;
    bad_gz[mid + 1] ^= 0xff;
    assert!(unpack_bytes(&bad_gz, tmp.path()).is_err());

    let tmp = tempfile::tempdir().unwrap();
    assert!(
        unpack_bytes(&[0x42u8; 1024], tmp.path()).is_err(),
        "garbage is not a tar"
    );

    let tmp = tempfile::tempdir().unwrap();
    let zstd = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0];
    assert!(matches!(unpack_bytes(&zstd, tmp.path()), Err(UnpackError::Zstd)));
}

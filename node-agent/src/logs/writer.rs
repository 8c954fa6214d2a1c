//! [`LogWriter`]: appends a container's output to its CRI log file and rotates it by size.
//!
//! Rotation: when the next write would take the current file (`0.log`, say) past
//! `max_size`, the file is renamed to `0.log.<UTC YYYYmmdd-HHMMSS.nnnnnnnnn>` and a new
//! `0.log` is started; rotated files beyond `max_files - 1` are deleted, oldest first (so
//! at most `max_files` files exist, the current one included, like kubelet's
//! `containerLogMaxFiles`). The names sort by age. A single write may exceed `max_size`
//! when one record alone is larger; lines are at most 16 KiB, so that is bounded.
//!
//! Every `write` goes to the file at once (no user-space buffer): a follower sees complete
//! records as soon as they are written. Synchronous on purpose: the writer lives in a small
//! single-threaded process that relays a container's stdio.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::format::{format_record, Stream, Tag};
use super::splitter::{LineSplitter, DEFAULT_MAX_LINE};
use super::LogError;

/// Limits of a [`LogWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogWriterConfig {
    /// Rotate before the current file grows past this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included (at least 1).
    pub max_files: usize,
    /// Longest record content; longer lines become `P` fragments.
    pub max_line: usize,
}

impl Default for LogWriterConfig {
    fn default() -> Self {
        LogWriterConfig {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

/// Writes CRI records for both streams of one container to `path`.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    config: LogWriterConfig,
    splitter: LineSplitter,
}

impl LogWriter {
    /// Open (appending to) `path`, creating it, with the default limits.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, LogError> {
        Self::open_with(path, LogWriterConfig::default())
    }

    /// Open (appending to) `path`, creating it.
    pub fn open_with(path: impl Into<PathBuf>, config: LogWriterConfig) -> Result<Self, LogError> {
        let path = path.into();
        let file = open_append(&path)?;
        let size = file.metadata().map_err(LogError::io("stat", &path))?.len();
        Ok(LogWriter {
            path,
            file,
            size,
            config,
            splitter: LineSplitter::new(config.max_line),
        })
    }

    /// The current log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write output of `stream`, stamped now.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), LogError> {
        self.write_at(stream, bytes, Utc::now())
    }

    /// Write output of `stream` received at `time`.
    pub fn write_at(&mut self, stream: Stream, bytes: &[u8], time: DateTime<Utc>) -> Result<(), LogError> {
        let records = self.splitter.feed(stream, bytes);
        self.emit(stream, records, time)
    }

    /// Write out unfinished lines of both streams as `P` records, so readers see output that
    /// has no newline yet (a prompt, a progress bar); later output continues the line.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let now = Utc::now();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let record = self.splitter.flush(stream);
            self.emit(stream, record.into_iter().collect(), now)?;
        }
        Ok(())
    }

    /// The container's output ended: unfinished lines are written as `F` records.
    pub fn close(mut self) -> Result<(), LogError> {
        let now = Utc::now();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let record = self.splitter.finish(stream);
            self.emit(stream, record.into_iter().collect(), now)?;
        }
        self.file.sync_data().map_err(LogError::io("sync", &self.path))
    }

    fn emit(&mut self, stream: Stream, records: Vec<(Tag, Vec<u8>)>, time: DateTime<Utc>) -> Result<(), LogError> {
        let mut buf = Vec::new();
        for (tag, content) in records {
            let mut line = Vec::with_capacity(content.len() + 48);
            format_record(&mut line, &time, stream, tag, &content);
            let line_len = line.len() as u64;
            if self.size + (buf.len() as u64) + line_len > self.config.max_size && self.size + buf.len() as u64 > 0 {
                self.write_all(&buf)?;
                buf.clear();
                self.rotate(time)?;
            }
            buf.extend_from_slice(&line);
        }
        self.write_all(&buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), LogError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(buf).map_err(LogError::io("write", &self.path))?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, time: DateTime<Utc>) -> Result<(), LogError> {
        let stamp = time.format("%Y%m%d-%H%M%S.%9f").to_string();
        let mut target = suffixed(&self.path, &stamp);
        // Two rotations within one nanosecond stamp (a test clock): keep both files.
        let mut n = 1;
        while target.exists() {
            target = suffixed(&self.path, &format!("{stamp}-{n}"));
            n += 1;
        }
        std::fs::rename(&self.path, &target).map_err(LogError::io("rotate", &self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        let rotated = rotated_files(&self.path)?;
        let keep = self.config.max_files.saturating_sub(1);
        let excess = rotated.len().saturating_sub(keep);
        for old in &rotated[..excess] {
            std::fs::remove_file(old).map_err(LogError::io("remove", old))?;
        }
        Ok(())
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(LogError::io("open", path))
}

/// The rotated files of `path` (`<path>.<stamp>`), oldest first.
pub fn rotated_files(path: &Path) -> Result<Vec<PathBuf>, LogError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list", dir))? {
        let entry = entry.map_err(LogError::io("list", dir))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        let is_rotated = file_name
            .strip_prefix(&prefix)
            .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_digit()));
        if is_rotated {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::format::parse_record;
    use chrono::TimeZone;

    fn records(path: &Path) -> Vec<(Stream, Tag, String)> {
        let data = std::fs::read(path).unwrap();
        data.split_inclusive(|b| *b == b'\n')
            .map(|l| {
                let r = parse_record(l).unwrap();
                (r.stream, r.tag, String::from_utf8(r.content).unwrap())
            })
            .collect()
    }

    #[test]
    fn writes_cri_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path).unwrap();
        let t = Utc.timestamp_opt(1_700_000_000, 5).unwrap();
        w.write_at(Stream::Stdout, b"one\ntw", t).unwrap();
        w.write_at(Stream::Stderr, b"oops\n", t).unwrap();
        w.write_at(Stream::Stdout, b"o\n", t).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "2023-11-14T22:13:20.000000005Z stdout F one\n\
             2023-11-14T22:13:20.000000005Z stderr F oops\n\
             2023-11-14T22:13:20.000000005Z stdout F two\n"
        );
        w.write(Stream::Stdout, b"prompt> ").unwrap();
        w.flush().unwrap();
        w.write(Stream::Stdout, b"yes").unwrap();
        w.close().unwrap();
        let got = records(&path);
        assert_eq!(got[3], (Stream::Stdout, Tag::Partial, "prompt> ".into()));
        assert_eq!(got[4], (Stream::Stdout, Tag::Full, "yes".into()));
    }

    #[test]
    fn long_line_is_split_at_max_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path).unwrap();
        let long = vec![b'x'; DEFAULT_MAX_LINE * 2 + 10];
        w.write(Stream::Stdout, &long).unwrap();
        w.write(Stream::Stdout, b"\n").unwrap();
        let got = records(&path);
        let shape: Vec<_> = got.iter().map(|(_, t, c)| (*t, c.len())).collect();
        assert_eq!(
            shape,
            [
                (Tag::Partial, DEFAULT_MAX_LINE),
                (Tag::Partial, DEFAULT_MAX_LINE),
                (Tag::Full, 10)
            ]
        );
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let config = LogWriterConfig {
            max_size: 200,
            max_files: 3,
            max_line: 1024,
        };
        let mut w = LogWriter::open_with(&path, config).unwrap();
        for i in 0..40 {
            let t = Utc.timestamp_opt(1_700_000_000 + i, 0).unwrap();
            w.write_at(Stream::Stdout, format!("line {i:02}\n").as_bytes(), t)
                .unwrap();
        }
        let rotated = rotated_files(&path).unwrap();
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        for file in rotated.iter().chain([&path]) {
            assert!(std::fs::metadata(file).unwrap().len() <= 200);
        }
        let newest_rotated = records(&rotated[1]);
        let current = records(&path);
        assert_eq!(current.last().unwrap().2, "line 39");
        // The rotated file holds exactly the lines before the current file's first one.
        let last_rotated: u32 = newest_rotated.last().unwrap().2[5..].parse().unwrap();
        let first_current: u32 = current[0].2[5..].parse().unwrap();
        assert_eq!(last_rotated + 1, first_current);
        assert!(rotated[0] < rotated[1]);
        // Reopening appends.
        drop(w);
        let mut w = LogWriter::open_with(&path, config).unwrap();
        w.write(Stream::Stderr, b"after\n").unwrap();
        assert_eq!(records(&path).last().unwrap().2, "after");
    }
}

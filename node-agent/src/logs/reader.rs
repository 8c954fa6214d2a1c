//! [`read_logs`]: what `kubectl logs` shows, read from a CRI log file.
//!
//! Semantics follow kubelet's log reader where it is defined: only the current file is read
//! (rotated files are not, as in kubelet); `P` fragments are joined to their line, and with
//! `timestamps` each line is prefixed with the time of its first fragment; `since` drops
//! records older than it; `limit_bytes` caps the output (prefixes included); `follow` keeps
//! reading as the file grows, and when the writer rotates it, finishes the old file and
//! continues with the new one. Differences: stream filtering and `since` apply before
//! `tail_lines`, and tail counts joined lines, not file records.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

use super::format::{format_time, parse_record, Record, Stream, Tag};
use super::LogError;

/// Which streams to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFilter {
    #[default]
    All,
    Stdout,
    Stderr,
}

impl StreamFilter {
    fn accepts(self, stream: Stream) -> bool {
        match self {
            StreamFilter::All => true,
            StreamFilter::Stdout => stream == Stream::Stdout,
            StreamFilter::Stderr => stream == Stream::Stderr,
        }
    }
}

/// What to read (kubelet's `PodLogOptions`, less `previous`, which picks the file).
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub tail_lines: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub timestamps: bool,
    pub limit_bytes: Option<u64>,
    pub follow: bool,
    pub streams: StreamFilter,
    /// How often a follower looks for new data.
    pub poll_interval: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            tail_lines: None,
            since: None,
            timestamps: false,
            limit_bytes: None,
            follow: false,
            streams: StreamFilter::All,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Renders records to output bytes: filters, joins fragments, enforces the byte limit.
struct Renderer<'a> {
    opts: &'a LogOptions,
    /// Per stream: the last record was a `P`, so the next one continues its line.
    continuing: [bool; 2],
    written: u64,
}

impl Renderer<'_> {
    fn accepts(&self, r: &Record) -> bool {
        self.opts.streams.accepts(r.stream) && self.opts.since.is_none_or(|since| r.time >= since)
    }

    fn limit_reached(&self) -> bool {
        self.opts.limit_bytes.is_some_and(|limit| self.written >= limit)
    }

    /// Append the output of `r` to `out`.
    fn render(&mut self, r: &Record, out: &mut Vec<u8>) {
        if !self.accepts(r) || self.limit_reached() {
            return;
        }
        let start = out.len();
        let i = r.stream.index();
        if self.opts.timestamps && !self.continuing[i] {
            out.extend_from_slice(format_time(&r.time).as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&r.content);
        if r.tag == Tag::Full {
            out.push(b'\n');
        }
        self.continuing[i] = r.tag == Tag::Partial;
        let mut len = (out.len() - start) as u64;
        if let Some(limit) = self.opts.limit_bytes {
            let room = limit.saturating_sub(self.written);
            if len > room {
                out.truncate(start + room as usize);
                len = room;
            }
        }
        self.written += len;
    }
}

/// Split complete lines off `buf` and parse them; malformed lines are skipped (kubelet
/// does the same), the incomplete last line stays in `buf`.
fn take_records(buf: &mut Vec<u8>) -> Vec<Record> {
    let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    let rest = buf.split_off(last_nl + 1);
    let complete = std::mem::replace(buf, rest);
    complete
        .split_inclusive(|b| *b == b'\n')
        .filter_map(|line| match parse_record(line) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "skipping malformed container log line");
                None
            }
        })
        .collect()
}

/// Index of the first record of the last `n` lines among the accepted `records`.
fn tail_start(records: &[Record], accepted: impl Fn(&Record) -> bool, n: usize) -> usize {
    if n == 0 {
        return records.len();
    }
    let mut seen_stream = [false; 2];
    let mut lines = 0;
    for (i, r) in records.iter().enumerate().rev() {
        if !accepted(r) {
            continue;
        }
        // A line ends at an F, or at a trailing P its stream has not finished yet.
        let ends_line = r.tag == Tag::Full || !seen_stream[r.stream.index()];
        seen_stream[r.stream.index()] = true;
        if ends_line {
            lines += 1;
            if lines > n {
                return i + 1;
            }
        }
    }
    0
}

/// Write the logs in `path` to `out` per `opts`. With `follow`, keep going until `stop`
/// completes (the container exited and the file is drained, or the client left).
pub async fn read_logs<W, S>(path: &Path, opts: &LogOptions, out: &mut W, stop: S) -> Result<(), LogError>
where
    W: AsyncWrite + Unpin,
    S: Future<Output = ()>,
{
    let mut file = File::open(path).await.map_err(LogError::io("open", path))?;
    let mut inode = file.metadata().await.map_err(LogError::io("stat", path))?.ino();
    let mut buf = Vec::new();
    let mut offset = file.read_to_end(&mut buf).await.map_err(LogError::io("read", path))? as u64;
    let mut renderer = Renderer {
        opts,
        continuing: [false; 2],
        written: 0,
    };

    let records = take_records(&mut buf);
    let start = match opts.tail_lines {
        Some(n) => tail_start(&records, |r| renderer.accepts(r), n),
        None => 0,
    };
    let mut chunk = Vec::new();
    for r in &records[start..] {
        renderer.render(r, &mut chunk);
    }
    write_out(out, &chunk).await?;
    if !opts.follow {
        return Ok(());
    }

    tokio::pin!(stop);
    let mut read_buf = vec![0u8; 64 * 1024];
    loop {
        if renderer.limit_reached() {
            return Ok(());
        }
        let n = file.read(&mut read_buf).await.map_err(LogError::io("read", path))?;
        if n > 0 {
            offset += n as u64;
            buf.extend_from_slice(&read_buf[..n]);
            let mut chunk = Vec::new();
            for r in take_records(&mut buf) {
                renderer.render(&r, &mut chunk);
            }
            write_out(out, &chunk).await?;
            continue;
        }
        // At the end of the file: has it been rotated away or truncated?
        match tokio::fs::metadata(path).await {
            Ok(meta) if meta.ino() != inode => {
                // The writer may have appended to the old file between our last read and its
                // rename: drain it before switching.
                file.read_to_end(&mut buf).await.map_err(LogError::io("read", path))?;
                let mut chunk = Vec::new();
                for r in take_records(&mut buf) {
                    renderer.render(&r, &mut chunk);
                }
                write_out(out, &chunk).await?;
                match File::open(path).await {
                    Ok(new) => {
                        file = new;
                        inode = meta.ino();
                        offset = 0;
                        buf.clear();
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io("open", path)(e)),
                }
            }
            Ok(meta) if meta.len() < offset => {
                file.seek(std::io::SeekFrom::Start(0))
                    .await
                    .map_err(LogError::io("seek", path))?;
                offset = 0;
                buf.clear();
                continue;
            }
            // Between the writer's rename and its create, or unchanged: wait.
            _ => {}
        }
        tokio::select! {
            _ = &mut stop => {
                // The container may have written its last lines after our last read: drain the
                // file before finishing. When the stop means the client left, writing fails, which
                // is what ended the stream anyway.
                file.read_to_end(&mut buf).await.map_err(LogError::io("read", path))?;
                let mut chunk = Vec::new();
                for r in take_records(&mut buf) {
                    renderer.render(&r, &mut chunk);
                }
                return match write_out(out, &chunk).await {
                    Err(LogError::Output(_)) | Ok(()) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            _ = tokio::time::sleep(opts.poll_interval) => {}
        }
    }
}

async fn write_out<W: AsyncWrite + Unpin>(out: &mut W, chunk: &[u8]) -> Result<(), LogError> {
    if chunk.is_empty() {
        return Ok(());
    }
    out.write_all(chunk).await.map_err(LogError::Output)?;
    out.flush().await.map_err(LogError::Output)
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;

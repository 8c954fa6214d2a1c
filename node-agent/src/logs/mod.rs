//! Container log files in the CRI format kubelet reads, and the agent's reader of them.
//!
//! Each line of a log file is one record:
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n`, where `F` ends a line of the
//! container's output and `P` is a fragment of a longer one (split at 16 KiB, or flushed
//! before its newline arrived); a reader joins `P` fragments up to the next `F` of the same
//! stream. Timestamps are UTC with nine fractional digits (valid RFC 3339, so kubelet and
//! crictl read them too).
//!
//! # Layout
//! - `format`: [`Stream`], [`Tag`], rendering and parsing one record (pure).
//! - `splitter`: [`LineSplitter`], output bytes -> records, per stream (pure).
//! - `writer`: [`LogWriter`], a sync writer with size-based rotation.
//! - `reader`: [`read_logs`], the async reader with tail/since/follow for the log endpoint.

mod format;
mod reader;
mod splitter;
mod writer;

pub use format::{format_record, parse_record, Record, Stream, Tag};
pub use reader::{read_logs, LogOptions, StreamFilter};
pub use splitter::LineSplitter;
pub use writer::{rotated_files, LogWriter, LogWriterConfig};

/// Errors of the log writer and reader.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation on a log file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// Writing to the reader's output failed (usually: the client went away).
    #[error("writing log output: {0}")]
    Output(std::io::Error),
    /// A record that is not in the CRI log format.
    #[error("malformed log line: {reason}")]
    Malformed { reason: &'static str },
}

impl LogError {
    fn io<'a>(op: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
        move |source| LogError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

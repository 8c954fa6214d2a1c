//! One CRI log record: `<timestamp> <stream> <tag> <content>\n`.

use chrono::{DateTime, SecondsFormat, Utc};

use super::LogError;

/// Which output of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// `F`: the record ends a line; `P`: a fragment continued by the next record of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Full,
    Partial,
}

/// A parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: DateTime<Utc>,
    pub stream: Stream,
    pub tag: Tag,
    /// Without the line's trailing newline.
    pub content: Vec<u8>,
}

/// RFC 3339 with nine fractional digits, as kubelet prints with `--timestamps`.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Append the file line of one record (content must not contain a newline) to `out`.
pub fn format_record(out: &mut Vec<u8>, time: &DateTime<Utc>, stream: Stream, tag: Tag, content: &[u8]) {
    out.extend_from_slice(format_time(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(match tag {
        Tag::Full => b" F ",
        Tag::Partial => b" P ",
    });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Parse one file line, with or without its trailing newline.
pub fn parse_record(line: &[u8]) -> Result<Record, LogError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (time, rest) = split_space(line).ok_or(LogError::Malformed { reason: "no timestamp" })?;
    let (stream, rest) = split_space(rest).ok_or(LogError::Malformed { reason: "no stream" })?;
    // The content may be empty, in which case the tag is followed by a space or nothing.
    let (tags, content) = split_space(rest).unwrap_or((rest, &[]));
    let time = std::str::from_utf8(time).map_err(|_| LogError::Malformed {
        reason: "timestamp is not UTF-8",
    })?;
    let time = DateTime::parse_from_rfc3339(time)
        .map_err(|_| LogError::Malformed {
            reason: "timestamp is not RFC 3339",
        })?
        .with_timezone(&Utc);
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => {
            return Err(LogError::Malformed {
                reason: "unknown stream",
            })
        }
    };
    // CRI allows several ':'-separated tags; the first says full or partial.
    let tag = match tags.split(|b| *b == b':').next() {
        Some(b"F") => Tag::Full,
        Some(b"P") => Tag::Partial,
        _ => return Err(LogError::Malformed { reason: "unknown tag" }),
    };
    Ok(Record {
        time,
        stream,
        tag,
        content: content.to_vec(),
    })
}

fn split_space(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|b| *b == b' ')?;
    Some((&s[..i], &s[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn round_trip() {
        let t = Utc.timestamp_opt(1_700_000_000, 120_000_000).unwrap();
        let mut out = Vec::new();
        format_record(&mut out, &t, Stream::Stderr, Tag::Partial, b"hello world");
        assert_eq!(out, b"2023-11-14T22:13:20.120000000Z stderr P hello world\n");
        let r = parse_record(&out).unwrap();
        assert_eq!(
            (r.time, r.stream, r.tag, r.content.as_slice()),
            (t, Stream::Stderr, Tag::Partial, &b"hello world"[..])
        );
    }

    #[test]
    fn parses_other_writers() {
        let r = parse_record(b"2016-10-06T00:17:09.669794202+02:00 stdout F:x line").unwrap();
        assert_eq!(r.tag, Tag::Full);
        assert_eq!(r.content, b"line");
        assert_eq!(format_time(&r.time), "2016-10-05T22:17:09.669794202Z");
        let empty = parse_record(b"2016-10-06T00:17:09Z stdout F\n").unwrap();
        assert!(empty.content.is_empty());
        assert!(parse_record(b"garbage").is_err());
        assert!(parse_record(b"2016-10-06T00:17:09Z stdin F x").is_err());
        assert!(parse_record(b"2016-10-06T00:17:09Z stdout X x").is_err());
    }
}

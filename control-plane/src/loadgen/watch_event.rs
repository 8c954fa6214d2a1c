//! Reading a watch response: newline-delimited JSON events (`{"type": .., "object": ..}`),
//! arriving in chunks that need not end at line ends. Pure.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::objects::{rv_number, Meta};

/// Longest line accepted: a configmap event is a few hundred bytes.
const MAX_LINE: usize = 1 << 20;

/// Splits a byte stream into lines.
#[derive(Default)]
pub struct LineBuf {
    buf: Vec<u8>,
}

impl LineBuf {
    /// Appends a chunk; returns the lines it completed (without their `\n`; empty ones
    /// skipped), or an error when a line grows past [`MAX_LINE`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        self.buf.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let line = &self.buf[start..start + nl];
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line.to_vec());
            }
            start += nl + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(format!("watch event longer than {MAX_LINE} bytes"));
        }
        Ok(lines)
    }

    /// Bytes of an unfinished line.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// An object appeared: its name, resourceVersion, and the send time it carries, if any.
    Added { name: String, rv: i64, sent: Option<u64> },
    /// The server ended the watch with a `metav1.Status`.
    Error { code: u16, message: String },
    /// MODIFIED, DELETED, BOOKMARK: not written by the workload.
    Other(String),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: RawObject,
}

#[derive(Deserialize, Default)]
struct RawObject {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: u16,
}

pub fn parse_event(line: &[u8]) -> Result<Event, String> {
    let raw: Raw = serde_json::from_slice(line).map_err(|e| {
        format!(
            "bad watch event ({e}): {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        )
    })?;
    match raw.kind.as_str() {
        "ADDED" => Ok(Event::Added {
            rv: rv_number(&raw.object.metadata.resource_version)?,
            name: raw.object.metadata.name,
            sent: raw.object.data.get("sent").and_then(|s| s.parse().ok()),
        }),
        "ERROR" => Ok(Event::Error {
            code: raw.object.code,
            message: raw.object.message,
        }),
        _ => Ok(Event::Other(raw.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut b = LineBuf::default();
        assert_eq!(b.push(b"{\"a\":1}\n{\"b\"").expect("push"), vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(b.pending(), 4);
        assert!(b.push(b":2").expect("push").is_empty());
        assert_eq!(
            b.push(b"}\n\n{}\n").expect("push"),
            vec![b"{\"b\":2}".to_vec(), b"{}".to_vec()]
        );
        assert_eq!(b.pending(), 0);
        assert!(b.push(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn events_parse() {
        let added = br#"{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"lg-ab-3","namespace":"n","resourceVersion":"812"},"data":{"sent":"123456"}}}"#;
        assert_eq!(
            parse_event(added),
            Ok(Event::Added {
                name: "lg-ab-3".into(),
                rv: 812,
                sent: Some(123_456)
            })
        );
        let foreign = br#"{"type":"ADDED","object":{"metadata":{"name":"other","resourceVersion":"9"}}}"#;
        assert_eq!(
            parse_event(foreign),
            Ok(Event::Added {
                name: "other".into(),
                rv: 9,
                sent: None
            })
        );
        let gone = br#"{"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 5 (9)","reason":"Expired","code":410}}"#;
        assert_eq!(
            parse_event(gone),
            Ok(Event::Error {
                code: 410,
                message: "too old resource version: 5 (9)".into()
            })
        );
        let bookmark = br#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"12"}}}"#;
        assert_eq!(parse_event(bookmark), Ok(Event::Other("BOOKMARK".into())));
        assert!(parse_event(b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}").is_err());
        assert!(parse_event(b"not json").is_err());
    }
}

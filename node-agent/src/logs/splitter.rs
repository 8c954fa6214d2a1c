//! Turning a container's raw output into CRI records, one partial buffer per stream.

use super::format::{Stream, Tag};

/// containerd's default `max_container_log_line_size`.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

/// Splits output into lines across `feed` calls; a line longer than `max_line` bytes is cut
/// into `P` fragments of `max_line` bytes followed by an `F` remainder.
#[derive(Debug)]
pub struct LineSplitter {
    max_line: usize,
    pending: [Vec<u8>; 2],
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line: max_line.max(1),
            pending: [Vec::new(), Vec::new()],
        }
    }

    /// Records completed by `bytes`; an unfinished line stays buffered (at most `max_line`
    /// bytes of it).
    pub fn feed(&mut self, stream: Stream, bytes: &[u8]) -> Vec<(Tag, Vec<u8>)> {
        let max = self.max_line;
        let pending = &mut self.pending[stream.index()];
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            pending.extend_from_slice(&rest[..nl]);
            rest = &rest[nl + 1..];
            let line = std::mem::take(pending);
            let mut chunks = line.chunks(max).peekable();
            if chunks.peek().is_none() {
                out.push((Tag::Full, Vec::new()));
            }
            while let Some(chunk) = chunks.next() {
                let tag = if chunks.peek().is_some() {
                    Tag::Partial
                } else {
                    Tag::Full
                };
                out.push((tag, chunk.to_vec()));
            }
        }
        pending.extend_from_slice(rest);
        // Keep the buffer bounded: full-size fragments of an unfinished line go out now.
        while pending.len() > max {
            let tail = pending.split_off(max);
            out.push((Tag::Partial, std::mem::replace(pending, tail)));
        }
        out
    }

    /// The buffered unfinished line of `stream` as a `P` record (the line may continue).
    pub fn flush(&mut self, stream: Stream) -> Option<(Tag, Vec<u8>)> {
        let pending = std::mem::take(&mut self.pending[stream.index()]);
        (!pending.is_empty()).then_some((Tag::Partial, pending))
    }

    /// The buffered unfinished line of `stream` as an `F` record, for when the stream ended
    /// (containerd ends output without a final newline this way).
    pub fn finish(&mut self, stream: Stream) -> Option<(Tag, Vec<u8>)> {
        let pending = std::mem::take(&mut self.pending[stream.index()]);
        (!pending.is_empty()).then_some((Tag::Full, pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(records: &[(Tag, Vec<u8>)]) -> Vec<(char, String)> {
        records
            .iter()
            .map(|(t, c)| {
                (
                    if *t == Tag::Full { 'F' } else { 'P' },
                    String::from_utf8_lossy(c).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn lines_across_calls_and_streams() {
        let mut s = LineSplitter::new(16);
        assert!(s.feed(Stream::Stdout, b"hel").is_empty());
        assert_eq!(tags(&s.feed(Stream::Stderr, b"err\n")), [('F', "err".into())]);
        assert_eq!(
            tags(&s.feed(Stream::Stdout, b"lo\n\nnext")),
            [('F', "hello".into()), ('F', "".into())]
        );
        assert_eq!(
            tags(&s.flush(Stream::Stdout).into_iter().collect::<Vec<_>>()),
            [('P', "next".into())]
        );
        assert!(s.flush(Stream::Stdout).is_none());
        s.feed(Stream::Stdout, b"tail");
        assert_eq!(
            tags(&s.finish(Stream::Stdout).into_iter().collect::<Vec<_>>()),
            [('F', "tail".into())]
        );
    }

    #[test]
    fn long_lines_are_split() {
        let mut s = LineSplitter::new(4);
        assert_eq!(
            tags(&s.feed(Stream::Stdout, b"abcdefghij\n")),
            [('P', "abcd".into()), ('P', "efgh".into()), ('F', "ij".into())]
        );
        assert_eq!(
            tags(&s.feed(Stream::Stdout, b"abcd\n")),
            [('F', "abcd".into())],
            "exactly max is one F"
        );
        assert_eq!(
            tags(&s.feed(Stream::Stdout, b"0123456789")),
            [('P', "0123".into()), ('P', "4567".into())]
        );
        assert_eq!(tags(&s.feed(Stream::Stdout, b"\n")), [('F', "89".into())]);
    }
}

//! Content digests. Only `sha256` is accepted: it is what every registry
//! and tool produces, and refusing the rest means a digest string is always
//! safe to use as a file name (`sha256:` plus 64 lowercase hex digits).

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// Checks `sha256:<64 lowercase hex>`; the error says what is wrong.
pub fn validate(digest: &str) -> Result<(), String> {
    let Some((alg, hex)) = digest.split_once(':') else {
        return Err(format!("digest {digest:?} has no algorithm prefix"));
    };
    if alg != "sha256" {
        return Err(format!("unsupported digest algorithm {alg:?} (only sha256)"));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest {digest:?} must be sha256 with 64 lowercase hex digits"));
    }
    Ok(())
}

/// The hex part of a digest already checked by [`validate`].
pub fn hex_of(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

pub fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Incremental sha256 that also counts bytes.
#[derive(Default, Clone)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> String {
        format!("sha256:{:x}", self.sha.finalize())
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// Reads the rest of the stream (tar archives end with padding that the
    /// tar reader never asks for, but the digest covers it) and returns the
    /// digest and length of everything.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.hasher.len();
        Ok((self.hasher.finish(), len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes a whole file.
pub fn sha256_file(path: &std::path::Path) -> io::Result<(String, u64)> {
    HashingReader::new(std::fs::File::open(path)?).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(validate(&good).is_ok());
        assert!(validate("sha256").unwrap_err().contains("prefix"));
        assert!(validate(&format!("sha512:{}", "a".repeat(128)))
            .unwrap_err()
            .contains("unsupported"));
        assert!(validate(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(validate(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(validate("sha256:../../etc/passwd").is_err());
        assert_eq!(hex_of(&good), "a".repeat(64));
    }

    #[test]
    fn hashing_reader_covers_unread_tail() -> io::Result<()> {
        let data = b"hello world".to_vec();
        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 5];
        r.read_exact(&mut first)?;
        let (digest, len) = r.finish()?;
        assert_eq!(len, 11);
        assert_eq!(digest, sha256_of(&data));
        assert_eq!(
            digest,
            "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        Ok(())
    }
}

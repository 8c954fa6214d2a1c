//! Key generation: which key op `n` touches, and how keys are spelled.
//!
//! A key is a per-workload prefix (so workloads never see each other's keys on a shared
//! cluster) followed by the key index as lowercase hex, zero-padded to `key_size` bytes:
//! index 42 with `key_size` 8 under `b/put/` is `b/put/0000002a`. Hex keeps keys printable
//! (etcdctl can show them) and sorts like the index. Keys sharing all but their last two hex
//! digits form a "group" of 256 keys: the mixed workload lists one group as Kubernetes lists one
//! namespace.

/// Keys per group: the last two hex digits.
pub const GROUP_SIZE: u64 = 256;

#[derive(Debug, Clone)]
pub struct KeyGen {
    prefix: Vec<u8>,
    key_size: usize,
    key_space: u64,
    sequential: bool,
}

impl KeyGen {
    /// `key_space` must be at least 1 and fit in `key_size` hex digits (see [`KeyGen::check`]).
    pub fn new(prefix: &str, key_size: usize, key_space: u64, sequential: bool) -> Self {
        KeyGen {
            prefix: prefix.as_bytes().to_vec(),
            key_size,
            key_space: key_space.max(1),
            sequential,
        }
    }

    /// Why `key_size` / `key_space` cannot work, if they cannot.
    pub fn check(key_size: usize, key_space: u64) -> Result<(), String> {
        if !(3..=32).contains(&key_size) {
            return Err(format!("--key-size {key_size}: must be 3..=32"));
        }
        if key_space == 0 {
            return Err("--key-space must be at least 1".into());
        }
        if key_size < 16 && key_space > 1u64 << (4 * key_size) {
            return Err(format!(
                "--key-space {key_space} does not fit in {key_size} hex digits (max {})",
                1u64 << (4 * key_size)
            ));
        }
        Ok(())
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    pub fn key_space(&self) -> u64 {
        self.key_space
    }

    /// The key index op `n` touches: `n` modulo the key space when sequential, otherwise drawn
    /// uniformly (by the caller's random `r`).
    pub fn index(&self, n: u64, r: u64) -> u64 {
        if self.sequential {
            n % self.key_space
        } else {
            r % self.key_space
        }
    }

    pub fn key(&self, index: u64) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(format!("{index:0width$x}", width = self.key_size).as_bytes());
        k
    }

    /// Number of groups of [`GROUP_SIZE`] keys covering the key space.
    pub fn groups(&self) -> u64 {
        self.key_space.div_ceil(GROUP_SIZE)
    }

    /// The common prefix of the keys in group `g` (indexes `g*256 .. g*256+255`).
    pub fn group_prefix(&self, g: u64) -> Vec<u8> {
        let mut k = self.key(g * GROUP_SIZE);
        k.truncate(k.len() - 2);
        k
    }

    /// How many keys of group `g` lie inside the key space (all keys `0..key_space` exist after
    /// pre-population).
    pub fn group_len(&self, g: u64) -> u64 {
        self.key_space.saturating_sub(g * GROUP_SIZE).min(GROUP_SIZE)
    }
}

/// The end of the range holding every key that starts with `prefix` (etcd's `--prefix`):
/// the prefix with its last byte below 0xff incremented and what follows dropped; `[0]` (the
/// whole keyspace) when every byte is 0xff.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Where the next page of a paged list starts: just after the last key returned.
pub fn next_page_start(last_key: &[u8]) -> Vec<u8> {
    let mut k = last_key.to_vec();
    k.push(0);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefix_plus_padded_hex() {
        let g = KeyGen::new("b/put/", 8, 1000, true);
        assert_eq!(g.key(42), b"b/put/0000002a".to_vec());
        assert_eq!(g.key(0).len(), 6 + 8);
        assert!(g.key(9) < g.key(10), "keys sort like their index");
    }

    #[test]
    fn sequential_wraps_and_random_stays_in_space() {
        let s = KeyGen::new("p/", 8, 10, true);
        assert_eq!(
            (0..12).map(|n| s.index(n, 999)).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
        );
        let r = KeyGen::new("p/", 8, 10, false);
        assert_eq!(r.index(0, 12345), 5);
        assert!((0..1000).all(|x| r.index(3, x * 7919) < 10));
    }

    #[test]
    fn check_rejects_what_cannot_work() {
        assert!(KeyGen::check(8, 10_000).is_ok());
        assert!(KeyGen::check(8, 1 << 32).is_ok());
        assert!(KeyGen::check(8, (1 << 32) + 1).is_err());
        assert!(KeyGen::check(2, 10).is_err());
        assert!(KeyGen::check(8, 0).is_err());
        assert!(KeyGen::check(20, u64::MAX).is_ok());
    }

    #[test]
    fn groups_cover_the_key_space() {
        let g = KeyGen::new("m/", 8, 600, false);
        assert_eq!(g.groups(), 3);
        assert_eq!(g.group_prefix(0), b"m/000000".to_vec());
        assert_eq!(g.group_prefix(2), b"m/000002".to_vec());
        assert!(g.key(513).starts_with(&g.group_prefix(2)));
        assert!(!g.key(512 - 1).starts_with(&g.group_prefix(2)));
        assert_eq!((0..3).map(|i| g.group_len(i)).collect::<Vec<_>>(), vec![256, 256, 88]);
    }

    #[test]
    fn prefix_end_and_next_page() {
        assert_eq!(prefix_end(b"b/lst/"), b"b/lst0".to_vec());
        assert_eq!(prefix_end(b"a\xff\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
        assert_eq!(next_page_start(b"k1"), b"k1\0".to_vec());
        assert!(next_page_start(b"k1").as_slice() > b"k1".as_slice());
        assert!(next_page_start(b"k1").as_slice() < b"k10".as_slice());
    }
}

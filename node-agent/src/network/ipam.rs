//! Pod IP address management for one pod CIDR.
//!
//! Addresses are handed out round-robin starting after the last one reserved (so an IP that was
//! just released is not immediately given to the next pod, whose peers may still hold stale
//! conntrack or ARP entries for it), skipping the network address, the gateway (first host,
//! owned by the bridge) and the broadcast address. The same owner always gets back its address.
//!
//! The choice of address is pure ([`next_free`]); reservations go through an [`IpamStore`]:
//! [`DirStore`](super::ipam_store::DirStore) on disk, [`MemStore`] for tests. The store is the
//! source of truth: a reservation that fails because the address is taken on disk makes the
//! allocator reload and move on, so two writers never end up with the same address.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("ipam store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pod CIDR {cidr} has no free address")]
    Exhausted { cidr: Ipv4Net },
    #[error("pod CIDR {cidr} is too small (need a prefix of /30 or shorter)")]
    CidrTooSmall { cidr: Ipv4Net },
    #[error("invalid IPAM owner id {owner:?}")]
    InvalidOwner { owner: String },
}

/// Persistence of reservations.
pub trait IpamStore {
    /// Every reservation: address -> owner.
    fn load(&mut self) -> Result<BTreeMap<Ipv4Addr, String>, IpamError>;
    /// Reserves `ip` for `owner` atomically; `Ok(false)` if it is already reserved.
    fn reserve(&mut self, ip: Ipv4Addr, owner: &str) -> Result<bool, IpamError>;
    /// Drops the reservation of `ip`; absent is not an error.
    fn release(&mut self, ip: Ipv4Addr) -> Result<(), IpamError>;
    /// The round-robin cursor, if one was saved.
    fn last_reserved(&mut self) -> Result<Option<Ipv4Addr>, IpamError>;
    fn set_last_reserved(&mut self, ip: Ipv4Addr) -> Result<(), IpamError>;
}

/// The first free address after `last` (wrapping), or `None` if the CIDR is full.
pub fn next_free(cidr: Ipv4Net, reserved: &BTreeMap<Ipv4Addr, String>, last: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    // Offsets 0 (network), 1 (gateway) and size-1 (broadcast) are never handed out.
    let first = 2u64;
    let end = cidr.size().checked_sub(1)?; // exclusive
    if first >= end {
        return None;
    }
    let count = end - first;
    let start = match last.and_then(|ip| cidr.offset_of(ip)) {
        Some(off) if off >= first && off < end => off + 1 - first,
        _ => 0,
    };
    (0..count)
        .map(|i| first + (start + i) % count)
        .filter_map(|off| cidr.nth(off))
        .find(|ip| !reserved.contains_key(ip))
}

/// The allocator of one pod CIDR.
#[derive(Debug)]
pub struct Ipam<S> {
    cidr: Ipv4Net,
    store: S,
    /// Cache of the store's reservations, reloaded whenever the store disagrees.
    reserved: BTreeMap<Ipv4Addr, String>,
    last: Option<Ipv4Addr>,
}

impl<S: IpamStore> Ipam<S> {
    /// Loads the reservations in `store` for `cidr` (host bits are ignored).
    pub fn open(cidr: Ipv4Net, mut store: S) -> Result<Self, IpamError> {
        let cidr = cidr.trunc();
        if cidr.prefix() > 30 {
            return Err(IpamError::CidrTooSmall { cidr });
        }
        let reserved = store.load()?;
        let last = store.last_reserved()?;
        Ok(Self {
            cidr,
            store,
            reserved,
            last,
        })
    }

    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// The gateway address (first host of the CIDR), never allocated to a pod.
    pub fn gateway(&self) -> Ipv4Addr {
        // open() guarantees a prefix of at most /30, so offset 1 exists.
        self.cidr.nth(1).unwrap_or(self.cidr.network())
    }

    /// The address reserved for `owner` inside this CIDR, if any.
    pub fn lookup(&self, owner: &str) -> Option<Ipv4Addr> {
        self.reserved
            .iter()
            .find(|(ip, o)| o.as_str() == owner && self.cidr.contains(**ip))
            .map(|(ip, _)| *ip)
    }

    /// Reserves an address for `owner`, or returns the one it already has.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        validate_owner(owner)?;
        if let Some(ip) = self.lookup(owner) {
            return Ok(ip);
        }
        // Each failed reservation adds at least one address to `reserved` after the reload, so
        // this ends after at most `size` rounds.
        for _ in 0..self.cidr.size() {
            let Some(ip) = next_free(self.cidr, &self.reserved, self.last) else {
                break;
            };
            if self.store.reserve(ip, owner)? {
                self.reserved.insert(ip, owner.to_owned());
                self.last = Some(ip);
                if let Err(e) = self.store.set_last_reserved(ip) {
                    // The cursor is a hint; losing it only weakens round-robin after a restart.
                    tracing::warn!(error = %e, "ipam: cannot save round-robin cursor");
                }
                return Ok(ip);
            }
            self.reserved = self.store.load()?;
            // The store refused but may not list the address (unreadable entry): do not spin.
            self.reserved.entry(ip).or_default();
        }
        Err(IpamError::Exhausted { cidr: self.cidr })
    }

    /// Releases whatever `owner` holds; returns the freed address.
    pub fn release(&mut self, owner: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        let ips: Vec<Ipv4Addr> = self
            .reserved
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &ips {
            self.store.release(*ip)?;
            self.reserved.remove(ip);
        }
        Ok(ips.into_iter().find(|ip| self.cidr.contains(*ip)))
    }

    /// Every reservation: address -> owner (including ones outside the current CIDR, left over
    /// from an earlier one, until garbage-collected).
    pub fn owners(&self) -> BTreeMap<Ipv4Addr, String> {
        self.reserved.clone()
    }

    /// Start-up garbage collection: releases every reservation whose owner is not in `live`.
    /// Returns what was released.
    pub fn release_all_except(&mut self, live: &HashSet<String>) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        self.reserved = self.store.load()?;
        let stale: Vec<(Ipv4Addr, String)> = self
            .reserved
            .iter()
            .filter(|(_, owner)| !live.contains(owner.as_str()))
            .map(|(ip, owner)| (*ip, owner.clone()))
            .collect();
        for (ip, _) in &stale {
            self.store.release(*ip)?;
            self.reserved.remove(ip);
        }
        Ok(stale)
    }
}

/// Owners are pod ids, stored as file contents: a newline or an empty id would not round-trip.
fn validate_owner(owner: &str) -> Result<(), IpamError> {
    if owner.is_empty() || owner.len() > 253 || owner.chars().any(|c| c.is_control()) {
        return Err(IpamError::InvalidOwner {
            owner: owner.to_owned(),
        });
    }
    Ok(())
}

/// In-memory store for tests; clones share state, so a "reopened" allocator sees what the
/// previous one wrote.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    inner: std::sync::Arc<std::sync::Mutex<MemInner>>,
}

#[derive(Debug, Default)]
struct MemInner {
    reserved: BTreeMap<Ipv4Addr, String>,
    last: Option<Ipv4Addr>,
}

impl MemStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemInner) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl IpamStore for MemStore {
    fn load(&mut self) -> Result<BTreeMap<Ipv4Addr, String>, IpamError> {
        Ok(self.with(|m| m.reserved.clone()))
    }
    fn reserve(&mut self, ip: Ipv4Addr, owner: &str) -> Result<bool, IpamError> {
        Ok(self.with(|m| {
            if m.reserved.contains_key(&ip) {
                return false;
            }
            m.reserved.insert(ip, owner.to_owned());
            true
        }))
    }
    fn release(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        self.with(|m| m.reserved.remove(&ip));
        Ok(())
    }
    fn last_reserved(&mut self) -> Result<Option<Ipv4Addr>, IpamError> {
        Ok(self.with(|m| m.last))
    }
    fn set_last_reserved(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        self.with(|m| m.last = Some(ip));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test cidr")
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test ip")
    }

    #[test]
    fn next_free_skips_reserved_addresses_and_wraps() {
        let cidr = net("10.0.0.0/29"); // hosts .2 ..= .6 are allocatable
        let mut reserved = BTreeMap::new();
        assert_eq!(next_free(cidr, &reserved, None), Some(ip("10.0.0.2")));
        assert_eq!(next_free(cidr, &reserved, Some(ip("10.0.0.4"))), Some(ip("10.0.0.5")));
        // After the last host it wraps to the first, never to broadcast (.7).
        assert_eq!(next_free(cidr, &reserved, Some(ip("10.0.0.6"))), Some(ip("10.0.0.2")));
        reserved.insert(ip("10.0.0.2"), "a".into());
        reserved.insert(ip("10.0.0.3"), "b".into());
        assert_eq!(next_free(cidr, &reserved, Some(ip("10.0.0.6"))), Some(ip("10.0.0.4")));
        // A cursor outside the CIDR starts from the beginning.
        assert_eq!(
            next_free(cidr, &reserved, Some(ip("192.168.0.1"))),
            Some(ip("10.0.0.4"))
        );
        for i in 4..=6 {
            reserved.insert(ip(&format!("10.0.0.{i}")), "x".into());
        }
        assert_eq!(next_free(cidr, &reserved, None), None);
        assert_eq!(next_free(net("10.0.0.0/31"), &BTreeMap::new(), None), None);
    }

    #[test]
    fn same_owner_same_ip_and_distinct_owners_distinct_ips() {
        let mut ipam = Ipam::open(net("10.244.1.0/24"), MemStore::default()).expect("open");
        assert_eq!(ipam.gateway(), ip("10.244.1.1"));
        let a = ipam.allocate("pod-a").expect("a");
        let b = ipam.allocate("pod-b").expect("b");
        assert_eq!(a, ip("10.244.1.2"));
        assert_eq!(b, ip("10.244.1.3"));
        assert_eq!(ipam.allocate("pod-a").expect("a again"), a);
        assert_eq!(ipam.owners().len(), 2);
    }

    #[test]
    fn exhaustion_is_a_clear_error() {
        let mut ipam = Ipam::open(net("10.0.0.0/29"), MemStore::default()).expect("open");
        let ips: HashSet<Ipv4Addr> = (0..5)
            .map(|i| ipam.allocate(&format!("p{i}")).expect("alloc"))
            .collect();
        assert_eq!(ips.len(), 5, "no duplicates");
        for bad in ["10.0.0.0", "10.0.0.1", "10.0.0.7"] {
            assert!(!ips.contains(&ip(bad)), "{bad} must never be allocated");
        }
        let err = ipam.allocate("one-too-many").expect_err("full");
        assert!(matches!(err, IpamError::Exhausted { .. }), "{err}");
        assert!(err.to_string().contains("10.0.0.0/29"));
        // Releasing one makes room again.
        ipam.release("p2").expect("release");
        assert!(ipam.allocate("one-too-many").is_ok());
    }

    #[test]
    fn release_does_not_reuse_immediately() {
        let mut ipam = Ipam::open(net("10.0.0.0/28"), MemStore::default()).expect("open");
        let a = ipam.allocate("a").expect("a");
        assert_eq!(ipam.release("a").expect("release"), Some(a));
        assert_eq!(ipam.release("a").expect("release twice"), None);
        let b = ipam.allocate("b").expect("b");
        assert_ne!(a, b, "round-robin must not hand out the just-released address");
        assert!(ipam.lookup("a").is_none());
    }

    #[test]
    fn reopen_keeps_reservations_and_cursor() {
        let store = MemStore::default();
        let mut ipam = Ipam::open(net("10.0.0.0/28"), store.clone()).expect("open");
        let a = ipam.allocate("a").expect("a");
        let b = ipam.allocate("b").expect("b");
        drop(ipam);
        let mut ipam = Ipam::open(net("10.0.0.0/28"), store).expect("reopen");
        assert_eq!(ipam.allocate("a").expect("a"), a);
        let c = ipam.allocate("c").expect("c");
        assert_ne!(c, a);
        assert_ne!(c, b);
        assert_eq!(c, ip("10.0.0.4"), "cursor continues after b");
    }

    #[test]
    fn concurrent_writer_is_detected_by_the_store() {
        let store = MemStore::default();
        let mut first = Ipam::open(net("10.0.0.0/28"), store.clone()).expect("open");
        let mut second = Ipam::open(net("10.0.0.0/28"), store).expect("open");
        let a = first.allocate("a").expect("a");
        // `second` has a stale cache that still thinks `a`'s address is free.
        let b = second.allocate("b").expect("b");
        assert_ne!(a, b);
    }

    #[test]
    fn gc_releases_dead_owners_only() {
        let mut ipam = Ipam::open(net("10.0.0.0/28"), MemStore::default()).expect("open");
        let a = ipam.allocate("a").expect("a");
        let b = ipam.allocate("b").expect("b");
        let live: HashSet<String> = ["a".to_owned()].into();
        let released = ipam.release_all_except(&live).expect("gc");
        assert_eq!(released, vec![(b, "b".to_owned())]);
        assert_eq!(ipam.owners(), BTreeMap::from([(a, "a".to_owned())]));
    }

    #[test]
    fn rejects_bad_owners_and_tiny_cidrs() {
        let mut ipam = Ipam::open(net("10.0.0.0/28"), MemStore::default()).expect("open");
        assert!(ipam.allocate("").is_err());
        assert!(ipam.allocate("a\nb").is_err());
        assert!(matches!(
            Ipam::open(net("10.0.0.0/31"), MemStore::default()),
            Err(IpamError::CidrTooSmall { .. })
        ));
    }
}

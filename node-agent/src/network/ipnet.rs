//! `Ipv4Net`: an IPv4 address with a prefix length ("10.244.1.0/24", "10.244.1.1/24").
//!
//! None of the allowed dependencies ships such a type (netlink-packet-route works with a bare
//! `Ipv4Addr` plus a prefix length), and the pod network needs only a handful of operations, so
//! it lives here. The address part is kept as given: a bridge address such as `10.244.1.1/24`
//! is as meaningful as the network `10.244.1.0/24`; [`Ipv4Net::trunc`] gives the latter.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why a string is not an `a.b.c.d/n` network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    #[error("{input:?} is not of the form a.b.c.d/prefix")]
    Syntax { input: String },
    #[error("prefix length {prefix} is larger than 32")]
    Prefix { prefix: u8 },
}

/// An IPv4 address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, IpNetError> {
        if prefix > 32 {
            return Err(IpNetError::Prefix { prefix });
        }
        Ok(Self { addr, prefix })
    }

    /// The default route's destination, `0.0.0.0/0`.
    pub const fn default_route() -> Self {
        Self {
            addr: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    fn mask(&self) -> u32 {
        // `checked_shl` because a shift by 32 (prefix 0) overflows a u32.
        u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0)
    }

    /// The first address of the network (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The last address of the network (host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The same network with the host bits cleared: what a route destination must look like.
    pub fn trunc(&self) -> Self {
        Self {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Number of addresses in the network, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The address `n` places after the network address, if still inside the network;
    /// `nth(1)` is the first host address (the pod network's gateway).
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        if n >= self.size() {
            return None;
        }
        let n = u32::try_from(n).ok()?;
        Some(Ipv4Addr::from(u32::from(self.network()).checked_add(n)?))
    }

    /// The position of `ip` inside the network (inverse of [`Ipv4Net::nth`]).
    pub fn offset_of(&self, ip: Ipv4Addr) -> Option<u64> {
        if !self.contains(ip) {
            return None;
        }
        Some(u64::from(u32::from(ip) - u32::from(self.network())))
    }

    /// True if every address of `other` is inside `self`.
    pub fn covers(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || IpNetError::Syntax { input: s.to_owned() };
        let (addr, prefix) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        // u8::from_str accepts a leading '+', which is no valid CIDR notation.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        Self::new(addr, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_and_displays() {
        let n = net("10.244.1.0/24");
        assert_eq!(n.addr(), Ipv4Addr::new(10, 244, 1, 0));
        assert_eq!(n.prefix(), 24);
        assert_eq!(n.to_string(), "10.244.1.0/24");
        assert_eq!(net("10.244.1.1/24").to_string(), "10.244.1.1/24");
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "10.244.1.0",
            "10.244.1.0/",
            "10.244.1.0/33",
            "10.244.1/24",
            "10.244.1.0/+4",
            "10.244.1.0/24/1",
            "x/24",
        ] {
            assert!(s.parse::<Ipv4Net>().is_err(), "{s:?} should not parse");
        }
    }

    #[test]
    fn network_broadcast_mask() {
        let n = net("10.244.1.77/24");
        assert_eq!(n.network(), Ipv4Addr::new(10, 244, 1, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 244, 1, 255));
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(n.trunc(), net("10.244.1.0/24"));
        let all = net("0.0.0.0/0");
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(all.broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!(all.size(), 1 << 32);
        assert_eq!(net("10.0.0.5/32").size(), 1);
    }

    #[test]
    fn contains_and_covers() {
        let n = net("10.244.1.0/24");
        assert!(n.contains(Ipv4Addr::new(10, 244, 1, 0)));
        assert!(n.contains(Ipv4Addr::new(10, 244, 1, 255)));
        assert!(!n.contains(Ipv4Addr::new(10, 244, 2, 0)));
        assert!(net("0.0.0.0/0").contains(Ipv4Addr::new(1, 2, 3, 4)));
        let cluster = net("10.244.0.0/16");
        assert!(cluster.covers(&n));
        assert!(!n.covers(&cluster));
        assert!(!cluster.covers(&net("10.245.0.0/24")));
    }

    #[test]
    fn nth_and_offset() {
        let n = net("10.244.1.0/24");
        assert_eq!(n.nth(0), Some(Ipv4Addr::new(10, 244, 1, 0)));
        assert_eq!(n.nth(1), Some(Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(n.nth(255), Some(Ipv4Addr::new(10, 244, 1, 255)));
        assert_eq!(n.nth(256), None);
        assert_eq!(n.offset_of(Ipv4Addr::new(10, 244, 1, 9)), Some(9));
        assert_eq!(n.offset_of(Ipv4Addr::new(10, 244, 2, 9)), None);
        assert_eq!(net("255.255.255.0/24").nth(255), Some(Ipv4Addr::BROADCAST));
    }
}

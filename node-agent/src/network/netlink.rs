//! The OS seam of the pod network: the few rtnetlink operations it needs, on one network
//! namespace. [`super::RtNetlink`] talks to the kernel, [`super::FakeNetlink`] keeps links,
//! addresses and routes in memory for unit tests.
//!
//! Operations name links by interface name because that is what the pod network derives from a
//! pod id; the kernel resolves names with `IFLA_IFNAME`. Every operation is synchronous: a netlink
//! request on a local socket takes microseconds, so async callers wrap a whole
//! `setup`/`teardown` in `spawn_blocking` rather than every call.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::ipnet::Ipv4Net;

/// `rtm_protocol` of every route skiff installs: 0x5b (91), unused by the kernel and by the
/// routing daemons listed in iproute2's `rt_protos`. A resync lists and deletes routes with this
/// protocol only, so routes made by anyone else are never touched. `ip route` shows it as
/// `proto 91`.
pub const ROUTE_PROTOCOL: u8 = 0x5b;

/// Linux' limit on interface names (IFNAMSIZ minus the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// What a failed netlink operation was and why.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel (or the socket) refused: `source.raw_os_error()` is the errno.
    #[error("netlink {op}: {source}")]
    Os {
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("netlink {op}: malformed reply: {reason}")]
    Decode { op: String, reason: String },
    #[error("entering network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("link {name} not found")]
    NoSuchLink { name: String },
    #[error("writing {path}: {source}")]
    Sysctl {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl NetlinkError {
    /// The errno behind an `Os` error, for callers that tolerate e.g. `EEXIST`.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Os { source, .. } | NetlinkError::Netns { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn os(op: impl Into<String>, source: io::Error) -> Self {
        NetlinkError::Os { op: op.into(), source }
    }
}

/// The kind of a link as reported in `IFLA_INFO_KIND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Bridge,
    Veth,
    /// Anything else (`lo` and physical devices report no kind at all).
    Other(String),
}

/// What the pod network needs to know about an existing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    pub up: bool,
    /// Index of the bridge the link is attached to (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// For a veth: the peer's index in the peer's namespace (`IFLA_LINK`).
    pub peer_index: Option<u32>,
    pub mtu: Option<u32>,
}

/// Where a route sends its traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// Via a gateway on a connected subnet.
    Via(Ipv4Addr),
    /// Dropped (`RTN_BLACKHOLE`).
    Blackhole,
    /// Directly out of the link with this index (scope link).
    Dev(u32),
}

/// An IPv4 route in the main table with skiff's [`ROUTE_PROTOCOL`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// Destination, host bits cleared (the kernel rejects anything else).
    pub dst: Ipv4Net,
    pub kind: RouteKind,
}

impl Route {
    pub fn via(dst: Ipv4Net, gateway: Ipv4Addr) -> Self {
        Self {
            dst: dst.trunc(),
            kind: RouteKind::Via(gateway),
        }
    }

    pub fn blackhole(dst: Ipv4Net) -> Self {
        Self {
            dst: dst.trunc(),
            kind: RouteKind::Blackhole,
        }
    }

    pub fn dev(dst: Ipv4Net, index: u32) -> Self {
        Self {
            dst: dst.trunc(),
            kind: RouteKind::Dev(index),
        }
    }
}

/// rtnetlink operations on one network namespace.
pub trait Netlink {
    /// A handle on the namespace bind-mounted at `path` (an nsfs file such as
    /// `/run/netns/x` or a sandbox's `net` file).
    fn open_netns(&self, path: &Path) -> Result<Self, NetlinkError>
    where
        Self: Sized;

    /// The link called `name`, or `None` if there is none.
    fn link(&mut self, name: &str) -> Result<Option<Link>, NetlinkError>;

    /// All links of the namespace.
    fn links(&mut self) -> Result<Vec<Link>, NetlinkError>;

    /// Creates a bridge (down, no address); fails with `EEXIST` if the name is taken.
    fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<(), NetlinkError>;

    /// Creates a veth pair: `host_name` here, `peer_name` directly inside the namespace at
    /// `peer_netns`, so the peer never appears under a temporary name in this namespace.
    fn create_veth(
        &mut self,
        host_name: &str,
        peer_name: &str,
        peer_netns: &Path,
        mtu: u32,
    ) -> Result<(), NetlinkError>;

    /// Deletes a link; `Ok(false)` if it did not exist. Deleting one end of a veth pair deletes
    /// both.
    fn delete_link(&mut self, name: &str) -> Result<bool, NetlinkError>;

    /// Attaches `name` to the bridge with index `bridge`.
    fn set_master(&mut self, name: &str, bridge: u32) -> Result<(), NetlinkError>;

    fn set_up(&mut self, name: &str) -> Result<(), NetlinkError>;

    /// The IPv4 addresses of a link, as address/prefix.
    fn addresses(&mut self, name: &str) -> Result<Vec<Ipv4Net>, NetlinkError>;

    /// Adds an address; already present is not an error.
    fn add_address(&mut self, name: &str, addr: Ipv4Net) -> Result<(), NetlinkError>;

    /// Removes an address; already absent is not an error.
    fn delete_address(&mut self, name: &str, addr: Ipv4Net) -> Result<(), NetlinkError>;

    /// Creates the route or replaces the main-table route with the same destination.
    fn replace_route(&mut self, route: &Route) -> Result<(), NetlinkError>;

    /// Deletes exactly this route of ours; already gone is not an error.
    fn delete_route(&mut self, route: &Route) -> Result<(), NetlinkError>;

    /// The main table's IPv4 routes whose protocol is [`ROUTE_PROTOCOL`].
    fn list_routes(&mut self) -> Result<Vec<Route>, NetlinkError>;

    /// Sets `net.ipv4.ip_forward = 1` in this namespace.
    fn enable_ip_forward(&mut self) -> Result<(), NetlinkError>;
}

//! Pod network of the node agent: one network namespace per pod, a veth pair into the node
//! bridge, pod IPs from the node's `spec.podCIDR`, and host-gw routes to other nodes' pod CIDRs,
//! all programmed with rtnetlink.
//!
//! ```text
//!  pod netns                 node (host) netns                      other node
//!  eth0 10.244.1.2/24 ==veth== vskf1a2b3c4d -- skiff0 10.244.1.1/24
//!  default via 10.244.1.1                     10.244.2.0/24 via 192.168.1.12 (proto 91)
//!                                             blackhole 10.244.0.0/16        (proto 91)
//! ```
//!
//! # Layout
//! - [`ipnet`]: `Ipv4Net`, an address with a prefix length.
//! - [`netlink`]: the `Netlink` trait (the OS seam), `Link`, `Route`, `NetlinkError`.
//! - [`rtnetlink`]: `RtNetlink`, the real implementation over a `NETLINK_ROUTE` socket, and
//!   entering a pod's namespace; [`rtnetlink_msg`] builds and parses its messages.
//! - [`fake`]: `FakeNetlink`, an in-memory world of namespaces for unit tests.
//! - [`ipam`]: the address allocator (pure choice + an `IpamStore` seam); [`ipam_store`]: the
//!   on-disk store.
//! - [`routes`]: the pure desired-vs-current route computation of host-gw.
//! - [`pod`]: `PodNetwork`, the orchestration: `setup`, `teardown`, `gc`, `sync_routes`.

pub mod fake;
pub mod ipam;
pub mod ipam_store;
pub mod ipnet;
pub mod netlink;
pub mod pod;
pub mod routes;
pub mod rtnetlink;
pub mod rtnetlink_msg;

#[cfg(test)]
mod pod_tests;

pub use fake::FakeNetlink;
pub use ipam::{Ipam, IpamError, IpamStore, MemStore};
pub use ipam_store::DirStore;
pub use ipnet::{IpNetError, Ipv4Net};
pub use netlink::{Link, LinkKind, Netlink, NetlinkError, Route, RouteKind, ROUTE_PROTOCOL};
pub use pod::{host_veth_name, GcReport, PodIp, PodNetwork, PodNetworkConfig, POD_IFNAME};
pub use routes::{plan_routes, RoutePlan};
pub use rtnetlink::RtNetlink;

/// Errors of the pod network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("pod network configuration: {reason}")]
    Config { reason: String },
    #[error("link {name} is a {found:?}, expected a {expected}")]
    WrongKind {
        name: String,
        expected: &'static str,
        found: LinkKind,
    },
    /// Some route changes failed (the others were applied); `first` is the first failure.
    #[error("{failed} route change(s) failed, first: {first}")]
    RouteSync {
        failed: usize,
        #[source]
        first: NetlinkError,
    },
}

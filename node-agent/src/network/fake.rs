//! In-memory [`Netlink`] for unit tests: a "world" of network namespaces, each with links,
//! addresses and routes, shared by every handle opened on it.
//!
//! It mirrors the kernel rules the pod network relies on: names are unique per namespace,
//! deleting one end of a veth deletes the other, a route via a gateway needs an up link with an
//! address on the gateway's subnet, deleting a namespace destroys the veth ends inside it. It can
//! also fail the n-th mutating operation, to test that a crash at any point is repaired by
//! running `setup` again.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ipnet::Ipv4Net;
use super::netlink::{Link, LinkKind, Netlink, NetlinkError, Route, RouteKind};

/// Key of the namespace a plain [`FakeNetlink::new`] handle works on.
pub const HOST_NS: &str = "<host>";

#[derive(Debug, Clone)]
struct FakeLink {
    link: Link,
    addresses: Vec<Ipv4Net>,
    /// For a veth: (namespace, name) of the other end.
    peer: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct FakeNs {
    links: BTreeMap<String, FakeLink>,
    routes: Vec<Route>,
    ip_forward: bool,
    next_index: u32,
}

impl FakeNs {
    fn new() -> Self {
        let mut ns = FakeNs {
            next_index: 2,
            ..Default::default()
        };
        let lo = Link {
            index: 1,
            name: "lo".into(),
            kind: LinkKind::Other(String::new()),
            up: false,
            master: None,
            peer_index: None,
            mtu: Some(65536),
        };
        ns.links.insert(
            "lo".into(),
            FakeLink {
                link: lo,
                addresses: vec![],
                peer: None,
            },
        );
        ns
    }

    fn add(&mut self, name: &str, kind: LinkKind, mtu: u32) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        let link = Link {
            index,
            name: name.into(),
            kind,
            up: false,
            master: None,
            peer_index: None,
            mtu: Some(mtu),
        };
        self.links.insert(
            name.into(),
            FakeLink {
                link,
                addresses: vec![],
                peer: None,
            },
        );
        index
    }
}

#[derive(Debug, Default)]
struct World {
    namespaces: BTreeMap<String, FakeNs>,
    /// Mutating operations left before an injected failure (`None`: never fail).
    fail_in: Option<usize>,
    /// Every mutating operation, as "ns: op name".
    log: Vec<String>,
}

/// A handle on one namespace of a shared fake world.
#[derive(Debug, Clone)]
pub struct FakeNetlink {
    world: Arc<Mutex<World>>,
    ns: String,
}

impl Default for FakeNetlink {
    fn default() -> Self {
        Self::new()
    }
}

fn errno(op: &str, code: i32) -> NetlinkError {
    NetlinkError::os(op, io::Error::from_raw_os_error(code))
}

impl FakeNetlink {
    /// A fresh world holding only the host namespace.
    pub fn new() -> Self {
        let mut world = World::default();
        world.namespaces.insert(HOST_NS.into(), FakeNs::new());
        Self {
            world: Arc::new(Mutex::new(world)),
            ns: HOST_NS.into(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(path: &Path) -> String {
        path.to_string_lossy().into_owned()
    }

    /// Creates an (empty but for `lo`) namespace reachable at `path`.
    pub fn add_netns(&self, path: &Path) {
        self.lock().namespaces.insert(Self::key(path), FakeNs::new());
    }

    /// Destroys a namespace like the kernel does when its last reference goes: veth ends in it
    /// vanish and take their peers with them.
    pub fn remove_netns(&self, path: &Path) {
        let mut world = self.lock();
        if let Some(ns) = world.namespaces.remove(&Self::key(path)) {
            for link in ns.links.values() {
                if let Some((peer_ns, peer)) = &link.peer {
                    if let Some(other) = world.namespaces.get_mut(peer_ns) {
                        other.links.remove(peer);
                    }
                }
            }
        }
    }

    /// Makes the mutating operation after `n` more succeed fail with `EIO`, once.
    pub fn fail_after(&self, n: usize) {
        self.lock().fail_in = Some(n);
    }

    /// Mutating operations performed so far, oldest first.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// A snapshot of a link with its addresses, for assertions.
    pub fn link_state(&self, name: &str) -> Option<(Link, Vec<Ipv4Net>)> {
        let world = self.lock();
        let link = world.namespaces.get(&self.ns)?.links.get(name)?;
        Some((link.link.clone(), link.addresses.clone()))
    }

    pub fn ip_forward(&self) -> bool {
        self.lock().namespaces.get(&self.ns).is_some_and(|ns| ns.ip_forward)
    }

    /// The namespace this handle works on (its path, or [`HOST_NS`]).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.ns)
    }

    /// Runs a mutating operation: counts down the injected failure, logs, then applies `f` to
    /// this handle's namespace.
    fn mutate<T>(
        &self,
        op: &str,
        f: impl FnOnce(&mut World, &str) -> Result<T, NetlinkError>,
    ) -> Result<T, NetlinkError> {
        let mut world = self.lock();
        match world.fail_in {
            Some(0) => {
                world.fail_in = None;
                return Err(errno(&format!("{op} (injected)"), libc::EIO));
            }
            Some(n) => world.fail_in = Some(n - 1),
            None => {}
        }
        world.log.push(format!("{}: {op}", self.ns));
        let ns = self.ns.clone();
        f(&mut world, &ns)
    }

    fn read<T>(&self, f: impl FnOnce(&FakeNs) -> T) -> Result<T, NetlinkError> {
        let world = self.lock();
        let ns = world
            .namespaces
            .get(&self.ns)
            .ok_or_else(|| errno("read namespace", libc::ENOENT))?;
        Ok(f(ns))
    }
}

fn ns_mut<'a>(world: &'a mut World, key: &str) -> Result<&'a mut FakeNs, NetlinkError> {
    world
        .namespaces
        .get_mut(key)
        .ok_or_else(|| errno("namespace", libc::ENOENT))
}

fn link_mut<'a>(ns: &'a mut FakeNs, name: &str) -> Result<&'a mut FakeLink, NetlinkError> {
    ns.links
        .get_mut(name)
        .ok_or_else(|| errno(&format!("link {name}"), libc::ENODEV))
}

impl Netlink for FakeNetlink {
    fn open_netns(&self, path: &Path) -> Result<Self, NetlinkError> {
        let key = Self::key(path);
        if !self.lock().namespaces.contains_key(&key) {
            return Err(NetlinkError::Netns {
                path: path.to_owned(),
                source: io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        Ok(Self {
            world: Arc::clone(&self.world),
            ns: key,
        })
    }

    fn link(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        self.read(|ns| ns.links.get(name).map(|l| l.link.clone()))
    }

    fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        self.read(|ns| ns.links.values().map(|l| l.link.clone()).collect())
    }

    fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        self.mutate(&format!("create bridge {name}"), |w, key| {
            let ns = ns_mut(w, key)?;
            if ns.links.contains_key(name) {
                return Err(errno("create bridge", libc::EEXIST));
            }
            ns.add(name, LinkKind::Bridge, mtu);
            Ok(())
        })
    }

    fn create_veth(
        &mut self,
        host_name: &str,
        peer_name: &str,
        peer_netns: &Path,
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        let peer_key = Self::key(peer_netns);
        self.mutate(&format!("create veth {host_name}"), |w, key| {
            if ns_mut(w, key)?.links.contains_key(host_name) {
                return Err(errno("create veth", libc::EEXIST));
            }
            let peer_ns = ns_mut(w, &peer_key)?;
            if peer_ns.links.contains_key(peer_name) {
                return Err(errno("create veth peer", libc::EEXIST));
            }
            let peer_index = peer_ns.add(peer_name, LinkKind::Veth, mtu);
            let ns = ns_mut(w, key)?;
            let host_index = ns.add(host_name, LinkKind::Veth, mtu);
            let host = link_mut(ns, host_name)?;
            host.link.peer_index = Some(peer_index);
            host.peer = Some((peer_key.clone(), peer_name.to_owned()));
            let peer = link_mut(ns_mut(w, &peer_key)?, peer_name)?;
            peer.link.peer_index = Some(host_index);
            peer.peer = Some((key.to_owned(), host_name.to_owned()));
            Ok(())
        })
    }

    fn delete_link(&mut self, name: &str) -> Result<bool, NetlinkError> {
        self.mutate(&format!("delete link {name}"), |w, key| {
            let ns = ns_mut(w, key)?;
            let Some(link) = ns.links.remove(name) else {
                return Ok(false);
            };
            let index = link.link.index;
            ns.routes.retain(|r| r.kind != RouteKind::Dev(index));
            if let Some((peer_ns, peer)) = link.peer {
                if let Some(other) = w.namespaces.get_mut(&peer_ns) {
                    other.links.remove(&peer);
                }
            }
            Ok(true)
        })
    }

    fn set_master(&mut self, name: &str, bridge: u32) -> Result<(), NetlinkError> {
        self.mutate(&format!("set master {name}"), |w, key| {
            let ns = ns_mut(w, key)?;
            let is_bridge = ns
                .links
                .values()
                .any(|l| l.link.index == bridge && l.link.kind == LinkKind::Bridge);
            if !is_bridge {
                return Err(errno("set master", libc::EINVAL));
            }
            link_mut(ns, name)?.link.master = Some(bridge);
            Ok(())
        })
    }

    fn set_up(&mut self, name: &str) -> Result<(), NetlinkError> {
        self.mutate(&format!("set up {name}"), |w, key| {
            link_mut(ns_mut(w, key)?, name)?.link.up = true;
            Ok(())
        })
    }

    fn addresses(&mut self, name: &str) -> Result<Vec<Ipv4Net>, NetlinkError> {
        self.read(|ns| ns.links.get(name).map(|l| l.addresses.clone()))?
            .ok_or_else(|| NetlinkError::NoSuchLink { name: name.into() })
    }

    fn add_address(&mut self, name: &str, addr: Ipv4Net) -> Result<(), NetlinkError> {
        self.mutate(&format!("add address {addr} to {name}"), |w, key| {
            let link = link_mut(ns_mut(w, key)?, name)?;
            if !link.addresses.contains(&addr) {
                link.addresses.push(addr);
            }
            Ok(())
        })
    }

    fn delete_address(&mut self, name: &str, addr: Ipv4Net) -> Result<(), NetlinkError> {
        self.mutate(&format!("delete address {addr} from {name}"), |w, key| {
            link_mut(ns_mut(w, key)?, name)?.addresses.retain(|a| *a != addr);
            Ok(())
        })
    }

    fn replace_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.mutate(&format!("replace route {}", route.dst), |w, key| {
            let ns = ns_mut(w, key)?;
            let reachable = match &route.kind {
                RouteKind::Via(gw) => ns
                    .links
                    .values()
                    .any(|l| l.link.up && l.addresses.iter().any(|a| a.contains(*gw))),
                RouteKind::Dev(index) => ns.links.values().any(|l| l.link.index == *index),
                RouteKind::Blackhole => true,
            };
            if !reachable {
                return Err(errno("replace route", libc::ENETUNREACH));
            }
            ns.routes.retain(|r| r.dst != route.dst);
            ns.routes.push(route.clone());
            Ok(())
        })
    }

    fn delete_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.mutate(&format!("delete route {}", route.dst), |w, key| {
            ns_mut(w, key)?.routes.retain(|r| r != route);
            Ok(())
        })
    }

    fn list_routes(&mut self) -> Result<Vec<Route>, NetlinkError> {
        self.read(|ns| ns.routes.clone())
    }

    fn enable_ip_forward(&mut self) -> Result<(), NetlinkError> {
        self.mutate("enable ip_forward", |w, key| {
            ns_mut(w, key)?.ip_forward = true;
            Ok(())
        })
    }
}

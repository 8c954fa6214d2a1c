//! `RtNetlink`: [`Netlink`] over a blocking `NETLINK_ROUTE` socket.
//!
//! Each operation sends one request with `NLM_F_ACK` (or a dump) and reads until the kernel's
//! acknowledgement, error or end of dump, so errors surface on the call that caused them, with
//! the errno and the operation in the error.
//!
//! A socket stays bound to the network namespace it was created in. [`RtNetlink::in_netns`]
//! therefore creates its socket on a short-lived thread that first `setns`es into the target
//! namespace (setns changes only the calling thread); the thread exits, the socket keeps working
//! on the namespace from any thread. Sysctls are per namespace too, and resolved against the
//! opening thread's namespace, so `enable_ip_forward` uses the same trick.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sched::{setns, CloneFlags};

use super::ipnet::Ipv4Net;
use super::netlink::{Link, Netlink, NetlinkError, Route};
use super::rtnetlink_msg::{self as msg, RouteOp};

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// A netlink route socket on one network namespace.
#[derive(Debug)]
pub struct RtNetlink {
    socket: Socket,
    seq: u32,
    /// The namespace the socket was opened in, if not the process's own; sysctl writes go there.
    netns: Option<PathBuf>,
}

fn open_socket() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// Runs `f` on a fresh thread that has joined the network namespace at `path`.
fn run_in_netns<T, F>(path: &Path, f: F) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, NetlinkError> + Send + 'static,
{
    let netns_err = |source: io::Error| NetlinkError::Netns {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(netns_err)?;
    let thread = std::thread::Builder::new()
        .name("skiff-netns".into())
        .spawn(move || -> Result<T, NetlinkError> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| NetlinkError::Netns {
                path: PathBuf::new(),
                source: e.into(),
            })?;
            f()
        })
        .map_err(netns_err)?;
    let result = thread
        .join()
        .map_err(|_| netns_err(io::Error::other("namespace thread panicked")))?;
    // The thread does not know the path; put it back into a setns failure.
    result.map_err(|e| match e {
        NetlinkError::Netns { source, .. } => netns_err(source),
        other => other,
    })
}

fn open_socket_here() -> Result<Socket, NetlinkError> {
    open_socket().map_err(|e| NetlinkError::os("open socket", e))
}

impl RtNetlink {
    /// A socket on the calling thread's network namespace.
    pub fn new() -> Result<Self, NetlinkError> {
        let socket = open_socket_here()?;
        Ok(Self {
            socket,
            seq: 0,
            netns: None,
        })
    }

    /// A socket on the network namespace bind-mounted at `path` (an nsfs file).
    pub fn in_netns(path: &Path) -> Result<Self, NetlinkError> {
        let socket = run_in_netns(path, open_socket_here)?;
        Ok(Self {
            socket,
            seq: 0,
            netns: Some(path.to_owned()),
        })
    }

    /// Sends `message` and collects the replies up to the ack, error or end of dump.
    fn exchange(
        &mut self,
        op: &str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(|e| NetlinkError::os(op, e))?;

        let mut replies = Vec::new();
        loop {
            let (datagram, _) = self.socket.recv_from_full().map_err(|e| NetlinkError::os(op, e))?;
            let mut offset = 0;
            while offset < datagram.len() {
                let rest = &datagram[offset..];
                let len = NetlinkBuffer::new_checked(rest)
                    .map(|b| b.length() as usize)
                    .map_err(|e| decode(op, e))?;
                // A zero length would never advance; the kernel does not send one.
                if len == 0 {
                    return Err(decode(op, "zero-length message"));
                }
                offset += (len + 3) & !3;
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest);
                let reply = match parsed {
                    Ok(reply) => reply,
                    Err(e) => {
                        // One undecodable object in a dump (an exotic link type) should not
                        // hide all the others.
                        tracing::warn!(op, error = %e, "skipping undecodable netlink message");
                        continue;
                    }
                };
                if reply.header.sequence_number != seq {
                    continue; // a late reply to an earlier, abandoned request
                }
                if reply.header.flags & NLM_F_DUMP_INTR != 0 {
                    // The table changed during the dump; the caller retries.
                    return Err(NetlinkError::os(op, io::Error::from_raw_os_error(libc::EINTR)));
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(replies),
                        Some(_) => return Err(NetlinkError::os(op, e.to_io())),
                    },
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Overrun(_) => {
                        return Err(decode(op, "receive buffer overrun"));
                    }
                    _ => {}
                }
            }
        }
    }

    /// A request answered by an ack only.
    fn request(&mut self, op: &str, message: RouteNetlinkMessage, flags: u16) -> Result<(), NetlinkError> {
        self.exchange(op, message, NLM_F_ACK | flags).map(drop)
    }

    fn dump(&mut self, op: &str, message: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        // A dump interrupted by a concurrent change may miss entries; a few retries get a
        // consistent one (a busy table is the only cause).
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.exchange(op, message.clone(), NLM_F_DUMP) {
                // The rest of the interrupted dump still waits in the socket; the next
                // exchange skips it by its old sequence number.
                Err(e) if e.errno() == Some(libc::EINTR) && attempts < 5 => {}
                other => return other,
            }
        }
    }

    fn index_of(&mut self, name: &str) -> Result<u32, NetlinkError> {
        self.link(name)?
            .map(|l| l.index)
            .ok_or_else(|| NetlinkError::NoSuchLink { name: name.into() })
    }

    fn set_link(&mut self, op: &str, message: LinkMessage) -> Result<(), NetlinkError> {
        self.request(op, RouteNetlinkMessage::SetLink(message), 0)
    }
}

fn decode(op: &str, reason: impl std::fmt::Display) -> NetlinkError {
    NetlinkError::Decode {
        op: op.into(),
        reason: reason.to_string(),
    }
}

/// Turns "already so" errnos into success for idempotent operations.
fn tolerate(result: Result<(), NetlinkError>, errnos: &[i32]) -> Result<bool, NetlinkError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.errno().is_some_and(|n| errnos.contains(&n)) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Netlink for RtNetlink {
    fn open_netns(&self, path: &Path) -> Result<Self, NetlinkError> {
        RtNetlink::in_netns(path)
    }

    fn link(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let op = format!("get link {name}");
        let replies = self.exchange(&op, RouteNetlinkMessage::GetLink(msg::link_by_name(name)), NLM_F_ACK);
        match replies {
            Ok(replies) => Ok(replies.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(msg::parse_link(l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let replies = self.dump("dump links", RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(msg::parse_link(l)),
                _ => None,
            })
            .collect())
    }

    fn create_bridge(&mut self, name: &str, mtu: u32) -> Result<(), NetlinkError> {
        self.request(
            &format!("create bridge {name}"),
            RouteNetlinkMessage::NewLink(msg::new_bridge(name, mtu)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    fn create_veth(
        &mut self,
        host_name: &str,
        peer_name: &str,
        peer_netns: &Path,
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        let netns = File::open(peer_netns).map_err(|source| NetlinkError::Netns {
            path: peer_netns.to_owned(),
            source,
        })?;
        // `netns` stays open until the kernel has answered, so the fd in the message is valid.
        self.request(
            &format!("create veth {host_name} peer {peer_name}"),
            RouteNetlinkMessage::NewLink(msg::new_veth(host_name, peer_name, netns.as_raw_fd(), mtu)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    fn delete_link(&mut self, name: &str) -> Result<bool, NetlinkError> {
        let result = self.request(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg::link_by_name(name)),
            0,
        );
        tolerate(result, &[libc::ENODEV])
    }

    fn set_master(&mut self, name: &str, bridge: u32) -> Result<(), NetlinkError> {
        self.set_link(&format!("set {name} master {bridge}"), msg::set_master(name, bridge))
    }

    fn set_up(&mut self, name: &str) -> Result<(), NetlinkError> {
        self.set_link(&format!("set {name} up"), msg::set_up(name))
    }

    fn addresses(&mut self, name: &str) -> Result<Vec<Ipv4Net>, NetlinkError> {
        let index = self.index_of(name)?;
        let replies = self.dump("dump addresses", RouteNetlinkMessage::GetAddress(msg::address_dump()))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => msg::parse_address(a),
                _ => None,
            })
            .filter(|(i, _)| *i == index)
            .map(|(_, addr)| addr)
            .collect())
    }

    fn add_address(&mut self, name: &str, addr: Ipv4Net) -> Result<(), NetlinkError> {
        let index = self.index_of(name)?;
        let result = self.request(
            &format!("add address {addr} to {name}"),
            RouteNetlinkMessage::NewAddress(msg::address(index, addr)),
            NLM_F_CREATE | NLM_F_EXCL,
        );
        tolerate(result, &[libc::EEXIST]).map(drop)
    }

    fn delete_address(&mut self, name: &str, addr: Ipv4Net) -> Result<(), NetlinkError> {
        let index = self.index_of(name)?;
        let result = self.request(
            &format!("delete address {addr} from {name}"),
            RouteNetlinkMessage::DelAddress(msg::address(index, addr)),
            0,
        );
        tolerate(result, &[libc::EADDRNOTAVAIL]).map(drop)
    }

    fn replace_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.request(
            &format!("replace route {route:?}"),
            RouteNetlinkMessage::NewRoute(msg::route(route, RouteOp::Write)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    fn delete_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        let result = self.request(
            &format!("delete route {route:?}"),
            RouteNetlinkMessage::DelRoute(msg::route(route, RouteOp::Delete)),
            0,
        );
        tolerate(result, &[libc::ESRCH, libc::ENOENT]).map(drop)
    }

    fn list_routes(&mut self) -> Result<Vec<Route>, NetlinkError> {
        let replies = self.dump("dump routes", RouteNetlinkMessage::GetRoute(msg::route_dump()))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => msg::parse_route(r),
                _ => None,
            })
            .collect())
    }

    fn enable_ip_forward(&mut self) -> Result<(), NetlinkError> {
        let write = || {
            fs::write(IP_FORWARD, "1").map_err(|source| NetlinkError::Sysctl {
                path: IP_FORWARD.into(),
                source,
            })
        };
        match &self.netns {
            Some(path) => run_in_netns(path, write),
            None => write(),
        }
    }
}

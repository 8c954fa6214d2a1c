//! Building and reading the rtnetlink messages [`super::RtNetlink`] exchanges. Pure: no
//! socket here, so the layouts are unit-tested by round-tripping through the wire format.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;

use super::ipnet::Ipv4Net;
use super::netlink::{Link, LinkKind, Route, RouteKind, ROUTE_PROTOCOL};

/// A link request addressed by name (`ifi_index` 0 + `IFLA_IFNAME`), which the kernel resolves
/// for get, set and delete alike.
pub fn link_by_name(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
    msg
}

/// `ip link add <name> mtu <mtu> type bridge`.
pub fn new_bridge(name: &str, mtu: u32) -> LinkMessage {
    let mut msg = link_by_name(name);
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
    msg
}

/// `ip link add <host> mtu <mtu> type veth peer name <peer> mtu <mtu> netns <fd>`: the kernel
/// creates the peer directly in the namespace `peer_netns_fd` refers to.
pub fn new_veth(host: &str, peer: &str, peer_netns_fd: RawFd, mtu: u32) -> LinkMessage {
    let mut peer_msg = link_by_name(peer);
    peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
    peer_msg.attributes.push(LinkAttribute::NetNsFd(peer_netns_fd));
    let mut msg = link_by_name(host);
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
    ]));
    msg
}

/// `ip link set <name> up`.
pub fn set_up(name: &str) -> LinkMessage {
    let mut msg = link_by_name(name);
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg
}

/// `ip link set <name> master <bridge index>`.
pub fn set_master(name: &str, bridge: u32) -> LinkMessage {
    let mut msg = link_by_name(name);
    msg.attributes.push(LinkAttribute::Controller(bridge));
    msg
}

/// The parts of a `RTM_NEWLINK` reply the pod network uses.
pub fn parse_link(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: LinkKind::Other(String::new()),
        up: msg.header.flags.contains(LinkFlags::Up),
        master: None,
        peer_index: None,
        mtu: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::Link(peer) => link.peer_index = Some(*peer),
            LinkAttribute::Mtu(mtu) => link.mtu = Some(*mtu),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = match kind {
                            InfoKind::Bridge => LinkKind::Bridge,
                            InfoKind::Veth => LinkKind::Veth,
                            other => LinkKind::Other(other.to_string()),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// `ip addr add|del <addr> dev <index>`.
pub fn address(index: u32, addr: Ipv4Net) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = addr.prefix();
    msg.header.scope = AddressScope::Universe;
    msg.header.index = index;
    // For IPv4 IFA_LOCAL is the interface's address; IFA_ADDRESS is the same on
    // non-point-to-point links, as iproute2 sends them.
    let ip = IpAddr::V4(addr.addr());
    msg.attributes.push(AddressAttribute::Local(ip));
    msg.attributes.push(AddressAttribute::Address(ip));
    msg
}

/// A dump request for all IPv4 addresses.
pub fn address_dump() -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg
}

/// (interface index, address) of an IPv4 `RTM_NEWADDR`.
pub fn parse_address(msg: &AddressMessage) -> Option<(u32, Ipv4Net)> {
    if msg.header.family != AddressFamily::Inet {
        return None;
    }
    let ip = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    let ip = ip.or_else(|| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        })
    })?;
    let net = Ipv4Net::new(ip, msg.header.prefix_len).ok()?;
    Some((msg.header.index, net))
}

/// Whether a route message is meant to add/replace or delete: a delete leaves the scope as a
/// wildcard (`RT_SCOPE_NOWHERE`, like `ip route del`) so it matches however the kernel stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOp {
    Write,
    Delete,
}

/// A main-table route of ours.
pub fn route(route: &Route, op: RouteOp) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.destination_prefix_length = route.dst.prefix();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    let (scope, kind) = match route.kind {
        RouteKind::Via(_) | RouteKind::Blackhole if op == RouteOp::Write => {
            (RouteScope::Universe, kind_of(&route.kind))
        }
        RouteKind::Dev(_) if op == RouteOp::Write => (RouteScope::Link, RouteType::Unicast),
        _ => (RouteScope::NoWhere, kind_of(&route.kind)),
    };
    msg.header.scope = scope;
    msg.header.kind = kind;
    if route.dst.prefix() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(route.dst.network())));
    }
    match route.kind {
        RouteKind::Via(gw) => msg.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gw))),
        RouteKind::Dev(index) => msg.attributes.push(RouteAttribute::Oif(index)),
        RouteKind::Blackhole => {}
    }
    msg
}

fn kind_of(kind: &RouteKind) -> RouteType {
    match kind {
        RouteKind::Blackhole => RouteType::BlackHole,
        RouteKind::Via(_) | RouteKind::Dev(_) => RouteType::Unicast,
    }
}

/// A dump request for IPv4 routes.
pub fn route_dump() -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg
}

/// The route, if the message is an IPv4 main-table route of ours of a kind we make.
pub fn parse_route(msg: &RouteMessage) -> Option<Route> {
    let h = &msg.header;
    if h.address_family != AddressFamily::Inet || u8::from(h.protocol) != ROUTE_PROTOCOL {
        return None;
    }
    // The header's table byte is 252 (RT_TABLE_COMPAT) for tables above 255; RTA_TABLE wins.
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
            RouteAttribute::Oif(index) => oif = Some(*index),
            _ => {}
        }
    }
    let dst = Ipv4Net::new(dst, h.destination_prefix_length).ok()?;
    let kind = match (h.kind, gateway, oif) {
        (RouteType::BlackHole, _, _) => RouteKind::Blackhole,
        (RouteType::Unicast, Some(gw), _) => RouteKind::Via(gw),
        (RouteType::Unicast, None, Some(index)) => RouteKind::Dev(index),
        _ => return None,
    };
    Some(Route { dst, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
    use netlink_packet_route::RouteNetlinkMessage;

    /// Serialises and parses back, as the kernel's reply would be read.
    fn wire(msg: RouteNetlinkMessage) -> RouteNetlinkMessage {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
            .expect("parse back")
            .payload
        {
            NetlinkPayload::InnerMessage(m) => m,
            other => panic!("unexpected payload {other:?}"),
        }
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test cidr")
    }

    #[test]
    fn routes_round_trip() {
        for r in [
            Route::via(net("10.244.2.0/24"), Ipv4Addr::new(192, 168, 1, 2)),
            Route::via(Ipv4Net::default_route(), Ipv4Addr::new(10, 244, 1, 1)),
            Route::blackhole(net("10.244.0.0/16")),
            Route::dev(net("10.9.0.0/16"), 7),
        ] {
            let RouteNetlinkMessage::NewRoute(back) = wire(RouteNetlinkMessage::NewRoute(route(&r, RouteOp::Write)))
            else {
                panic!("not a route");
            };
            assert_eq!(parse_route(&back), Some(r.clone()));
            assert_eq!(u8::from(back.header.protocol), 0x5b);
        }
    }

    #[test]
    fn foreign_routes_are_not_ours() {
        let mut msg = route(&Route::blackhole(net("10.244.0.0/16")), RouteOp::Write);
        msg.header.protocol = RouteProtocol::Static;
        assert_eq!(parse_route(&msg), None);
        let mut msg = route(&Route::blackhole(net("10.244.0.0/16")), RouteOp::Write);
        msg.header.table = 100;
        assert_eq!(parse_route(&msg), None);
    }

    #[test]
    fn delete_uses_wildcard_scope() {
        let msg = route(
            &Route::via(net("10.1.0.0/16"), Ipv4Addr::new(1, 1, 1, 1)),
            RouteOp::Delete,
        );
        assert_eq!(msg.header.scope, RouteScope::NoWhere);
        assert_eq!(msg.header.kind, RouteType::Unicast);
    }

    #[test]
    fn veth_and_address_round_trip() {
        let RouteNetlinkMessage::NewLink(back) =
            wire(RouteNetlinkMessage::NewLink(new_veth("vskf01", "eth0", 5, 1400)))
        else {
            panic!("not a link");
        };
        let link = parse_link(&back);
        assert_eq!(link.name, "vskf01");
        assert_eq!(link.kind, LinkKind::Veth);
        assert_eq!(link.mtu, Some(1400));
        let peer = back.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                _ => None,
            }),
            _ => None,
        });
        let peer = peer.expect("peer message");
        assert!(peer.attributes.contains(&LinkAttribute::IfName("eth0".into())));
        assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(5)));

        let addr = net("10.244.1.7/24");
        let RouteNetlinkMessage::NewAddress(back) = wire(RouteNetlinkMessage::NewAddress(address(3, addr))) else {
            panic!("not an address");
        };
        assert_eq!(parse_address(&back), Some((3, addr)));
    }
}

//! Host-gw route computation: which of our routes to (re)write and which to delete so the main
//! table holds exactly the desired ones. Pure; [`super::PodNetwork::sync_routes`] executes it.
//!
//! The main table keys a route by destination (with tos and metric, which we never set), so a
//! destination has at most one route of ours: a changed gateway is a replace, not add + delete.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::ipnet::Ipv4Net;
use super::netlink::Route;

/// What to do to the kernel's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// Routes to write with `NLM_F_CREATE | NLM_F_REPLACE` (missing or changed).
    pub replace: Vec<Route>,
    /// Routes of ours whose destination is no longer wanted.
    pub delete: Vec<Route>,
}

impl RoutePlan {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.delete.is_empty()
    }
}

/// Compares desired with current routes (both only ours). When `desired` names a destination
/// twice the first entry wins, so the outcome does not flap between two writers' orders.
pub fn plan_routes(desired: &[Route], current: &[Route]) -> RoutePlan {
    let mut wanted: BTreeMap<Ipv4Net, &Route> = BTreeMap::new();
    for route in desired {
        wanted.entry(route.dst).or_insert(route);
    }
    let mut plan = RoutePlan::default();
    for (dst, route) in &wanted {
        let same = current.iter().any(|c| c.dst == *dst && c == *route);
        if !same {
            plan.replace.push((*route).clone());
        }
    }
    for route in current {
        if !wanted.contains_key(&route.dst) {
            plan.delete.push(route.clone());
        }
    }
    plan
}

/// The routes a node wants: one via each other node's address for that node's pod CIDR, plus a
/// blackhole for the whole cluster CIDR. Entries for our own pod CIDR (the bridge's connected
/// route covers it) and malformed ones are skipped.
pub fn desired_routes(
    own_pod_cidr: Ipv4Net,
    cluster_cidr: Option<Ipv4Net>,
    peers: &[(Ipv4Net, Ipv4Addr)],
) -> Vec<Route> {
    let own = own_pod_cidr.trunc();
    let mut routes: Vec<Route> = peers
        .iter()
        .filter(|(cidr, via)| {
            let cidr = cidr.trunc();
            // A route to ourselves via a peer, or a gateway inside the destination, would
            // blackhole or loop traffic; neither is a valid host-gw entry.
            cidr != own && !cidr.covers(&own) && !cidr.contains(*via)
        })
        .map(|(cidr, via)| Route::via(*cidr, *via))
        .collect();
    if let Some(cluster) = cluster_cidr {
        routes.push(Route::blackhole(cluster));
    }
    routes
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
    fn adds_missing_and_keeps_equal() {
        let a = Route::via(net("10.244.2.0/24"), ip("192.168.1.2"));
        let b = Route::via(net("10.244.3.0/24"), ip("192.168.1.3"));
        let plan = plan_routes(&[a.clone(), b.clone()], std::slice::from_ref(&a));
        assert_eq!(plan.replace, vec![b]);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn replaces_changed_gateway_without_deleting() {
        let old = Route::via(net("10.244.2.0/24"), ip("192.168.1.2"));
        let new = Route::via(net("10.244.2.0/24"), ip("192.168.1.9"));
        let plan = plan_routes(std::slice::from_ref(&new), &[old]);
        assert_eq!(plan.replace, vec![new]);
        assert!(plan.delete.is_empty(), "same destination must be replaced, not deleted");
    }

    #[test]
    fn deletes_ours_no_longer_wanted() {
        let keep = Route::blackhole(net("10.244.0.0/16"));
        let gone = Route::via(net("10.244.7.0/24"), ip("192.168.1.7"));
        let plan = plan_routes(std::slice::from_ref(&keep), &[keep.clone(), gone.clone()]);
        assert!(plan.replace.is_empty());
        assert_eq!(plan.delete, vec![gone]);
    }

    #[test]
    fn nothing_to_do_when_equal() {
        let routes = vec![
            Route::via(net("10.244.2.0/24"), ip("192.168.1.2")),
            Route::blackhole(net("10.244.0.0/16")),
        ];
        assert!(plan_routes(&routes, &routes).is_empty());
        assert!(plan_routes(&[], &[]).is_empty());
    }

    #[test]
    fn first_duplicate_wins() {
        let first = Route::via(net("10.244.2.0/24"), ip("192.168.1.2"));
        let second = Route::via(net("10.244.2.0/24"), ip("192.168.1.3"));
        let plan = plan_routes(&[first.clone(), second], &[]);
        assert_eq!(plan.replace, vec![first]);
    }

    #[test]
    fn desired_skips_own_cidr_and_bad_entries() {
        let own = net("10.244.1.0/24");
        let peers = [
            (net("10.244.1.0/24"), ip("192.168.1.1")), // ourselves
            (net("10.244.2.0/24"), ip("192.168.1.2")),
            (net("10.244.0.0/16"), ip("192.168.1.4")), // would swallow our own CIDR
            (net("10.244.3.0/24"), ip("10.244.3.1")),  // gateway inside its own destination
            (net("10.244.5.9/24"), ip("192.168.1.5")), // host bits set: normalised
        ];
        let routes = desired_routes(own, Some(net("10.244.0.0/16")), &peers);
        assert_eq!(
            routes,
            vec![
                Route::via(net("10.244.2.0/24"), ip("192.168.1.2")),
                Route::via(net("10.244.5.0/24"), ip("192.168.1.5")),
                Route::blackhole(net("10.244.0.0/16")),
            ]
        );
        assert_eq!(desired_routes(own, None, &[]), vec![]);
    }
}

//! Cluster DNS, answered on every node like CoreDNS's kubernetes plugin:
//! `<service>.<namespace>.svc.<domain>` A (the cluster IP, or the ready pod IPs of a headless
//! service), SRV for named ports, PTR for cluster IPs, CNAME for ExternalName; names outside the
//! domain go to the node's own resolvers only. Pods reach it through the cluster DNS address
//! (10.96.0.10), which the ruleset redirects to this node's server.
//!
//! # Layout
//! - [`records`]: the zone and its answers (pure).
//! - [`server`]: the UDP/TCP server, forwarding and truncation.
//! - here: the zone from the proxy's model.

pub mod records;
pub mod server;

pub use records::{DnsEndpoint, DnsPort, DnsService, Zone};
pub use server::DnsServer;

use crate::model::{Model, Protocol};

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// The zone of every service in `model`. Headless services carry their ready endpoints (with
/// the EndpointSlice's ports, which are what their SRV records must name).
pub fn zone_of(model: &Model, domain: &str) -> Zone {
    let services = model.services.values().map(|svc| {
        let headless = svc.headless;
        let mut ports: Vec<DnsPort> = svc
            .ports
            .iter()
            .map(|p| DnsPort {
                name: p.name.clone(),
                protocol: proto_name(p.protocol).into(),
                port: p.port,
            })
            .collect();
        let mut endpoints = Vec::new();
        if headless {
            ports.clear();
            for slice in model.slices_of(&svc.namespace, &svc.name) {
                for p in &slice.ports {
                    if !ports
                        .iter()
                        .any(|q| q.name == p.name && q.protocol == proto_name(p.protocol))
                    {
                        ports.push(DnsPort {
                            name: p.name.clone(),
                            protocol: proto_name(p.protocol).into(),
                            port: p.port,
                        });
                    }
                }
                endpoints.extend(slice.endpoints.iter().map(|e| DnsEndpoint {
                    ip: e.ip,
                    hostname: e.hostname.clone(),
                    ready: e.ready,
                }));
            }
        }
        DnsService {
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
            cluster_ip: if headless {
                None
            } else {
                svc.cluster_ips.first().copied()
            },
            external_name: svc.external_name.clone(),
            ports,
            endpoints,
        }
    });
    Zone::new(domain, services)
}

//! NodePorts: two pods cannot bind the same host port and protocol on one node. A host IP of
//! `0.0.0.0` (or none) conflicts with the same port on every IP, a specific IP only with itself
//! and with `0.0.0.0` (`HostPortInfo.CheckConflict`). Only `spec.containers` ports count, as in
//! kube-scheduler.

use serde_json::Value;

use crate::scheduler::framework::{Code, Filter, NodeFilter, Rejection};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins::parse;

pub const NAME: &str = "NodePorts";
/// Kubernetes' `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

const ANY_IP: &str = "0.0.0.0";

/// A host port a container binds, with IP and protocol defaulted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i64,
}

/// The host ports of one container (`field` names it in errors).
pub fn parse(container: &Value, field: &str) -> Result<Vec<HostPort>, String> {
    let mut out = Vec::new();
    for (i, p) in parse::list(container.get("ports"), &format!("{field}.ports"))?
        .iter()
        .enumerate()
    {
        let f = format!("{field}.ports[{i}]");
        let port = match p.get("hostPort") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| format!("{f}.hostPort: must be an integer"))?,
        };
        if port <= 0 {
            continue;
        }
        let ip = parse::str_field(p, "hostIP", &f)?;
        let protocol = parse::str_field(p, "protocol", &f)?;
        out.push(HostPort {
            ip: if ip.is_empty() { ANY_IP.into() } else { ip },
            protocol: if protocol.is_empty() { "TCP".into() } else { protocol },
            port,
        });
    }
    Ok(out)
}

/// Whether `want` conflicts with a port already used on `node`.
pub fn conflicts(node: &NodeInfo, want: &HostPort) -> bool {
    if want.ip == ANY_IP {
        node.used_ports
            .keys()
            .any(|u| u.port == want.port && u.protocol == want.protocol)
    } else {
        let any = HostPort {
            ip: ANY_IP.into(),
            ..want.clone()
        };
        node.used_ports.contains_key(want) || node.used_ports.contains_key(&any)
    }
}

pub struct NodePorts;

impl Filter for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, _pod: &PodInfo, _cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        Ok(Box::new(NodePorts))
    }
}

impl NodeFilter for NodePorts {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        if pod.host_ports.iter().any(|p| conflicts(node, p)) {
            Err(Rejection::new(NAME, Code::Unschedulable, ERR_REASON))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::pod;
    use serde_json::json;

    fn with_port(name: &str, port: Value) -> std::sync::Arc<PodInfo> {
        pod(
            json!({"metadata": {"name": name}, "spec": {"nodeName": "n", "containers": [{"name": "c", "ports": [port]}]}}),
        )
    }

    #[test]
    fn host_ports_conflict_by_ip_and_protocol() {
        let mut node = NodeInfo {
            name: "n".into(),
            ..NodeInfo::default()
        };
        node.add_pod(with_port(
            "old",
            json!({"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}),
        ));
        let same = with_port("a", json!({"containerPort": 80, "hostPort": 8080}));
        let r = NodePorts.filter(&same, &node).unwrap_err();
        assert_eq!((r.code, r.reasons[0].as_str()), (Code::Unschedulable, ERR_REASON));
        let other_ip = with_port("b", json!({"hostPort": 8080, "hostIP": "10.0.0.2"}));
        assert!(NodePorts.filter(&other_ip, &node).is_ok());
        let udp = with_port("c", json!({"hostPort": 8080, "protocol": "UDP"}));
        assert!(NodePorts.filter(&udp, &node).is_ok());
        let no_host_port = with_port("d", json!({"containerPort": 8080}));
        assert!(no_host_port.host_ports.is_empty());
        node.remove_pod("default", "old");
        assert!(NodePorts.filter(&same, &node).is_ok(), "released on removal");
    }
}

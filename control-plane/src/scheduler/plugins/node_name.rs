//! NodeName: a pod that names its node (`spec.nodeName`) fits only that node. The runtime normally
//! never schedules such a pod, but a pod created with a nodeName for a node that cannot take it
//! still needs an honest answer, and preemption must not pick another node for it.

use crate::scheduler::framework::{Code, Filter, NodeFilter, Rejection};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};

pub const NAME: &str = "NodeName";
/// Kubernetes' `ErrReason`.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Filter for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, _pod: &PodInfo, _cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        Ok(Box::new(NodeName))
    }
}

impl NodeFilter for NodeName {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        if pod.node_name.is_empty() || pod.node_name == node.name {
            Ok(())
        } else {
            Err(Rejection::new(NAME, Code::UnschedulableAndUnresolvable, ERR_REASON))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::tests::pod;
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"nodeName": "a"}}));
        let a = NodeInfo {
            name: "a".into(),
            ..NodeInfo::default()
        };
        let b = NodeInfo {
            name: "b".into(),
            ..NodeInfo::default()
        };
        assert!(NodeName.filter(&p, &a).is_ok());
        let r = NodeName.filter(&p, &b).unwrap_err();
        assert_eq!(
            (r.code, r.reasons[0].as_str()),
            (Code::UnschedulableAndUnresolvable, ERR_REASON)
        );
        let free = pod(json!({"metadata": {"name": "q"}}));
        assert!(NodeName.filter(&free, &b).is_ok());
    }
}

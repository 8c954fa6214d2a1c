//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes no new pods, except pods that
//! tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint (DaemonSet pods do), which is
//! how Kubernetes lets node-level agents run on a cordoned node.

use crate::scheduler::framework::{Code, Filter, NodeFilter, Rejection};
use crate::scheduler::model::{Cluster, NodeInfo, PodInfo};
use crate::scheduler::plugins::taint_toleration::Taint;

pub const NAME: &str = "NodeUnschedulable";
/// Kubernetes' `ErrReasonUnschedulable`.
pub const ERR_REASON: &str = "node(s) were unschedulable";
/// The taint a cordoned node implicitly carries.
pub const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

impl Filter for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, _pod: &PodInfo, _cluster: &Cluster) -> Result<Box<dyn NodeFilter>, Rejection> {
        Ok(Box::new(NodeUnschedulable))
    }
}

impl NodeFilter for NodeUnschedulable {
    fn filter(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Rejection> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint = Taint {
            key: TAINT_KEY.into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        };
        if pod.tolerations.iter().any(|t| t.tolerates(&taint)) {
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
    fn cordoned_node_rejects_unless_tolerated() {
        let node = NodeInfo {
            name: "n".into(),
            unschedulable: true,
            ..NodeInfo::default()
        };
        let plain = pod(json!({"metadata": {"name": "p"}}));
        let r = NodeUnschedulable.filter(&plain, &node).unwrap_err();
        assert_eq!(r.reasons, vec![ERR_REASON.to_string()]);
        let tolerant = pod(json!({"metadata": {"name": "d"}, "spec": {"tolerations": [
            {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}}));
        assert!(NodeUnschedulable.filter(&tolerant, &node).is_ok());
        let open = NodeInfo {
            name: "m".into(),
            ..NodeInfo::default()
        };
        assert!(NodeUnschedulable.filter(&plain, &open).is_ok());
    }
}

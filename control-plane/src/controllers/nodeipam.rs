//! The node IPAM controller's range allocator: hands every Node a pod CIDR (`spec.podCIDR` and
//! `spec.podCIDRs`) carved from the cluster CIDR, so each node's pods get addresses no other node
//! uses.
//!
//! Pure: the runtime lists the nodes, calls [`CidrAllocator::plan`] and patches the nodes, calling
//! [`CidrAllocator::release`] for a node it failed to patch or that was deleted. Kubernetes'
//! `pkg/controller/nodeipam/ipam/range_allocator.go` and `cidrset/cidr_set.go`, IPv4 only, with
//! one difference: [`CidrAllocator::allocate`] returns the lowest free block, where Kubernetes
//! continues round-robin after the last block it handed out. Lowest-first keeps allocations
//! reproducible from the node list alone, which is what lets this allocator be rebuilt from scratch
//! on every leader change.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde_json::Value;

use super::podutil::name_of;

/// The cluster CIDR when none is configured (flannel's default, which kubeadm guides use).
pub const DEFAULT_CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The per-node mask when none is configured.
pub const DEFAULT_NODE_MASK: u8 = 24;
/// Kubernetes' `clusterSubnetMaxDiff`: at most 2^16 node blocks per cluster CIDR.
const MAX_MASK_DIFF: u8 = 16;

/// Tracks which node-sized blocks of the cluster CIDR are in use.
#[derive(Debug, Clone)]
pub struct CidrAllocator {
    /// Network address of the cluster CIDR.
    base: u32,
    cluster_prefix: u8,
    node_mask: u8,
    /// Indices of used blocks, block `i` starting at `base + i * block_size`.
    used: BTreeSet<u32>,
}

/// Parses `a.b.c.d/n` into (network address, prefix), clearing host bits as Go's `ParseCIDR` does.
fn parse_cidr(cidr: &str) -> Result<(u32, u8), String> {
    let (ip, prefix) = cidr
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("invalid CIDR {cidr:?}: no prefix length"))?;
    if ip.contains(':') {
        return Err(format!(
            "IPv6 CIDR {cidr:?} is not supported: skiff allocates IPv4 pod CIDRs only"
        ));
    }
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("invalid CIDR {cidr:?}: bad IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("invalid CIDR {cidr:?}: bad prefix length"))?;
    Ok((u32::from(ip) & mask(prefix), prefix))
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl CidrAllocator {
    /// An allocator of `/node_mask` blocks from `cluster_cidr`. Rejects malformed and IPv6 CIDRs, a
    /// node mask shorter than the cluster's or longer than 32, and more than 2^16 blocks.
    pub fn new(cluster_cidr: &str, node_mask: u8) -> Result<Self, String> {
        let (base, cluster_prefix) = parse_cidr(cluster_cidr)?;
        if node_mask > 32 {
            return Err(format!("node CIDR mask /{node_mask} is longer than 32 bits"));
        }
        if node_mask < cluster_prefix {
            return Err(format!(
                "node CIDR mask /{node_mask} is shorter than the cluster CIDR's /{cluster_prefix}"
            ));
        }
        if node_mask - cluster_prefix > MAX_MASK_DIFF {
            return Err(format!(
                "node CIDR mask /{node_mask} would cut {cluster_cidr} into more than 2^{MAX_MASK_DIFF} blocks"
            ));
        }
        Ok(CidrAllocator {
            base,
            cluster_prefix,
            node_mask,
            used: BTreeSet::new(),
        })
    }

    /// The number of node blocks in the cluster CIDR.
    pub fn capacity(&self) -> u32 {
        1u32 << (self.node_mask - self.cluster_prefix)
    }

    fn block_size(&self) -> u64 {
        1u64 << (32 - u32::from(self.node_mask))
    }

    fn render(&self, index: u32) -> String {
        // index < capacity, so the address stays inside the cluster CIDR and fits in u32.
        let start = u64::from(self.base) + u64::from(index) * self.block_size();
        let ip = Ipv4Addr::from(u32::try_from(start).unwrap_or(self.base));
        format!("{ip}/{}", self.node_mask)
    }

    /// The blocks a CIDR overlaps, or `None` when it is malformed or outside the cluster CIDR
    /// (Kubernetes' `getBeginningAndEndIndices`).
    fn blocks_of(&self, cidr: &str) -> Option<std::ops::RangeInclusive<u32>> {
        let (net, prefix) = parse_cidr(cidr).ok()?;
        let first = u64::from(net);
        let last = first + (1u64 << (32 - u32::from(prefix))) - 1;
        let cluster_first = u64::from(self.base);
        let cluster_last = cluster_first + u64::from(self.capacity()) * self.block_size() - 1;
        if last < cluster_first || first > cluster_last {
            return None;
        }
        let lo = (first.max(cluster_first) - cluster_first) / self.block_size();
        let hi = (last.min(cluster_last) - cluster_first) / self.block_size();
        Some(u32::try_from(lo).ok()?..=u32::try_from(hi).ok()?)
    }

    /// Marks the node's existing `spec.podCIDRs` (or `spec.podCIDR`) as used. CIDRs that are
    /// malformed or outside the cluster CIDR are ignored: they cannot collide with ours.
    pub fn observe(&mut self, node: &Value) {
        for cidr in node_cidrs(node) {
            if let Some(blocks) = self.blocks_of(cidr) {
                self.used.extend(blocks);
            }
        }
    }

    /// Frees the blocks of `cidr` (a deleted node's, or one whose patch failed). Unknown or foreign
    /// CIDRs are ignored.
    pub fn release(&mut self, cidr: &str) {
        if let Some(blocks) = self.blocks_of(cidr) {
            for b in blocks {
                self.used.remove(&b);
            }
        }
    }

    /// Takes the lowest free block.
    pub fn allocate(&mut self) -> Result<String, String> {
        let mut candidate = 0u32;
        for &used in self.used.range(..) {
            if used != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate >= self.capacity() {
            let cluster = format!("{}/{}", Ipv4Addr::from(self.base), self.cluster_prefix);
            return Err(format!("CIDR allocation failed: no remaining CIDRs in {cluster}"));
        }
        self.used.insert(candidate);
        Ok(self.render(candidate))
    }

    /// Observes every node, then allocates a block for each node without one, in node-name order.
    /// Stops when the range is exhausted (those nodes stay without a CIDR, as in Kubernetes, until
    /// blocks are released).
    pub fn plan(&mut self, nodes: &[Value]) -> Vec<(String, String)> {
        nodes.iter().for_each(|n| self.observe(n));
        let mut pending: Vec<&str> = nodes
            .iter()
            .filter(|n| node_cidrs(n).is_empty())
            .map(name_of)
            .filter(|n| !n.is_empty())
            .collect();
        pending.sort_unstable();
        pending.dedup();
        let mut out = Vec::new();
        for node in pending {
            match self.allocate() {
                Ok(cidr) => out.push((node.to_string(), cidr)),
                Err(_) => break,
            }
        }
        out
    }
}

/// `spec.podCIDRs`, or `[spec.podCIDR]` for nodes written before the list existed.
fn node_cidrs(node: &Value) -> Vec<&str> {
    let listed: Vec<&str> = node
        .pointer("/spec/podCIDRs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|c| !c.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>) -> Value {
        let mut n = json!({"metadata": {"name": name}, "spec": {}});
        if let Some(c) = cidr {
            n["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
        }
        n
    }

    #[test]
    fn sequential_allocation_from_the_default_range() {
        let mut a = CidrAllocator::new(DEFAULT_CLUSTER_CIDR, DEFAULT_NODE_MASK).unwrap();
        assert_eq!(a.capacity(), 256);
        assert_eq!(a.allocate().unwrap(), "10.244.0.0/24");
        assert_eq!(a.allocate().unwrap(), "10.244.1.0/24");
        assert_eq!(a.allocate().unwrap(), "10.244.2.0/24");
    }

    #[test]
    fn plan_respects_existing_cidrs_and_sorts_by_name() {
        let mut a = CidrAllocator::new("10.244.0.0/16", 24).unwrap();
        let nodes = vec![
            node("c", None),
            node("a", Some("10.244.0.0/24")),
            node("b", None),
            // Only podCIDR, no list: still counts.
            json!({"metadata": {"name": "d"}, "spec": {"podCIDR": "10.244.2.0/24"}}),
            // Outside the cluster range: ignored, and the node is not re-allocated.
            node("e", Some("192.168.0.0/24")),
        ];
        let plan = a.plan(&nodes);
        assert_eq!(
            plan,
            vec![
                ("b".to_string(), "10.244.1.0/24".to_string()),
                ("c".to_string(), "10.244.3.0/24".to_string())
            ]
        );
        assert_eq!(a.allocate().unwrap(), "10.244.4.0/24");
    }

    #[test]
    fn release_makes_a_block_reusable() {
        let mut a = CidrAllocator::new("10.0.0.0/22", 24).unwrap();
        let first: Vec<String> = (0..4).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(first[3], "10.0.3.0/24");
        a.release("10.0.1.0/24");
        a.release("not a cidr");
        a.release("172.16.0.0/24");
        assert_eq!(a.allocate().unwrap(), "10.0.1.0/24");
        assert!(a.allocate().is_err());
    }

    #[test]
    fn exhaustion_is_an_error_and_plan_stops() {
        let mut a = CidrAllocator::new("10.1.0.0/23", 24).unwrap();
        let plan = a.plan(&[node("n1", None), node("n2", None), node("n3", None)]);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1], ("n2".to_string(), "10.1.1.0/24".to_string()));
        let err = a.allocate().unwrap_err();
        assert!(err.contains("no remaining CIDRs"), "{err}");
    }

    #[test]
    fn a_larger_observed_cidr_occupies_every_block_it_covers() {
        let mut a = CidrAllocator::new("10.244.0.0/16", 24).unwrap();
        a.observe(&node("big", Some("10.244.0.0/23")));
        assert_eq!(a.allocate().unwrap(), "10.244.2.0/24");
        // Host bits are cleared, as Go's ParseCIDR does.
        let b = CidrAllocator::new("10.244.7.9/16", 24).unwrap();
        assert_eq!(b.render(0), "10.244.0.0/24");
    }

    #[test]
    fn bad_input_is_rejected() {
        for (cidr, mask, why) in [
            ("10.244.0.0", 24, "no prefix"),
            ("10.244.0.300/16", 24, "bad IPv4"),
            ("10.244.0.0/33", 24, "bad prefix"),
            ("fd00::/48", 64, "IPv6"),
            ("10.244.0.0/16", 8, "shorter than"),
            ("10.244.0.0/16", 33, "longer than 32"),
            ("10.0.0.0/8", 28, "more than 2^16"),
        ] {
            let err = CidrAllocator::new(cidr, mask).unwrap_err();
            assert!(err.contains(why), "{cidr} /{mask}: {err}");
        }
        // A /32 per node from a /16 is the largest allowed split.
        assert_eq!(CidrAllocator::new("10.0.0.0/16", 32).unwrap().capacity(), 65536);
    }
}

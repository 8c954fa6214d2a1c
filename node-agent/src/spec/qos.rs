//! QoS class, OOM score adjustment and cgroup CPU/memory numbers, computed as kubelet does.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::quantity::{lookup, Quantity};
use super::SpecError;

/// kubelet's `MinShares`/`MaxShares` and CFS constants.
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const CPU_PERIOD_US: u64 = 100_000;
pub const MIN_QUOTA_US: i64 = 1000;
/// OOM score adjustments by class.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// A pod's quality-of-service class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// The pod's QoS class: `status.qosClass` when set (it is immutable once assigned), else
/// computed from the cpu/memory requests and limits of all (init) containers.
pub fn pod_qos(pod: &Pod) -> Result<QosClass, SpecError> {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => return Ok(QosClass::Guaranteed),
        Some("Burstable") => return Ok(QosClass::Burstable),
        Some("BestEffort") => return Ok(QosClass::BestEffort),
        _ => {}
    }
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
    let init = spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten();
    let mut any_set = false;
    let mut guaranteed = true;
    for c in containers.chain(init) {
        let res = c.resources.as_ref();
        let (limits, requests) = (
            res.and_then(|r| r.limits.as_ref()),
            res.and_then(|r| r.requests.as_ref()),
        );
        for name in ["cpu", "memory"] {
            let limit = lookup(limits, name)?.filter(|q| !q.is_zero());
            // The API server defaults a missing request to the limit.
            let request = lookup(requests, name)?.filter(|q| !q.is_zero()).or(limit);
            any_set |= limit.is_some() || request.is_some();
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    Ok(match (any_set, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    })
}

/// kubelet's `GetContainerOOMScoreAdjust`.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> Result<i32, SpecError> {
    let critical = pod.spec.as_ref().and_then(|s| s.priority_class_name.as_deref()) == Some("system-node-critical");
    if critical {
        return Ok(GUARANTEED_OOM_SCORE_ADJ);
    }
    match pod_qos(pod)? {
        QosClass::Guaranteed => Ok(GUARANTEED_OOM_SCORE_ADJ),
        QosClass::BestEffort => Ok(BEST_EFFORT_OOM_SCORE_ADJ),
        QosClass::Burstable => {
            let requests = container.resources.as_ref().and_then(|r| r.requests.as_ref());
            let request = lookup(requests, "memory")?.map(|q| q.value()).unwrap_or(0);
            let capacity = memory_capacity.max(1);
            let adj = 1000 - (1000 * i128::from(request)) / i128::from(capacity);
            // Keep Burstable strictly between Guaranteed and BestEffort.
            let adj = adj.clamp(i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ), 999);
            Ok(i32::try_from(adj).unwrap_or(999))
        }
    }
}

/// cgroup v1 `cpu.shares` for a CPU request in millicores (kubelet's `MilliCPUToShares`).
pub fn cpu_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    let shares = u64::try_from(milli).unwrap_or(u64::MAX / 1024).saturating_mul(1024) / 1000;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota in microseconds per `period` for a CPU limit in millicores; `None` is no quota.
pub fn cpu_quota(milli: i64, period: u64) -> Option<i64> {
    if milli <= 0 {
        return None;
    }
    let quota = i128::from(milli) * i128::from(period) / 1000;
    Some(i64::try_from(quota).unwrap_or(i64::MAX).max(MIN_QUOTA_US))
}

/// The container's CPU request (defaulting to its limit) and limit in millicores, and memory
/// limit in bytes.
pub fn container_resources(container: &Container) -> Result<(i64, i64, Option<i64>), SpecError> {
    let res = container.resources.as_ref();
    let (limits, requests) = (
        res.and_then(|r| r.limits.as_ref()),
        res.and_then(|r| r.requests.as_ref()),
    );
    let cpu_limit = lookup(limits, "cpu")?.map(|q| q.milli_value()).unwrap_or(0);
    let cpu_request = lookup(requests, "cpu")?
        .filter(|q| !q.is_zero())
        .map(|q| q.milli_value());
    let memory_limit = lookup(limits, "memory")?
        .filter(|q: &Quantity| !q.is_zero())
        .map(|q| q.value());
    Ok((cpu_request.unwrap_or(cpu_limit), cpu_limit, memory_limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})).unwrap()
    }

    fn ctr(resources: serde_json::Value) -> serde_json::Value {
        json!({"name": "c", "resources": resources})
    }

    const GI: i64 = 1 << 30;

    #[test]
    fn qos_classes() {
        let be = pod(json!([ctr(json!({}))]));
        assert_eq!(pod_qos(&be).unwrap(), QosClass::BestEffort);
        let g = pod(json!([ctr(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))]));
        assert_eq!(pod_qos(&g).unwrap(), QosClass::Guaranteed, "requests default to limits");
        let g2 = pod(json!([ctr(
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}})
        )]));
        assert_eq!(pod_qos(&g2).unwrap(), QosClass::Guaranteed);
        let b = pod(json!([ctr(json!({"requests": {"cpu": "100m"}}))]));
        assert_eq!(pod_qos(&b).unwrap(), QosClass::Burstable);
        let mixed = pod(json!([
            ctr(json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
            ctr(json!({}))
        ]));
        assert_eq!(pod_qos(&mixed).unwrap(), QosClass::Burstable);
        let mut status = be.clone();
        status.status = Some(serde_json::from_value(json!({"qosClass": "Guaranteed"})).unwrap());
        assert_eq!(pod_qos(&status).unwrap(), QosClass::Guaranteed, "status.qosClass wins");
    }

    #[test]
    fn oom_adj_by_class() {
        let be = pod(json!([ctr(json!({}))]));
        assert_eq!(
            oom_score_adj(&be, &be.spec.as_ref().unwrap().containers[0], 4 * GI).unwrap(),
            1000
        );
        let g = pod(json!([ctr(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))]));
        assert_eq!(
            oom_score_adj(&g, &g.spec.as_ref().unwrap().containers[0], 4 * GI).unwrap(),
            -997
        );
        // Burstable: 1000 - 1000*request/capacity.
        let b = pod(json!([ctr(json!({"requests": {"memory": "1Gi"}}))]));
        let c = &b.spec.as_ref().unwrap().containers[0];
        assert_eq!(oom_score_adj(&b, c, 4 * GI).unwrap(), 750);
        // Request close to capacity is floored at 3; no request is 999, not BestEffort's 1000.
        assert_eq!(oom_score_adj(&b, c, GI).unwrap(), 3);
        let b0 = pod(json!([ctr(json!({"requests": {"cpu": "1"}}))]));
        assert_eq!(
            oom_score_adj(&b0, &b0.spec.as_ref().unwrap().containers[0], 4 * GI).unwrap(),
            999
        );
        let mut critical = be.clone();
        critical.spec.as_mut().unwrap().priority_class_name = Some("system-node-critical".into());
        assert_eq!(
            oom_score_adj(&critical, &be.spec.as_ref().unwrap().containers[0], GI).unwrap(),
            -997
        );
    }

    #[test]
    fn cpu_numbers() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(100), 102);
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(1_000_000), MAX_SHARES);
        assert_eq!(cpu_quota(0, CPU_PERIOD_US), None);
        assert_eq!(cpu_quota(500, CPU_PERIOD_US), Some(50_000));
        assert_eq!(cpu_quota(2500, CPU_PERIOD_US), Some(250_000));
        assert_eq!(cpu_quota(1, CPU_PERIOD_US), Some(1000), "floored at the minimum quota");
    }

    #[test]
    fn request_defaults_to_limit() {
        let c: Container = serde_json::from_value(ctr(json!({"limits": {"cpu": "2", "memory": "64Mi"}}))).unwrap();
        assert_eq!(container_resources(&c).unwrap(), (2000, 2000, Some(64 << 20)));
        let c: Container = serde_json::from_value(ctr(json!({"requests": {"cpu": "250m"}}))).unwrap();
        assert_eq!(container_resources(&c).unwrap(), (250, 0, None));
    }
}

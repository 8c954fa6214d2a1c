//! Allocators of a Service's cluster IP and node ports. Reservations are store keys created only
//! if absent (owner `namespace/name` as the value), so two masters can never hand out the same
//! IP or port; a reservation is freed when its service is deleted or stops using it. A leaked
//! reservation (a crash between reserving and storing the service) only shrinks the range.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use rand::Rng;
use serde_json::{json, Value};

use super::ApiState;
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::storage::Storage;

/// The default service CIDR, 10.96.0.0/16; .0.0 and .0.1 (the `kubernetes` service) are kept.
const SERVICE_NET: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SERVICE_SIZE: u32 = 1 << 16;
/// 10.96.0.10, the cluster DNS address pods get in /etc/resolv.conf: never handed out at random.
const DNS_OFFSET: u32 = 10;
pub const IP_PREFIX: &str = "/registry/skiff/serviceips/";
/// The `kubernetes` service's own address, 10.96.0.1, and its owner.
pub const KUBERNETES_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
pub const KUBERNETES_OWNER: &str = "default/kubernetes";
/// Kubernetes' default node port range, 30000-32767.
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
const PORT_PREFIX: &str = "/registry/skiff/nodeports/";
/// Random picks before a range is called full.
const PICKS: usize = 64;

fn owner_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        meta::namespace(obj).unwrap_or_default(),
        meta::name(obj).unwrap_or_default()
    )
}

fn invalid(obj: &Value, cause: Cause) -> ApiError {
    ApiError::invalid("", "Service", meta::name(obj).unwrap_or_default(), vec![cause])
}

/// Reserves `key` for `owner`; true also when `owner` already holds it.
pub async fn reserve(storage: &Storage, key: &str, owner: &str) -> ApiResult<bool> {
    if storage.put_if_absent(key, owner.as_bytes().to_vec()).await? {
        return Ok(true);
    }
    Ok(storage.get_raw(key).await?.as_deref() == Some(owner.as_bytes()))
}

/// Frees `key` if `owner` holds it: a service never frees what another one holds.
async fn release(st: &Arc<ApiState>, key: String, owner: &str) {
    if let Err(e) = st.storage.delete_if_value(&key, owner.as_bytes()).await {
        tracing::warn!(key, error = %e, "could not release a service reservation");
    }
}

/// Sets spec.clusterIP (and clusterIPs) for a new service: a given IP is checked and
/// reserved, an empty one is picked at random from the free IPs.
pub async fn allocate_cluster_ip(st: &Arc<ApiState>, obj: &mut Value, dry_run: bool) -> ApiResult<()> {
    let ty = obj.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
    if ty == "ExternalName" {
        return Ok(());
    }
    let given = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if given == "None" {
        obj["spec"]["clusterIPs"] = json!(["None"]);
        return Ok(());
    }
    let owner = owner_of(obj);
    let ip = if given.is_empty() {
        let mut picked = None;
        for _ in 0..PICKS {
            let n = rand::thread_rng().gen_range(2..SERVICE_SIZE - 1);
            if n == DNS_OFFSET {
                continue;
            }
            let ip = Ipv4Addr::from(SERVICE_NET + n).to_string();
            if dry_run
                || st
                    .storage
                    .put_if_absent(&format!("{IP_PREFIX}{ip}"), owner.clone().into_bytes())
                    .await?
            {
                picked = Some(ip);
                break;
            }
        }
        picked.ok_or_else(|| ApiError::internal("failed to allocate a service IP: the range is full"))?
    } else {
        let ip: Ipv4Addr = given.parse().map_err(|_| {
            invalid(
                obj,
                Cause::invalid("spec.clusterIP", &given, "must be a valid IP address"),
            )
        })?;
        let n = u32::from(ip).wrapping_sub(SERVICE_NET);
        // .0 is the network; .1 belongs to the `kubernetes` service alone.
        if (ip == KUBERNETES_IP && owner != KUBERNETES_OWNER) || n == 0 {
            return Err(invalid(
                obj,
                Cause::invalid("spec.clusterIPs", &given, "provided IP is reserved for the cluster"),
            ));
        }
        if n >= SERVICE_SIZE {
            return Err(invalid(
                obj,
                Cause::invalid(
                    "spec.clusterIPs",
                    &given,
                    "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16",
                ),
            ));
        }
        if !dry_run && !reserve(&st.storage, &format!("{IP_PREFIX}{given}"), &owner).await? {
            return Err(invalid(
                obj,
                Cause::invalid(
                    "spec.clusterIPs",
                    &given,
                    "failed to allocate IP: provided IP is already allocated",
                ),
            ));
        }
        given
    };
    obj["spec"]["clusterIP"] = json!(ip);
    obj["spec"]["clusterIPs"] = json!([ip]);
    Ok(())
}

fn wants_node_ports(obj: &Value) -> bool {
    matches!(
        obj.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    )
}

fn node_ports_of(obj: &Value) -> BTreeSet<u16> {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter_map(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
        .collect()
}

/// What an update leaves unset but the service already has: the cluster IP and the node ports
/// (matched by port and protocol), as Kubernetes keeps them when a client omits them (e.g.
/// `kubectl apply` of a manifest without them). Ports of a service that stops being a
/// NodePort/LoadBalancer lose their node ports.
pub fn keep_allocated(new: &mut Value, old: &Value) {
    for f in ["clusterIP", "clusterIPs"] {
        let unset = new
            .pointer(&format!("/spec/{f}"))
            .is_none_or(|v| v.is_null() || v == "");
        if unset {
            if let Some(v) = old.pointer(&format!("/spec/{f}")) {
                new["spec"][f] = v.clone();
            }
        }
    }
    let wants = wants_node_ports(new);
    let old_ports: Vec<Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return;
    };
    for p in ports.iter_mut() {
        let Some(p) = p.as_object_mut() else { continue };
        if !wants {
            p.remove("nodePort");
            continue;
        }
        if p.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
            continue;
        }
        let proto = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("TCP").to_string();
        let kept = old_ports
            .iter()
            .find(|o| o.get("port") == p.get("port") && proto(o.get("protocol")) == proto(p.get("protocol")));
        if let Some(np) = kept
            .and_then(|o| o.get("nodePort"))
            .filter(|v| v.as_u64().unwrap_or(0) != 0)
        {
            p.insert("nodePort".into(), np.clone());
        }
    }
}

/// Gives every port of a NodePort/LoadBalancer service a node port: a requested one is checked
/// and reserved (the same service may use one port for TCP and UDP), a missing one is picked
/// at random. A ClusterIP service may not ask for node ports. `old` is the service before an
/// update: the ports it holds need no new reservation.
pub async fn allocate_node_ports(
    st: &Arc<ApiState>,
    obj: &mut Value,
    old: Option<&Value>,
    dry_run: bool,
) -> ApiResult<()> {
    let held = old.map(node_ports_of).unwrap_or_default();
    let owner = owner_of(obj);
    let wants = wants_node_ports(obj);
    let name = meta::name(obj).unwrap_or_default().to_string();
    let fail = |cause: Cause| ApiError::invalid("", "Service", &name, vec![cause]);
    let mut taken = node_ports_of(obj);
    let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for (i, p) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let requested = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if !wants {
            if requested != 0 {
                return Err(fail(Cause::forbidden(
                    field,
                    "may not be used when `type` is 'ClusterIP'",
                )));
            }
            continue;
        }
        let port = if requested != 0 {
            let port = u16::try_from(requested)
                .ok()
                .filter(|n| NODE_PORTS.contains(n))
                .ok_or_else(|| {
                    fail(Cause::invalid(
                        &field,
                        &requested.to_string(),
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    ))
                })?;
            if !dry_run
                && !held.contains(&port)
                && !reserve(&st.storage, &format!("{PORT_PREFIX}{port}"), &owner).await?
            {
                return Err(fail(Cause::invalid(
                    &field,
                    &requested.to_string(),
                    "provided port is already allocated",
                )));
            }
            port
        } else {
            let mut picked = None;
            for _ in 0..PICKS {
                let n = rand::thread_rng().gen_range(NODE_PORTS);
                if taken.contains(&n) {
                    continue;
                }
                if dry_run || reserve(&st.storage, &format!("{PORT_PREFIX}{n}"), &owner).await? {
                    picked = Some(n);
                    break;
                }
            }
            picked.ok_or_else(|| ApiError::internal("failed to allocate a node port: the range is full"))?
        };
        taken.insert(port);
        p["nodePort"] = json!(port);
    }
    Ok(())
}

/// Frees what `old` held and `new` (the service after an update; None after a delete) no
/// longer uses. Also the way back from a failed write: `old` is then what was reserved for
/// it, `new` the service as stored before (None for a create). Only reservations `old`'s
/// owner holds are freed.
pub async fn release_unused(st: &Arc<ApiState>, old: &Value, new: Option<&Value>) {
    let owner = owner_of(old);
    let ip = |o: &Value| {
        o.pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| *s != "None" && !s.is_empty())
            .map(String::from)
    };
    if let Some(old_ip) = ip(old) {
        if new.and_then(ip).as_deref() != Some(old_ip.as_str()) {
            release(st, format!("{IP_PREFIX}{old_ip}"), &owner).await;
        }
    }
    let keep = new.map(node_ports_of).unwrap_or_default();
    for port in node_ports_of(old).difference(&keep) {
        release(st, format!("{PORT_PREFIX}{port}"), &owner).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_keeps_the_cluster_ip_and_node_ports_it_omits() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.3.4", "clusterIPs": ["10.96.3.4"],
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80}, {"port": 53, "protocol": "TCP"}, {"port": 53, "protocol": "UDP", "nodePort": 31000}]}});
        keep_allocated(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.3.4");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.3.4"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        // Another protocol is another port; a requested node port is not overwritten.
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
        assert_eq!(new["spec"]["ports"][2]["nodePort"], 31000);
    }

    #[test]
    fn a_service_turned_cluster_ip_loses_its_node_ports() {
        let old =
            json!({"spec": {"type": "NodePort", "clusterIP": "10.96.3.4", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.3.4", "ports": [{"port": 80, "nodePort": 30080}]}});
        keep_allocated(&mut new, &old);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert!(node_ports_of(&new).is_empty());
        assert_eq!(node_ports_of(&old), BTreeSet::from([30080]));
    }
}

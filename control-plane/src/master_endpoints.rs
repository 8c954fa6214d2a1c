//! The `kubernetes` Service in `default` and its endpoints: the API servers, as pods reach them
//! at 10.96.0.1:443. Every master keeps a record of its own API address under
//! `/registry/masterleases/<ip>` (kube-apiserver's lease reconciler keeps the same keys),
//! attached to a store lease of 45 s that it renews every 10 s (a renewal is no write: the
//! revision does not move), and writes the Service (if missing), the Endpoints and the
//! EndpointSlice from the records present, only when they differ: a dead master's record
//! expires with its lease, and masters agreeing on the records write nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use raft_store::mvcc::{PutRequest, RangeRequest, WriteOp};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::error::ApiResult;
use crate::registry::{self, Resource};
use crate::storage::{prefix_end, Storage};

const PREFIX: &str = "/registry/masterleases/";
const RENEW: Duration = Duration::from_secs(10);
/// A master that stops renewing for this long goes from the endpoints.
const LEASE_TTL: i64 = 45;
use crate::api::service_alloc::{reserve, IP_PREFIX, KUBERNETES_IP, KUBERNETES_OWNER};

/// The masters, `(ip, port)` sorted, from their records (malformed ones left out).
pub fn live_masters(records: &[(String, Vec<u8>)]) -> Vec<(Ipv4Addr, u16)> {
    let mut out: Vec<(Ipv4Addr, u16)> = records
        .iter()
        .filter_map(|(key, value)| {
            let ip: Ipv4Addr = key.strip_prefix(PREFIX)?.parse().ok()?;
            let v: Value = serde_json::from_slice(value).ok()?;
            let port = u16::try_from(v.get("port")?.as_u64()?).ok()?;
            Some((ip, port))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": KUBERNETES_IP.to_string(), "clusterIPs": [KUBERNETES_IP.to_string()],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                 "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}
    })
}

/// Endpoints and EndpointSlice of the masters. Kubernetes gives all API servers one port;
/// masters on different ports get the lowest one's (the rest are listed with it).
pub fn endpoints_for(masters: &[(Ipv4Addr, u16)]) -> (Value, Value) {
    let port = masters.iter().map(|(_, p)| *p).min().unwrap_or(6443);
    let ips: Vec<String> = masters.iter().map(|(ip, _)| ip.to_string()).collect();
    let subsets = if ips.is_empty() {
        json!([])
    } else {
        json!([{"addresses": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}])
    };
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets,
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    (endpoints, slice)
}

fn resource(group: &str, plural: &str) -> Option<&'static Resource> {
    registry::lookup(group, "v1", plural)
}

/// Creates `obj`, or replaces the stored one's `fields` when they differ from `obj`'s.
async fn put_object(storage: &Storage, res: &Resource, mut obj: Value, fields: &[&str]) -> ApiResult<()> {
    let name = crate::meta::name(&obj).unwrap_or_default().to_string();
    match storage.get(res, Some("default"), &name, false).await? {
        None => {
            crate::meta::prepare_create(&mut obj, res, Some("default"))?;
            crate::defaults::apply(res, &mut obj, true);
            match storage.create(res, Some("default"), &name, &obj).await {
                Err(e) if e.code != 409 => Err(e),
                _ => Ok(()),
            }
        }
        Some(cur) => {
            if fields.iter().all(|f| cur.obj.get(*f) == obj.get(*f)) {
                return Ok(());
            }
            let mut next = cur.obj.clone();
            for f in fields {
                next[*f] = obj.get(*f).cloned().unwrap_or(Value::Null);
            }
            match storage.update(res, Some("default"), &name, &next, cur.rv).await {
                // Another master wrote the same a moment before.
                Err(e) if e.code != 409 => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// Renews this master's record, or writes it anew under a fresh lease when the old one is
/// gone (first round, expired while the store was unreachable).
async fn renew(storage: &Storage, lease: &mut Option<i64>, ip: Ipv4Addr, port: u16) -> ApiResult<()> {
    if let Some(id) = *lease {
        match storage.store().lease_keep_alive(id).await {
            Ok(ttl) if ttl > 0 => return Ok(()),
            _ => *lease = None,
        }
    }
    let (id, _) = storage.store().lease_grant(0, LEASE_TTL).await?;
    let put = WriteOp::Put(PutRequest {
        key: format!("{PREFIX}{ip}").into_bytes(),
        value: json!({"port": port}).to_string().into_bytes(),
        lease: id,
        ..Default::default()
    });
    storage.store().write(put).await?;
    *lease = Some(id);
    Ok(())
}

async fn reconcile(storage: &Storage, lease: &mut Option<i64>, ip: Ipv4Addr, port: u16) -> ApiResult<()> {
    renew(storage, lease, ip, port).await?;
    let (Some(services), Some(endpoints), Some(slices)) = (
        resource("", "services"),
        resource("", "endpoints"),
        resource("discovery.k8s.io", "endpointslices"),
    ) else {
        return Ok(());
    };
    if storage
        .get(services, Some("default"), "kubernetes", false)
        .await?
        .is_none()
    {
        // The address is reserved like any other service's (the allocator also refuses it to
        // anyone else).
        if !reserve(storage, &format!("{IP_PREFIX}{KUBERNETES_IP}"), KUBERNETES_OWNER).await? {
            tracing::warn!("10.96.0.1 is held by another service: the kubernetes service is not created");
            return Ok(());
        }
        put_object(storage, services, service(), &["spec"]).await?;
    }
    let (_, resp) = storage
        .store()
        .range(RangeRequest {
            key: PREFIX.as_bytes().to_vec(),
            range_end: prefix_end(PREFIX.as_bytes()),
            ..Default::default()
        })
        .await?;
    let records: Vec<(String, Vec<u8>)> = resp
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value))
        .collect();
    let (eps, slice) = endpoints_for(&live_masters(&records));
    put_object(storage, endpoints, eps, &["subsets"]).await?;
    put_object(storage, slices, slice, &["endpoints", "ports"]).await?;
    Ok(())
}

/// Runs until `shutdown` for the master serving the API at `advertise` (host:port). A
/// hostname or unspecified address cannot be an endpoint: then this master only keeps the
/// Service.
pub async fn run(storage: Storage, advertise: String, shutdown: CancellationToken) {
    let parsed = advertise.rsplit_once(':').and_then(|(h, p)| {
        Some((
            h.trim_matches(['[', ']']).parse::<IpAddr>().ok()?,
            p.parse::<u16>().ok()?,
        ))
    });
    let Some((IpAddr::V4(ip), port)) = parsed.filter(|(ip, _)| !ip.is_unspecified()) else {
        tracing::warn!(%advertise, "the API's advertise address is not an IPv4 address: not listed in the kubernetes service's endpoints");
        return;
    };
    let mut lease = None;
    loop {
        if let Err(e) = reconcile(&storage, &mut lease, ip, port).await {
            tracing::debug!(error = %e, "updating the kubernetes service's endpoints");
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                // Out of the endpoints at once rather than when the lease runs out.
                if let Some(id) = lease {
                    let _ = storage.store().lease_revoke(id).await;
                }
                return;
            }
            _ = tokio::time::sleep(RENEW) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ip: &str, port: u16) -> (String, Vec<u8>) {
        (format!("{PREFIX}{ip}"), json!({"port": port}).to_string().into_bytes())
    }

    #[test]
    fn malformed_records_are_left_out() {
        let records = vec![
            rec("10.0.0.2", 6443),
            rec("10.0.0.1", 6443),
            (format!("{PREFIX}not-an-ip"), b"{}".to_vec()),
            (format!("{PREFIX}10.0.0.4"), b"garbage".to_vec()),
            (format!("{PREFIX}10.0.0.5"), br#"{"port": 70000}"#.to_vec()),
        ];
        let live = live_masters(&records);
        assert_eq!(
            live,
            vec![(Ipv4Addr::new(10, 0, 0, 1), 6443), (Ipv4Addr::new(10, 0, 0, 2), 6443)]
        );
    }

    #[test]
    fn endpoints_list_every_master_on_one_port() {
        let (eps, slice) = endpoints_for(&[(Ipv4Addr::new(10, 0, 0, 1), 6443), (Ipv4Addr::new(10, 0, 0, 2), 6444)]);
        assert_eq!(eps["subsets"][0]["addresses"][1]["ip"], "10.0.0.2");
        assert_eq!(eps["subsets"][0]["ports"][0]["port"], 6443);
        assert_eq!(slice["endpoints"][0]["addresses"][0], "10.0.0.1");
        assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "kubernetes");
        let (none, _) = endpoints_for(&[]);
        assert_eq!(none["subsets"], json!([]));
    }
}

//! Subresources with their own shapes: `scale` (autoscaling/v1 Scale over a workload's
//! replicas), `binding` (a pod's node, set once) and `token` (TokenRequest); `log` and `exec`
//! are in `logs` and `exec`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::body;
use super::request::{Query, Target};
use super::write::update_object;
use super::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::pki::UserInfo;
use crate::storage::Stored;
use crate::{meta, patch};

fn scale_of(t: &Target, s: &Stored) -> Value {
    let o = &s.obj;
    let selector = o
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            parts.sort();
            parts.join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": o.pointer("/metadata/name"),
            "namespace": o.pointer("/metadata/namespace"),
            "uid": o.pointer("/metadata/uid"),
            "resourceVersion": s.rv.to_string(),
            "creationTimestamp": o.pointer("/metadata/creationTimestamp"),
        },
        "spec": {"replicas": o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": o.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
        "_kind": t.res.kind,
    })
}

fn clean(mut scale: Value) -> Value {
    if let Some(o) = scale.as_object_mut() {
        o.remove("_kind");
    }
    scale
}

pub async fn get_scale(st: &Arc<ApiState>, t: &Target) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or("");
    let s = st.storage.must_get(t.res, t.namespace.as_deref(), name).await?;
    Ok(body::json(StatusCode::OK, &clean(scale_of(t, &s)), &[]))
}

/// Writes `replicas` into the workload, if it is still at `current.rv`.
async fn set_replicas(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    current: &Stored,
    replicas: i64,
    user: &UserInfo,
) -> ApiResult<Response> {
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            t.name.as_deref().unwrap_or(""),
            vec![crate::error::Cause::invalid(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut obj = current.obj.clone();
    obj["spec"]["replicas"] = json!(replicas);
    let main = Target {
        subresource: None,
        ..t.clone()
    };
    let (updated, _) = update_object(st, &main, q, obj, current, "Update", user).await?;
    let rv =
        meta::parse_rv(updated.pointer("/metadata/resourceVersion").and_then(Value::as_str))?.unwrap_or(current.rv);
    Ok(body::json(
        StatusCode::OK,
        &clean(scale_of(t, &Stored { obj: updated, rv })),
        &[],
    ))
}

pub async fn put_scale(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
    user: &UserInfo,
) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let scale = body::decode_object(headers, &bytes)?;
    let name = t.name.as_deref().unwrap_or("");
    let expected = meta::parse_rv(scale.pointer("/metadata/resourceVersion").and_then(Value::as_str))?;
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("spec.replicas: Required value"))?;
    let mut attempt = 0;
    loop {
        let current = st.storage.must_get(t.res, t.namespace.as_deref(), name).await?;
        if expected.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::stale(t.res.group, t.res.plural, name));
        }
        match set_replicas(st, t, q, &current, replicas, user).await {
            // Without a resourceVersion the write is unconditional: a controller's concurrent
            // status write is not the caller's conflict (Kubernetes retries these too).
            Err(e) if is_conflict(&e) && expected.is_none() && attempt < CONFLICT_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

/// How often an unconditional scale write is retried after losing a race.
const CONFLICT_RETRIES: u32 = 10;

fn is_conflict(e: &ApiError) -> bool {
    e.code == 409 && e.reason == "Conflict"
}

pub async fn patch_scale(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    ct: &str,
    bytes: &[u8],
    user: &UserInfo,
) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or("");
    let mut attempt = 0;
    loop {
        let current = st.storage.must_get(t.res, t.namespace.as_deref(), name).await?;
        let doc = clean(scale_of(t, &current));
        let patched = match ct {
            "application/json-patch+json" => patch::json_patch(&doc, bytes),
            "application/merge-patch+json" => patch::merge_patch(&doc, bytes),
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(&doc, bytes, "autoscaling", "Scale")
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        .map_err(super::write::patch_error)?;
        // A patch that names a resourceVersion is conditional on it, as in Kubernetes.
        let pinned = patched.pointer("/metadata/resourceVersion") != doc.pointer("/metadata/resourceVersion");
        if pinned {
            return Err(ApiError::stale(t.res.group, t.res.plural, name));
        }
        let replicas = patched
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::bad_request("spec.replicas: Required value"))?;
        match set_replicas(st, t, q, &current, replicas, user).await {
            // Re-applied to the object as it now is: the patch carried no precondition.
            Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => attempt += 1,
            other => return other,
        }
    }
}

/// POST pods/<name>/binding: sets spec.nodeName once (409 when already bound).
pub async fn bind(st: &Arc<ApiState>, t: &Target, q: &Query, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let binding = body::decode_object(headers, &bytes)?;
    let name = t.name.as_deref().unwrap_or("");
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("target.name: Required value"))?
        .to_string();
    let ns = t.namespace.as_deref().unwrap_or("");
    let current = st.storage.must_get(t.res, Some(ns), name).await?;
    if q.dry_run()? {
        crate::binding::bound(&current.obj, &node, &meta::now())?;
        return Ok(body::json(StatusCode::CREATED, &success_status(), &[]));
    }
    crate::binding::bind(&st.storage, ns, name, &node, current).await?;
    Ok(body::json(StatusCode::CREATED, &success_status(), &[]))
}

fn success_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// POST serviceaccounts/<name>/token: the TokenRequest API (`kubectl create token`).
pub async fn token(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
    user: &UserInfo,
) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let req = if bytes.is_empty() {
        json!({})
    } else {
        body::decode_object(headers, &bytes)?
    };
    let ns = t.namespace.as_deref().unwrap_or("");
    let name = t.name.as_deref().unwrap_or("");
    let node = crate::auth::node::node_name(&crate::auth::user_of(user)).map(str::to_string);
    let out =
        crate::serviceaccount::token_request(&st.storage, &st.sa_key, ns, name, &req, q.dry_run()?, node.as_deref())
            .await?;
    Ok(body::json(StatusCode::CREATED, &out, &[]))
}

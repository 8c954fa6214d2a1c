//! Create (POST), update (PUT) and patch (PATCH, all four patch types). Each runs the same
//! pipeline: decode through the Kubernetes type (fieldValidation), server-owned metadata,
//! defaults, admission (mutating plugins), validation, RBAC escalation checks, quota, then one
//! store txn. `dryRun=All`
//! stops before the txn.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::body;
use super::request::{FieldValidation, Query, Target};
use super::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::pki::UserInfo;
use crate::storage::{for_response, Stored};
use crate::{admission, defaults, meta, patch, typed, validate};

/// How many times a patch or an unconditional update retries after losing a race.
const RETRIES: usize = 8;

/// Decodes through the type and applies `fieldValidation`; returns the object and warnings.
fn decode_typed(t: &Target, q: &Query, obj: &Value) -> ApiResult<(Value, Vec<String>)> {
    let (typed, unknown) = typed::normalize(t.res, obj)?;
    let fv = q.field_validation()?;
    if unknown.is_empty() || fv == FieldValidation::Ignore {
        return Ok((typed, Vec::new()));
    }
    let texts: Vec<String> = unknown.iter().map(|p| format!("unknown field \"{p}\"")).collect();
    if fv == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            texts.join(", ")
        )));
    }
    Ok((typed, texts))
}

fn managed_fields_entry(q: &Query, operation: &str, api_version: &str, sub: Option<&str>) -> Value {
    let manager = q.get("fieldManager").unwrap_or("unknown");
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": meta::now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    if let Some(s) = sub {
        e["subresource"] = json!(s);
    }
    e
}

/// Records the request's field manager in `metadata.managedFields` (one entry per manager,
/// operation and subresource, as Kubernetes keeps them).
fn record_manager(obj: &mut Value, q: &Query, operation: &str, api_version: &str, sub: Option<&str>) {
    let entry = managed_fields_entry(q, operation, api_version, sub);
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = m.entry("managedFields").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        a.retain(|e| {
            !(e["manager"] == entry["manager"]
                && e["operation"] == entry["operation"]
                && e.get("subresource") == entry.get("subresource"))
        });
        a.push(entry);
    }
}

pub async fn create(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
    user: &UserInfo,
) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let obj = body::decode_object(headers, &bytes)?;
    let (obj, warnings) = create_object(st, t, q, obj, user).await?;
    Ok(body::json(StatusCode::CREATED, &obj, &warnings))
}

/// The create pipeline; also used by server-side apply of a new object.
pub async fn create_object(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    obj: Value,
    user: &UserInfo,
) -> ApiResult<(Value, Vec<String>)> {
    let dry_run = q.dry_run()?;
    let (mut obj, mut warnings) = decode_typed(t, q, &obj)?;
    meta::prepare_create(&mut obj, t.res, t.namespace.as_deref())?;
    defaults::apply(t.res, &mut obj, true);
    let name = meta::name(&obj).unwrap_or_default().to_string();
    let ns = if t.res.namespaced {
        meta::namespace(&obj).map(String::from)
    } else {
        None
    };
    let adm = admission::Request {
        user,
        res: t.res,
        subresource: None,
        namespace: ns.as_deref(),
        name: &name,
        dry_run,
    };
    warnings.extend(st.admission.admit_create(&adm, &mut obj)?);
    st.admission.admit_service_account(&st.storage, &adm, &mut obj).await?;
    if t.res.group == "certificates.k8s.io" {
        crate::csr::prepare_create(&mut obj, user)?;
    }
    validate::validate(t.res, &obj)?;
    st.authz
        .check_escalation(user, t.res, &obj, "", st.storage.revision())
        .await?;
    st.admission.charge(&st.storage, &adm, &obj, None).await?;
    record_manager(&mut obj, q, "Update", &t.res.api_version(), None);
    let service = t.res.kind == "Service" && t.res.group.is_empty();
    if service {
        // Refused before anything is reserved: an existing service of this name holds
        // reservations under the same owner, which the way back below would free.
        if st.storage.get(t.res, ns.as_deref(), &name, false).await?.is_some() {
            return Err(ApiError::already_exists(t.res.group, t.res.plural, &name));
        }
        super::service_alloc::allocate_cluster_ip(st, &mut obj, dry_run).await?;
        if let Err(e) = super::service_alloc::allocate_node_ports(st, &mut obj, None, dry_run).await {
            if !dry_run {
                super::service_alloc::release_unused(st, &obj, None).await;
            }
            return Err(e);
        }
    }
    if dry_run {
        if st.storage.get(t.res, ns.as_deref(), &name, false).await?.is_some() {
            return Err(ApiError::already_exists(t.res.group, t.res.plural, &name));
        }
        return Ok((obj, warnings));
    }
    let stored = match st.storage.create(t.res, ns.as_deref(), &name, &obj).await {
        Ok(s) => s,
        Err(e) => {
            if service {
                super::service_alloc::release_unused(st, &obj, None).await;
            }
            return Err(e);
        }
    };
    if t.res.group.is_empty() && t.res.plural == "namespaces" {
        // What Kubernetes' service account and root CA controllers add a moment later.
        if let Err(e) = crate::serviceaccount::ensure_namespace_defaults(&st.storage, &name, &st.ca_pem).await {
            tracing::warn!(namespace = %name, error = %e, "creating the namespace's default service account");
        }
    }
    Ok((for_response(t.res, &stored), warnings))
}

pub async fn update(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
    user: &UserInfo,
) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let obj = body::decode_object(headers, &bytes)?;
    let name = t.name.as_deref().unwrap_or("");
    match meta::name(&obj) {
        Some(n) if n != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        _ => {}
    }
    let expected = meta::parse_rv(obj.pointer("/metadata/resourceVersion").and_then(Value::as_str))?;
    for _ in 0..RETRIES {
        let current = match st.storage.get(t.res, t.namespace.as_deref(), name, false).await? {
            Some(c) => c,
            None if t.subresource.is_none() && t.res.kind != "Pod" => {
                // PUT of a missing object creates it, as Kubernetes allows for most types, if
                // the caller may create.
                authorize_create(st, t, user).await?;
                let (created, warnings) = create_object(st, t, q, obj, user).await?;
                return Ok(body::json(StatusCode::CREATED, &created, &warnings));
            }
            None => return Err(ApiError::not_found(t.res.group, t.res.plural, name)),
        };
        if let Some(rv) = expected {
            if rv != current.rv {
                return Err(ApiError::stale(t.res.group, t.res.plural, name));
            }
        }
        match update_object(st, t, q, obj.clone(), &current, "Update", user).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && expected.is_none() => continue,
            Ok((o, w)) => return Ok(body::json(StatusCode::OK, &o, &w)),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::stale(t.res.group, t.res.plural, name))
}

/// The update pipeline against `current`: status subresource rules, typed decoding, metadata,
/// defaults, validation and the txn on `current.rv`. An object being deleted whose last
/// finalizer is removed is deleted.
pub async fn update_object(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    new: Value,
    current: &Stored,
    operation: &str,
    user: &UserInfo,
) -> ApiResult<(Value, Vec<String>)> {
    let dry_run = q.dry_run()?;
    let name = t.name.as_deref().unwrap_or("");
    let mut new = new;
    // A CSR's approval changes its conditions only, like a status write.
    let approval = t.subresource.as_deref() == Some("approval");
    if approval {
        new = crate::csr::merge_approval(&new, &current.obj);
    }
    let through_status = t.subresource.as_deref() == Some("status") || approval;
    if t.res.has_subresource("status") {
        meta::merge_status(&mut new, &current.obj, through_status);
    }
    let (mut new, mut warnings) = decode_typed(t, q, &new)?;
    let service = t.res.kind == "Service" && t.res.group.is_empty();
    if service {
        super::service_alloc::keep_allocated(&mut new, &current.obj);
    }
    // Defaults first: generation compares the spec with the stored (defaulted) one, and a field
    // the request left to its default is no change.
    defaults::apply(t.res, &mut new, false);
    meta::prepare_update(&mut new, &current.obj, t.res)?;
    let adm = admission::Request {
        user,
        res: t.res,
        subresource: t.subresource.as_deref(),
        namespace: t.namespace.as_deref(),
        name,
        dry_run,
    };
    warnings.extend(st.admission.admit_update(&adm, &mut new, &current.obj)?);
    validate::validate(t.res, &new)?;
    validate::validate_update(t.res, &new, &current.obj)?;
    if strip_rv(&new) == strip_rv(&current.obj) {
        // A no-op update writes nothing and keeps the resourceVersion, as Kubernetes does.
        return Ok((for_response(t.res, current), warnings));
    }
    st.authz
        .check_escalation(user, t.res, &new, name, st.storage.revision())
        .await?;
    st.admission.charge(&st.storage, &adm, &new, Some(&current.obj)).await?;
    record_manager(&mut new, q, operation, &t.res.api_version(), t.subresource.as_deref());
    if service {
        // A service that had no cluster IP (ExternalName before) gets one now.
        let had_ip = current
            .obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty());
        if !had_ip {
            super::service_alloc::allocate_cluster_ip(st, &mut new, dry_run).await?;
        }
        if let Err(e) = super::service_alloc::allocate_node_ports(st, &mut new, Some(&current.obj), dry_run).await {
            if !dry_run {
                super::service_alloc::release_unused(st, &new, Some(&current.obj)).await;
            }
            return Err(e);
        }
    }
    if dry_run {
        return Ok((
            for_response(
                t.res,
                &Stored {
                    obj: new,
                    rv: current.rv,
                },
            ),
            warnings,
        ));
    }
    if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
        let rev = st
            .storage
            .delete(t.res, t.namespace.as_deref(), name, current.rv)
            .await?;
        if service {
            super::service_alloc::release_unused(st, &current.obj, None).await;
        }
        return Ok((for_response(t.res, &Stored { obj: new, rv: rev }), warnings));
    }
    let stored = match st
        .storage
        .update(t.res, t.namespace.as_deref(), name, &new, current.rv)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            // What this attempt reserved (a 409 retry reserves afresh).
            if service {
                super::service_alloc::release_unused(st, &new, Some(&current.obj)).await;
            }
            return Err(e);
        }
    };
    if service {
        super::service_alloc::release_unused(st, &current.obj, Some(&stored.obj)).await;
    }
    Ok((for_response(t.res, &stored), warnings))
}

/// An update or apply that would create the object needs `create` too, as in Kubernetes.
async fn authorize_create(st: &Arc<ApiState>, t: &Target, user: &UserInfo) -> ApiResult<()> {
    let collection = Target {
        name: None,
        subresource: None,
        ..t.clone()
    };
    let attrs = crate::auth::attributes::for_target(
        &crate::auth::user_of(user),
        &axum::http::Method::POST,
        &collection,
        false,
    );
    st.authz.authorize(&attrs, st.storage.revision()).await
}

/// A patch that cannot be read is a 400; one that cannot be applied is a 422, as Kubernetes
/// answers (`Error from server (Invalid): ...` in kubectl).
pub fn patch_error(e: patch::PatchError) -> ApiError {
    match e {
        patch::PatchError::InvalidPatch { .. } => ApiError::new(422, "Invalid", e.to_string()),
        other => ApiError::bad_request(other.to_string()),
    }
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

pub async fn patch(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    body: Body,
    user: &UserInfo,
) -> ApiResult<Response> {
    let ct = body::content_type(headers);
    let bytes = body::read(body).await?;
    if t.subresource.as_deref() == Some("scale") {
        return super::subresource::patch_scale(st, t, q, &ct, &bytes, user).await;
    }
    let name = t.name.as_deref().unwrap_or("");
    let apply = ct == "application/apply-patch+yaml";
    let applied: Option<Value> = if apply {
        let v: Value =
            serde_yaml::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request("the apply configuration must be an object"));
        }
        if q.get("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
            ));
        }
        Some(v)
    } else {
        None
    };
    for _ in 0..RETRIES {
        let current = match st.storage.get(t.res, t.namespace.as_deref(), name, false).await? {
            Some(c) => c,
            None => match &applied {
                Some(v) if t.subresource.is_none() => {
                    match meta::name(v) {
                        Some(n) if n != name => {
                            return Err(ApiError::bad_request(format!(
                                "the name of the object ({n}) does not match the name on the URL ({name})"
                            )))
                        }
                        _ => {}
                    }
                    authorize_create(st, t, user).await?;
                    let (o, w) = create_object(st, t, q, v.clone(), user).await?;
                    return Ok(body::json(StatusCode::CREATED, &o, &w));
                }
                _ => return Err(ApiError::not_found(t.res.group, t.res.plural, name)),
            },
        };
        let doc = for_response(t.res, &current);
        let patched = match ct.as_str() {
            "application/json-patch+json" => patch::json_patch(&doc, &bytes),
            "application/merge-patch+json" => patch::merge_patch(&doc, &bytes),
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(&doc, &bytes, t.res.group, t.res.kind)
            }
            "application/apply-patch+yaml" => {
                // Server-side apply, simplified: the configuration is merged into the live
                // object with the strategic merge rules; fields it no longer sets are kept.
                let cfg = serde_json::to_vec(applied.as_ref().unwrap_or(&Value::Null)).unwrap_or_default();
                patch::strategic_merge_patch(&doc, &cfg, t.res.group, t.res.kind)
            }
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        .map_err(patch_error)?;
        // The patched document starts with the current resourceVersion; a patch that sets
        // another one made it a precondition that no longer holds.
        let pinned = meta::parse_rv(patched.pointer("/metadata/resourceVersion").and_then(Value::as_str))?;
        if pinned.is_some_and(|rv| rv != current.rv) {
            return Err(ApiError::stale(t.res.group, t.res.plural, name));
        }
        let op = if apply { "Apply" } else { "Update" };
        match update_object(st, t, q, patched, &current, op, user).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
            Ok((o, w)) => return Ok(body::json(StatusCode::OK, &o, &w)),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::stale(t.res.group, t.res.plural, name))
}

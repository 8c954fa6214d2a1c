//! DELETE of one object and of a collection: DeleteOptions (preconditions, gracePeriodSeconds,
//! propagationPolicy, dryRun), finalizers (the object stays, marked with deletionTimestamp, until
//! its last finalizer goes), graceful deletion of pods bound to a node, and namespaces (deleted
//! with everything in them, in one txn).

use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::body;
use super::read::{list_items, Filter};
use super::request::{Query, Target};
use super::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::pki::UserInfo;
use crate::storage::{for_response, Stored};
use crate::{admission, meta};

#[derive(Debug, Default)]
struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    rv: Option<i64>,
    dry_run: bool,
}

fn options(q: &Query, bytes: &[u8]) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions {
        grace: q.int("gracePeriodSeconds")?,
        propagation: q.get("propagationPolicy").map(String::from),
        dry_run: q.dry_run()?,
        ..Default::default()
    };
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions could not be decoded: {e}")))?;
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            o.grace = Some(g);
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation = Some(p.to_string());
        }
        if let Some(p) = v.get("preconditions") {
            o.uid = p.get("uid").and_then(Value::as_str).map(String::from);
            o.rv = meta::parse_rv(p.get("resourceVersion").and_then(Value::as_str))?;
        }
        if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
            o.dry_run |= d.iter().any(|x| x == "All");
        }
    }
    match o.propagation.as_deref() {
        None | Some("Orphan" | "Background" | "Foreground") => {}
        Some(p) => {
            return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        )))
        }
    }
    if o.grace.is_some_and(|g| g < 0) {
        return Err(ApiError::bad_request("gracePeriodSeconds: Invalid value: must be >= 0"));
    }
    Ok(o)
}

pub async fn delete(st: &Arc<ApiState>, t: &Target, q: &Query, body: Body, user: &UserInfo) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let opts = options(q, &bytes)?;
    let name = t.name.as_deref().unwrap_or("");
    let current = st.storage.must_get(t.res, t.namespace.as_deref(), name).await?;
    let (code, obj) = delete_one(st, t, name, current, &opts, user).await?;
    Ok(body::json(code, &obj, &[]))
}

/// Deletes `current` as a DELETE with default options would (finalizers, graceful pod deletion),
/// only if it is still the object with `uid`: for in-process callers (controllers).
pub async fn delete_object(
    st: &Arc<ApiState>,
    t: &Target,
    current: Stored,
    uid: &str,
    user: &UserInfo,
) -> ApiResult<Value> {
    let opts = DeleteOptions {
        uid: Some(uid.to_string()),
        ..Default::default()
    };
    let name = t.name.clone().unwrap_or_default();
    Ok(delete_one(st, t, &name, current, &opts, user).await?.1)
}

/// DELETE with `propagationPolicy: Orphan`, as Kubernetes' orphan finalizer does it: the owner is
/// first marked as being deleted (its controller then adopts nothing), its dependents lose their
/// reference to it, then it goes.
async fn orphan_and_delete(
    st: &Arc<ApiState>,
    t: &Target,
    ns: &str,
    name: &str,
    current: Stored,
    uid: &str,
) -> ApiResult<(StatusCode, Value)> {
    let mut current = current;
    // Its controller may be writing its status meanwhile: every step retries on a moved
    // resourceVersion, with the object read again (and still the one asked for).
    let reread = |e: ApiError| async move {
        if e.code == 404 {
            return Ok(None);
        }
        if e.code != 409 {
            return Err(e);
        }
        match st.storage.get(t.res, Some(ns), name, false).await? {
            Some(fresh) if fresh.obj.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid) => Ok(Some(fresh)),
            _ => Ok(None),
        }
    };
    for _ in 0..5 {
        if meta::is_deleting(&current.obj) {
            break;
        }
        // The `orphan` finalizer, as Kubernetes' garbage collector uses it: with it, no update
        // (its controller writing status) completes the deletion before the dependents are free.
        let mut marked = current.obj.clone();
        marked["metadata"]["deletionTimestamp"] = json!(meta::now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        marked["metadata"]["finalizers"] = json!(["orphan"]);
        match st.storage.update(t.res, Some(ns), name, &marked, current.rv).await {
            Ok(s) => current = s,
            Err(e) => match reread(e).await? {
                Some(fresh) => current = fresh,
                None => return Ok((StatusCode::OK, for_response(t.res, &current))),
            },
        }
    }
    orphan_dependents(st, ns, uid).await?;
    // Its controller may still be writing its status: retry on a moved resourceVersion.
    for _ in 0..5 {
        match st.storage.delete(t.res, Some(ns), name, current.rv).await {
            Ok(_) => {
                if t.res.kind == "Service" && t.res.group.is_empty() {
                    super::service_alloc::release_unused(st, &current.obj, None).await;
                }
                return Ok((StatusCode::OK, for_response(t.res, &current)));
            }
            Err(e) => match reread(e).await? {
                Some(fresh) => current = fresh,
                None => return Ok((StatusCode::OK, for_response(t.res, &current))),
            },
        }
    }
    Err(ApiError::stale(t.res.group, t.res.plural, name))
}

/// `propagationPolicy: Orphan`: the owner's dependents (the pods and ReplicaSets of its
/// namespace naming its uid in their ownerReferences) lose that reference before the owner goes,
/// so garbage collection leaves them alone.
async fn orphan_dependents(st: &Arc<ApiState>, ns: &str, uid: &str) -> ApiResult<()> {
    let dependents = [crate::registry::pods(), crate::registry::replicasets()];
    for res in dependents {
        let prefix = res.list_prefix(Some(ns));
        let page = st.storage.list(&crate::storage::ListSpec::all(&prefix), None).await?;
        for item in page.items {
            let owned = |o: &Value| {
                o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            };
            let mut current = item;
            for _ in 0..5 {
                if !owned(&current.obj) {
                    break;
                }
                let name = meta::name(&current.obj).unwrap_or_default().to_string();
                let mut obj = current.obj.clone();
                if let Some(refs) = obj
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r["uid"] != uid);
                }
                if obj["metadata"]["ownerReferences"].as_array().is_some_and(Vec::is_empty) {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove("ownerReferences");
                    }
                }
                match st.storage.update(res, Some(ns), &name, &obj, current.rv).await {
                    Ok(_) => break,
                    Err(e) if e.code == 409 => match st.storage.get(res, Some(ns), &name, false).await? {
                        Some(fresh) => current = fresh,
                        None => break,
                    },
                    Err(e) if e.code == 404 => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

async fn delete_one(
    st: &Arc<ApiState>,
    t: &Target,
    name: &str,
    current: Stored,
    opts: &DeleteOptions,
    user: &UserInfo,
) -> ApiResult<(StatusCode, Value)> {
    admission::admit_delete(
        &admission::Request {
            user,
            res: t.res,
            subresource: None,
            namespace: t.namespace.as_deref(),
            name,
            dry_run: opts.dry_run,
        },
        &current.obj,
    )?;
    let uid = current
        .obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(want) = &opts.uid {
        if want != uid {
            return Err(ApiError::conflict(
                t.res.group,
                t.res.plural,
                name,
                &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
            ));
        }
    }
    if let Some(want) = opts.rv {
        if want != current.rv {
            return Err(ApiError::conflict(
                t.res.group,
                t.res.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    current.rv
                ),
            ));
        }
    }
    if t.res.kind == "Namespace" && t.res.group.is_empty() && crate::registry::SYSTEM_NAMESPACES.contains(&name) {
        // NamespaceLifecycle: the namespaces every cluster has are immortal.
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        )
        .about("", "namespaces", name));
    }
    if opts.propagation.as_deref() == Some("Orphan") && !opts.dry_run && meta::finalizers(&current.obj).is_empty() {
        if let Some(ns) = t.namespace.as_deref() {
            let uid = uid.to_string();
            return orphan_and_delete(st, t, ns, name, current, &uid).await;
        }
    }
    let mut marked = current.obj.clone();
    let finalizers = meta::finalizers(&marked);
    let bound_pod = t.res.kind == "Pod"
        && t.res.group.is_empty()
        && marked
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
    let grace = opts.grace.unwrap_or_else(|| {
        if bound_pod {
            marked
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        } else {
            0
        }
    });
    let graceful = bound_pod && grace > 0;
    if !finalizers.is_empty() || graceful {
        if meta::is_deleting(&marked) && !graceful {
            // Already marked: nothing more to do until the finalizers are removed.
            return Ok((StatusCode::ACCEPTED, for_response(t.res, &current)));
        }
        let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
        if let Some(m) = marked.get_mut("metadata").and_then(Value::as_object_mut) {
            if m.get("deletionTimestamp").is_none() {
                m.insert("deletionTimestamp".into(), json!(meta::timestamp(when)));
            }
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        if t.res.kind == "Namespace" && t.res.group.is_empty() {
            // What `kubectl get ns` shows, and what NamespaceLifecycle refuses creates for.
            if let Some(st) = marked.get_mut("status").and_then(Value::as_object_mut) {
                st.insert("phase".into(), json!("Terminating"));
            }
        }
        if opts.dry_run {
            return Ok((
                StatusCode::ACCEPTED,
                for_response(
                    t.res,
                    &Stored {
                        obj: marked,
                        rv: current.rv,
                    },
                ),
            ));
        }
        let stored = st
            .storage
            .update(t.res, t.namespace.as_deref(), name, &marked, current.rv)
            .await?;
        return Ok((StatusCode::ACCEPTED, for_response(t.res, &stored)));
    }
    if opts.dry_run {
        return Ok((StatusCode::OK, for_response(t.res, &current)));
    }
    if t.res.kind == "Namespace" && t.res.group.is_empty() {
        // The namespace's services go with it: their cluster IPs and node ports too.
        let services = crate::registry::services().list_prefix(Some(name));
        let doomed = st.storage.list(&crate::storage::ListSpec::all(&services), None).await?;
        st.storage.delete_namespace_tree(name, current.rv).await?;
        for svc in &doomed.items {
            super::service_alloc::release_unused(st, &svc.obj, None).await;
        }
    } else {
        st.storage
            .delete(t.res, t.namespace.as_deref(), name, current.rv)
            .await?;
    }
    if t.res.kind == "Service" && t.res.group.is_empty() {
        super::service_alloc::release_unused(st, &current.obj, None).await;
    }
    // The last state, at its own revision: a watch from it sees the DELETED event.
    Ok((StatusCode::OK, for_response(t.res, &current)))
}

pub async fn delete_collection(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    body: Body,
    user: &UserInfo,
) -> ApiResult<Response> {
    let bytes = body::read(body).await?;
    let opts = options(q, &bytes)?;
    let filter = Filter::from_query(t, q)?;
    let mut q_all = q.clone();
    q_all.remove("limit");
    q_all.remove("continue");
    let (items, rev, _, _) = list_items(st, t, &q_all, &filter).await?;
    let mut deleted = Vec::new();
    for s in items {
        let name = meta::name(&s.obj).unwrap_or_default().to_string();
        let ns = meta::namespace(&s.obj).map(String::from);
        let one = Target {
            res: t.res,
            namespace: ns,
            name: Some(name.clone()),
            subresource: None,
        };
        match delete_one(st, &one, &name, s, &opts, user).await {
            Ok((_, obj)) => deleted.push(obj),
            // Gone or changed meanwhile: skip it, as Kubernetes' deletecollection does.
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": t.res.list_kind(),
        "apiVersion": t.res.api_version(),
        "metadata": {"resourceVersion": rev.to_string()},
        "items": deleted,
    });
    Ok(body::json(StatusCode::OK, &list, &[]))
}

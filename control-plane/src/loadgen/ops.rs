//! One API operation each: what a client sends and what it checks in the answer.

use hyper::{Method, StatusCode};

use super::config::LIST_PAGE;
use super::conn::{status_error, Conn};
use super::error::OpError;
use super::objects;

/// POST of the namespace; an existing one (409) is fine.
pub async fn ensure_namespace(conn: &mut Conn, ns: &str) -> Result<(), OpError> {
    let (status, body) = conn
        .call(Method::POST, objects::namespaces_path(), Some(objects::namespace(ns)))
        .await?;
    if status.is_success() || status == StatusCode::CONFLICT {
        Ok(())
    } else {
        Err(status_error(status, &body))
    }
}

/// POST of a pod. With `exists_ok`, 409 AlreadyExists counts as done (pre-population).
pub async fn create_pod(conn: &mut Conn, ns: &str, name: &str, exists_ok: bool) -> Result<(), OpError> {
    let (status, body) = conn
        .call(Method::POST, &objects::pods_path(ns), Some(objects::pod(ns, name)))
        .await?;
    if status == StatusCode::CREATED || (exists_ok && status == StatusCode::CONFLICT) {
        Ok(())
    } else if status.is_success() {
        Err(OpError::Check(format!("create answered {status}, not 201 Created")))
    } else {
        Err(status_error(status, &body))
    }
}

/// GET of a pod that must exist.
pub async fn get_pod(conn: &mut Conn, ns: &str, name: &str) -> Result<(), OpError> {
    conn.call_ok(Method::GET, &format!("{}/{name}", objects::pods_path(ns)), None)
        .await
        .map(drop)
}

/// A whole chunked list of the namespace's pods: pages of [`LIST_PAGE`], following `continue`
/// (every page after the first is served from the first page's snapshot). Returns the names
/// in the order received and the number of pages.
pub async fn list_pods(conn: &mut Conn, ns: &str) -> Result<(Vec<String>, u64), OpError> {
    let base = format!("{}?limit={LIST_PAGE}", objects::pods_path(ns));
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0u64;
    loop {
        let path = if token.is_empty() {
            base.clone()
        } else {
            format!("{base}&continue={}", objects::query_value(&token))
        };
        let body = conn.call_ok(Method::GET, &path, None).await?;
        let page = objects::parse_page(&body).map_err(OpError::Check)?;
        pages += 1;
        if page.names.len() as u64 > LIST_PAGE {
            return Err(OpError::Check(format!(
                "page {pages} has {} items, above limit={LIST_PAGE}",
                page.names.len()
            )));
        }
        if !page.continue_token.is_empty() && page.names.is_empty() {
            return Err(OpError::Check(format!(
                "page {pages} is empty but has a continue token"
            )));
        }
        names.extend(page.names);
        if page.continue_token.is_empty() {
            return Ok((names, pages));
        }
        if page.continue_token == token {
            return Err(OpError::Check(format!(
                "page {pages} returned the continue token it was given"
            )));
        }
        token = page.continue_token;
    }
}

/// POST of a configmap carrying its send time; returns its resourceVersion.
pub async fn create_configmap(conn: &mut Conn, ns: &str, name: &str, sent_ns: u64) -> Result<i64, OpError> {
    let body = conn
        .call_ok(
            Method::POST,
            &objects::configmaps_path(ns),
            Some(objects::configmap(ns, name, sent_ns)),
        )
        .await?;
    objects::parse_resource_version(&body).map_err(OpError::Check)
}

/// The namespace's configmaps' current resourceVersion: where watches start from.
pub async fn configmaps_revision(conn: &mut Conn, ns: &str) -> Result<i64, OpError> {
    let body = conn
        .call_ok(Method::GET, &format!("{}?limit=1", objects::configmaps_path(ns)), None)
        .await?;
    let page = objects::parse_page(&body).map_err(OpError::Check)?;
    objects::rv_number(&page.resource_version).map_err(OpError::Check)
}

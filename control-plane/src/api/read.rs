//! GET of one object and of a collection: selectors, limit/continue paging on one snapshot
//! (410 once the snapshot is compacted), resourceVersion semantics, Table output.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use super::body;
use super::request::{Query, Target};
use super::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::selector::{FieldSelector, LabelSelector};
use crate::storage::{for_response, ListSpec, Stored};
use crate::table;

/// Label and field selectors of a request, checked against what the resource supports.
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn from_query(t: &Target, q: &Query) -> ApiResult<Filter> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        fields
            .check_supported(t.res.group, t.res.plural)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Filter { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let empty = serde_json::Map::new();
        let labels = obj
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        self.labels.matches(labels) && self.fields.matches(obj)
    }
}

pub async fn get(st: &Arc<ApiState>, t: &Target, q: &Query, headers: &HeaderMap) -> ApiResult<Response> {
    let name = t.name.as_deref().unwrap_or("");
    // resourceVersion "0" may be served from this member's state; otherwise linearizable.
    let serializable = q.get("resourceVersion") == Some("0");
    let s = st
        .storage
        .get(t.res, t.namespace.as_deref(), name, serializable)
        .await?
        .ok_or_else(|| ApiError::not_found(t.res.group, t.res.plural, name))?;
    let obj = for_response(t.res, &s);
    let accept = body::accept(headers);
    if table::wants_table(&accept) {
        let tbl = table::table(
            t.res.group,
            t.res.plural,
            &[obj],
            json!({"resourceVersion": s.rv.to_string()}),
            include_object(q),
            chrono::Utc::now(),
        );
        return Ok(body::table(&tbl));
    }
    Ok(body::json(StatusCode::OK, &obj, &[]))
}

pub fn include_object(q: &Query) -> &str {
    q.get("includeObject").unwrap_or("Metadata")
}

/// A continue token: the snapshot revision and the last key returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, key: &str) -> String {
    let c = Continue {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: key.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&c).unwrap_or_default())
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<Continue> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let c: Continue = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if c.v != "meta.k8s.io/v1" || c.rv <= 0 || !c.start.starts_with(prefix) {
        return Err(bad());
    }
    Ok(c)
}

/// Objects of a collection, filtered, at the requested revision. Returns the items, the
/// revision they were read at, and the continue token when more remain.
pub async fn list_items(
    st: &Arc<ApiState>,
    t: &Target,
    q: &Query,
    filter: &Filter,
) -> ApiResult<(Vec<Stored>, i64, Option<String>, Option<i64>)> {
    let prefix = t.res.list_prefix(t.namespace.as_deref());
    let limit = q.int("limit")?.unwrap_or(0).max(0);
    let rv = q.get("resourceVersion");
    let rv_match = q.get("resourceVersionMatch").unwrap_or("");
    let (at, start, serializable) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let c = decode_continue(token, &prefix)?;
            (c.rv, Some(c.start), true)
        }
        None => match (rv, rv_match) {
            (None | Some(""), _) => (0, None, false),
            (Some("0"), _) => (0, None, true),
            (Some(n), "Exact") => (parse_positive(n)?, None, true),
            (Some(n), _) => {
                // NotOlderThan: the latest state is never older than n once we have applied n.
                let want = parse_positive(n)?;
                if st.storage.revision() < want {
                    (0, None, false)
                } else {
                    (0, None, true)
                }
            }
        },
    };
    let keep = |o: &Value| filter.matches(o);
    let spec = ListSpec {
        prefix: &prefix,
        start_after: start.as_deref(),
        at,
        limit,
        serializable,
    };
    let keep: Option<&(dyn Fn(&Value) -> bool + Sync)> = if filter.is_empty() { None } else { Some(&keep) };
    let page = st
        .storage
        .list(&spec, keep)
        .await
        .map_err(|e| {
            if e.code == 410 && start.is_some() {
                ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            } else {
                e
            }
        })?;
    let token = page.next_key.as_deref().map(|k| encode_continue(page.revision, k));
    Ok((page.items, page.revision, token, page.remaining))
}

fn parse_positive(s: &str) -> ApiResult<i64> {
    s.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {s:?}: must be a positive integer"
        ))
    })
}

pub async fn list(st: &Arc<ApiState>, t: &Target, q: &Query, headers: &HeaderMap) -> ApiResult<Response> {
    let filter = Filter::from_query(t, q)?;
    let (items, rev, token, remaining) = list_items(st, t, q, &filter).await?;
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if let Some(tok) = &token {
        meta["continue"] = json!(tok);
        if let Some(r) = remaining {
            meta["remainingItemCount"] = json!(r);
        }
    }
    let objs: Vec<Value> = items.iter().map(|s| for_response(t.res, s)).collect();
    let accept = body::accept(headers);
    if table::wants_table(&accept) {
        let tbl = table::table(
            t.res.group,
            t.res.plural,
            &objs,
            meta,
            include_object(q),
            chrono::Utc::now(),
        );
        return Ok(body::table(&tbl));
    }
    let list = json!({
        "kind": t.res.list_kind(),
        "apiVersion": t.res.api_version(),
        "metadata": meta,
        "items": objs,
    });
    Ok(body::json(StatusCode::OK, &list, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_are_checked() {
        let tok = encode_continue(42, "/registry/pods/default/web-7");
        let c = decode_continue(&tok, "/registry/pods/").expect("decode");
        assert_eq!((c.rv, c.start.as_str()), (42, "/registry/pods/default/web-7"));
        assert_eq!(
            decode_continue(&tok, "/registry/secrets/").err().map(|e| e.code),
            Some(400)
        );
        assert_eq!(
            decode_continue("!!!", "/registry/pods/").err().map(|e| e.code),
            Some(400)
        );
    }
}

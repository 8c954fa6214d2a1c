//! Watch with Kubernetes' resourceVersion semantics over a store watch on the resource's key
//! prefix: "" and "0" start with synthetic ADDED events for the current objects, N replays
//! every change after N (410 Expired when N was compacted). Selectors apply to both the new and
//! the previous state, so an object that stops matching is sent as DELETED. BOOKMARKs carry the
//! latest revision when asked for, and `sendInitialEvents` ends its initial events with one.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use raft_store::mvcc::{Event, EventType, KeyValue};
use raft_store::watch::{WatchMsg, WatchSpec};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::body;
use super::read::{list_items, Filter};
use super::request::{Query, Target};
use super::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::storage::{for_response, prefix_end, Stored};
use crate::table;

/// Longest a watch runs when the client gives no timeoutSeconds (kube-apiserver picks
/// 30-60 min).
const MAX_WATCH: Duration = Duration::from_secs(1800);
/// How often an idle watch with allowWatchBookmarks gets a bookmark.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

struct Encoder {
    res: &'static Resource,
    table: bool,
    include_object: String,
}

impl Encoder {
    fn event(&self, kind: &str, obj: Value) -> Bytes {
        let object = if self.table && kind != "ERROR" && kind != "BOOKMARK" {
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
            table::table(
                self.res.group,
                self.res.plural,
                &[obj],
                json!({"resourceVersion": rv}),
                &self.include_object,
                chrono::Utc::now(),
            )
        } else {
            obj
        };
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rev: i64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.event(
            "BOOKMARK",
            json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta}),
        )
    }
}

fn decode_kv(res: &Resource, kv: &KeyValue, rv: i64) -> Option<Value> {
    let obj: Value = serde_json::from_slice(&kv.value).ok()?;
    Some(for_response(res, &Stored { obj, rv }))
}

/// The API event for a store event, after selectors; None when it concerns nobody.
fn convert(res: &Resource, filter: &Filter, ev: &Event) -> Option<(&'static str, Value)> {
    match ev.kind {
        EventType::Put => {
            let cur = decode_kv(res, &ev.kv, ev.kv.mod_revision)?;
            let now = filter.matches(&cur);
            let before = ev
                .prev_kv
                .as_ref()
                .and_then(|p| decode_kv(res, p, p.mod_revision))
                .map(|p| filter.matches(&p));
            match (now, before) {
                (true, None | Some(false)) => Some(("ADDED", cur)),
                (true, Some(true)) => Some(("MODIFIED", cur)),
                (false, Some(true)) => Some(("DELETED", cur)),
                (false, _) => None,
            }
        }
        EventType::Delete => {
            let prev = ev.prev_kv.as_ref()?;
            // A deleted object reports the deletion's revision.
            let obj = decode_kv(res, prev, ev.kv.mod_revision)?;
            filter.matches(&obj).then_some(("DELETED", obj))
        }
    }
}

pub async fn watch(st: &Arc<ApiState>, t: &Target, q: &Query, headers: &HeaderMap) -> ApiResult<Response> {
    let filter = Filter::from_query(t, q)?;
    let rv = q.get("resourceVersion").unwrap_or("");
    let send_initial = q.flag("sendInitialEvents");
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = q
        .int("timeoutSeconds")?
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64).min(MAX_WATCH))
        .unwrap_or(MAX_WATCH);
    let enc = Encoder {
        res: t.res,
        table: table::wants_table(&body::accept(headers)),
        include_object: super::read::include_object(q).to_string(),
    };

    // Initial state for "" and "0" (and sendInitialEvents), then changes after it.
    let mut initial = Vec::new();
    let start_after = if rv.is_empty() || rv == "0" || send_initial {
        let mut lq = q.clone();
        for k in ["limit", "continue", "watch"] {
            lq.remove(k);
        }
        if send_initial && !rv.is_empty() && rv != "0" {
            lq.remove("resourceVersion");
        }
        let (items, rev, _, _) = list_items(st, t, &lq, &filter).await?;
        initial = items;
        rev
    } else {
        rv.parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| ApiError::bad_request(format!("resourceVersion: Invalid value: {rv:?}")))?
    };

    let prefix = t.res.list_prefix(t.namespace.as_deref());
    let (tx, mut rx) = mpsc::channel::<WatchMsg>(1024);
    let hub = st.storage.store().watch_hub();
    let stream = hub.open_stream(tx.clone());
    let permit = tx
        .reserve()
        .await
        .map_err(|_| ApiError::internal("watch channel closed"))?;
    stream
        .watch(
            permit,
            0,
            WatchSpec {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision: start_after + 1,
                prev_kv: true,
                ..Default::default()
            },
        )
        .map_err(|e| ApiError::internal(format!("creating the watch: {e}")))?;
    drop(tx);

    let (out_tx, out_rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        let stream = stream; // dropping it removes the store watcher
        for s in &initial {
            if out_tx
                .send(Ok(enc.event("ADDED", for_response(enc.res, s))))
                .await
                .is_err()
            {
                return;
            }
        }
        if send_initial && out_tx.send(Ok(enc.bookmark(start_after, true))).await.is_err() {
            return;
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        let mut last_rev = start_after;
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
                // The client went away: drop the store watcher now, not at the deadline.
                _ = out_tx.closed() => break,
                _ = tick.tick(), if bookmarks => {
                    stream.request_progress();
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            let lines: Vec<Bytes> = match msg {
                WatchMsg::Created {
                    cancel_reason: Some(r), ..
                } => {
                    vec![enc.event("ERROR", ApiError::internal(r).status())]
                }
                WatchMsg::Created { .. } => Vec::new(),
                WatchMsg::Events { events, revision, .. } => {
                    last_rev = last_rev.max(revision);
                    events
                        .iter()
                        .filter_map(|ev| convert(enc.res, &filter, ev))
                        .map(|(k, o)| enc.event(k, o))
                        .collect()
                }
                WatchMsg::Progress { revision, .. } => {
                    last_rev = last_rev.max(revision);
                    if bookmarks {
                        vec![enc.bookmark(last_rev, false)]
                    } else {
                        Vec::new()
                    }
                }
                WatchMsg::Canceled {
                    compact_revision,
                    reason,
                    ..
                } => {
                    let e = if compact_revision > 0 {
                        ApiError::gone(format!("too old resource version: {start_after} ({compact_revision})"))
                    } else {
                        ApiError::internal(reason)
                    };
                    let _ = out_tx.send(Ok(enc.event("ERROR", e.status()))).await;
                    break;
                }
            };
            for l in lines {
                if out_tx.send(Ok(l)).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(out_rx));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

//! `/healthz` and Prometheus `/metrics` on the metrics port.

use std::fmt::Write;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::handle::StoreHandle;

pub(super) async fn serve(handle: StoreHandle, listener: tokio::net::TcpListener, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(handle);
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "metrics server stopped");
    }
}

async fn healthz(State(h): State<StoreHandle>) -> (StatusCode, String) {
    match h.inner.leader() {
        Some((id, _)) => (StatusCode::OK, format!("ok: leader {id:x}\n")),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no leader\n".into()),
    }
}

async fn metrics(State(h): State<StoreHandle>) -> String {
    let m = h.inner.raft.metrics().borrow().clone();
    let (rev, compacted, watchers) = {
        let st = h.inner.sm.state.read();
        (
            st.mvcc.current_revision(),
            st.mvcc.compacted_revision(),
            h.inner.sm.hub.watcher_count(),
        )
    };
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge("skiff_raft_term", "Current raft term.", m.current_term as f64);
    gauge(
        "skiff_raft_is_leader",
        "1 if this member is the leader.",
        f64::from(u8::from(m.current_leader == Some(m.id))),
    );
    gauge(
        "skiff_raft_has_leader",
        "1 if a leader is known.",
        f64::from(u8::from(m.current_leader.is_some())),
    );
    gauge(
        "skiff_raft_last_log_index",
        "Index of the last log entry.",
        m.last_log_index.unwrap_or(0) as f64,
    );
    gauge(
        "skiff_raft_applied_index",
        "Index of the last applied entry.",
        m.last_applied.map_or(0, |l| l.index) as f64,
    );
    gauge("skiff_mvcc_revision", "Current store revision.", rev as f64);
    gauge("skiff_mvcc_compacted_revision", "Compacted revision.", compacted as f64);
    gauge("skiff_watchers", "Registered watchers.", watchers as f64);
    let fences = h.fence_ledger();
    for (name, help, counts) in [
        (
            "skiff_fenced_writes_admitted_total",
            "Fenced writes (of leader-only components) applied, by fence term and the term of the leader that appended them.",
            &fences.admitted,
        ),
        (
            "skiff_fenced_writes_refused_total",
            "Fenced writes refused at apply time (appended in another term than their fence).",
            &fences.refused,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((fence, term), n) in counts {
            let _ = writeln!(out, "{name}{{fence_term=\"{fence}\",commit_term=\"{term}\"}} {n}");
        }
    }
    out
}

//! The worker's writes: every reconciler's plan is carried out through these, the API server's
//! own pipeline (defaults, admission, validation) as `system:kube-controller-manager`, on a
//! fenced `ApiState`. Each write's revision is remembered: before the next reconcile the caches
//! must have reached it (`caught_up`), so a reconcile never acts on a cache missing its own
//! earlier writes (what Kubernetes' expectations are for).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::podutil;
use super::queue::WorkQueue;
use super::runtime::{rv_of, text, Shared, BURST, CACHE_WAIT, SLOW_START};
use crate::api::request::{Query, Target};
use crate::api::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::informer::Synced;
use crate::pki::UserInfo;
use crate::registry::Resource;
use crate::storage::Stored;

pub(super) struct Worker {
    pub(super) api: Arc<ApiState>,
    pub(super) settings: Arc<super::Settings>,
    pub(super) shared: Arc<Shared>,
    pub(super) synced: Vec<Synced>,
    pub(super) user: UserInfo,
    /// Events of the ReplicaSet controller (FailedCreate).
    pub(super) rs_events: crate::scheduler::events::Recorder,
    /// Revision of this worker's last write: caches must reach it before the next reconcile.
    pub(super) written: i64,
    pub(super) first_logged: bool,
    pub(super) since: Instant,
    /// Wall-clock time these controllers started (node heartbeats count from then at the earliest).
    pub(super) started_at: chrono::DateTime<chrono::Utc>,
    pub(super) term: u64,
}

/// What a reconcile asks of the queue afterwards.
pub(super) enum Outcome {
    Done,
    After(Duration),
}

impl Worker {
    pub(super) fn finish(&mut self, q: &WorkQueue, key: &str, r: ApiResult<Outcome>) {
        match r {
            Ok(o) => {
                q.forget(key);
                match o {
                    Outcome::Done => {}
                    Outcome::After(d) => q.add_after(key, d),
                }
            }
            Err(e) => {
                tracing::debug!(key, error = %e.message, "reconcile failed; retrying");
                q.retry(key);
            }
        }
        q.done(key);
    }

    pub(super) fn wrote(&mut self, rv: i64) {
        self.written = self.written.max(rv);
        if !self.first_logged {
            self.first_logged = true;
            tracing::info!(
                term = self.term,
                after_ms = self.since.elapsed().as_millis() as u64,
                "first controller write since this master became leader"
            );
        }
    }

    /// Waits until every cache has seen this worker's writes.
    pub(super) async fn caught_up(&self) -> ApiResult<()> {
        for s in &self.synced {
            if tokio::time::timeout(CACHE_WAIT, s.wait_for(self.written)).await != Ok(true) {
                return Err(ApiError::timeout("controller caches are behind the store".to_string()));
            }
        }
        Ok(())
    }

    pub(super) fn target(res: &'static Resource, ns: &str, name: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            res,
            namespace: Some(ns.to_string()),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        }
    }

    pub(super) async fn create(&mut self, res: &'static Resource, ns: &str, obj: Value) -> ApiResult<Value> {
        let t = Self::target(res, ns, None, None);
        let (created, _) = crate::api::write::create_object(&self.api, &t, &Query::default(), obj, &self.user).await?;
        self.wrote(rv_of(&created));
        Ok(created)
    }

    /// Replaces `current` (read from a cache, carrying its resourceVersion) with `new`, through
    /// `sub` (None or "status"). A stale cache is a 409: the key is retried.
    pub(super) async fn update(
        &mut self,
        res: &'static Resource,
        current: &Value,
        new: Value,
        sub: Option<&str>,
    ) -> ApiResult<Value> {
        let (ns, name) = (text(current, "/metadata/namespace"), text(current, "/metadata/name"));
        let t = Self::target(res, ns, Some(name), sub);
        let stored = Stored {
            obj: current.clone(),
            rv: rv_of(current),
        };
        let (updated, _) =
            crate::api::write::update_object(&self.api, &t, &Query::default(), new, &stored, "Update", &self.user)
                .await?;
        self.wrote(rv_of(&updated));
        Ok(updated)
    }

    pub(super) async fn delete(&mut self, res: &'static Resource, current: &Value) -> ApiResult<()> {
        let (ns, name) = (text(current, "/metadata/namespace"), text(current, "/metadata/name"));
        let t = Self::target(res, ns, Some(name), None);
        let stored = Stored {
            obj: current.clone(),
            rv: rv_of(current),
        };
        match crate::api::delete::delete_object(&self.api, &t, stored, text(current, "/metadata/uid"), &self.user).await
        {
            Ok(_) => {
                self.wrote(self.api.storage.revision());
                Ok(())
            }
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the dependents in `candidates` controlled by the `kind` named `owner`, once a
    /// linearizable read confirms that owner is gone (or is another object now).
    pub(super) async fn collect(
        &mut self,
        owner_res: &'static Resource,
        dep_res: &'static Resource,
        ns: &str,
        owner: &str,
        candidates: Vec<Value>,
    ) -> ApiResult<Outcome> {
        let live = self.api.storage.get(owner_res, Some(ns), owner, false).await?;
        let live_uid = live.as_ref().map(|s| text(&s.obj, "/metadata/uid").to_string());
        for d in candidates {
            let Some((kind, name, uid)) = podutil::controller_of(&d) else {
                continue;
            };
            if kind == owner_res.kind && name == owner && live_uid.as_deref() != Some(uid.as_str()) {
                self.delete(dep_res, &d).await?;
            }
        }
        Ok(Outcome::Done)
    }

    /// Creates `pods` in `ns` in Kubernetes' slow-start batches (1, 2, 4, ... at once); the
    /// first failure stops the batches after it. Every create that succeeded is remembered
    /// before the error is returned: the next reconcile must see them all in the cache.
    pub(super) async fn create_pods(&mut self, ns: &str, pods: Vec<Value>) -> ApiResult<()> {
        let pods_res = crate::registry::pods();
        let mut pending = pods.into_iter().peekable();
        let mut batch = SLOW_START;
        while pending.peek().is_some() {
            let chunk: Vec<Value> = pending.by_ref().take(batch).collect();
            let results = futures::future::join_all(chunk.into_iter().map(|pod| {
                let (api, user) = (self.api.clone(), self.user.clone());
                let t = Self::target(pods_res, ns, None, None);
                async move { crate::api::write::create_object(&api, &t, &Query::default(), pod, &user).await }
            }))
            .await;
            let mut failed = None;
            for r in results {
                match r {
                    Ok((created, _)) => self.wrote(rv_of(&created)),
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            batch = (batch * 2).min(BURST);
        }
        Ok(())
    }

    /// `obj` with the controller reference of `owner` added, or every reference to `owner_uid`
    /// removed.
    pub(super) fn with_owner(obj: &Value, owner: Option<(&Value, &str, &str)>, remove_uid: Option<&str>) -> Value {
        let mut new = obj.clone();
        if let Some(uid) = remove_uid {
            if let Some(refs) = new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"] != uid);
            }
        }
        if let Some((owner, api_version, kind)) = owner {
            let r = podutil::owner_reference(owner, api_version, kind);
            match new
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                Some(refs) => refs.push(r),
                None => new["metadata"]["ownerReferences"] = serde_json::json!([r]),
            }
        }
        new
    }
}

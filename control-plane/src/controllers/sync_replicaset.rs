//! The ReplicaSet controller's IO: its pure reconciler's plan (`replicaset`) carried out;
//! a ReplicaSet gone from the cache reconciles into deleting the pods it controlled.

use super::replicaset;
use super::runtime::{replicasets, rv_of, split, text, BURST};
use super::worker::{Outcome, Worker};
use crate::error::ApiResult;
use crate::registry;
use crate::scheduler::events::Regarding;

impl Worker {
    pub(super) async fn sync_replicaset(&mut self, key: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let (ns, name) = split(key);
        let pods = self.shared.pods.list(ns);
        let Some(rs) = self.shared.rs.get(ns, name) else {
            return self.collect(replicasets(), registry::pods(), ns, name, pods).await;
        };
        let now = chrono::Utc::now();
        let plan = replicaset::reconcile(&rs, &pods, now, BURST);
        let pods_res = registry::pods();
        let uid = text(&rs, "/metadata/uid").to_string();
        for pname in &plan.release {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                let new = Self::with_owner(&p, None, Some(&uid));
                self.update(pods_res, &p, new, None).await?;
            }
        }
        for pname in &plan.adopt {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                let new = Self::with_owner(&p, Some((&rs, "apps/v1", "ReplicaSet")), None);
                self.update(pods_res, &p, new, None).await?;
            }
        }
        let had_failure = rs
            .pointer("/status/conditions")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "ReplicaFailure"));
        if let Err(e) = self.create_pods(ns, plan.create).await {
            // As Kubernetes: a FailedCreate event and the ReplicaFailure condition, then retry.
            let message = format!("Error creating: {}", e.message);
            self.rs_events.record(
                &Regarding {
                    api_version: "apps/v1",
                    kind: "ReplicaSet",
                    namespace: ns,
                    name,
                    uid: &uid,
                    rv: rv_of(&rs),
                },
                "Warning",
                "FailedCreate",
                &message,
            );
            if plan.status_changed || !had_failure {
                let status = replicaset::with_replica_failure(plan.status, Some(("FailedCreate", &message)), now);
                let mut new = rs.clone();
                new["status"] = status;
                // The create's error is what the retry is for; a failed status write changes nothing.
                let _ = self.update(replicasets(), &rs, new, Some("status")).await;
            }
            return Err(e);
        }
        for pname in &plan.delete {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                self.delete(pods_res, &p).await?;
            }
        }
        if plan.status_changed || had_failure {
            let mut new = rs.clone();
            new["status"] = replicaset::with_replica_failure(plan.status, None, now);
            self.update(replicasets(), &rs, new, Some("status")).await?;
        }
        Ok(match plan.requeue_after {
            Some(d) => Outcome::After(d),
            None => Outcome::Done,
        })
    }
}

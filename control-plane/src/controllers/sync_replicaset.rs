//! The ReplicaSet controller's IO: its pure reconciler's plan (`replicaset`) carried out;
//! a ReplicaSet gone from the cache reconciles into deleting the pods it controlled.

use super::replicaset;
use super::runtime::{replicasets, split, text, BURST};
use super::worker::{Outcome, Worker};
use crate::error::ApiResult;
use crate::registry;

impl Worker {
    pub(super) async fn sync_replicaset(&mut self, key: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let (ns, name) = split(key);
        let pods = self.shared.pods.list(ns);
        let Some(rs) = self.shared.rs.get(ns, name) else {
            return self.collect(replicasets(), registry::pods(), ns, name, pods).await;
        };
        let plan = replicaset::reconcile(&rs, &pods, chrono::Utc::now(), BURST);
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
        self.create_pods(ns, plan.create).await?;
        for pname in &plan.delete {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                self.delete(pods_res, &p).await?;
            }
        }
        if plan.status_changed {
            let mut new = rs.clone();
            new["status"] = plan.status;
            self.update(replicasets(), &rs, new, Some("status")).await?;
        }
        Ok(match plan.requeue_after {
            Some(d) => Outcome::After(d),
            None => Outcome::Done,
        })
    }
}

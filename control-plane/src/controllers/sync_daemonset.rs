//! The DaemonSet controller's IO: its pure reconciler's plan (`daemonset`) carried out; a
//! DaemonSet gone from the cache reconciles into deleting the pods it controlled.

use super::daemonset;
use super::runtime::{daemonsets, split};
use super::worker::{Outcome, Worker};
use crate::error::ApiResult;
use crate::registry;

impl Worker {
    pub(super) async fn sync_daemonset(&mut self, key: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let (ns, name) = split(key);
        let pods = self.shared.pods.list(ns);
        let Some(ds) = self.shared.daemonsets.get(ns, name) else {
            return self.collect(daemonsets(), registry::pods(), ns, name, pods).await;
        };
        let nodes = self.shared.nodes.all();
        let plan = daemonset::reconcile(&ds, &nodes, &pods, chrono::Utc::now());
        self.create_pods(ns, plan.create).await?;
        for pname in &plan.delete {
            if let Some(p) = self.shared.pods.get(ns, pname) {
                self.delete(registry::pods(), &p).await?;
            }
        }
        if plan.status_changed {
            let mut new = ds.clone();
            new["status"] = plan.status;
            self.update(daemonsets(), &ds, new, Some("status")).await?;
        }
        Ok(match plan.requeue_after {
            Some(d) => Outcome::After(d),
            None => Outcome::Done,
        })
    }
}

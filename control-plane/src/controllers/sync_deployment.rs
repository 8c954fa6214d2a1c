//! The Deployment controller's IO: its pure reconciler's plan (`deployment`) carried out, every
//! change to one ReplicaSet in one write; a Deployment gone from the cache reconciles into
//! deleting the ReplicaSets it controlled.

use std::time::Duration;

use serde_json::json;

use super::deployment;
use super::runtime::{deployments, replicasets, split, text};
use super::worker::{Outcome, Worker};
use crate::error::ApiResult;

impl Worker {
    pub(super) async fn sync_deployment(&mut self, key: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let (ns, name) = split(key);
        let rses = self.shared.rs.list(ns);
        let Some(d) = self.shared.deploys.get(ns, name) else {
            return self.collect(deployments(), replicasets(), ns, name, rses).await;
        };
        if d.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            return Ok(Outcome::Done);
        }
        let pods = self.shared.pods.list(ns);
        let plan = deployment::reconcile(&d, &rses, &pods, chrono::Utc::now());
        let rs_res = replicasets();
        if let Some(rs) = plan.create_rs {
            match self.create(rs_res, ns, rs).await {
                Ok(_) => {}
                // Created by an earlier reconcile whose event is on its way: do it again then.
                Err(e) if e.code == 409 => return Ok(Outcome::After(Duration::from_millis(100))),
                Err(e) => return Err(e),
            }
        }
        // Every change to one ReplicaSet (scale, annotations, minReadySeconds, owner) in one write.
        let mut names: Vec<&String> = plan
            .scale
            .iter()
            .map(|(n, _)| n)
            .chain(plan.annotate.iter().map(|(n, _)| n))
            .chain(plan.min_ready_seconds.iter().map(|(n, _)| n))
            .chain(plan.adopt_rs.iter())
            .chain(plan.release_rs.iter())
            .collect();
        names.sort();
        names.dedup();
        let uid = text(&d, "/metadata/uid").to_string();
        for rs_name in names {
            let Some(rs) = self.shared.rs.get(ns, rs_name) else {
                continue;
            };
            let mut new = rs.clone();
            for (_, replicas) in plan.scale.iter().filter(|(n, _)| n == rs_name) {
                new["spec"]["replicas"] = json!(replicas);
            }
            for (_, seconds) in plan.min_ready_seconds.iter().filter(|(n, _)| n == rs_name) {
                new["spec"]["minReadySeconds"] = json!(seconds);
            }
            for (_, annotations) in plan.annotate.iter().filter(|(n, _)| n == rs_name) {
                for (k, v) in annotations {
                    new["metadata"]["annotations"][k] = json!(v);
                }
            }
            if plan.adopt_rs.contains(rs_name) {
                new = Self::with_owner(&new, Some((&d, "apps/v1", "Deployment")), None);
            }
            if plan.release_rs.contains(rs_name) {
                new = Self::with_owner(&new, None, Some(&uid));
            }
            if new != rs {
                self.update(rs_res, &rs, new, None).await?;
            }
        }
        for rs_name in &plan.delete_rs {
            if let Some(rs) = self.shared.rs.get(ns, rs_name) {
                self.delete(rs_res, &rs).await?;
            }
        }
        let mut current = d.clone();
        if !plan.deployment_annotations.is_empty() {
            let mut new = d.clone();
            for (k, v) in &plan.deployment_annotations {
                new["metadata"]["annotations"][k] = json!(v);
            }
            if new != d {
                self.update(deployments(), &d, new, None).await?;
                // The status write below needs the deployment as it is now.
                self.caught_up().await?;
                current = self.shared.deploys.get(ns, name).unwrap_or(d.clone());
            }
        }
        if plan.status_changed {
            let mut new = current.clone();
            new["status"] = plan.status;
            self.update(deployments(), &current, new, Some("status")).await?;
        }
        Ok(match plan.requeue_after {
            Some(d) => Outcome::After(d),
            None => Outcome::Done,
        })
    }
}

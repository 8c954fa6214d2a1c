//! A Service's endpoints: the Endpoints object and the EndpointSlices of a Service with a
//! selector, from the ready and not-ready pods it selects (`endpoints`, `endpointslice`). A
//! Service gone from the cache takes its Endpoints and our slices with it.

use serde_json::Value;

use super::endpoints;
use super::endpointslice::{CONTROLLER_NAME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use super::runtime::{endpoint_slices, endpoints_res, split, text};
use super::worker::{Outcome, Worker};
use crate::error::ApiResult;

impl Worker {
    pub(super) async fn sync_service(&mut self, key: &str) -> ApiResult<Outcome> {
        self.caught_up().await?;
        let (ns, name) = split(key);
        let slices = self.shared.slices.list(ns);
        let ours = |s: &Value| {
            text(
                s,
                &format!("/metadata/labels/{}", SERVICE_NAME_LABEL.replace('/', "~1")),
            ) == name
                && text(s, &format!("/metadata/labels/{}", MANAGED_BY_LABEL.replace('/', "~1"))) == CONTROLLER_NAME
        };
        let Some(svc) = self.shared.services.get(ns, name) else {
            if let Some(ep) = self.shared.endpoints.get(ns, name) {
                self.delete(endpoints_res(), &ep).await?;
            }
            for s in slices.iter().filter(|s| ours(s)) {
                self.delete(endpoint_slices(), s).await?;
            }
            return Ok(Outcome::Done);
        };
        let pods = self.shared.pods.list(ns);
        if let Some(mut desired) = endpoints::desired_endpoints(&svc, &pods) {
            match self.shared.endpoints.get(ns, name) {
                None => {
                    self.create(endpoints_res(), ns, desired).await?;
                }
                Some(current) if endpoints::endpoints_changed(&current, &desired) => {
                    desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
                    desired["metadata"]["uid"] = current["metadata"]["uid"].clone();
                    self.update(endpoints_res(), &current, desired, None).await?;
                }
                Some(_) => {}
            }
        }
        let plan = endpoints::desired_slices(&svc, &pods, &slices);
        for s in plan.create {
            self.create(endpoint_slices(), ns, s).await?;
        }
        for s in plan.update {
            let sname = text(&s, "/metadata/name").to_string();
            if let Some(current) = self.shared.slices.get(ns, &sname) {
                self.update(endpoint_slices(), &current, s, None).await?;
            }
        }
        for sname in &plan.delete {
            if let Some(current) = self.shared.slices.get(ns, sname) {
                self.delete(endpoint_slices(), &current).await?;
            }
        }
        Ok(Outcome::Done)
    }
}

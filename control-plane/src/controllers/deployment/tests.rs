//! Deployment reconcile tests: single decisions checked against Kubernetes' arithmetic, and whole
//! rollouts driven by a small simulator that applies each plan, runs the ReplicaSet controller's
//! reconcile for the pods, and checks the rolling-update bounds after every step.

use serde_json::{json, Value};

use super::*;
use crate::controllers::podutil::{controller_uid, is_pod_active, is_pod_available, parse_time};
use crate::controllers::replicaset;

fn t0() -> DateTime<Utc> {
    parse_time(Some(&json!("2024-01-01T00:00:00Z"))).expect("test time")
}

fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "c", "image": image}]}})
}

fn deployment(replicas: i64, image: &str, strategy: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1,
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(image), "strategy": strategy,
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
    })
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// An existing ReplicaSet of deployment "web" with `replicas` all available.
fn replica_set(name: &str, image: &str, replicas: i64, revision: i64, created: &str) -> Value {
    let mut tpl = template(image);
    tpl["metadata"]["labels"]["pod-template-hash"] = json!(name);
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "generation": 1,
                     "creationTimestamp": created, "labels": {"app": "web", "pod-template-hash": name},
                     "annotations": {REVISION_ANNOTATION: revision.to_string(),
                                     DESIRED_REPLICAS_ANNOTATION: replicas.to_string(),
                                     MAX_REPLICAS_ANNOTATION: (replicas + 1).to_string()},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                          "uid": "d-uid", "controller": true}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", "pod-template-hash": name}},
                 "template": tpl},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                   "observedGeneration": 1},
    })
}

fn condition_of<'a>(status: &'a Value, ty: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == ty)
}

fn reason(status: &Value, ty: &str) -> String {
    condition_of(status, ty)
        .map(|c| c["reason"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// A toy cluster: applies Deployment plans, runs the ReplicaSet controller, makes pods ready one
/// step after they are created, and advances the clock 10s per step.
struct Sim {
    d: Value,
    rses: Vec<Value>,
    pods: Vec<Value>,
    now: DateTime<Utc>,
    serial: u64,
    plans: Vec<Plan>,
}

impl Sim {
    fn new(d: Value) -> Sim {
        Sim {
            d,
            rses: Vec::new(),
            pods: Vec::new(),
            now: t0(),
            serial: 0,
            plans: Vec::new(),
        }
    }

    fn next_uid(&mut self) -> String {
        self.serial += 1;
        format!("uid-{}", self.serial)
    }

    fn set_spec(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.d["spec"]);
        let g = self.d["metadata"]["generation"].as_i64().unwrap_or(0);
        self.d["metadata"]["generation"] = json!(g + 1);
    }

    fn apply(&mut self, plan: &Plan) {
        if let Some(rs) = &plan.create_rs {
            let mut rs = rs.clone();
            rs["metadata"]["uid"] = json!(self.next_uid());
            rs["metadata"]["generation"] = json!(1);
            rs["metadata"]["creationTimestamp"] = json!(format_time(self.now));
            self.rses.push(rs);
        }
        for rs in &mut self.rses {
            let name = name_of(rs).to_string();
            if let Some((_, n)) = plan.scale.iter().find(|(s, _)| *s == name) {
                rs["spec"]["replicas"] = json!(n);
                let g = rs["metadata"]["generation"].as_i64().unwrap_or(0);
                rs["metadata"]["generation"] = json!(g + 1);
            }
            if let Some((_, a)) = plan.annotate.iter().find(|(s, _)| *s == name) {
                for (k, v) in a {
                    rs["metadata"]["annotations"][k] = json!(v);
                }
            }
        }
        self.rses.retain(|rs| !plan.delete_rs.iter().any(|n| n == name_of(rs)));
        for (k, v) in &plan.deployment_annotations {
            self.d["metadata"]["annotations"][k] = json!(v);
        }
        self.d["status"] = plan.status.clone();
    }

    /// The ReplicaSet controller, acting instantly: create and delete pods, then report status.
    fn run_replica_sets(&mut self) {
        for i in 0..self.rses.len() {
            let plan = replicaset::reconcile(&self.rses[i], &self.pods, self.now, 500);
            self.pods.retain(|p| !plan.delete.iter().any(|n| n == name_of(p)));
            for mut pod in plan.create {
                let uid = self.next_uid();
                let prefix = pod["metadata"]["generateName"].as_str().unwrap_or("").to_string();
                pod["metadata"]["name"] = json!(format!("{prefix}{uid}"));
                pod["metadata"]["uid"] = json!(uid);
                pod["metadata"]["creationTimestamp"] = json!(format_time(self.now));
                pod["spec"]["nodeName"] = json!("node-1");
                pod["status"] = json!({"phase": "Pending"});
                self.pods.push(pod);
            }
            let after = replicaset::reconcile(&self.rses[i], &self.pods, self.now, 500);
            self.rses[i]["status"] = after.status;
        }
    }

    fn make_pods_ready(&mut self) {
        let now = format_time(self.now);
        for pod in &mut self.pods {
            if pod["status"]["phase"] == "Pending" {
                pod["status"] = json!({"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now}]});
            }
        }
    }

    fn deployment_pods(&self) -> Vec<&Value> {
        let uids: Vec<String> = self.rses.iter().map(|rs| uid_of(rs).to_string()).collect();
        self.pods
            .iter()
            .filter(|p| is_pod_active(p) && controller_uid(p).is_some_and(|u| uids.contains(&u)))
            .collect()
    }

    fn available(&self) -> usize {
        self.deployment_pods()
            .iter()
            .filter(|p| is_pod_available(p, 0, self.now))
            .count()
    }

    /// One tick: pods become ready, ReplicaSets sync, the Deployment syncs, ReplicaSets act on it.
    fn step(&mut self) -> Plan {
        self.now += chrono::Duration::seconds(10);
        self.make_pods_ready();
        self.run_replica_sets();
        let plan = reconcile(&self.d, &self.rses, &self.pods, self.now);
        self.apply(&plan);
        self.run_replica_sets();
        self.plans.push(plan.clone());
        plan
    }

    /// Steps until `kubectl rollout status` would report success; panics if it never does.
    fn converge(&mut self, bound: impl Fn(&Sim)) -> usize {
        for n in 1..=100 {
            self.step();
            bound(self);
            if rollout_done(&self.d) {
                return n;
            }
        }
        panic!("no convergence: {:#}", self.d["status"]);
    }

    fn rs_replicas(&self) -> Vec<(String, i64)> {
        self.rses
            .iter()
            .map(|rs| (name_of(rs).to_string(), rs["spec"]["replicas"].as_i64().unwrap_or(-1)))
            .collect()
    }
}

/// What `kubectl rollout status` waits for.
fn rollout_done(d: &Value) -> bool {
    let s = &d["status"];
    let n = |k: &str| s[k].as_i64().unwrap_or(0);
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    n("observedGeneration") >= d["metadata"]["generation"].as_i64().unwrap_or(0)
        && n("updatedReplicas") == want
        && n("replicas") == n("updatedReplicas")
        && n("availableReplicas") == n("updatedReplicas")
}

#[test]
fn first_sync_creates_new_replica_set_at_revision_one() {
    let d = deployment(3, "nginx:1", rolling(json!(1), json!(0)));
    let plan = reconcile(&d, &[], &[], t0());
    let rs = plan.create_rs.as_ref().expect("a new ReplicaSet");
    let hash = pod_template_hash(&d["spec"]["template"], None);
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(rs["metadata"]["labels"]["pod-template-hash"], hash);
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"],
        json!({"app": "web", "pod-template-hash": hash})
    );
    assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"], hash);
    assert_eq!(rs["spec"]["template"]["spec"], d["spec"]["template"]["spec"]);
    assert_eq!(rs["metadata"]["annotations"][REVISION_ANNOTATION], "1");
    assert_eq!(rs["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION], "3");
    assert_eq!(rs["metadata"]["annotations"][MAX_REPLICAS_ANNOTATION], "4");
    assert_eq!(rs["spec"]["replicas"], 3);
    assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(
        plan.deployment_annotations.get(REVISION_ANNOTATION).map(String::as_str),
        Some("1")
    );
    assert_eq!(reason(&plan.status, "Progressing"), "NewReplicaSetCreated");
    assert_eq!(reason(&plan.status, "Available"), "MinimumReplicasUnavailable");
    assert_eq!(plan.status["observedGeneration"], 1);
    assert!(plan.status_changed);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(601)));
}

#[test]
fn new_replica_set_scale_up_respects_max_surge() {
    // 10 replicas on the old template, maxSurge 3, maxUnavailable 2 (Kubernetes' worked example).
    let old = replica_set("old", "nginx:1", 10, 1, "2024-01-01T00:00:00Z");
    let d = deployment(10, "nginx:2", rolling(json!(3), json!(2)));
    let plan = reconcile(&d, &[old], &[], t0());
    let new = plan.create_rs.as_ref().expect("new ReplicaSet");
    assert_eq!(new["spec"]["replicas"], 3, "13 pods at most");
    assert_eq!(new["metadata"]["annotations"][REVISION_ANNOTATION], "2");
    // 13 - minAvailable 8 - 3 new unavailable = 2 may go; all 10 old are available.
    assert_eq!(plan.scale, vec![("old".to_string(), 8)]);
}

#[test]
fn rolling_update_stays_within_bounds_and_converges() {
    for (replicas, surge, unavailable) in [
        (10, json!(3), json!(2)),
        (10, json!("25%"), json!("25%")),
        (5, json!(0), json!(1)),
        (5, json!(1), json!(0)),
        (3, json!(0), json!(0)),
        (1, json!("25%"), json!("25%")),
    ] {
        let d = deployment(replicas, "nginx:1", rolling(surge.clone(), unavailable.clone()));
        let view = Deploy::from_value(&d);
        let (max_pods, min_available) = (replicas + view.max_surge(), replicas - view.max_unavailable());
        let mut sim = Sim::new(d);
        sim.converge(|_| {});
        assert_eq!(sim.available() as i64, replicas);

        sim.set_spec(|s| s["template"]["spec"]["containers"][0]["image"] = json!("nginx:2"));
        let steps = sim.converge(|sim| {
            let pods = sim.deployment_pods().len() as i64;
            assert!(
                pods <= max_pods,
                "{pods} pods > {max_pods} ({surge}, {unavailable}): {:?}",
                sim.rs_replicas()
            );
            let available = sim.available() as i64;
            assert!(
                available >= min_available,
                "{available} available < {min_available} ({surge}, {unavailable})"
            );
        });
        assert!(steps > 1, "a rolling update takes several steps");
        let images: Vec<&Value> = sim.pods.iter().map(|p| &p["spec"]["containers"][0]["image"]).collect();
        assert!(images.iter().all(|i| **i == "nginx:2"), "all pods updated: {images:?}");
        assert_eq!(sim.rses.len(), 2);
        assert_eq!(reason(&sim.d["status"], "Progressing"), "NewReplicaSetAvailable");
        assert_eq!(sim.d["metadata"]["annotations"][REVISION_ANNOTATION], "2");
        assert!(sim.plans.iter().all(|p| p.scale.iter().all(|(_, n)| *n >= 0)));
    }
}

#[test]
fn recreate_scales_old_down_and_waits_for_pods_before_creating() {
    let mut sim = Sim::new(deployment(3, "nginx:1", json!({"type": "Recreate"})));
    sim.converge(|_| {});
    let old_name = name_of(&sim.rses[0]).to_string();
    sim.set_spec(|s| s["template"]["spec"]["containers"][0]["image"] = json!("nginx:2"));

    // Step 1, by hand: the old ReplicaSet goes to 0 and nothing new is created yet.
    let plan = reconcile(&sim.d, &sim.rses, &sim.pods, sim.now);
    assert_eq!(plan.scale, vec![(old_name.clone(), 0)]);
    assert!(plan.create_rs.is_none());
    sim.apply(&plan);

    // The old ReplicaSet reports 0 but a pod is still terminating: still wait.
    sim.rses[0]["status"] = json!({"replicas": 0, "observedGeneration": 2});
    let plan = reconcile(&sim.d, &sim.rses, &sim.pods, sim.now);
    assert!(
        plan.create_rs.is_none() && plan.scale.is_empty(),
        "old pods still running"
    );

    sim.pods.clear();
    let plan = reconcile(&sim.d, &sim.rses, &sim.pods, sim.now);
    let new = plan.create_rs.as_ref().expect("new ReplicaSet once old pods are gone");
    assert_eq!(new["spec"]["replicas"], 3);
    sim.apply(&plan);
    sim.converge(|sim| {
        let images: Vec<&Value> = sim
            .deployment_pods()
            .iter()
            .map(|p| &p["spec"]["containers"][0]["image"])
            .collect();
        assert!(images.iter().all(|i| **i == "nginx:2"), "never old and new together");
    });
}

#[test]
fn rollback_reuses_old_replica_set_with_bumped_revision() {
    let v1 = replica_set("web-v1", "nginx:1", 0, 1, "2024-01-01T00:00:00Z");
    let v2 = replica_set("web-v2", "nginx:2", 3, 2, "2024-01-01T01:00:00Z");
    let mut d = deployment(3, "nginx:1", rolling(json!(1), json!(0)));
    d["metadata"]["annotations"] = json!({REVISION_ANNOTATION: "2"});
    d["status"] = json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                         "availableReplicas": 3});
    let plan = reconcile(&d, &[v1, v2], &[], t0());
    assert!(plan.create_rs.is_none(), "the old template's ReplicaSet is reused");
    let (name, annotations) = &plan.annotate[0];
    assert_eq!(name, "web-v1");
    assert_eq!(annotations.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
    assert_eq!(
        annotations.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        plan.deployment_annotations.get(REVISION_ANNOTATION).map(String::as_str),
        Some("3")
    );
    assert_eq!(plan.scale, vec![("web-v1".to_string(), 1)], "surge of 1");
    assert_eq!(reason(&plan.status, "Progressing"), "FoundNewReplicaSet");
}

#[test]
fn history_beyond_limit_is_deleted_oldest_revision_first() {
    let mut rses: Vec<Value> = (1..=12)
        .map(|r| {
            replica_set(
                &format!("web-r{r}"),
                &format!("nginx:{r}"),
                0,
                r,
                "2024-01-01T00:00:00Z",
            )
        })
        .collect();
    for rs in &mut rses {
        rs["status"] = json!({"replicas": 0, "observedGeneration": 1});
    }
    rses[1]["status"]["replicas"] = json!(1); // revision 2 still has a pod: kept
    rses.push(replica_set("web-r13", "nginx:13", 2, 13, "2024-01-01T00:00:00Z"));
    let mut d = deployment(2, "nginx:13", rolling(json!(1), json!(0)));
    d["metadata"]["annotations"] = json!({REVISION_ANNOTATION: "13"});
    d["status"] = json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                         "readyReplicas": 2});
    let plan = reconcile(&d, &rses, &[], t0());
    assert_eq!(
        plan.delete_rs,
        vec!["web-r1"],
        "12 old, limit 10: revisions 1 and 2, but 2 has a pod"
    );

    d["spec"]["revisionHistoryLimit"] = json!(0);
    let plan = reconcile(&d, &rses, &[], t0());
    assert_eq!(plan.delete_rs.len(), 11);
    assert!(!plan.delete_rs.contains(&"web-r13".to_string()));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut old = replica_set("old", "nginx:1", 8, 1, "2024-01-01T00:00:00Z");
    let mut new = replica_set("new", "nginx:2", 5, 2, "2024-01-01T01:00:00Z");
    for rs in [&mut old, &mut new] {
        rs["metadata"]["annotations"][DESIRED_REPLICAS_ANNOTATION] = json!("10");
        rs["metadata"]["annotations"][MAX_REPLICAS_ANNOTATION] = json!("13");
    }
    let d = deployment(20, "nginx:2", rolling(json!(3), json!(2)));
    let plan = reconcile(&d, &[old.clone(), new.clone()], &[], t0());
    let mut scale = plan.scale.clone();
    scale.sort();
    // 23 allowed - 13 now = 10 to add: old 8*23/13 = 14.15 -> +6, new 5*23/13 = 8.85 -> +4.
    assert_eq!(scale, vec![("new".to_string(), 9), ("old".to_string(), 14)]);
    for (_, a) in &plan.annotate {
        assert_eq!(a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str), Some("20"));
        assert_eq!(a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str), Some("23"));
    }

    // Scaling down to 5 (allowed 8): 13 - 8 = 5 to remove, larger (and older) first.
    let d = deployment(5, "nginx:2", rolling(json!(3), json!(2)));
    let plan = reconcile(&d, &[old, new], &[], t0());
    let total: i64 = plan.scale.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 8);
    assert!(plan.scale.contains(&("old".to_string(), 5)), "{:?}", plan.scale);
}

#[test]
fn paused_deployment_scales_but_does_not_roll_out() {
    let old = replica_set("old", "nginx:1", 3, 1, "2024-01-01T00:00:00Z");
    let mut d = deployment(5, "nginx:2", rolling(json!(1), json!(0)));
    d["spec"]["paused"] = json!(true);
    let plan = reconcile(&d, std::slice::from_ref(&old), &[], t0());
    assert!(plan.create_rs.is_none(), "no rollout while paused");
    assert_eq!(
        plan.scale,
        vec![("old".to_string(), 5)],
        "the only active ReplicaSet takes the new size"
    );
    assert_eq!(reason(&plan.status, "Progressing"), "DeploymentPaused");
    assert_eq!(
        condition_of(&plan.status, "Progressing").map(|c| c["status"].clone()),
        Some(json!("Unknown"))
    );

    // Resumed, with the scale applied: now the new template rolls out.
    d["spec"]["paused"] = json!(false);
    d["status"] = plan.status.clone();
    for k in ["replicas", "readyReplicas", "availableReplicas"] {
        d["status"][k] = json!(5);
    }
    let scaled = replica_set("old", "nginx:1", 5, 1, "2024-01-01T00:00:00Z");
    let plan = reconcile(&d, &[scaled], &[], t0());
    assert!(plan.create_rs.is_some(), "resumed: rolls out");
    assert_eq!(reason(&plan.status, "Progressing"), "NewReplicaSetCreated");
}

#[test]
fn status_and_conditions_for_rollout_status() {
    let mut sim = Sim::new(deployment(2, "nginx:1", rolling(json!(1), json!(0))));
    sim.converge(|_| {});
    let s = &sim.d["status"];
    assert_eq!(
        (s["replicas"].clone(), s["updatedReplicas"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(
        (s["readyReplicas"].clone(), s["availableReplicas"].clone()),
        (json!(2), json!(2))
    );
    assert!(
        s.get("unavailableReplicas").is_none(),
        "zero is omitted like Go's omitempty"
    );
    assert_eq!(reason(s, "Available"), "MinimumReplicasAvailable");
    assert_eq!(reason(s, "Progressing"), "NewReplicaSetAvailable");
    let progressing = condition_of(s, "Progressing").cloned().unwrap_or_default();
    let quiet = sim.step();
    assert!(
        !quiet.status_changed,
        "a settled deployment does not rewrite its status"
    );
    assert_eq!(quiet.requeue_after, None);
    assert_eq!(condition_of(&sim.d["status"], "Progressing"), Some(&progressing));

    // A new template whose pods never become ready: the deadline passes.
    sim.set_spec(|s| s["template"]["spec"]["containers"][0]["image"] = json!("broken"));
    let plan = reconcile(&sim.d, &sim.rses, &sim.pods, sim.now);
    sim.apply(&plan);
    sim.run_replica_sets();
    assert_eq!(reason(&sim.d["status"], "Progressing"), "NewReplicaSetCreated");
    sim.now += chrono::Duration::seconds(10);
    let plan = reconcile(&sim.d, &sim.rses, &sim.pods, sim.now);
    assert_eq!(
        reason(&plan.status, "Progressing"),
        "ReplicaSetUpdated",
        "the new ReplicaSet got a pod"
    );
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(601)));
    sim.apply(&plan);
    sim.now += chrono::Duration::seconds(300);
    let plan = reconcile(&sim.d, &sim.rses, &sim.pods, sim.now);
    assert!(!plan.status_changed, "no progress, nothing to report yet");
    assert_eq!(
        plan.requeue_after,
        Some(Duration::from_secs(301)),
        "deadline 600s from the last progress"
    );
    sim.apply(&plan);
    sim.now += chrono::Duration::seconds(301);
    let plan = reconcile(&sim.d, &sim.rses, &sim.pods, sim.now);
    let cond = condition_of(&plan.status, "Progressing").cloned().unwrap_or_default();
    assert_eq!(cond["reason"], "ProgressDeadlineExceeded");
    assert_eq!(cond["status"], "False");
    assert_eq!(plan.requeue_after, None);
}

#[test]
fn progress_moves_last_update_time_but_not_transition_time() {
    let mut sim = Sim::new(deployment(4, "nginx:1", rolling(json!(1), json!(0))));
    sim.converge(|_| {});
    sim.set_spec(|s| s["template"]["spec"]["containers"][0]["image"] = json!("nginx:2"));
    sim.step();
    let first = condition_of(&sim.d["status"], "Progressing")
        .cloned()
        .unwrap_or_default();
    sim.step();
    let second = condition_of(&sim.d["status"], "Progressing")
        .cloned()
        .unwrap_or_default();
    assert_eq!(second["reason"], "ReplicaSetUpdated");
    assert_eq!(second["lastTransitionTime"], first["lastTransitionTime"]);
    assert_ne!(second["lastUpdateTime"], first["lastUpdateTime"]);
}

#[test]
fn hash_collision_bumps_collision_count() {
    let d = deployment(1, "nginx:1", rolling(json!(1), json!(0)));
    let hash = pod_template_hash(&d["spec"]["template"], None);
    let mut squatter = replica_set(&format!("web-{hash}"), "other", 1, 1, "2024-01-01T00:00:00Z");
    squatter["metadata"]["ownerReferences"] = json!([{"kind": "Deployment", "uid": "someone", "controller": true}]);
    let plan = reconcile(&d, &[squatter], &[], t0());
    let rs = plan.create_rs.as_ref().expect("created under another name");
    let bumped = pod_template_hash(&d["spec"]["template"], Some(1));
    assert_eq!(rs["metadata"]["name"], format!("web-{bumped}"));
    assert_eq!(plan.status["collisionCount"], 1);
}

#[test]
fn adopts_orphan_and_releases_unselected_replica_sets() {
    let mut orphan = replica_set("orphan", "nginx:1", 2, 1, "2024-01-01T00:00:00Z");
    orphan["metadata"].as_object_mut().map(|m| m.remove("ownerReferences"));
    let mut relabeled = replica_set("relabeled", "nginx:0", 0, 1, "2024-01-01T00:00:00Z");
    relabeled["metadata"]["labels"] = json!({"app": "other"});
    let d = deployment(2, "nginx:1", rolling(json!(1), json!(0)));
    let plan = reconcile(&d, &[orphan, relabeled], &[], t0());
    assert_eq!(plan.adopt_rs, vec!["orphan"]);
    assert_eq!(plan.release_rs, vec!["relabeled"]);
    assert!(plan.create_rs.is_none(), "the adopted ReplicaSet has the template");
}

#[test]
fn empty_selector_is_not_synced() {
    let mut d = deployment(2, "nginx:1", rolling(json!(1), json!(0)));
    d["spec"]["selector"] = json!({});
    d["metadata"]["generation"] = json!(4);
    let plan = reconcile(&d, &[], &[], t0());
    assert!(plan.create_rs.is_none());
    assert_eq!(plan.status["observedGeneration"], 4);
    assert!(plan.status_changed);
}

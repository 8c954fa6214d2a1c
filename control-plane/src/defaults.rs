//! Defaulting of the built-in types on create and update, with Kubernetes' default values, so
//! that what a client reads back looks like what kube-apiserver would store.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::registry::Resource;

fn set_default(o: &mut Map<String, Value>, k: &str, v: Value) {
    if o.get(k).is_none_or(Value::is_null) {
        o.insert(k.to_string(), v);
    }
}

fn obj_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for p in path {
        let o = cur.as_object_mut()?;
        cur = o.entry(p.to_string()).or_insert_with(|| json!({}));
    }
    cur.as_object_mut()
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise.
pub fn image_pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let Some(o) = c.as_object_mut() else { return };
    let policy = o
        .get("image")
        .and_then(Value::as_str)
        .map(image_pull_policy)
        .unwrap_or("IfNotPresent");
    set_default(o, "imagePullPolicy", json!(policy));
    set_default(o, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(o, "terminationMessagePolicy", json!("File"));
    if o.get("resources").is_none() {
        o.insert("resources".into(), json!({}));
    }
    if let Some(ports) = o.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(po) = p.as_object_mut() {
                set_default(po, "protocol", json!("TCP"));
            }
        }
    }
}

/// Pod spec defaults (also inside workload templates).
pub fn pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
    // priority, preemptionPolicy, serviceAccountName and the not-ready/unreachable tolerations
    // are admission's (Priority, ServiceAccount, DefaultTolerationSeconds): pods get them when
    // created, workload templates never do, as in Kubernetes.
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
}

/// Fills defaults in place; `creating` also sets initial status.
pub fn apply(res: &Resource, obj: &mut Value, creating: bool) {
    match (res.group, res.kind) {
        ("", "Pod") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                pod_spec(spec);
            }
            if creating {
                if let Some(st) = obj_at(obj, &["status"]) {
                    set_default(st, "phase", json!("Pending"));
                    set_default(st, "qosClass", json!("BestEffort"));
                }
            }
        }
        ("apps", kind @ ("Deployment" | "ReplicaSet" | "DaemonSet")) => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                if kind != "DaemonSet" {
                    set_default(spec, "replicas", json!(1));
                }
                set_default(spec, "revisionHistoryLimit", json!(10));
                match kind {
                    "Deployment" => {
                        set_default(spec, "progressDeadlineSeconds", json!(600));
                        set_default(
                            spec,
                            "strategy",
                            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                        );
                    }
                    "DaemonSet" => set_default(
                        spec,
                        "updateStrategy",
                        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                    ),
                    _ => {}
                }
            }
            if let Some(tspec) = obj_at(obj, &["spec", "template", "spec"]) {
                pod_spec(tspec);
            }
            if let Some(tmeta) = obj_at(obj, &["spec", "template", "metadata"]) {
                tmeta.remove("creationTimestamp");
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj_at(obj, &["spec"]) {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                set_default(spec, "ipFamilies", json!(["IPv4"]));
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if let Some(po) = p.as_object_mut() {
                            set_default(po, "protocol", json!("TCP"));
                            if let Some(port) = po.get("port").cloned() {
                                set_default(po, "targetPort", port);
                            }
                        }
                    }
                }
            }
            if creating {
                if let Some(st) = obj_at(obj, &["status"]) {
                    set_default(st, "loadBalancer", json!({}));
                }
            }
        }
        ("", "Namespace") => {
            if let Some(st) = obj_at(obj, &["status"]) {
                set_default(st, "phase", json!("Active"));
            }
        }
        ("", "Secret") => {
            if let Some(o) = obj.as_object_mut() {
                set_default(o, "type", json!("Opaque"));
                // stringData is write-only: merged into data (base64), as Kubernetes does.
                if let Some(Value::Object(plain)) = o.remove("stringData") {
                    let data = o.entry("data").or_insert_with(|| json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in plain {
                            let text = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
                            d.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(text)));
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("busybox"), "Always");
        assert_eq!(image_pull_policy("busybox:latest"), "Always");
        assert_eq!(image_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(image_pull_policy("127.0.0.1:5000/busybox"), "Always");
        assert_eq!(image_pull_policy("127.0.0.1:5000/busybox:1"), "IfNotPresent");
        assert_eq!(image_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn deployments_get_kubernetes_defaults() {
        let d = lookup("apps", "v1", "deployments").expect("deploy");
        let mut obj = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}});
        apply(d, &mut obj, true);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(obj["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let svc = lookup("", "v1", "services").expect("svc");
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply(svc, &mut s, true);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["type"], "ClusterIP");
        let secret = lookup("", "v1", "secrets").expect("secrets");
        let mut sec = json!({"data": {"a": "eA=="}, "stringData": {"b": "hunter2"}});
        apply(secret, &mut sec, true);
        assert_eq!(sec["data"]["b"], "aHVudGVyMg==");
        assert_eq!(sec["data"]["a"], "eA==");
        assert!(sec.get("stringData").is_none());
        assert_eq!(sec["type"], "Opaque");
    }
}

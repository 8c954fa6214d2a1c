//! The individual Pod Security Standards checks, one function per upstream
//! check id (staging/src/k8s.io/pod-security-admission/policy/check_*.go),
//! each returning Kubernetes' reason and detail text verbatim.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Level;

type Finding = Option<(String, String)>;
type CheckFn = fn(&Pod) -> Finding;

/// (check, part of baseline, part of restricted) in Kubernetes' order:
/// baseline checks sorted by id, then restricted ones; restricted drops the
/// baseline checks it overrides.
#[rustfmt::skip]
const CHECKS: [(CheckFn, bool, bool); 18] = [
    (app_armor, true, true),
    (capabilities_baseline, true, false),
    (host_namespaces, true, true),
    (host_path_volumes, true, false),
    (host_ports, true, true),
    (host_probes, true, true),
    (privileged, true, true),
    (proc_mount, true, true),
    (se_linux, true, true),
    (seccomp_baseline, true, false),
    (sysctls, true, true),
    (host_process, true, true),
    (allow_privilege_escalation, false, true),
    (capabilities_restricted, false, true),
    (restricted_volumes, false, true),
    (run_as_non_root, false, true),
    (run_as_user, false, true),
    (seccomp_restricted, false, true),
];

/// Every failed check for `level`, in Kubernetes' order.
pub fn violations(level: Level, pod: &Value) -> Vec<(String, String)> {
    let p = Pod::new(pod);
    CHECKS
        .iter()
        .filter(|(_, baseline, restricted)| match level {
            Level::Privileged => false,
            Level::Baseline => *baseline,
            Level::Restricted => *restricted,
        })
        .filter_map(|(check, _, _)| check(&p))
        .collect()
}

struct Pod<'a> {
    meta: &'a Value,
    spec: &'a Value,
    /// initContainers, containers, ephemeralContainers: the visiting order.
    containers: Vec<&'a Value>,
}

impl<'a> Pod<'a> {
    fn new(pod: &'a Value) -> Self {
        let spec = &pod["spec"];
        let containers = ["initContainers", "containers", "ephemeralContainers"]
            .iter()
            .flat_map(|f| spec[*f].as_array().into_iter().flatten())
            .collect();
        Pod {
            meta: &pod["metadata"],
            spec,
            containers,
        }
    }

    fn sc(&self) -> &'a Value {
        &self.spec["securityContext"]
    }

    fn windows(&self) -> bool {
        self.spec["os"]["name"].as_str() == Some("windows")
    }

    /// Names of containers whose securityContext satisfies `bad`.
    fn bad_containers(&self, mut bad: impl FnMut(&Value) -> bool) -> Vec<&'a str> {
        self.containers
            .iter()
            .filter(|c| bad(&c["securityContext"]))
            .map(|c| name(c))
            .collect()
    }
}

fn name(c: &Value) -> &str {
    c["name"].as_str().unwrap_or("")
}

fn pluralize<'s>(singular: &'s str, plural: &'s str, n: usize) -> &'s str {
    if n == 1 {
        singular
    } else {
        plural
    }
}

fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// "pod and containers "a", "b"" style subject lists.
fn setters(pod: bool, containers: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    if pod {
        out.push("pod".to_string());
    }
    if !containers.is_empty() {
        out.push(containers_phrase(containers));
    }
    out
}

fn finding(reason: &str, detail: String) -> Finding {
    Some((reason.to_string(), detail))
}

fn strs(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn listed(list: &str, item: &str) -> bool {
    list.split_whitespace().any(|x| x == item)
}

fn set(v: &Value) -> bool {
    !v.is_null()
}

fn app_armor(p: &Pod) -> Finding {
    let ok_type = |t: &Value| matches!(t.as_str(), Some("RuntimeDefault") | Some("Localhost"));
    let mut values = BTreeSet::new();
    let pod_bad = set(&p.sc()["appArmorProfile"]) && !ok_type(&p.sc()["appArmorProfile"]["type"]);
    if pod_bad {
        values.insert(p.sc()["appArmorProfile"]["type"].as_str().unwrap_or("").to_string());
    }
    let bad = p.bad_containers(|sc| {
        let prof = &sc["appArmorProfile"];
        let b = set(prof) && !ok_type(&prof["type"]);
        if b {
            values.insert(prof["type"].as_str().unwrap_or("").to_string());
        }
        b
    });
    let mut who = setters(pod_bad, &bad);
    let mut list: Vec<String> = values.into_iter().collect();
    let mut annotations: Vec<String> = p.meta["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("container.apparmor.security.beta.kubernetes.io/"))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or("");
            let ok = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!ok).then(|| format!("{k}={v:?}"))
        })
        .collect();
    annotations.sort();
    if !annotations.is_empty() {
        who.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        list.extend(annotations);
    }
    if who.is_empty() {
        return None;
    }
    finding(
        pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", list.len()),
        format!(
            "{} must not set AppArmor profile type to {}",
            who.join(" and "),
            join_quote(&list)
        ),
    )
}

const BASELINE_CAPABILITIES: &str = "AUDIT_WRITE CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_BIND_SERVICE SETFCAP \
    SETGID SETPCAP SETUID SYS_CHROOT";

fn capabilities_baseline(p: &Pod) -> Finding {
    let mut caps = BTreeSet::new();
    let bad = p.bad_containers(|sc| {
        let extra: Vec<&str> = strs(&sc["capabilities"]["add"])
            .filter(|c| !listed(BASELINE_CAPABILITIES, c))
            .collect();
        caps.extend(extra.iter().map(|c| c.to_string()));
        !extra.is_empty()
    });
    (!bad.is_empty()).then(|| {
        (
            "non-default capabilities".to_string(),
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_phrase(&bad),
                join_quote(&caps)
            ),
        )
    })
}

fn host_namespaces(p: &Pod) -> Finding {
    let used: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| p.spec[**f].as_bool() == Some(true))
        .map(|f| format!("{f}=true"))
        .collect();
    (!used.is_empty()).then(|| ("host namespaces".to_string(), used.join(", ")))
}

fn volumes<'a>(p: &Pod<'a>) -> impl Iterator<Item = &'a Value> {
    p.spec["volumes"].as_array().into_iter().flatten()
}

fn host_path_volumes(p: &Pod) -> Finding {
    let names: Vec<&str> = volumes(p).filter(|v| set(&v["hostPath"])).map(name).collect();
    (!names.is_empty()).then(|| {
        let detail = format!("{} {}", pluralize("volume", "volumes", names.len()), join_quote(&names));
        ("hostPath volumes".to_string(), detail)
    })
}

fn host_ports(p: &Pod) -> Finding {
    let mut ports = BTreeSet::new();
    let bad: Vec<&str> = p
        .containers
        .iter()
        .filter(|c| {
            let used: Vec<i64> = c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|port| port["hostPort"].as_i64())
                .filter(|hp| *hp != 0)
                .collect();
            ports.extend(used.iter().map(i64::to_string));
            !used.is_empty()
        })
        .map(|c| name(c))
        .collect();
    (!bad.is_empty()).then(|| {
        let ports: Vec<String> = ports.into_iter().collect();
        let detail = format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        );
        ("hostPort".to_string(), detail)
    })
}

fn host_probes(p: &Pod) -> Finding {
    let mut names = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in &p.containers {
        let handlers = [
            &c["livenessProbe"],
            &c["readinessProbe"],
            &c["startupProbe"],
            &c["lifecycle"]["postStart"],
            &c["lifecycle"]["preStop"],
        ];
        for h in handlers {
            for kind in ["httpGet", "tcpSocket"] {
                if let Some(host) = h[kind]["host"].as_str().filter(|s| !s.is_empty()) {
                    names.insert(name(c));
                    hosts.insert(host);
                }
            }
        }
    }
    (!names.is_empty()).then(|| {
        let detail = format!(
            "{} {} {} {}",
            containers_phrase(&names.iter().copied().collect::<Vec<_>>()),
            pluralize("uses", "use", names.len()),
            pluralize("probe or lifecycle host", "probe or lifecycle hosts", hosts.len()),
            join_quote(&hosts)
        );
        ("probe or lifecycle host".to_string(), detail)
    })
}

fn privileged(p: &Pod) -> Finding {
    let bad = p.bad_containers(|sc| sc["privileged"].as_bool() == Some(true));
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        );
        ("privileged".to_string(), detail)
    })
}

fn proc_mount(p: &Pod) -> Finding {
    let mut types = BTreeSet::new();
    let bad = p.bad_containers(|sc| match sc["procMount"].as_str() {
        Some(t) if t != "Default" => {
            types.insert(t.to_string());
            true
        }
        _ => false,
    });
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        );
        ("procMount".to_string(), detail)
    })
}

fn se_linux(p: &Pod) -> Finding {
    const ALLOWED: [&str; 5] = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    let mut types = BTreeSet::new();
    let (mut user, mut role) = (false, false);
    let mut invalid = |opts: &Value| {
        if !set(opts) {
            return false;
        }
        let t = opts["type"].as_str().unwrap_or("");
        let bad_type = !ALLOWED.contains(&t);
        if bad_type {
            types.insert(t.to_string());
        }
        let u = !opts["user"].as_str().unwrap_or("").is_empty();
        let r = !opts["role"].as_str().unwrap_or("").is_empty();
        user |= u;
        role |= r;
        bad_type || u || r
    };
    let pod_bad = invalid(&p.sc()["seLinuxOptions"]);
    let bad = p.bad_containers(|sc| invalid(&sc["seLinuxOptions"]));
    let who = setters(pod_bad, &bad);
    if who.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if user {
        data.push("user may not be set".to_string());
    }
    if role {
        data.push("role may not be set".to_string());
    }
    finding(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            who.join(" and "),
            data.join("; ")
        ),
    )
}

fn seccomp_ok(profile: &Value) -> bool {
    matches!(profile["type"].as_str(), Some("RuntimeDefault") | Some("Localhost"))
}

/// Shared by both seccomp checks: explicit bad settings, and (restricted)
/// containers left without any valid profile.
fn seccomp(p: &Pod, require: bool) -> Finding {
    let mut values = BTreeSet::new();
    let pod_profile = &p.sc()["seccompProfile"];
    let pod_bad = set(pod_profile) && !seccomp_ok(pod_profile);
    if pod_bad {
        values.insert(pod_profile["type"].as_str().unwrap_or("").to_string());
    }
    let pod_ok = set(pod_profile) && !pod_bad;
    let mut implicit = Vec::new();
    let explicit: Vec<&str> = p
        .containers
        .iter()
        .filter(|c| {
            let prof = &c["securityContext"]["seccompProfile"];
            if !set(prof) {
                if !pod_ok {
                    implicit.push(name(c));
                }
                return false;
            }
            let bad = !seccomp_ok(prof);
            if bad {
                values.insert(prof["type"].as_str().unwrap_or("").to_string());
            }
            bad
        })
        .map(|c| name(c))
        .collect();
    let who = setters(pod_bad, &explicit);
    if !who.is_empty() {
        let detail = format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            who.join(" and "),
            join_quote(&values)
        );
        return finding("seccompProfile", detail);
    }
    (require && !implicit.is_empty()).then(|| {
        let detail = format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&implicit)
        );
        ("seccompProfile".to_string(), detail)
    })
}

fn seccomp_baseline(p: &Pod) -> Finding {
    seccomp(p, false)
}

fn seccomp_restricted(p: &Pod) -> Finding {
    if p.windows() {
        return None;
    }
    seccomp(p, true)
}

const SAFE_SYSCTLS: &str = "kernel.shm_rmid_forced net.ipv4.ip_local_port_range net.ipv4.tcp_syncookies \
    net.ipv4.ping_group_range net.ipv4.ip_unprivileged_port_start \
    net.ipv4.ip_local_reserved_ports net.ipv4.tcp_keepalive_time \
    net.ipv4.tcp_fin_timeout net.ipv4.tcp_keepalive_intvl net.ipv4.tcp_keepalive_probes \
    net.ipv4.tcp_rmem net.ipv4.tcp_wmem";

fn sysctls(p: &Pod) -> Finding {
    let bad: Vec<&str> = p.sc()["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(name)
        .filter(|n| !listed(SAFE_SYSCTLS, n))
        .collect();
    (!bad.is_empty()).then(|| ("forbidden sysctls".to_string(), bad.join(", ")))
}

fn host_process(p: &Pod) -> Finding {
    let on = |sc: &Value| sc["windowsOptions"]["hostProcess"].as_bool() == Some(true);
    let who = setters(on(p.sc()), &p.bad_containers(on));
    (!who.is_empty()).then(|| {
        let detail = format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            who.join(" and ")
        );
        ("hostProcess".to_string(), detail)
    })
}

fn allow_privilege_escalation(p: &Pod) -> Finding {
    if p.windows() {
        return None;
    }
    let bad = p.bad_containers(|sc| sc["allowPrivilegeEscalation"].as_bool() != Some(false));
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        );
        ("allowPrivilegeEscalation != false".to_string(), detail)
    })
}

fn capabilities_restricted(p: &Pod) -> Finding {
    if p.windows() {
        return None;
    }
    let missing_drop = p.bad_containers(|sc| !strs(&sc["capabilities"]["drop"]).any(|c| c == "ALL"));
    let mut caps = BTreeSet::new();
    let adding = p.bad_containers(|sc| {
        let extra: Vec<&str> = strs(&sc["capabilities"]["add"])
            .filter(|c| *c != "NET_BIND_SERVICE")
            .collect();
        caps.extend(extra.iter().map(|c| c.to_string()));
        !extra.is_empty()
    });
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&caps)
        ));
    }
    (!details.is_empty()).then(|| ("unrestricted capabilities".to_string(), details.join("; ")))
}

const ALLOWED_VOLUMES: &str = "configMap csi downwardAPI emptyDir ephemeral image persistentVolumeClaim projected \
    secret";

/// In Kubernetes' switch order, so a volume names its first restricted type.
const RESTRICTED_VOLUMES: &str = "hostPath gcePersistentDisk awsElasticBlockStore gitRepo nfs iscsi glusterfs rbd \
    flexVolume cinder cephfs flocker fc azureFile vsphereVolume quobyte azureDisk \
    photonPersistentDisk portworxVolume scaleIO storageos";

fn restricted_volumes(p: &Pod) -> Finding {
    let mut types = BTreeSet::new();
    let bad: Vec<&str> = volumes(p)
        .filter(|v| {
            if ALLOWED_VOLUMES.split_whitespace().any(|k| set(&v[k])) {
                return false;
            }
            let kind = RESTRICTED_VOLUMES.split_whitespace().find(|k| set(&v[*k]));
            types.insert(kind.unwrap_or("unknown"));
            true
        })
        .map(name)
        .collect();
    (!bad.is_empty()).then(|| {
        let detail = format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("restricted volume type", "restricted volume types", types.len()),
            join_quote(&types)
        );
        ("restricted volume types".to_string(), detail)
    })
}

fn run_as_non_root(p: &Pod) -> Finding {
    let pod_value = p.sc()["runAsNonRoot"].as_bool();
    let mut implicit = Vec::new();
    let explicit: Vec<&str> = p
        .containers
        .iter()
        .filter(|c| match c["securityContext"]["runAsNonRoot"].as_bool() {
            Some(v) => !v,
            None => {
                if pod_value != Some(true) {
                    implicit.push(name(c));
                }
                false
            }
        })
        .map(|c| name(c))
        .collect();
    let who = setters(pod_value == Some(false), &explicit);
    if !who.is_empty() {
        let detail = format!("{} must not set securityContext.runAsNonRoot=false", who.join(" and "));
        return finding("runAsNonRoot != true", detail);
    }
    (!implicit.is_empty()).then(|| {
        let detail = format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        );
        ("runAsNonRoot != true".to_string(), detail)
    })
}

fn run_as_user(p: &Pod) -> Finding {
    let root = |sc: &Value| sc["runAsUser"].as_i64() == Some(0);
    let who = setters(root(p.sc()), &p.bad_containers(root));
    (!who.is_empty()).then(|| {
        let detail = format!("{} must not set runAsUser=0", who.join(" and "));
        ("runAsUser=0".to_string(), detail)
    })
}

#[cfg(test)]
mod tests {
    use super::super::render;
    use super::*;
    use serde_json::json;

    fn hardened() -> Value {
        json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "web", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}})
    }

    fn web() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    }

    #[test]
    fn baseline_checks_details() {
        let p = json!({
            "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/a": "runtime/default"}},
            "spec": {
                "securityContext": {"seLinuxOptions": {"user": "bad"},
                                    "sysctls": [{"name": "net.core.somaxconn"}, {"name": "kernel.msgmax"},
                                                {"name": "net.ipv4.tcp_syncookies"}]},
                "initContainers": [{"name": "init", "securityContext": {"procMount": "Unmasked"}}],
                "containers": [{"name": "kube-flannel", "securityContext": {
                    "capabilities": {"add": ["NET_RAW", "NET_ADMIN", "CHOWN"]},
                    "appArmorProfile": {"type": "Unconfined"},
                    "seccompProfile": {"type": "Unconfined"}}}]}});
        let found = violations(Level::Baseline, &p);
        let reasons: Vec<&str> = found.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "forbidden AppArmor profile",
                "non-default capabilities",
                "procMount",
                "seLinuxOptions",
                "seccompProfile",
                "forbidden sysctls"
            ]
        );
        let details: Vec<&str> = found.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(
            details[0],
            "container \"kube-flannel\" must not set AppArmor profile type to \"Unconfined\""
        );
        assert_eq!(
            details[1],
            "container \"kube-flannel\" must not include \"NET_ADMIN\", \"NET_RAW\" in securityContext.capabilities.add"
        );
        assert_eq!(
            details[2],
            "container \"init\" must not set securityContext.procMount to \"Unmasked\""
        );
        assert_eq!(
            details[3],
            "pod set forbidden securityContext.seLinuxOptions: user may not be set"
        );
        assert_eq!(
            details[4],
            "container \"kube-flannel\" must not set securityContext.seccompProfile.type to \"Unconfined\""
        );
        assert_eq!(details[5], "net.core.somaxconn, kernel.msgmax");
    }

    #[test]
    fn restricted_replaces_host_path_by_volume_types() {
        let mut p = hardened();
        p["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/"}}, {"name": "x"},
                                      {"name": "nfs", "nfs": {"server": "s", "path": "/"}}]);
        assert_eq!(
            render(&violations(Level::Restricted, &p)),
            "restricted volume types (volumes \"host\", \"x\", \"nfs\" use restricted volume types \
             \"hostPath\", \"nfs\", \"unknown\")"
        );
    }

    #[test]
    fn explicit_bad_settings_name_pod_and_containers() {
        let mut p = hardened();
        p["spec"]["securityContext"] = json!({"runAsNonRoot": false, "runAsUser": 0,
                                              "seccompProfile": {"type": "Unconfined"}});
        p["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0);
        assert_eq!(
            render(&violations(Level::Restricted, &p)),
            "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), \
             runAsUser=0 (pod and container \"web\" must not set runAsUser=0), \
             seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
        );
    }

    #[test]
    fn windows_pods_skip_linux_only_restricted_checks() {
        let mut p = web();
        p["spec"]["os"] = json!({"name": "windows"});
        p["spec"]["securityContext"] = json!({"runAsNonRoot": true});
        assert_eq!(violations(Level::Restricted, &p), vec![]);
    }

    #[test]
    fn malformed_pods_do_not_panic() {
        for p in [
            json!(null),
            json!("x"),
            json!({"spec": {"containers": "nope", "volumes": [1, "a"]}}),
        ] {
            let _ = violations(Level::Restricted, &p);
            let _ = violations(Level::Baseline, &p);
        }
    }
}

//! End-to-end tests of [`container_spec_with_users`] over whole pods.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use oci_spec::runtime::{Capability, LinuxNamespaceType, Spec};
use serde_json::json;

use super::*;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "uid-1"},
        "spec": spec,
        "status": {"podIP": "10.244.0.7"}
    }))
    .unwrap()
}

fn image() -> ImageDefaults {
    ImageDefaults {
        entrypoint: vec!["/docker-entrypoint.sh".into()],
        cmd: vec!["nginx".into()],
        env: vec!["PATH=/usr/bin:/bin".into(), "NGINX_VERSION=1.27".into()],
        working_dir: Some("/srv".into()),
        user: None,
    }
}

fn build(pod: &Pod, image: &ImageDefaults) -> Result<Spec, SpecError> {
    let plan = ContainerPlan {
        pod,
        container: &pod.spec.as_ref().unwrap().containers[0],
        image,
        rootfs: PathBuf::from("/var/lib/skiff/agent/c1/rootfs"),
        namespaces: SandboxNamespaces {
            net: Some("/run/skiff/ns/net-1".into()),
            ipc: Some("/run/skiff/ns/ipc-1".into()),
            uts: Some("/run/skiff/ns/uts-1".into()),
        },
        cgroups_path: "/skiff/poduid-1/app".into(),
        volumes: [("data".to_string(), PathBuf::from("/pods/uid-1/volumes/empty-dir/data"))]
            .into_iter()
            .collect(),
        etc_hosts: "/pods/uid-1/etc-hosts".into(),
        resolv_conf: "/pods/uid-1/resolv.conf".into(),
        hostname: "web".into(),
        hostname_file: Some("/pods/uid-1/hostname".into()),
        termination_log: Some("/pods/uid-1/containers/app/termination-log".into()),
        resolved_env: ResolvedEnv::default(),
        node: NodeResources {
            allocatable_cpu_milli: 2000,
            allocatable_memory_bytes: 4 << 30,
            memory_capacity_bytes: 4 << 30,
        },
        pids_limit: Some(4096),
    };
    container_spec_with_users(&plan, &UserDb::default())
}

fn simple() -> Pod {
    pod(json!({"containers": [{"name": "app", "image": "nginx",
        "env": [{"name": "GREETING", "value": "hi $(NGINX_VERSION) from $(POD)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}}]}))
}

fn dests(spec: &Spec) -> Vec<PathBuf> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().clone())
        .collect()
}

#[test]
fn full_spec_of_a_simple_container() {
    let spec = build(&simple(), &image()).unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["/docker-entrypoint.sh", "nginx"]);
    assert_eq!(process.terminal(), Some(false));
    assert_eq!(process.cwd(), Path::new("/srv"));
    assert_eq!(
        process.env().as_ref().unwrap(),
        &[
            "HOSTNAME=web",
            "PATH=/usr/bin:/bin",
            "NGINX_VERSION=1.27",
            // Image env is not visible to $(VAR) expansion, later pod vars are not either.
            "GREETING=hi $(NGINX_VERSION) from $(POD)",
            "POD=web"
        ]
    );
    assert_eq!(process.user().uid(), 0);
    assert_eq!(process.no_new_privileges(), Some(false));
    assert_eq!(process.oom_score_adj(), Some(985));
    // No rlimits: the container inherits the runtime's (raising NOFILE past the hard limit
    // needs CAP_SYS_RESOURCE, which a sandboxed agent may lack).
    assert!(process.rlimits().as_ref().is_none_or(|r| r.is_empty()));
    assert_eq!(spec.hostname().as_deref(), Some("web"));
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));

    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(linux.cgroups_path().as_deref(), Some(Path::new("/skiff/poduid-1/app")));
    let res = linux.resources().as_ref().unwrap();
    let cpu = res.cpu().as_ref().unwrap();
    assert_eq!(
        (cpu.shares(), cpu.quota(), cpu.period()),
        (Some(256), Some(50_000), Some(100_000))
    );
    assert_eq!(res.memory().unwrap().limit(), Some(128 << 20));
    assert_eq!(res.pids().unwrap().limit(), 4096);
    let ns: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| (n.typ(), n.path().clone()))
        .collect();
    assert!(ns.contains(&(LinuxNamespaceType::Network, Some("/run/skiff/ns/net-1".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Uts, Some("/run/skiff/ns/uts-1".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Ipc, Some("/run/skiff/ns/ipc-1".into()))));
    assert!(ns.contains(&(LinuxNamespaceType::Pid, None)));
    assert!(ns.contains(&(LinuxNamespaceType::Mount, None)));
    assert!(ns.contains(&(LinuxNamespaceType::Cgroup, None)));
    assert!(linux
        .masked_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/kcore".to_string()));
    assert!(linux
        .readonly_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/sys".to_string()));

    let d = dests(&spec);
    let want: Vec<PathBuf> = [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/data",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/dev/termination-log",
        "/etc/hostname",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(d, want);
    let data = &spec.mounts().as_ref().unwrap()[7];
    assert!(data.options().as_ref().unwrap().contains(&"ro".to_string()));
    // The spec serializes to the JSON youki reads.
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["process"]["user"]["uid"], 0);
    assert_eq!(json["linux"]["resources"]["cpu"]["shares"], 256);
}

#[test]
fn env_values_expand_in_order() {
    let p = pod(
        json!({"containers": [{"name": "app", "command": ["sh", "-c", "echo $(A) $$(A)"],
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)2"}]}]}),
    );
    let spec = build(&p, &image()).unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["sh", "-c", "echo 1 $(A)"]);
    assert!(process.env().as_ref().unwrap().contains(&"B=12".to_string()));
}

#[test]
fn security_context_user_caps_and_readonly_root() {
    let p = pod(
        json!({"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000]},
        "containers": [{"name": "app", "securityContext": {
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}),
    );
    let spec = build(&p, &image()).unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!((process.user().uid(), process.user().gid()), (1000, 3000));
    assert_eq!(process.user().additional_gids().as_deref(), Some(&[4000][..]));
    assert_eq!(process.no_new_privileges(), Some(true));
    let caps = process.capabilities().as_ref().unwrap();
    assert_eq!(
        caps.bounding().as_ref().unwrap().iter().collect::<Vec<_>>(),
        [&Capability::NetBindService]
    );
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let resolv = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/etc/resolv.conf"));
    assert!(resolv.unwrap().options().as_ref().unwrap().contains(&"ro".to_string()));
}

#[test]
fn privileged_container() {
    let p = pod(json!({"containers": [{"name": "app", "securityContext": {"privileged": true}}]}));
    let spec = build(&p, &image()).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    let devices = linux.resources().as_ref().unwrap().devices().as_ref().unwrap();
    assert!(devices[0].allow());
    let caps = spec.process().as_ref().unwrap().capabilities().as_ref().unwrap();
    assert_eq!(caps.effective().as_ref().unwrap().len(), ALL_CAPS.len());
    let sys = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"rw".to_string()));
}

#[test]
fn host_network_has_no_net_or_uts_namespace_nor_hostname() {
    let p = pod(json!({"hostNetwork": true, "hostPID": true, "containers": [{"name": "app"}]}));
    let spec = build(&p, &image()).unwrap();
    let types: Vec<_> = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert_eq!(
        types,
        [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Cgroup
        ]
    );
    assert_eq!(spec.hostname(), &None);
}

#[test]
fn guaranteed_and_best_effort() {
    let g = pod(json!({"containers": [{"name": "app", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}));
    let spec = build(&g, &image()).unwrap();
    assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(-997));
    let cpu = spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .as_ref()
        .unwrap()
        .cpu()
        .clone()
        .unwrap();
    assert_eq!((cpu.shares(), cpu.quota()), (Some(1024), Some(100_000)));
    let be = pod(json!({"containers": [{"name": "app"}]}));
    let spec = build(&be, &image()).unwrap();
    assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(1000));
    let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
    assert_eq!(
        (
            res.cpu().as_ref().unwrap().shares(),
            res.cpu().as_ref().unwrap().quota()
        ),
        (Some(2), None)
    );
    assert!(res.memory().is_none());
}

#[test]
fn errors_name_the_culprit() {
    let p = pod(
        json!({"containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "../x"}]}]}),
    );
    assert!(matches!(build(&p, &image()), Err(SpecError::SubPathEscape { .. })));
    let named = ImageDefaults {
        user: Some("www".into()),
        ..image()
    };
    let p = pod(json!({"containers": [{"name": "app"}]}));
    let err = build(&p, &named).unwrap_err();
    assert!(err.to_string().contains("www"), "{err}");
    let workdir = pod(json!({"containers": [{"name": "app", "workingDir": "/work"}]}));
    assert_eq!(
        build(&workdir, &image()).unwrap().process().as_ref().unwrap().cwd(),
        Path::new("/work")
    );
    let no_dir = ImageDefaults {
        working_dir: None,
        ..image()
    };
    assert_eq!(
        build(&p, &no_dir).unwrap().process().as_ref().unwrap().cwd(),
        Path::new("/")
    );
    let _unused: BTreeMap<String, String> = BTreeMap::new();
}

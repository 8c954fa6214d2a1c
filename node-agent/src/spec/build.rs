//! [`container_spec`]: one container's OCI spec from its [`ContainerPlan`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount, ProcessBuilder,
    RootBuilder, Spec, UserBuilder,
};

use super::caps::{capability_names, linux_capabilities};
use super::env::{container_env, merge_env};
use super::mounts::{assemble, bind, default_mounts, volume_mounts};
use super::qos::{container_resources, cpu_quota, cpu_shares, oom_score_adj, CPU_PERIOD_US};
use super::user::{resolve_user, UserDb};
use super::{process_args, ContainerPlan, SpecError};

/// OCI runtime spec version we write.
const OCI_VERSION: &str = "1.0.2";
/// runc's masked paths, plus powercap (containerd masks it since CVE-2020-8694).
const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// runc's read-only paths.
const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];
/// Kubernetes' default terminationMessagePath.
const DEFAULT_TERMINATION_PATH: &str = "/dev/termination-log";

/// Build the spec, reading the image's /etc/passwd and /etc/group from `plan.rootfs`.
pub fn container_spec(plan: &ContainerPlan) -> Result<Spec, SpecError> {
    container_spec_with_users(plan, &UserDb::load(&plan.rootfs)?)
}

/// Build the spec with an already loaded user database (pure).
pub fn container_spec_with_users(plan: &ContainerPlan, users: &UserDb) -> Result<Spec, SpecError> {
    let (pod, container) = (plan.pod, plan.container);
    let pod_spec = pod.spec.as_ref();
    let sc = container.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    let host_network = pod_spec.and_then(|s| s.host_network) == Some(true);

    let kube_env = container_env(pod, container, &plan.resolved_env, &plan.node)?;
    let args = process_args(container, plan.image, &kube_env)?;
    let env = merge_env(&plan.hostname, &plan.image.env, &kube_env);
    let cwd = container
        .working_dir
        .as_deref()
        .or(plan.image.working_dir.as_deref())
        .filter(|d| !d.is_empty())
        .unwrap_or("/");
    let user = resolve_user(pod, container, plan.image.user.as_deref(), users)?;
    let caps = linux_capabilities(&capability_names(sc)?)?;
    let no_new_privileges = !privileged && sc.and_then(|s| s.allow_privilege_escalation) == Some(false);

    let process = ProcessBuilder::default()
        .terminal(false)
        .args(args)
        .env(env)
        .cwd(cwd)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids)
                .build()?,
        )
        .capabilities(caps)
        .no_new_privileges(no_new_privileges)
        .oom_score_adj(oom_score_adj(pod, container, plan.node.memory_capacity_bytes)?)
        // No rlimits (the builder's default would set NOFILE 1024): the container inherits the
        // runtime's, as raising them needs CAP_SYS_RESOURCE, which a sandboxed agent may lack.
        .rlimits(Vec::new())
        .build()?;

    let root = RootBuilder::default()
        .path(&plan.rootfs)
        .readonly(sc.and_then(|s| s.read_only_root_filesystem) == Some(true))
        .build()?;

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string());
    spec.set_root(Some(root));
    spec.set_process(Some(process));
    spec.set_mounts(Some(mount_table(plan, &kube_env, privileged)?));
    // Without a private UTS namespace the runtime must not set a hostname.
    spec.set_hostname((!host_network).then(|| plan.hostname.clone()));
    spec.set_annotations(Some(HashMap::new()));
    spec.set_linux(Some(linux(plan, privileged, host_network)?));
    Ok(spec)
}

fn mount_table(plan: &ContainerPlan, env: &[(String, String)], privileged: bool) -> Result<Vec<Mount>, SpecError> {
    let container = plan.container;
    let read_only_root = container
        .security_context
        .as_ref()
        .and_then(|s| s.read_only_root_filesystem)
        == Some(true);
    let user = volume_mounts(container, &plan.volumes, env)?;
    // kubelet mounts /etc/hosts read-write; containerd makes hostname and resolv.conf follow
    // readOnlyRootFilesystem.
    let mut managed = vec![
        bind(Path::new("/etc/hosts"), &plan.etc_hosts, false, "rprivate")?,
        bind(
            Path::new("/etc/resolv.conf"),
            &plan.resolv_conf,
            read_only_root,
            "rprivate",
        )?,
    ];
    if let Some(log) = &plan.termination_log {
        let dest = container.termination_message_path.as_deref().filter(|p| !p.is_empty());
        managed.push(bind(
            Path::new(dest.unwrap_or(DEFAULT_TERMINATION_PATH)),
            log,
            false,
            "rprivate",
        )?);
    }
    if let Some(file) = &plan.hostname_file {
        managed.push(bind(Path::new("/etc/hostname"), file, read_only_root, "rprivate")?);
    }
    Ok(assemble(default_mounts(privileged)?, user, managed))
}

fn namespace(typ: LinuxNamespaceType, path: Option<&PathBuf>) -> Result<LinuxNamespace, SpecError> {
    let builder = LinuxNamespaceBuilder::default().typ(typ);
    Ok(match path {
        Some(p) => builder.path(p.clone()).build()?,
        None => builder.build()?,
    })
}

fn linux(plan: &ContainerPlan, privileged: bool, host_network: bool) -> Result<oci_spec::runtime::Linux, SpecError> {
    let pod_spec = plan.pod.spec.as_ref();
    let host_pid = pod_spec.and_then(|s| s.host_pid) == Some(true);
    let host_ipc = pod_spec.and_then(|s| s.host_ipc) == Some(true);
    let ns = &plan.namespaces;
    // A missing entry means "stay in the agent's (the host's) namespace".
    let mut namespaces = vec![namespace(LinuxNamespaceType::Mount, None)?];
    if !host_pid {
        namespaces.push(namespace(LinuxNamespaceType::Pid, None)?);
    }
    if !host_network {
        namespaces.push(namespace(LinuxNamespaceType::Network, ns.net.as_ref())?);
        namespaces.push(namespace(LinuxNamespaceType::Uts, ns.uts.as_ref())?);
    }
    if !host_ipc {
        namespaces.push(namespace(LinuxNamespaceType::Ipc, ns.ipc.as_ref())?);
    }
    namespaces.push(namespace(LinuxNamespaceType::Cgroup, None)?);

    let (cpu_request, cpu_limit, memory_limit) = container_resources(plan.container)?;
    let mut cpu = LinuxCpuBuilder::default().shares(cpu_shares(cpu_request));
    if let Some(quota) = cpu_quota(cpu_limit, CPU_PERIOD_US) {
        cpu = cpu.quota(quota).period(CPU_PERIOD_US);
    }
    // Unprivileged: deny every device, the runtime re-allows its default set (null, zero,
    // tty, ...); privileged: allow all.
    let devices = LinuxDeviceCgroupBuilder::default()
        .allow(privileged)
        .typ(LinuxDeviceType::A)
        .access("rwm")
        .build()?;
    let mut resources = LinuxResourcesBuilder::default()
        .cpu(cpu.build()?)
        .devices(vec![devices]);
    if let Some(limit) = memory_limit {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if let Some(limit) = plan.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }

    let sysctls: HashMap<String, String> = pod_spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    let (masked, readonly): (Vec<String>, Vec<String>) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
        )
    };
    Ok(LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .cgroups_path(PathBuf::from(&plan.cgroups_path))
        .sysctl(sysctls)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .build()?)
}

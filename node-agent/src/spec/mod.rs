//! The OCI runtime spec (`config.json`) of one container of a pod, with Kubernetes'
//! semantics, plus the pod's `/etc/hosts` and `/etc/resolv.conf` contents.
//!
//! Everything here is a pure function of its inputs except [`UserDb::load`], which reads the
//! image's `/etc/passwd` and `/etc/group` (only [`container_spec`] calls it). Values the API
//! must be asked for (configMap/secret env, envFrom) are resolved by the caller into
//! [`ResolvedEnv`]; downward-API `status.podIP`/`hostIP` are read from `pod.status`, so the
//! caller fills those in from the sandbox before the pod's status reaches the API.
//!
//! # Layout
//! - `quantity`: Kubernetes quantities.
//! - `expand`: `$(VAR)` expansion.
//! - `fields`: downward-API fieldRef/resourceFieldRef values (also used by volumes).
//! - `env`: the env list and its merge over the image's.
//! - `args`: command/args over Entrypoint/Cmd.
//! - `user`: uid/gid/groups.
//! - `caps`: capabilities.
//! - `qos`: QoS class, OOM score, CPU shares/quota.
//! - `mounts`: the mount table.
//! - `dns`: /etc/hosts, /etc/resolv.conf, hostname.
//! - `build`: [`container_spec`], putting it all together.

mod args;
mod build;
mod caps;
mod dns;
mod env;
mod error;
mod expand;
mod fields;
mod mounts;
mod qos;
mod quantity;
mod user;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

pub use args::process_args;
pub use build::{container_spec, container_spec_with_users};
pub use caps::{capability_names, ALL_CAPS, DEFAULT_CAPS};
pub use dns::{etc_hosts, etc_hosts_host_network, pod_hostname, resolv_conf, resolv_conf_nameservers};
pub use env::{container_env, merge_env, ResolvedEnv, DEFAULT_PATH};
pub use error::SpecError;
pub use expand::expand;
pub use fields::{field_ref_value, format_map, resource_field_value, NodeResources};
pub use mounts::sub_path_join;
pub use qos::{cpu_quota, cpu_shares, oom_score_adj, pod_qos, QosClass, CPU_PERIOD_US};
pub use quantity::Quantity;
pub use user::{resolve_user, ResolvedUser, UserDb};

/// What the image config says about running it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `K=V` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// nsfs files (e.g. bind-mounted `/proc/<pid>/ns/net`) of the namespaces a pod's containers
/// share. `None` gives the container a fresh private namespace of that kind, except where the
/// pod asks for the host's (`hostNetwork` for net and uts, `hostIPC` for ipc): then the
/// container stays in the agent's namespace whatever is given here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

/// Everything [`container_spec`] needs about one container of a pod.
#[derive(Debug, Clone)]
pub struct ContainerPlan<'a> {
    pub pod: &'a Pod,
    /// A container or init container of `pod`.
    pub container: &'a Container,
    pub image: &'a ImageDefaults,
    /// Absolute path of the container's (overlay) rootfs.
    pub rootfs: PathBuf,
    pub namespaces: SandboxNamespaces,
    /// e.g. `/skiff/pod<uid>/<container-name>`.
    pub cgroups_path: String,
    /// Pod volume name -> prepared host path.
    pub volumes: BTreeMap<String, PathBuf>,
    pub etc_hosts: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname: String,
    /// Host file holding `hostname`, bind-mounted at /etc/hostname when given.
    pub hostname_file: Option<PathBuf>,
    /// Host file bind-mounted at `terminationMessagePath`.
    pub termination_log: Option<PathBuf>,
    /// configMap/secret values the caller read for env and envFrom.
    pub resolved_env: ResolvedEnv,
    /// Node allocatable/capacity for downward-API defaults and the Burstable OOM score.
    pub node: NodeResources,
    /// `pids.max` for the container, if the node sets one.
    pub pids_limit: Option<i64>,
}

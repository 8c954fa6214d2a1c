//! Linux capabilities of a container: containerd's default set with securityContext add/drop.
//!
//! Order of operations is containerd's: `add: [ALL]` starts from every capability,
//! `drop: [ALL]` then empties the set, and only after that are the individual adds and drops
//! applied, so `drop: [ALL], add: [NET_BIND_SERVICE]` keeps exactly that one. Names may be
//! given with or without the `CAP_` prefix, in any case.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::SecurityContext;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};

use super::SpecError;

/// containerd's default capabilities for an unprivileged container.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability oci-spec knows (the set a privileged container gets).
pub const ALL_CAPS: [&str; 41] = [
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETGID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

/// The capability names (`CAP_*`, in a stable order) `sc` grants.
pub fn capability_names(sc: Option<&SecurityContext>) -> Result<Vec<String>, SpecError> {
    if sc.and_then(|s| s.privileged) == Some(true) {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let add: Vec<&String> = caps.and_then(|c| c.add.as_ref()).into_iter().flatten().collect();
    let drop: Vec<&String> = caps.and_then(|c| c.drop.as_ref()).into_iter().flatten().collect();
    let is_all = |s: &&String| s.eq_ignore_ascii_case("ALL");
    let mut set: Vec<String> = if add.iter().any(is_all) {
        ALL_CAPS.iter().map(|s| s.to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if drop.iter().any(is_all) {
        set.clear();
    }
    for name in add.iter().filter(|s| !is_all(s)) {
        let name = normalize(name)?;
        if !set.contains(&name) {
            set.push(name);
        }
    }
    for name in drop.iter().filter(|s| !is_all(s)) {
        let name = normalize(name)?;
        set.retain(|c| *c != name);
    }
    Ok(set)
}

/// `net_admin` / `CAP_NET_ADMIN` -> `CAP_NET_ADMIN`, refusing unknown names.
fn normalize(name: &str) -> Result<String, SpecError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability { name: name.to_string() })
    }
}

/// The OCI capability sets: bounding, effective and permitted get `names`; inheritable and
/// ambient stay empty (as containerd does since 1.6.18), so a non-root process does not
/// regain capabilities through exec.
pub fn linux_capabilities(names: &[String]) -> Result<LinuxCapabilities, SpecError> {
    let mut set: Capabilities = HashSet::new();
    for name in names {
        let bare = name.strip_prefix("CAP_").unwrap_or(name);
        let cap: Capability = bare
            .parse()
            .map_err(|_| SpecError::UnknownCapability { name: name.to_string() })?;
        set.insert(cap);
    }
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(sc: serde_json::Value) -> Vec<String> {
        let sc: SecurityContext = serde_json::from_value(sc).unwrap();
        capability_names(Some(&sc)).unwrap()
    }

    #[test]
    fn default_set() {
        let got = capability_names(None).unwrap();
        assert_eq!(got, DEFAULT_CAPS);
        assert!(linux_capabilities(&got)
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::Chown));
    }

    #[test]
    fn add_and_drop() {
        let got = names(json!({"capabilities": {"add": ["NET_ADMIN", "cap_sys_time"], "drop": ["NET_RAW", "KILL"]}}));
        assert!(got.contains(&"CAP_NET_ADMIN".into()) && got.contains(&"CAP_SYS_TIME".into()));
        assert!(!got.contains(&"CAP_NET_RAW".into()) && !got.contains(&"CAP_KILL".into()));
        assert_eq!(got.len(), 14);
    }

    #[test]
    fn all_handling() {
        assert_eq!(names(json!({"capabilities": {"drop": ["ALL"]}})), Vec::<String>::new());
        assert_eq!(
            names(json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})),
            ["CAP_NET_BIND_SERVICE"]
        );
        let all_but_chown = names(json!({"capabilities": {"add": ["ALL"], "drop": ["CHOWN"]}}));
        assert_eq!(all_but_chown.len(), ALL_CAPS.len() - 1);
        assert!(!all_but_chown.contains(&"CAP_CHOWN".into()));
    }

    #[test]
    fn privileged_gets_everything_and_all_names_parse() {
        let got = names(json!({"privileged": true, "capabilities": {"drop": ["ALL"]}}));
        assert_eq!(got.len(), ALL_CAPS.len());
        let caps = linux_capabilities(&got).unwrap();
        assert_eq!(caps.effective().as_ref().unwrap().len(), ALL_CAPS.len());
        assert!(caps.ambient().as_ref().unwrap().is_empty());
    }

    #[test]
    fn unknown_capability() {
        let sc: SecurityContext = serde_json::from_value(json!({"capabilities": {"add": ["FLY"]}})).unwrap();
        assert!(matches!(
            capability_names(Some(&sc)),
            Err(SpecError::UnknownCapability { .. })
        ));
    }
}

//! The resources the API server serves: names, scope, verbs, subresources and where each one
//! lives in the store. One static table; discovery, routing and storage all read it.

/// Verbs of an ordinary read-write resource, in the order Kubernetes' discovery lists them.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group; "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment (lower-case plural), e.g. `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served under `<plural>/<name>/<sub>`.
    pub subresources: &'static [&'static str],
    /// Store prefix (no trailing slash), as Kubernetes lays out etcd (`/registry/minions` for nodes).
    pub prefix: &'static str,
}

impl Resource {
    /// `v1` for the core group, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}/{}/{}", self.prefix, ns, name),
            _ => format!("{}/{}", self.prefix, name),
        }
    }

    /// Store prefix (with trailing slash) of every object in `namespace`, or of all objects.
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}/{}/", self.prefix, ns),
            _ => format!("{}/", self.prefix),
        }
    }

    /// URL path of the collection, e.g. `/api/v1/namespaces/default/pods`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $ns:expr, $short:expr, $cat:expr, $sub:expr, $prefix:expr) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            prefix: $prefix,
        }
    };
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// Every served resource. Prefixes follow Kubernetes' own etcd layout.
pub static RESOURCES: &[Resource] = &[
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        NONE,
        &["status", "finalize"],
        "/registry/namespaces"
    ),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        ALL,
        &["status", "binding", "log", "exec", "eviction"],
        "/registry/pods"
    ),
    res!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        NONE,
        &["status"],
        "/registry/minions"
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        ALL,
        &["status"],
        "/registry/services/specs"
    ),
    res!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        NONE,
        NONE,
        "/registry/services/endpoints"
    ),
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        NONE,
        NONE,
        "/registry/configmaps"
    ),
    res!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        NONE,
        NONE,
        NONE,
        "/registry/secrets"
    ),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        NONE,
        &["token"],
        "/registry/serviceaccounts"
    ),
    res!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        NONE,
        NONE,
        "/registry/events"
    ),
    res!(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        true,
        &["limits"],
        NONE,
        NONE,
        "/registry/limitranges"
    ),
    res!(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
        &["quota"],
        NONE,
        &["status"],
        "/registry/resourcequotas"
    ),
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        &["status", "scale"],
        "/registry/deployments"
    ),
    res!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        &["status", "scale"],
        "/registry/replicasets"
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        ALL,
        &["status"],
        "/registry/daemonsets"
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        NONE,
        NONE,
        NONE,
        "/registry/leases"
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        NONE,
        NONE,
        NONE,
        "/registry/endpointslices"
    ),
    // Kubernetes keeps both Event APIs in one place and converts; skiff stores events.k8s.io
    // events apart (no conversion between the two shapes yet).
    res!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        NONE,
        NONE,
        "/registry/events.k8s.io/events"
    ),
    res!(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &["csr"],
        NONE,
        &["status", "approval"],
        "/registry/certificatesigningrequests"
    ),
    res!(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        false,
        &["pc"],
        NONE,
        NONE,
        "/registry/priorityclasses"
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        NONE,
        NONE,
        NONE,
        "/registry/roles"
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        NONE,
        NONE,
        NONE,
        "/registry/rolebindings"
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        NONE,
        NONE,
        NONE,
        "/registry/clusterroles"
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        NONE,
        NONE,
        NONE,
        "/registry/clusterrolebindings"
    ),
];

/// The namespaces that exist from the start, as in Kubernetes.
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The resource served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn namespaces() -> &'static Resource {
    &RESOURCES[0]
}

/// A resource of the static table, by name; the shortcuts below are checked by a unit test
/// (`shortcuts_name_their_resource`), so the lookup cannot fail at run time.
fn served(group: &str, version: &str, plural: &str) -> &'static Resource {
    lookup(group, version, plural).unwrap_or_else(|| panic!("{group}/{version} {plural} is not in RESOURCES"))
}

fn core(plural: &str) -> &'static Resource {
    served("", "v1", plural)
}

pub fn services() -> &'static Resource {
    core("services")
}

pub fn endpoints() -> &'static Resource {
    core("endpoints")
}

pub fn replicasets() -> &'static Resource {
    served("apps", "v1", "replicasets")
}

pub fn deployments() -> &'static Resource {
    served("apps", "v1", "deployments")
}

pub fn daemonsets() -> &'static Resource {
    served("apps", "v1", "daemonsets")
}

pub fn endpoint_slices() -> &'static Resource {
    served("discovery.k8s.io", "v1", "endpointslices")
}

pub fn leases() -> &'static Resource {
    served("coordination.k8s.io", "v1", "leases")
}

pub fn pods() -> &'static Resource {
    core("pods")
}

pub fn nodes() -> &'static Resource {
    core("nodes")
}

pub fn events() -> &'static Resource {
    core("events")
}

/// The resource of an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The groups served, each with its versions, in discovery order (core group first).
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources of one group version.
pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_name_their_resource() {
        assert_eq!(pods().kind, "Pod");
        assert_eq!(nodes().kind, "Node");
        assert_eq!(events().kind, "Event");
        assert_eq!(services().kind, "Service");
        assert_eq!(endpoints().kind, "Endpoints");
        assert_eq!(replicasets().kind, "ReplicaSet");
        assert_eq!(deployments().kind, "Deployment");
        assert_eq!(daemonsets().kind, "DaemonSet");
        assert_eq!(endpoint_slices().kind, "EndpointSlice");
        assert_eq!(leases().kind, "Lease");
    }

    #[test]
    fn keys_follow_the_kubernetes_layout() {
        let pods = lookup("", "v1", "pods").expect("pods");
        assert_eq!(pods.key(Some("default"), "web"), "/registry/pods/default/web");
        assert_eq!(pods.list_prefix(Some("default")), "/registry/pods/default/");
        assert_eq!(pods.list_prefix(None), "/registry/pods/");
        let nodes = lookup("", "v1", "nodes").expect("nodes");
        assert_eq!(nodes.key(None, "n1"), "/registry/minions/n1");
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(
            deploy.collection_path(Some("ns1")),
            "/apis/apps/v1/namespaces/ns1/deployments"
        );
        assert_eq!(by_kind("v1", "Service").map(|r| r.plural), Some("services"));
    }

    #[test]
    fn no_two_resources_share_a_prefix_or_a_url() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !a.list_prefix(None).starts_with(&b.list_prefix(None))
                        && !b.list_prefix(None).starts_with(&a.list_prefix(None)),
                    "{} and {} overlap in the store",
                    a.plural,
                    b.plural
                );
                assert!(
                    (a.group, a.version, a.plural) != (b.group, b.version, b.plural),
                    "{} twice",
                    a.plural
                );
            }
        }
        assert_eq!(groups()[0].0, "");
    }
}

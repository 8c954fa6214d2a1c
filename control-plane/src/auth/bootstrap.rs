//! The default RBAC policy, as kube-apiserver 1.32 creates it at startup.
//!
//! Clients take these roles for granted. kubectl users bind `admin`, `edit` and
//! `view`. Every authenticated user expects discovery and
//! SelfSubjectAccessReview to work. Control-plane components expect their
//! `system:*` roles. So skiff creates the same objects, with the same rules,
//! labels and annotations. The rules name every resource Kubernetes names,
//! including some that skiff does not serve, so that objects compare equal
//! with a real cluster's and escalation checks come out the same.
//!
//! The rule contents are facts taken from Kubernetes'
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy` with default feature gates.
//! Alpha APIs, and beta APIs that are off by default (such as DRA and
//! ClusterTrustBundles), are left out. The per-controller
//! `system:controller:*` roles are not here, because they belong to
//! kube-controller-manager's own controllers.
//!
//! `admin`, `edit` and `view` carry only an aggregationRule. Their rules come
//! from the `system:aggregate-to-*` roles, and from any user role with the same
//! labels, through aggregation, which `super::rbac::Policy` computes.
//!
//! Lists are written as space-separated words so that the tables stay
//! readable. rustfmt would put every array element on its own line.

use serde_json::{json, Value};

const READ: &str = "get list watch";
/// What `edit` may do to workload objects. Reading them comes from `view`.
const WRITE: &str = "create delete deletecollection patch update";
const READ_WRITE: &str = "create delete deletecollection get list patch update watch";
const EVENT_WRITE: &str = "create patch update";
/// The core API group is the empty string, which a word list cannot hold.
const CORE: &[&str] = &[""];
const EVENT_GROUPS: &[&str] = &["", "events.k8s.io"];

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn rule(groups: &[&str], resources: &str, verbs: &str) -> Value {
    json!({"apiGroups": groups, "resources": words(resources), "verbs": words(verbs)})
}

fn named(group: &str, resource: &str, name: &str, verbs: &str) -> Value {
    json!({"apiGroups": [group], "resources": [resource], "resourceNames": [name], "verbs": words(verbs)})
}

fn urls(urls: &str, verbs: &str) -> Value {
    json!({"nonResourceURLs": words(urls), "verbs": words(verbs)})
}

fn metadata(name: &str, extra_label: Option<&str>) -> Value {
    let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    if let (Some(label), Some(map)) = (extra_label, labels.as_object_mut()) {
        map.insert(label.to_owned(), json!("true"));
    }
    json!({
        "name": name,
        "labels": labels,
        // Tells the startup reconciler that it may add missing permissions
        // back. Users set it to "false" to keep their own edits.
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    })
}

fn role_labeled(name: &str, label: Option<&str>, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, label),
        "rules": rules
    })
}

fn role(name: &str, rules: Vec<Value>) -> Value {
    role_labeled(name, None, rules)
}

/// An aggregated role. Its rules are gathered from the roles labelled `<selects>: "true"`.
fn aggregated(name: &str, label: Option<&str>, selects: &str) -> Value {
    let mut v = role_labeled(name, label, Vec::new());
    if let Some(map) = v.as_object_mut() {
        let rule = json!({"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]});
        map.insert("aggregationRule".to_owned(), rule);
    }
    v
}

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// Every default ClusterRole, as a full `rbac.authorization.k8s.io/v1` object.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![
        role("cluster-admin", vec![rule(&["*"], "*", "*"), urls("*", "*")]),
        // The namespace administrator: edit, plus managing roles and bindings.
        aggregated("admin", None, TO_ADMIN),
        aggregated("edit", Some(TO_ADMIN), TO_EDIT),
        aggregated("view", Some(TO_EDIT), TO_VIEW),
        role_labeled("system:aggregate-to-admin", Some(TO_ADMIN), aggregate_to_admin()),
        role_labeled("system:aggregate-to-edit", Some(TO_EDIT), aggregate_to_edit()),
        role_labeled("system:aggregate-to-view", Some(TO_VIEW), aggregate_to_view()),
        role(
            "system:auth-delegator",
            vec![
                rule(&["authentication.k8s.io"], "tokenreviews", "create"),
                rule(&["authorization.k8s.io"], "subjectaccessreviews", "create"),
            ],
        ),
        role(
            "system:basic-user",
            vec![
                rule(
                    &["authorization.k8s.io"],
                    "selfsubjectaccessreviews selfsubjectrulesreviews",
                    "create",
                ),
                rule(&["authentication.k8s.io"], "selfsubjectreviews", "create"),
            ],
        ),
        role(
            "system:discovery",
            vec![urls(
                "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz /version /version/",
                "get",
            )],
        ),
        role(
            "system:heapster",
            vec![
                rule(CORE, "events namespaces nodes pods", READ),
                rule(&["extensions"], "deployments", READ),
            ],
        ),
        role("system:kube-aggregator", vec![rule(CORE, "endpoints services", READ)]),
        role("system:kube-controller-manager", kube_controller_manager()),
        role("system:kube-dns", vec![rule(CORE, "endpoints services", "list watch")]),
        role("system:kube-scheduler", kube_scheduler()),
        role(
            "system:kubelet-api-admin",
            vec![
                rule(CORE, "nodes", READ),
                rule(CORE, "nodes", "proxy"),
                rule(CORE, "nodes/log nodes/metrics nodes/proxy nodes/stats", "*"),
            ],
        ),
        role(
            "system:monitoring",
            vec![urls(
                "/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*",
                "get",
            )],
        ),
        // Bound to nobody: since 1.8 the Node authorizer and the NodeRestriction
        // admission plugin give kubelets what they need.
        role("system:node", node()),
        role(
            "system:node-bootstrapper",
            vec![rule(
                &["certificates.k8s.io"],
                "certificatesigningrequests",
                "create get list watch",
            )],
        ),
        role(
            "system:node-problem-detector",
            vec![
                rule(CORE, "nodes", "get"),
                rule(CORE, "nodes/status", "patch"),
                rule(EVENT_GROUPS, "events", EVENT_WRITE),
            ],
        ),
        role(
            "system:node-proxier",
            vec![
                rule(CORE, "endpoints services", "list watch"),
                rule(CORE, "nodes", READ),
                rule(EVENT_GROUPS, "events", EVENT_WRITE),
                rule(&["discovery.k8s.io"], "endpointslices", "list watch"),
            ],
        ),
        role(
            "system:persistent-volume-provisioner",
            vec![
                rule(CORE, "persistentvolumes", "create delete get list watch"),
                rule(CORE, "persistentvolumeclaims", "get list update watch"),
                rule(&["storage.k8s.io"], "storageclasses", READ),
                rule(CORE, "events", "watch"),
                rule(EVENT_GROUPS, "events", EVENT_WRITE),
            ],
        ),
        // What even unauthenticated clients may see: health and version.
        role(
            "system:public-info-viewer",
            vec![urls("/healthz /livez /readyz /version /version/", "get")],
        ),
        role(
            "system:service-account-issuer-discovery",
            vec![urls("/.well-known/openid-configuration /openid/v1/jwks", "get")],
        ),
        role(
            "system:volume-scheduler",
            vec![
                rule(CORE, "persistentvolumes", "get list patch update watch"),
                rule(&["storage.k8s.io"], "storageclasses", READ),
                rule(CORE, "persistentvolumeclaims", "get list patch update watch"),
            ],
        ),
    ];
    for kind in ["nodeclient", "selfnodeclient"] {
        let name = format!("system:certificates.k8s.io:certificatesigningrequests:{kind}");
        let resource = format!("certificatesigningrequests/{kind}");
        roles.push(role(&name, vec![rule(&["certificates.k8s.io"], &resource, "create")]));
    }
    for signer in [
        "kube-apiserver-client",
        "kube-apiserver-client-kubelet",
        "kubelet-serving",
        "legacy-unknown",
    ] {
        let name = format!("system:certificates.k8s.io:{signer}-approver");
        let signer_name = format!("kubernetes.io/{signer}");
        roles.push(role(
            &name,
            vec![named("certificates.k8s.io", "signers", &signer_name, "approve")],
        ));
    }
    roles
}

fn aggregate_to_admin() -> Vec<Value> {
    vec![
        rule(&["authorization.k8s.io"], "localsubjectaccessreviews", "create"),
        rule(&["rbac.authorization.k8s.io"], "rolebindings roles", READ_WRITE),
    ]
}

fn aggregate_to_edit() -> Vec<Value> {
    vec![
        // Reading secrets and attaching to pods are left out of view on purpose.
        rule(
            CORE,
            "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy",
            READ,
        ),
        rule(CORE, "serviceaccounts", "impersonate"),
        rule(CORE, "pods pods/attach pods/exec pods/portforward pods/proxy", WRITE),
        rule(CORE, "pods/eviction", "create"),
        rule(
            CORE,
            "configmaps events persistentvolumeclaims replicationcontrollers replicationcontrollers/scale \
             secrets serviceaccounts services services/proxy",
            WRITE,
        ),
        rule(CORE, "serviceaccounts/token", "create"),
        rule(
            &["apps"],
            "daemonsets deployments deployments/rollback deployments/scale replicasets replicasets/scale \
             statefulsets statefulsets/scale",
            WRITE,
        ),
        rule(&["autoscaling"], "horizontalpodautoscalers", WRITE),
        rule(&["batch"], "cronjobs jobs", WRITE),
        rule(
            &["extensions"],
            "daemonsets deployments deployments/rollback deployments/scale ingresses networkpolicies \
             replicasets replicasets/scale replicationcontrollers/scale",
            WRITE,
        ),
        rule(&["policy"], "poddisruptionbudgets", WRITE),
        rule(&["networking.k8s.io"], "ingresses networkpolicies", WRITE),
        rule(&["coordination.k8s.io"], "leases", READ_WRITE),
    ]
}

fn aggregate_to_view() -> Vec<Value> {
    vec![
        rule(
            CORE,
            "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods \
             replicationcontrollers replicationcontrollers/scale serviceaccounts services services/status",
            READ,
        ),
        rule(
            CORE,
            "bindings events limitranges namespaces/status pods/log pods/status replicationcontrollers/status \
             resourcequotas resourcequotas/status",
            READ,
        ),
        // Bound in a namespace, this lets a user read that one namespace.
        rule(CORE, "namespaces", READ),
        rule(&["discovery.k8s.io"], "endpointslices", READ),
        rule(
            &["apps"],
            "controllerrevisions daemonsets daemonsets/status deployments deployments/scale deployments/status \
             replicasets replicasets/scale replicasets/status statefulsets statefulsets/scale statefulsets/status",
            READ,
        ),
        rule(
            &["autoscaling"],
            "horizontalpodautoscalers horizontalpodautoscalers/status",
            READ,
        ),
        rule(&["batch"], "cronjobs cronjobs/status jobs jobs/status", READ),
        rule(
            &["extensions"],
            "daemonsets daemonsets/status deployments deployments/scale deployments/status ingresses \
             ingresses/status networkpolicies replicasets replicasets/scale replicasets/status \
             replicationcontrollers/scale",
            READ,
        ),
        rule(&["policy"], "poddisruptionbudgets poddisruptionbudgets/status", READ),
        rule(
            &["networking.k8s.io"],
            "ingresses ingresses/status networkpolicies",
            READ,
        ),
    ]
}

fn kube_controller_manager() -> Vec<Value> {
    vec![
        rule(EVENT_GROUPS, "events", EVENT_WRITE),
        rule(&["coordination.k8s.io"], "leases", "create"),
        named("coordination.k8s.io", "leases", "kube-controller-manager", "get update"),
        rule(CORE, "secrets serviceaccounts", "create"),
        rule(CORE, "secrets", "delete"),
        rule(CORE, "configmaps namespaces secrets serviceaccounts", "get"),
        rule(CORE, "secrets serviceaccounts", "update"),
        rule(&["authentication.k8s.io"], "tokenreviews", "create"),
        rule(&["authorization.k8s.io"], "subjectaccessreviews", "create"),
        // Lets the shared informers start. Each controller then acts under its
        // own service account.
        rule(&["*"], "*", "list watch"),
        rule(CORE, "serviceaccounts/token", "create"),
    ]
}

fn kube_scheduler() -> Vec<Value> {
    vec![
        rule(EVENT_GROUPS, "events", EVENT_WRITE),
        rule(&["coordination.k8s.io"], "leases", "create"),
        named("coordination.k8s.io", "leases", "kube-scheduler", "get update"),
        rule(CORE, "nodes", READ),
        rule(CORE, "pods", "delete get list watch"),
        rule(CORE, "bindings pods/binding", "create"),
        rule(CORE, "pods/status", "patch update"),
        rule(CORE, "replicationcontrollers services", READ),
        rule(&["apps", "extensions"], "replicasets", READ),
        rule(&["apps"], "statefulsets", READ),
        rule(&["policy"], "poddisruptionbudgets", READ),
        rule(CORE, "persistentvolumeclaims persistentvolumes", READ),
        rule(&["authentication.k8s.io"], "tokenreviews", "create"),
        rule(&["authorization.k8s.io"], "subjectaccessreviews", "create"),
        rule(&["storage.k8s.io"], "csinodes", READ),
        rule(CORE, "namespaces", READ),
        rule(&["storage.k8s.io"], "csidrivers", READ),
        rule(&["storage.k8s.io"], "csistoragecapacities", READ),
    ]
}

fn node() -> Vec<Value> {
    vec![
        rule(&["authentication.k8s.io"], "tokenreviews", "create"),
        rule(
            &["authorization.k8s.io"],
            "localsubjectaccessreviews subjectaccessreviews",
            "create",
        ),
        rule(CORE, "services", READ),
        rule(CORE, "nodes", "create get list watch"),
        rule(CORE, "nodes/status", "patch update"),
        rule(CORE, "nodes", "patch update"),
        rule(CORE, "events", EVENT_WRITE),
        rule(CORE, "pods", READ),
        // Mirror pods of static pods.
        rule(CORE, "pods", "create delete"),
        rule(CORE, "pods/status", "patch update"),
        rule(CORE, "pods/eviction", "create"),
        rule(CORE, "configmaps secrets", READ),
        rule(CORE, "persistentvolumeclaims persistentvolumes", "get"),
        rule(CORE, "endpoints", "get"),
        rule(
            &["certificates.k8s.io"],
            "certificatesigningrequests",
            "create get list watch",
        ),
        rule(&["coordination.k8s.io"], "leases", "create delete get patch update"),
        rule(&["storage.k8s.io"], "volumeattachments", "get"),
        rule(CORE, "serviceaccounts/token", "create"),
        rule(CORE, "persistentvolumeclaims/status", "get patch update"),
        rule(&["storage.k8s.io"], "csidrivers", READ),
        rule(&["storage.k8s.io"], "csinodes", "create delete get patch update"),
        rule(&["node.k8s.io"], "runtimeclasses", READ),
    ]
}

fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

fn user(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name})
}

/// A ClusterRoleBinding of the ClusterRole of the same name.
fn binding(name: &str, subjects: Vec<Value>) -> Value {
    let mut v = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
    });
    // Kubernetes leaves out an empty subject list instead of writing `[]`.
    if let (false, Some(map)) = (subjects.is_empty(), v.as_object_mut()) {
        map.insert("subjects".to_owned(), Value::Array(subjects));
    }
    v
}

/// Every default ClusterRoleBinding, as a full object.
pub fn cluster_role_bindings() -> Vec<Value> {
    let authenticated = || group("system:authenticated");
    vec![
        binding("cluster-admin", vec![group("system:masters")]),
        binding("system:monitoring", vec![group("system:monitoring")]),
        // Since 1.14 discovery requires authentication. Unauthenticated
        // clients only get system:public-info-viewer.
        binding("system:discovery", vec![authenticated()]),
        binding("system:basic-user", vec![authenticated()]),
        binding(
            "system:public-info-viewer",
            vec![authenticated(), group("system:unauthenticated")],
        ),
        binding("system:node-proxier", vec![user("system:kube-proxy")]),
        // skiff's agent runs the service proxy in-process, with the node's credentials.
        // (Remove this binding when proxies run apart with their own, as `skiff proxy` can.)
        {
            let mut b = binding("system:node-proxier", vec![group("system:nodes")]);
            b["metadata"]["name"] = json!("skiff:node-proxier");
            b
        },
        binding(
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        binding(
            "system:kube-dns",
            vec![json!({"kind": "ServiceAccount", "name": "kube-dns", "namespace": "kube-system"})],
        ),
        binding("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        binding("system:volume-scheduler", vec![user("system:kube-scheduler")]),
        // Kubernetes keeps this binding with no subjects. Binding the
        // system:nodes group was deprecated in 1.7, when the Node authorizer
        // took over, and the empty binding lets the startup reconciler remove
        // old subjects.
        binding("system:node", Vec::new()),
        binding(
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::rbac::{Attributes, ClusterRole, ClusterRoleBinding, Policy, PolicyRule, User};
    use super::*;
    use std::collections::BTreeSet;

    fn policy() -> Policy {
        let mut p = Policy::new();
        for obj in cluster_roles().iter().chain(cluster_role_bindings().iter()) {
            p.upsert_object(obj).expect("bootstrap objects are valid");
        }
        p
    }

    fn in_ns(name: &str, role: &str, ns: &str) -> Policy {
        let mut p = policy();
        let binding = json!({"kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
            "subjects": [{"kind": "User", "name": "u"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}});
        p.upsert_object(&binding).expect("valid binding");
        p
    }

    fn u() -> User {
        User::new("u", &["system:authenticated"])
    }

    fn can(p: &Policy, user: &User, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
        p.authorize(&Attributes::resource(user.clone(), verb, group, resource, ns))
            .allowed
    }

    fn can_get(p: &Policy, user: &User, path: &str) -> bool {
        p.authorize(&Attributes::non_resource(user.clone(), "get", path))
            .allowed
    }

    #[test]
    fn every_object_is_well_formed_and_parses() {
        let roles = cluster_roles();
        let bindings = cluster_role_bindings();
        let mut names = BTreeSet::new();
        for obj in &roles {
            let role = ClusterRole::from_object(obj).expect("parses");
            assert!(names.insert(role.name.clone()), "duplicate {}", role.name);
            assert_eq!(obj["apiVersion"], "rbac.authorization.k8s.io/v1");
            assert_eq!(
                role.labels.get("kubernetes.io/bootstrapping").map(String::as_str),
                Some("rbac-defaults")
            );
            assert_eq!(
                obj["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
                "true"
            );
            assert!(
                role.aggregation_rule.is_some() || !role.rules.is_empty(),
                "{} grants nothing",
                role.name
            );
        }
        assert_eq!(roles.len(), 31);
        for obj in &bindings {
            let b = ClusterRoleBinding::from_object(obj).expect("parses");
            assert!(names.contains(&b.role_ref.name), "{} binds a missing role", b.name);
            assert_eq!(obj["kind"], "ClusterRoleBinding");
        }
    }

    #[test]
    fn admin_aggregates_edit_which_aggregates_view() {
        let p = policy();
        let admin = p.cluster_role_rules("admin").expect("admin exists");
        for part in [
            "system:aggregate-to-admin",
            "system:aggregate-to-edit",
            "system:aggregate-to-view",
        ] {
            let rules: Vec<PolicyRule> = cluster_roles()
                .iter()
                .filter(|o| o["metadata"]["name"] == part)
                .filter_map(|o| ClusterRole::from_object(o).ok())
                .flat_map(|r| r.rules)
                .collect();
            assert!(
                !rules.is_empty() && rules.iter().all(|r| admin.contains(r)),
                "admin lacks {part}"
            );
        }
        let view = p.cluster_role_rules("view").expect("view exists");
        assert!(view
            .iter()
            .all(|r| !r.api_groups.contains(&"rbac.authorization.k8s.io".to_owned())));
    }

    #[test]
    fn admin_bound_in_a_namespace_manages_it_and_nothing_else() {
        let p = in_ns("admins", "admin", "a");
        assert!(can(&p, &u(), "create", "apps", "deployments", "a"));
        assert!(can(
            &p,
            &u(),
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            "a"
        ));
        assert!(can(&p, &u(), "get", "", "secrets", "a"));
        assert!(can(&p, &u(), "list", "", "pods", "a"));
        assert!(!can(&p, &u(), "create", "apps", "deployments", "b"));
        assert!(!can(&p, &u(), "create", "", "resourcequotas", "a"));
        assert!(!can(&p, &u(), "list", "", "nodes", ""));
    }

    #[test]
    fn view_reads_but_not_secrets_and_edit_writes_but_not_roles() {
        let view = in_ns("viewers", "view", "a");
        assert!(can(&view, &u(), "list", "", "pods", "a"));
        let log = Attributes::resource(u(), "get", "", "pods", "a")
            .with_name("p")
            .with_subresource("log");
        assert!(view.authorize(&log).allowed);
        assert!(!can(&view, &u(), "get", "", "secrets", "a"));
        assert!(!can(&view, &u(), "create", "", "pods", "a"));
        let edit = in_ns("editors", "edit", "a");
        assert!(can(&edit, &u(), "create", "", "secrets", "a"));
        assert!(can(&edit, &u(), "watch", "apps", "deployments", "a"));
        assert!(!can(&edit, &u(), "create", "rbac.authorization.k8s.io", "roles", "a"));
        let exec = Attributes::resource(u(), "create", "", "pods", "a")
            .with_name("p")
            .with_subresource("exec");
        assert!(edit.authorize(&exec).allowed);
    }

    #[test]
    fn system_masters_may_do_anything() {
        let p = policy();
        let root = User::new("root", &["system:masters", "system:authenticated"]);
        assert!(can(&p, &root, "delete", "", "nodes", ""));
        assert!(can(
            &p,
            &root,
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            ""
        ));
        assert!(can_get(&p, &root, "/metrics"));
        let d = p.authorize(&Attributes::non_resource(root, "post", "/anything"));
        assert_eq!(
            d.reason,
            r#"RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters""#
        );
    }

    #[test]
    fn every_authenticated_user_gets_discovery_and_self_review() {
        let p = policy();
        for path in [
            "/version",
            "/api",
            "/api/v1",
            "/apis",
            "/apis/apps/v1",
            "/openapi/v3",
            "/healthz",
        ] {
            assert!(can_get(&p, &u(), path), "{path}");
        }
        assert!(can(
            &p,
            &u(),
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            ""
        ));
        assert!(can(
            &p,
            &u(),
            "create",
            "authorization.k8s.io",
            "selfsubjectrulesreviews",
            ""
        ));
        assert!(can(
            &p,
            &u(),
            "create",
            "authentication.k8s.io",
            "selfsubjectreviews",
            ""
        ));
        assert!(!can(&p, &u(), "list", "", "pods", "default"));
        assert!(!can(
            &p,
            &u(),
            "create",
            "authorization.k8s.io",
            "subjectaccessreviews",
            ""
        ));
        assert!(!can_get(&p, &u(), "/metrics"));
        let anonymous = User::new("system:anonymous", &["system:unauthenticated"]);
        assert!(can_get(&p, &anonymous, "/healthz"));
        assert!(can_get(&p, &anonymous, "/version"));
        assert!(!can_get(&p, &anonymous, "/api"));
    }

    #[test]
    fn components_get_their_roles_and_kubelets_only_the_proxiers() {
        let p = policy();
        let scheduler = User::new("system:kube-scheduler", &["system:authenticated"]);
        let bind = Attributes::resource(scheduler.clone(), "create", "", "pods", "ns").with_subresource("binding");
        assert!(p.authorize(&bind).allowed);
        assert!(can(&p, &scheduler, "update", "", "persistentvolumeclaims", "ns"));
        let proxy = User::new("system:kube-proxy", &[]);
        assert!(can(&p, &proxy, "watch", "discovery.k8s.io", "endpointslices", ""));
        let kcm = User::new("system:kube-controller-manager", &[]);
        assert!(can(&p, &kcm, "list", "apps", "deployments", ""));
        assert!(!can(&p, &kcm, "create", "apps", "deployments", "ns"));
        let monitor = User::new("prometheus", &["system:monitoring"]);
        assert!(can_get(&p, &monitor, "/metrics") && can_get(&p, &monitor, "/readyz/etcd"));
        let dns = User::service_account("kube-system", "kube-dns");
        assert!(can(&p, &dns, "list", "", "services", ""));
        let sa = User::service_account("default", "app");
        assert!(can_get(&p, &sa, "/openid/v1/jwks"));
        // Nodes get only the proxier's read rules from RBAC (skiff's agent runs the proxy);
        // the rest of what a kubelet may do is the Node authorizer's.
        let kubelet = User::new("system:node:n1", &["system:nodes"]);
        assert!(can(&p, &kubelet, "watch", "discovery.k8s.io", "endpointslices", ""));
        assert!(!can(&p, &kubelet, "create", "", "pods", "ns"));
        assert!(!can(&p, &kubelet, "get", "", "secrets", "ns"));
        assert!(!can(&p, &kubelet, "update", "", "nodes", ""));
    }
}

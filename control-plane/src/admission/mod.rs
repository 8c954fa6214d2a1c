//! The admission chain: what runs on an object after authorization, defaults and validation,
//! before it is stored. Mutating plugins first, then validating ones, in kube-apiserver's order:
//! NamespaceLifecycle, LimitRanger, DefaultTolerationSeconds, NodeRestriction, then PodSecurity and
//! ResourceQuota
//! last (quota is charged only for objects every other plugin accepted). The plugins are pure
//! (`lifecycle`, `limit_ranger`, `toleration_seconds`, `pod_security`, `quota`); this module feeds
//! them from informer caches and charges quota in the store.
//!
//! # Layout
//! - `lifecycle`: NamespaceLifecycle.
//! - `node_restriction`: what a node's identity may write.
//! - `limit_ranger`: LimitRange defaults and bounds.
//! - `toleration_seconds`: DefaultTolerationSeconds.
//! - `pod_security`: PodSecurity levels by namespace label.
//! - `priority`: pod priority from PriorityClasses.
//! - `quota`: ResourceQuota usage and limits; `quantity`: resource quantities.

pub mod lifecycle;
pub mod limit_ranger;
pub mod node_restriction;
pub mod pod_security;
pub mod priority;
pub mod quantity;
pub mod quota;
pub mod toleration_seconds;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};
use crate::informer::{self, Cache, Synced};
use crate::pki::UserInfo;
use crate::registry::{self, Resource};
use crate::storage::Storage;
use node_restriction::Operation;

/// How often a quota whose usage changed is charged again after losing a race.
const QUOTA_RETRIES: usize = 8;

/// The caches the plugins read: namespaces, LimitRanges, ResourceQuotas.
pub struct Admission {
    namespaces: Arc<Cache>,
    limit_ranges: Arc<Cache>,
    quotas: Arc<Cache>,
    service_accounts: Arc<Cache>,
    priority_classes: Arc<Cache>,
    synced: Vec<Synced>,
}

/// What is being admitted.
pub struct Request<'a> {
    pub user: &'a UserInfo,
    pub res: &'static Resource,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub dry_run: bool,
}

impl Admission {
    pub fn start(storage: &Storage, shutdown: &CancellationToken) -> Admission {
        let mut synced = Vec::new();
        let mut cache = |group_version: (&str, &str), plural: &str| {
            let c = Arc::new(Cache::default());
            if let Some(res) = registry::lookup(group_version.0, group_version.1, plural) {
                let (_task, s) = informer::spawn(storage.clone(), res, c.clone(), shutdown.clone());
                synced.push(s);
            }
            c
        };
        let core = ("", "v1");
        let namespaces = cache(core, "namespaces");
        let limit_ranges = cache(core, "limitranges");
        let quotas = cache(core, "resourcequotas");
        let service_accounts = cache(core, "serviceaccounts");
        let priority_classes = cache(("scheduling.k8s.io", "v1"), "priorityclasses");
        Admission {
            namespaces,
            limit_ranges,
            quotas,
            service_accounts,
            priority_classes,
            synced,
        }
    }

    /// Whether every cache has caught up to `rev`, waiting up to `timeout`.
    pub async fn wait_for(&self, rev: i64, timeout: std::time::Duration) -> bool {
        let all = async {
            for s in &self.synced {
                if !s.wait_for(rev).await {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, all).await.unwrap_or(false)
    }

    /// Namespaces (not being deleted) whose `default` service account the caches do not hold:
    /// those created before skiff made it with the namespace, or whose account was deleted.
    pub fn namespaces_without_default_account(&self) -> Vec<String> {
        self.namespaces
            .list("")
            .iter()
            .filter(|n| n.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null))
            .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
            .filter(|ns| self.service_accounts.get(ns, crate::serviceaccount::DEFAULT).is_none())
            .map(str::to_string)
            .collect()
    }

    /// ServiceAccount admission of a new pod (see [`crate::serviceaccount::admit_pod`]). The
    /// account comes from the cache, or from the store when the cache has not seen it yet (an
    /// account created a moment ago).
    pub async fn admit_service_account(&self, storage: &Storage, r: &Request<'_>, pod: &mut Value) -> ApiResult<()> {
        let (Some(ns), true, None) = (r.namespace, is_pod(r.res), r.subresource) else {
            return Ok(());
        };
        // Mirror pods (static pods reflected by a node) get no service account: a node must not
        // gain a way to any account's tokens through them, as in Kubernetes.
        let mirror = format!(
            "/metadata/annotations/{}",
            node_restriction::MIRROR_ANNOTATION.replace('/', "~1")
        );
        if pod.pointer(&mirror).is_some() {
            return Ok(());
        }
        let name = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(crate::serviceaccount::DEFAULT)
            .to_string();
        let sa = match self.service_accounts.get(ns, &name) {
            Some(sa) => Some(sa),
            None => match registry::lookup("", "v1", "serviceaccounts") {
                Some(res) => storage.get(res, Some(ns), &name, false).await?.map(|s| s.obj),
                None => None,
            },
        };
        crate::serviceaccount::admit_pod(pod, ns, sa.as_ref()).map_err(|m| forbidden(r, &m))
    }

    /// The mutating and validating plugins for a create, except quota (see [`Admission::charge`]).
    /// Returns warnings for the client.
    pub fn admit_create(&self, r: &Request<'_>, obj: &mut Value) -> ApiResult<Vec<String>> {
        let mut warnings = Vec::new();
        restrict_node(r, Operation::Create, Some(obj), None)?;
        self.admit_priority_class(r, obj)?;
        let Some(ns) = r.namespace.filter(|_| r.res.namespaced) else {
            return Ok(warnings);
        };
        let ns_obj = self.namespaces.get("", ns);
        lifecycle::admit_create(r.res, ns, r.name, ns_obj.as_ref())?;
        if is_pod(r.res) && r.subresource.is_none() {
            let ranges = self.limit_ranges.list(ns);
            limit_ranger::admit_pod(obj, &ranges).map_err(|m| forbidden(r, &m))?;
            toleration_seconds::apply(obj);
            priority::admit_pod(obj, &self.priority_classes.list("")).map_err(|m| forbidden(r, &m))?;
            if let Some(n) = &ns_obj {
                warnings.extend(pod_security::check(n, obj).map_err(|m| forbidden(r, &m))?);
            }
        }
        Ok(warnings)
    }

    /// The validating plugins for an update of a pod: LimitRanger and PodSecurity look at the
    /// new pod too (Kubernetes checks updates; most pod fields are immutable anyway).
    pub fn admit_update(&self, r: &Request<'_>, obj: &mut Value, old: &Value) -> ApiResult<Vec<String>> {
        let mut warnings = Vec::new();
        restrict_node(r, Operation::Update, Some(obj), Some(old))?;
        self.admit_priority_class(r, obj)?;
        let Some(ns) = r.namespace.filter(|_| is_pod(r.res) && r.subresource.is_none()) else {
            return Ok(warnings);
        };
        if let Some(n) = self.namespaces.get("", ns) {
            warnings.extend(pod_security::check(&n, obj).map_err(|m| forbidden(r, &m))?);
        }
        Ok(warnings)
    }

    /// ResourceQuota: charges what `obj` adds (minus what `old` held) to every quota of its
    /// namespace that constrains it, each with a compare-and-swap on the quota's revision, or
    /// refuses with Kubernetes' "exceeded quota" message. Nothing is charged on a dry run.
    /// Kubernetes charges pods on create only, services on create and update, the rest on create.
    pub async fn charge(&self, storage: &Storage, r: &Request<'_>, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
        let Some(ns) = r.namespace.filter(|_| r.res.namespaced) else {
            return Ok(());
        };
        if r.subresource.is_some() || (old.is_some() && !(r.res.group.is_empty() && r.res.plural == "services")) {
            return Ok(());
        }
        let Some(quota_res) = registry::lookup("", "v1", "resourcequotas") else {
            return Ok(());
        };
        if self.quotas.list(ns).is_empty() {
            return Ok(());
        }
        // Quotas already charged by an earlier attempt: a retry must not charge them twice.
        let mut charged: Vec<String> = Vec::new();
        for _ in 0..QUOTA_RETRIES {
            // The live quotas, not the cache: a charge must start from the latest usage.
            let page = storage
                .list(&crate::storage::ListSpec::all(&quota_res.list_prefix(Some(ns))), None)
                .await?;
            let quotas: Vec<Value> = page.items.iter().map(|s| s.obj.clone()).collect();
            let charges = quota::admit(&quotas, r.res.plural, r.res.group, obj, old).map_err(|m| forbidden(r, &m))?;
            if r.dry_run || charges.is_empty() {
                return Ok(());
            }
            let mut lost_race = false;
            for (i, used) in charges {
                let (Some(stored), Some(q)) = (page.items.get(i), quotas.get(i)) else {
                    continue;
                };
                let name = crate::meta::name(q).unwrap_or_default().to_string();
                if charged.contains(&name) {
                    continue;
                }
                let mut q = q.clone();
                q["status"]["used"] = json!(used);
                match storage.update(quota_res, Some(ns), &name, &q, stored.rv).await {
                    Ok(_) => charged.push(name),
                    Err(e) if e.code == 409 => {
                        lost_race = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !lost_race {
                return Ok(());
            }
        }
        Err(ApiError::new(
            409,
            "Conflict",
            "Operation cannot be fulfilled on resourcequotas: the quota changed too often; try again",
        ))
    }
}

impl Admission {
    /// Priority's checks of PriorityClass writes.
    fn admit_priority_class(&self, r: &Request<'_>, obj: &Value) -> ApiResult<()> {
        if r.res.group != "scheduling.k8s.io" || r.res.plural != "priorityclasses" {
            return Ok(());
        }
        let others: Vec<Value> = self
            .priority_classes
            .list("")
            .into_iter()
            .filter(|c| c.pointer("/metadata/name").and_then(Value::as_str) != Some(r.name))
            .collect();
        priority::admit_class(obj, &others).map_err(|m| forbidden(r, &m))
    }
}

/// The plugins that look at deletes: NodeRestriction.
pub fn admit_delete(r: &Request<'_>, old: &Value) -> ApiResult<()> {
    restrict_node(r, Operation::Delete, None, Some(old))
}

/// NodeRestriction, for requests made by a node's identity.
fn restrict_node(r: &Request<'_>, op: Operation, obj: Option<&Value>, old: Option<&Value>) -> ApiResult<()> {
    let user = crate::auth::user_of(r.user);
    let Some(node) = crate::auth::node::node_name(&user) else {
        return Ok(());
    };
    node_restriction::admit(&node_restriction::Write {
        node,
        op,
        group: r.res.group,
        plural: r.res.plural,
        subresource: r.subresource.unwrap_or(""),
        name: r.name,
        obj,
        old,
    })
    .map_err(|m| forbidden(r, &m))
}

fn is_pod(res: &Resource) -> bool {
    res.group.is_empty() && res.plural == "pods"
}

/// An admission refusal: 403 naming the object and the plugin, as kube-apiserver words it.
fn forbidden(r: &Request<'_>, message: &str) -> ApiError {
    let qualified = crate::error::qualified(r.res.group, r.res.plural);
    let subject = if r.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", r.name)
    };
    ApiError::new(403, "Forbidden", format!("{subject} is forbidden: {message}")).about(
        r.res.group,
        r.res.plural,
        r.name,
    )
}

/// Recomputes `status.used` of every quota from the objects in its namespace: what makes a new
/// quota usable and gives back what deleted objects held (kube-controller-manager's quota
/// controller does this). Idempotent, so every master may run it; each write is a
/// compare-and-swap. Returns how many quotas it rewrote.
pub async fn resync_quotas(storage: &Storage) -> ApiResult<usize> {
    let Some(quota_res) = registry::lookup("", "v1", "resourcequotas") else {
        return Ok(0);
    };
    let quotas = storage
        .list(&crate::storage::ListSpec::all(&quota_res.list_prefix(None)), None)
        .await?;
    let mut written = 0;
    for stored in &quotas.items {
        let q = &stored.obj;
        let ns = crate::meta::namespace(q).unwrap_or_default().to_string();
        let name = crate::meta::name(q).unwrap_or_default().to_string();
        let hard = quota::hard_of(q);
        let mut objects: Vec<(&'static Resource, Value)> = Vec::new();
        for res in registry::RESOURCES.iter().filter(|r| r.namespaced) {
            if !hard.keys().any(|k| quota::tracks(res.plural, res.group, k)) {
                continue;
            }
            let page = storage
                .list(&crate::storage::ListSpec::all(&res.list_prefix(Some(&ns))), None)
                .await?;
            objects.extend(page.items.into_iter().map(|s| (res, s.obj)));
        }
        let used: BTreeMap<String, String> = quota::recompute(q, objects.iter().map(|(r, o)| (r.plural, r.group, o)));
        let want_hard = q.pointer("/spec/hard").cloned().unwrap_or_else(|| json!({}));
        if q.pointer("/status/used") == Some(&json!(used)) && q.pointer("/status/hard") == Some(&want_hard) {
            continue;
        }
        let mut q = q.clone();
        q["status"] = json!({"hard": want_hard, "used": used});
        match storage.update(quota_res, Some(&ns), &name, &q, stored.rv).await {
            Ok(_) => written += 1,
            // Someone charged or changed it meanwhile: the next pass looks again.
            Err(e) if e.code == 409 || e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Runs [`resync_quotas`] every `every` until shutdown.
pub async fn run_quota_resync(storage: Storage, every: std::time::Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = resync_quotas(&storage).await {
            tracing::debug!(error = %e, "quota resync failed; retrying later");
        }
    }
}

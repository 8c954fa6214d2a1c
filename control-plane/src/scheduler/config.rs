//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1) to [`Profile`]s.
//!
//! Each profile starts from Kubernetes' default multi-point plugin set, then applies the user's
//! `multiPoint` (a `disabled` `"*"` drops every default; an `enabled` default plugin is replaced
//! in place, others are appended), then the `filter` / `score` sections, which override the
//! multi-point set for their extension point (`mergePluginSet` and `expandMultiPointPlugins` in
//! kube-scheduler). A score weight of 0 or none means 1.
//!
//! Errors name the offending field the way a user would find it in the file
//! (`profiles[0].plugins.score.enabled[1].name: unknown plugin "Foo"`). Plugins kube-scheduler has
//! but this core implements elsewhere or not at all (queue sort, binding, volumes) are accepted so
//! that configurations written for kube-scheduler load; they change nothing here.

use serde_json::Value;
use thiserror::Error;

use crate::scheduler::framework::{FitArgs, Profile, ScoringStrategy};
use crate::scheduler::plugins;

pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
pub const KIND: &str = "KubeSchedulerConfiguration";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A plugin list entry: name and optional weight.
type Entry = (String, Option<i64>);

struct PluginSet {
    enabled: Vec<Entry>,
    disabled: Vec<String>,
}

impl PluginSet {
    fn disables(&self, name: &str) -> bool {
        self.disabled.iter().any(|d| d == "*" || d == name)
    }
}

fn list<'a>(v: Option<&'a Value>, field: &str) -> Result<&'a [Value], ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid(field, "must be a list")),
    }
}

fn int(v: Option<&Value>, field: &str) -> Result<Option<i64>, ConfigError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n.as_i64().map(Some).ok_or_else(|| invalid(field, "must be an integer")),
    }
}

fn plugin_set(v: Option<&Value>, field: &str) -> Result<PluginSet, ConfigError> {
    let v = v.unwrap_or(&Value::Null);
    let mut set = PluginSet {
        enabled: Vec::new(),
        disabled: Vec::new(),
    };
    for (i, p) in list(v.get("enabled"), &format!("{field}.enabled"))?.iter().enumerate() {
        let f = format!("{field}.enabled[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if !plugins::is_known(name) {
            return Err(invalid(format!("{f}.name"), format!("unknown plugin {name:?}")));
        }
        if set.enabled.iter().any(|(n, _)| n == name) {
            return Err(invalid(format!("{f}.name"), format!("plugin {name:?} enabled twice")));
        }
        let weight = int(p.get("weight"), &format!("{f}.weight"))?;
        if let Some(w) = weight.filter(|w| *w < 0) {
            return Err(invalid(format!("{f}.weight"), format!("must be non-negative, got {w}")));
        }
        set.enabled.push((name.to_string(), weight));
    }
    for (i, p) in list(v.get("disabled"), &format!("{field}.disabled"))?
        .iter()
        .enumerate()
    {
        let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
        if name != "*" && !plugins::is_known(name) {
            return Err(invalid(
                format!("{field}.disabled[{i}].name"),
                format!("unknown plugin {name:?}"),
            ));
        }
        set.disabled.push(name.to_string());
    }
    Ok(set)
}

/// `mergePluginSet` of the defaults with the user's multiPoint.
fn merge_multi_point(user: &PluginSet) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for (name, weight) in plugins::DEFAULT_MULTI_POINT {
        if user.disables(name) {
            continue;
        }
        match user.enabled.iter().find(|(n, _)| n == name) {
            Some(custom) => out.push(custom.clone()),
            None => out.push((name.to_string(), (*weight > 0).then_some(*weight))),
        }
    }
    for e in &user.enabled {
        if !out.iter().any(|(n, _)| *n == e.0) {
            out.push(e.clone());
        }
    }
    out
}

/// The plugins of one extension point: multi-point ones it implements, minus its own disabled
/// and overridden ones, then its own enabled ones.
fn expand(
    multi: &[Entry],
    own: &PluginSet,
    implements: fn(&str) -> bool,
    field: &str,
    point: &str,
) -> Result<Vec<Entry>, ConfigError> {
    let mut out: Vec<Entry> = multi
        .iter()
        .filter(|(n, _)| implements(n) && !own.disables(n) && !own.enabled.iter().any(|(e, _)| e == n))
        .cloned()
        .collect();
    for (i, (name, weight)) in own.enabled.iter().enumerate() {
        if !implements(name) {
            return Err(invalid(
                format!("{field}.enabled[{i}].name"),
                format!("plugin {name:?} does not extend {point} plugin"),
            ));
        }
        out.push((name.clone(), *weight));
    }
    Ok(out)
}

fn fit_args(args: &Value, field: &str) -> Result<FitArgs, ConfigError> {
    let mut fit = FitArgs::default();
    let Some(strategy) = args.get("scoringStrategy").filter(|v| !v.is_null()) else {
        return Ok(fit);
    };
    let f = format!("{field}.scoringStrategy");
    fit.strategy = match strategy.get("type").and_then(Value::as_str) {
        None | Some("LeastAllocated") => ScoringStrategy::LeastAllocated,
        Some("MostAllocated") => ScoringStrategy::MostAllocated,
        Some(other) => {
            return Err(invalid(
                format!("{f}.type"),
                format!("unsupported scoring strategy {other:?}"),
            ))
        }
    };
    let resources = list(strategy.get("resources"), &format!("{f}.resources"))?;
    if !resources.is_empty() {
        fit.resources = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            let rf = format!("{f}.resources[{i}]");
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                return Err(invalid(format!("{rf}.name"), "required"));
            }
            let weight = int(r.get("weight"), &format!("{rf}.weight"))?.unwrap_or(1);
            if !(1..=100).contains(&weight) {
                return Err(invalid(
                    format!("{rf}.weight"),
                    format!("must be in the range [1, 100], got {weight}"),
                ));
            }
            fit.resources.push((name.to_string(), weight));
        }
    }
    Ok(fit)
}

fn percentage(v: Option<&Value>, field: &str) -> Result<Option<u32>, ConfigError> {
    match int(v, field)? {
        None | Some(0) => Ok(None),
        Some(p @ 1..=100) => Ok(u32::try_from(p).ok()),
        Some(p) => Err(invalid(field, format!("must be in the range [0, 100], got {p}"))),
    }
}

fn profile(v: &Value, index: usize, global_pct: Option<u32>) -> Result<Profile, ConfigError> {
    let base = format!("profiles[{index}]");
    let mut p = Profile {
        scheduler_name: v
            .get("schedulerName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default-scheduler")
            .to_string(),
        percentage_of_nodes_to_score: percentage(
            v.get("percentageOfNodesToScore"),
            &format!("{base}.percentageOfNodesToScore"),
        )?
        .or(global_pct),
        ..Profile::default()
    };
    let pl = v.get("plugins").unwrap_or(&Value::Null);
    let pf = format!("{base}.plugins");
    let multi = merge_multi_point(&plugin_set(pl.get("multiPoint"), &format!("{pf}.multiPoint"))?);
    let filter = plugin_set(pl.get("filter"), &format!("{pf}.filter"))?;
    let score = plugin_set(pl.get("score"), &format!("{pf}.score"))?;
    let post_filter = plugin_set(pl.get("postFilter"), &format!("{pf}.postFilter"))?;
    for point in [
        "queueSort",
        "preEnqueue",
        "preFilter",
        "preScore",
        "reserve",
        "permit",
        "preBind",
        "bind",
        "postBind",
    ] {
        plugin_set(pl.get(point), &format!("{pf}.{point}"))?;
    }
    p.filters = expand(&multi, &filter, plugins::is_filter, &format!("{pf}.filter"), "filter")?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    p.scores = expand(&multi, &score, plugins::is_score, &format!("{pf}.score"), "score")?
        .into_iter()
        .map(|(n, w)| (n, w.filter(|w| *w > 0).unwrap_or(1)))
        .collect();
    p.preemption = !expand(
        &multi,
        &post_filter,
        is_preemption,
        &format!("{pf}.postFilter"),
        "postFilter",
    )?
    .is_empty();

    for (i, c) in list(v.get("pluginConfig"), &format!("{base}.pluginConfig"))?
        .iter()
        .enumerate()
    {
        let f = format!("{base}.pluginConfig[{i}]");
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let args = c.get("args").unwrap_or(&Value::Null);
        match name {
            plugins::node_resources_fit::NAME => p.fit = fit_args(args, &format!("{f}.args"))?,
            plugins::inter_pod_affinity::NAME => {
                let field = format!("{f}.args.hardPodAffinityWeight");
                if let Some(w) = int(args.get("hardPodAffinityWeight"), &field)? {
                    if !(0..=100).contains(&w) {
                        return Err(invalid(field, format!("must be in the range [0, 100], got {w}")));
                    }
                    p.hard_pod_affinity_weight = w;
                }
            }
            n if plugins::is_known(n) => {}
            n => return Err(invalid(format!("{f}.name"), format!("unknown plugin {n:?}"))),
        }
    }
    Ok(p)
}

/// DefaultPreemption is the only PostFilter plugin.
fn is_preemption(name: &str) -> bool {
    name == plugins::DEFAULT_PREEMPTION
}

/// Parses a KubeSchedulerConfiguration; an empty document or one without profiles gives the
/// default profile.
pub fn load(yaml: &str) -> Result<Vec<Profile>, ConfigError> {
    let doc: Value = serde_yaml::from_str(yaml).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    if doc.is_null() {
        return Ok(vec![Profile::default()]);
    }
    if !doc.is_object() {
        return Err(invalid("", "must be a KubeSchedulerConfiguration object"));
    }
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some(API_VERSION) => {}
        other => {
            return Err(invalid(
                "apiVersion",
                format!("must be {API_VERSION:?}, got {:?}", other.unwrap_or("")),
            ))
        }
    }
    match doc.get("kind").and_then(Value::as_str) {
        Some(KIND) => {}
        other => {
            return Err(invalid(
                "kind",
                format!("must be {KIND:?}, got {:?}", other.unwrap_or("")),
            ))
        }
    }
    let global = percentage(doc.get("percentageOfNodesToScore"), "percentageOfNodesToScore")?;
    let entries = list(doc.get("profiles"), "profiles")?;
    if entries.is_empty() {
        return Ok(vec![Profile {
            percentage_of_nodes_to_score: global,
            ..Profile::default()
        }]);
    }
    let mut out: Vec<Profile> = Vec::new();
    for (i, v) in entries.iter().enumerate() {
        let p = profile(v, i, global)?;
        if out.iter().any(|o| o.scheduler_name == p.scheduler_name) {
            return Err(invalid(
                format!("profiles[{i}].schedulerName"),
                format!("duplicate scheduler name {:?}", p.scheduler_name),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";

    fn err(yaml: &str) -> String {
        load(&format!("{HEAD}{yaml}")).unwrap_err().to_string()
    }

    #[test]
    fn empty_and_profile_less_files_give_the_default() {
        assert_eq!(load("").unwrap(), vec![Profile::default()]);
        let p = load(&format!("{HEAD}percentageOfNodesToScore: 30\n")).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].percentage_of_nodes_to_score, Some(30));
        assert_eq!(p[0].filters, Profile::default().filters);
    }

    #[test]
    fn wrong_header_is_refused() {
        let e = load("apiVersion: v1\nkind: KubeSchedulerConfiguration\n").unwrap_err();
        assert!(e.to_string().starts_with("apiVersion: "), "{e}");
        let e = load("apiVersion: kubescheduler.config.k8s.io/v1\nkind: Pod\n").unwrap_err();
        assert!(e.to_string().starts_with("kind: "), "{e}");
    }

    #[test]
    fn unknown_plugin_and_negative_weight_name_the_field() {
        let yaml =
            "profiles:\n- plugins:\n    score:\n      enabled:\n      - name: ImageLocality\n      - name: Foo\n";
        assert_eq!(
            err(yaml),
            r#"profiles[0].plugins.score.enabled[1].name: unknown plugin "Foo""#
        );
        let yaml = "profiles:\n- plugins:\n    multiPoint:\n      enabled:\n      - name: TaintToleration\n        weight: -2\n";
        assert_eq!(
            err(yaml),
            "profiles[0].plugins.multiPoint.enabled[0].weight: must be non-negative, got -2"
        );
        let yaml = "profiles:\n- plugins:\n    filter:\n      enabled:\n      - name: ImageLocality\n";
        assert!(err(yaml).contains("does not extend filter plugin"));
        let yaml = "profiles:\n- pluginConfig:\n  - name: Nope\n";
        assert_eq!(err(yaml), r#"profiles[0].pluginConfig[0].name: unknown plugin "Nope""#);
    }

    #[test]
    fn star_disables_defaults_and_weights_override() {
        let yaml = "profiles:
- schedulerName: packer
  plugins:
    score:
      disabled:
      - name: '*'
      enabled:
      - name: NodeResourcesFit
        weight: 5
    multiPoint:
      disabled:
      - name: DefaultPreemption
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - name: cpu
          weight: 2
- schedulerName: spread
  plugins:
    multiPoint:
      enabled:
      - name: PodTopologySpread
        weight: 7
    filter:
      disabled:
      - name: NodePorts
";
        let p = load(&format!("{HEAD}{yaml}")).unwrap();
        assert_eq!(p[0].scheduler_name, "packer");
        assert_eq!(p[0].scores, vec![("NodeResourcesFit".to_string(), 5)]);
        assert!(!p[0].preemption);
        assert_eq!(p[0].fit.strategy, ScoringStrategy::MostAllocated);
        assert_eq!(p[0].fit.resources, vec![("cpu".to_string(), 2)]);
        assert_eq!(p[0].filters, Profile::default().filters, "filters untouched");
        assert!(p[1].preemption);
        assert!(p[1].scores.contains(&("PodTopologySpread".to_string(), 7)));
        assert!(!p[1].filters.iter().any(|f| f == "NodePorts"));
        assert_eq!(p[1].filters.len(), Profile::default().filters.len() - 1);
    }

    #[test]
    fn duplicate_names_and_bad_strategy_are_refused() {
        let yaml = "profiles:\n- schedulerName: a\n- schedulerName: a\n";
        assert_eq!(err(yaml), r#"profiles[1].schedulerName: duplicate scheduler name "a""#);
        let yaml = "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: RequestedToCapacityRatio\n";
        assert!(err(yaml).starts_with("profiles[0].pluginConfig[0].args.scoringStrategy.type"));
        assert!(err("percentageOfNodesToScore: 101\n").starts_with("percentageOfNodesToScore"));
    }
}

//! Priority: pods get `spec.priority` from their PriorityClass (or the cluster's default class,
//! or 0), as Kubernetes' plugin resolves it; the scheduler orders its queue by it. PriorityClass
//! writes are checked too: names starting with `system-` are reserved for the two built-in
//! classes, user values stop at one billion, and only one class may be the global default.

use serde_json::{json, Value};

/// The highest value a user-defined class may have.
pub const HIGHEST_USER_DEFINABLE: i64 = 1_000_000_000;
pub const SYSTEM_CLUSTER_CRITICAL: (&str, i64) = ("system-cluster-critical", 2_000_000_000);
pub const SYSTEM_NODE_CRITICAL: (&str, i64) = ("system-node-critical", 2_000_001_000);
const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// The built-in classes, created at start-up as Kubernetes' API server does.
pub fn system_classes() -> Vec<Value> {
    [
        (SYSTEM_CLUSTER_CRITICAL, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
        (SYSTEM_NODE_CRITICAL, "Used for system critical pods that must not be moved from their current node."),
    ]
    .into_iter()
    .map(|((name, value), description)| {
        json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": description,
            "preemptionPolicy": DEFAULT_PREEMPTION,
        })
    })
    .collect()
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

fn is_global_default(v: &Value) -> bool {
    v.get("globalDefault").and_then(Value::as_bool).unwrap_or(false)
}

/// Checks a PriorityClass being written against the existing ones (`others`, without it).
pub fn admit_class(class: &Value, others: &[Value]) -> Result<(), String> {
    let name = name_of(class);
    let value = class.get("value").and_then(Value::as_i64).unwrap_or(0);
    let system = [SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL];
    match system.iter().find(|(n, _)| *n == name) {
        Some((_, v)) if *v != value => {
            return Err(format!("{name} is a system priority class: its value must be {v}"));
        }
        Some(_) => {}
        None if name.starts_with("system-") => {
            return Err("priority class names with 'system-' prefix are reserved".to_string());
        }
        None if value > HIGHEST_USER_DEFINABLE => {
            return Err(format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"
            ));
        }
        None => {}
    }
    if is_global_default(class) {
        if let Some(d) = others.iter().find(|o| is_global_default(o) && name_of(o) != name) {
            return Err(format!(
                "PriorityClass {} is already marked as default. Only one default can exist",
                name_of(d)
            ));
        }
    }
    Ok(())
}

/// Resolves a new pod's priority from `classes` (every PriorityClass).
pub fn admit_pod(pod: &mut Value, classes: &[Value]) -> Result<(), String> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let wanted = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let (value, policy, class_name) = match &wanted {
        Some(n) => {
            let class = classes
                .iter()
                .find(|c| name_of(c) == n)
                .ok_or_else(|| format!("no PriorityClass with name {n} was found"))?;
            (
                class.get("value").and_then(Value::as_i64).unwrap_or(0),
                class
                    .get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or(DEFAULT_PREEMPTION),
                Some(n.clone()),
            )
        }
        None => match classes.iter().find(|c| is_global_default(c)) {
            Some(d) => (
                d.get("value").and_then(Value::as_i64).unwrap_or(0),
                d.get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or(DEFAULT_PREEMPTION),
                Some(name_of(d).to_string()),
            ),
            None => (0, DEFAULT_PREEMPTION, None),
        },
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != value {
            return Err(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
            ));
        }
    }
    spec.insert("priority".into(), json!(value));
    spec.insert("preemptionPolicy".into(), json!(policy));
    if let Some(n) = class_name {
        spec.insert("priorityClassName".into(), json!(n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i64, default: bool) -> Value {
        json!({"metadata": {"name": name}, "value": value, "globalDefault": default})
    }

    #[test]
    fn pods_take_their_class_value() {
        let classes = vec![class("high", 1000, false), system_classes()[1].clone()];
        let mut pod = json!({"spec": {"priorityClassName": "high"}});
        admit_pod(&mut pod, &classes).expect("admitted");
        assert_eq!(pod["spec"]["priority"], 1000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        let mut critical = json!({"spec": {"priorityClassName": "system-node-critical"}});
        admit_pod(&mut critical, &classes).expect("admitted");
        assert_eq!(critical["spec"]["priority"], 2_000_001_000);
        let mut plain = json!({"spec": {}});
        admit_pod(&mut plain, &classes).expect("admitted");
        assert_eq!(plain["spec"]["priority"], 0);
        assert!(plain["spec"].get("priorityClassName").is_none());
    }

    #[test]
    fn the_global_default_applies_to_pods_without_a_class() {
        let classes = vec![class("normal", 100, true)];
        let mut pod = json!({"spec": {}});
        admit_pod(&mut pod, &classes).expect("admitted");
        assert_eq!(
            (
                pod["spec"]["priority"].clone(),
                pod["spec"]["priorityClassName"].clone()
            ),
            (json!(100), json!("normal"))
        );
    }

    #[test]
    fn unknown_classes_and_forged_priorities_are_refused() {
        let mut pod = json!({"spec": {"priorityClassName": "ghost"}});
        assert_eq!(
            admit_pod(&mut pod, &[]).expect_err("ghost"),
            "no PriorityClass with name ghost was found"
        );
        let mut forged = json!({"spec": {"priority": 2_000_000_000}});
        assert!(admit_pod(&mut forged, &[])
            .expect_err("forged")
            .starts_with("the integer value of priority (2000000000)"));
    }

    #[test]
    fn class_rules() {
        assert!(admit_class(&class("system-mine", 1, false), &[]).is_err());
        assert!(admit_class(&system_classes()[0], &[]).is_ok());
        assert!(admit_class(&class("huge", HIGHEST_USER_DEFINABLE + 1, false), &[]).is_err());
        let existing = vec![class("a", 1, true)];
        assert_eq!(
            admit_class(&class("b", 2, true), &existing).expect_err("two defaults"),
            "PriorityClass a is already marked as default. Only one default can exist"
        );
        assert!(
            admit_class(&class("a", 5, true), &existing).is_ok(),
            "updating the default itself"
        );
    }
}

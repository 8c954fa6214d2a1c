//! A pod's status from what its worker knows (pure): phase, conditions and container statuses
//! with Kubernetes' rules, so `kubectl get pods` and `kubectl describe` read as they do there.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::record::{Record, State, Terminated};

/// Everything the status is computed from.
pub struct Observed<'a> {
    pub pod: &'a Pod,
    pub sandbox_ready: bool,
    pub records: &'a [Record],
    pub pod_ip: Option<String>,
    pub host_ip: String,
    pub start_time: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether every init container has completed successfully.
pub fn initialized(records: &[Record]) -> bool {
    records
        .iter()
        .filter(|r| r.init)
        .all(|r| r.terminated().is_some_and(|t| t.exit_code == 0))
}

pub fn phase(o: &Observed) -> &'static str {
    let policy = restart_policy(o.pod);
    let init_failed = o
        .records
        .iter()
        .any(|r| r.init && r.terminated().is_some_and(|t| t.exit_code != 0));
    if init_failed && policy == "Never" {
        return "Failed";
    }
    if !o.sandbox_ready || !initialized(o.records) {
        return "Pending";
    }
    let mains: Vec<&Record> = o.records.iter().filter(|r| !r.init).collect();
    let (mut running, mut never_started, mut restarting, mut failed) = (0, 0, 0, 0);
    for r in &mains {
        match &r.state {
            State::Running { .. } => running += 1,
            State::Waiting { .. } if r.last.is_none() => never_started += 1,
            State::Waiting { .. } => restarting += 1,
            State::Terminated(t) if t.exit_code != 0 => failed += 1,
            State::Terminated(_) => {}
        }
    }
    if never_started > 0 {
        "Pending"
    } else if running > 0 || restarting > 0 || policy == "Always" {
        "Running"
    } else if failed > 0 {
        "Failed"
    } else {
        "Succeeded"
    }
}

fn time(t: DateTime<Utc>) -> Time {
    Time(t)
}

fn terminated_state(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        container_id: t.container_id.as_ref().map(|id| format!("skiff://{id}")),
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(time),
        finished_at: Some(time(t.finished_at)),
    }
}

fn container_status(r: &Record) -> ContainerStatus {
    let state = match &r.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started_at, .. } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(terminated_state(t)),
            ..Default::default()
        },
    };
    let container_id = match &r.state {
        State::Running { container_id, .. } => Some(container_id.clone()),
        State::Terminated(t) => t.container_id.clone(),
        State::Waiting { .. } => None,
    };
    ContainerStatus {
        name: r.name.clone(),
        image: r.image.clone(),
        image_id: r.image_id.clone().unwrap_or_default(),
        container_id: container_id.map(|id| format!("skiff://{id}")),
        ready: r.ready && matches!(r.state, State::Running { .. }),
        started: Some(matches!(r.state, State::Running { .. })),
        restart_count: r.restart_count,
        state: Some(state),
        last_state: Some(
            r.last
                .as_ref()
                .map(|t| ContainerState {
                    terminated: Some(terminated_state(t)),
                    ..Default::default()
                })
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

fn condition(
    pod: &Pod,
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: DateTime<Utc>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status does.
    let previous = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
    let since = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(time(now)),
    };
    PodCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        last_transition_time: since,
        last_probe_time: None,
    }
}

pub fn pod_status(o: &Observed) -> PodStatus {
    let phase = phase(o);
    let done = phase == "Succeeded" || phase == "Failed";
    let incomplete: Vec<&str> = o
        .records
        .iter()
        .filter(|r| r.init && r.terminated().is_none_or(|t| t.exit_code != 0))
        .map(|r| r.name.as_str())
        .collect();
    let unready: Vec<&str> = o
        .records
        .iter()
        .filter(|r| !r.init && (!r.ready || !matches!(r.state, State::Running { .. })))
        .map(|r| r.name.as_str())
        .collect();
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let (ready_reason, ready_message) = if done {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!("containers with unready status: {}", list(&unready))),
        )
    };
    let init_done = incomplete.is_empty();
    let conditions = vec![
        condition(o.pod, "PodReadyToStartContainers", o.sandbox_ready, None, None, o.now),
        condition(
            o.pod,
            "Initialized",
            init_done,
            Some(if done {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
            Some(format!("containers with incomplete status: {}", list(&incomplete))),
            o.now,
        ),
        condition(
            o.pod,
            "Ready",
            unready.is_empty() && !done,
            Some(ready_reason),
            ready_message.clone(),
            o.now,
        ),
        condition(
            o.pod,
            "ContainersReady",
            unready.is_empty() && !done,
            Some(ready_reason),
            ready_message,
            o.now,
        ),
        condition(o.pod, "PodScheduled", true, None, None, o.now),
    ];
    let init_statuses: Vec<ContainerStatus> = o.records.iter().filter(|r| r.init).map(container_status).collect();
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(o.host_ip.clone()),
        host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP { ip: o.host_ip.clone() }]),
        pod_ip: o.pod_ip.clone(),
        pod_ips: o.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        start_time: Some(time(o.start_time)),
        container_statuses: Some(o.records.iter().filter(|r| !r.init).map(container_status).collect()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        qos_class: o.pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default", "uid": "u1"}, "spec": {"restartPolicy": policy, "containers": [{"name": "a", "image": "busybox"}]}})).unwrap_or_default()
    }

    fn term(code: i32) -> Terminated {
        Terminated {
            container_id: Some("c1".into()),
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed".into() } else { "Error".into() },
            message: None,
            started_at: Some(Utc::now()),
            finished_at: Utc::now(),
        }
    }

    fn observed<'a>(pod: &'a Pod, records: &'a [Record]) -> Observed<'a> {
        Observed {
            pod,
            sandbox_ready: true,
            records,
            pod_ip: Some("10.244.1.2".into()),
            host_ip: "192.168.1.1".into(),
            start_time: Utc::now(),
            now: Utc::now(),
        }
    }

    #[test]
    fn phases_follow_kubelet_rules() {
        let p = pod("Never");
        let mut r = Record::new("a", "busybox", false);
        assert_eq!(phase(&observed(&p, std::slice::from_ref(&r))), "Pending");
        r.state = State::Running {
            container_id: "c1".into(),
            started_at: Utc::now(),
        };
        assert_eq!(phase(&observed(&p, std::slice::from_ref(&r))), "Running");
        r.state = State::Terminated(term(0));
        assert_eq!(phase(&observed(&p, std::slice::from_ref(&r))), "Succeeded");
        r.state = State::Terminated(term(3));
        assert_eq!(phase(&observed(&p, std::slice::from_ref(&r))), "Failed");
        // Under Always a terminated container will run again: the pod is Running.
        let p = pod("Always");
        assert_eq!(phase(&observed(&p, std::slice::from_ref(&r))), "Running");
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod("Never");
        let mut init = Record::new("setup", "busybox", true);
        let main = Record::new("a", "busybox", false);
        let records = vec![init.clone(), main.clone()];
        let st = pod_status(&observed(&p, &records));
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let c = st.conditions.unwrap_or_default();
        let initialized = c
            .iter()
            .find(|c| c.type_ == "Initialized")
            .map(|c| (c.status.clone(), c.message.clone()));
        assert_eq!(
            initialized,
            Some((
                "False".into(),
                Some("containers with incomplete status: [setup]".into())
            ))
        );
        init.state = State::Terminated(term(1));
        let records = vec![init, main];
        assert_eq!(phase(&observed(&p, &records)), "Failed");
    }

    #[test]
    fn ready_when_all_running_and_ready() {
        let p = pod("Always");
        let mut r = Record::new("a", "busybox", false);
        r.state = State::Running {
            container_id: "c1".into(),
            started_at: Utc::now(),
        };
        r.ready = true;
        let st = pod_status(&observed(&p, std::slice::from_ref(&r)));
        let ready = st
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status);
        assert_eq!(ready.as_deref(), Some("True"));
        let cs = st.container_statuses.unwrap_or_default();
        assert_eq!(cs[0].container_id.as_deref(), Some("skiff://c1"));
        assert!(cs[0].ready);
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.1.2"));
    }
}

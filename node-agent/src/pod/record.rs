//! What a pod worker knows about each of its containers, and the restart rules (pure).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Kubernetes' crash-loop back-off: 10 s doubling to 5 min, reset after 10 min of running.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub container_id: Option<String>,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        container_id: String,
        started_at: DateTime<Utc>,
    },
    Terminated(Terminated),
}

/// One container (or init container) of a pod as its worker tracks it.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub init: bool,
    pub image: String,
    pub image_id: Option<String>,
    pub restart_count: i32,
    pub state: State,
    pub last: Option<Terminated>,
    /// The next delay if it fails again; `None` before its first failure.
    pub backoff: Option<Duration>,
    /// No start before this instant (crash-loop or image pull back-off).
    pub not_before: Option<tokio::time::Instant>,
    /// Readiness as the probes last said (true when it has no readiness probe and runs).
    pub ready: bool,
    /// The probes of the current run (reset at each start).
    pub probes: Vec<super::probe::ProbeState>,
}

impl Record {
    pub fn new(name: &str, image: &str, init: bool) -> Record {
        Record {
            name: name.to_string(),
            init,
            image: image.to_string(),
            image_id: None,
            restart_count: 0,
            state: State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            last: None,
            backoff: None,
            not_before: None,
            ready: false,
            probes: Vec::new(),
        }
    }

    pub fn running_id(&self) -> Option<&str> {
        match &self.state {
            State::Running { container_id, .. } => Some(container_id),
            _ => None,
        }
    }

    pub fn terminated(&self) -> Option<&Terminated> {
        match &self.state {
            State::Terminated(t) => Some(t),
            _ => None,
        }
    }
}

/// Whether a container that ended with `exit_code` runs again under the pod's restartPolicy.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The delay before the next start after a failure, and the back-off to remember: a container
/// that ran for 10 minutes starts over at the initial delay.
pub fn next_backoff(current: Option<Duration>, ran_for: Duration) -> (Duration, Duration) {
    let delay = match current {
        Some(d) if ran_for < BACKOFF_RESET => d,
        _ => Duration::ZERO,
    };
    let next = if delay.is_zero() {
        BACKOFF_INITIAL
    } else {
        (delay * 2).min(BACKOFF_MAX)
    };
    (delay, next)
}

/// The reason Kubernetes gives a terminated container.
pub fn exit_reason(exit_code: i32, oom: bool) -> &'static str {
    if oom {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_table() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        // First failure restarts at once; then 10 s, 20 s, ... capped at 5 min.
        let (d, n) = next_backoff(None, Duration::from_secs(1));
        assert_eq!((d, n), (Duration::ZERO, BACKOFF_INITIAL));
        let (d, n) = next_backoff(Some(n), Duration::from_secs(1));
        assert_eq!((d, n), (Duration::from_secs(10), Duration::from_secs(20)));
        let (d, _) = next_backoff(Some(Duration::from_secs(300)), Duration::from_secs(1));
        assert_eq!(d, BACKOFF_MAX);
        let (_, n) = next_backoff(Some(Duration::from_secs(300)), Duration::from_secs(1));
        assert_eq!(n, BACKOFF_MAX);
        // Ten minutes of running forgive the past.
        let (d, n) = next_backoff(Some(Duration::from_secs(160)), BACKOFF_RESET);
        assert_eq!((d, n), (Duration::ZERO, BACKOFF_INITIAL));
    }

    #[test]
    fn exit_reasons() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(137, true), "OOMKilled");
        assert_eq!(exit_reason(1, false), "Error");
    }
}

//! Pacing and bounds: when op `n` is due, and whether it may run at all (as in raft-store's
//! etcd load generator).
//!
//! Ops are numbered from 0 by a counter shared by all clients. With a target rate the schedule
//! is open-loop: op `n` is due `n / rate` seconds after the start, whoever takes it, so a slow
//! server does not slow the offered load down. Latency is then measured from the due instant,
//! not from the (possibly late) send, so time spent queued behind a slow server counts
//! (no coordinated omission). Without a rate every client sends its next op as soon as its
//! previous one completes (closed loop).

use std::time::Duration;

use raft_store::loadgen::MAX_DURATION;

#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Ops per second; `None` when unbounded.
    rate: Option<f64>,
}

impl Pacer {
    /// `rate <= 0` (or not finite) means unbounded.
    pub fn new(rate: f64) -> Self {
        Pacer {
            rate: (rate.is_finite() && rate > 0.0).then_some(rate),
        }
    }

    /// Offset from the start at which op `n` is due; `None` when unpaced (due now).
    pub fn due(&self, n: u64) -> Option<Duration> {
        self.rate.map(|r| Duration::from_secs_f64(n as f64 / r))
    }
}

/// A run stops after `total` ops or `duration`, whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub total: u64,
    pub duration: Duration,
}

impl Bounds {
    /// Clamps the duration to [`MAX_DURATION`].
    pub fn new(total: u64, duration: Duration) -> Self {
        Bounds {
            total,
            duration: duration.min(MAX_DURATION),
        }
    }

    /// May op `n` start, `elapsed` into the run, if it is due at `due`?
    pub fn admits(&self, n: u64, due: Option<Duration>, elapsed: Duration) -> bool {
        n < self.total && elapsed < self.duration && !matches!(due, Some(d) if d >= self.duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_ops_are_due_now() {
        assert_eq!(Pacer::new(0.0).due(5), None);
        assert_eq!(Pacer::new(-1.0).due(5), None);
        assert_eq!(Pacer::new(f64::NAN).due(5), None);
    }

    #[test]
    fn paced_ops_follow_a_fixed_schedule() {
        let p = Pacer::new(1000.0);
        assert_eq!(p.due(0), Some(Duration::ZERO));
        assert_eq!(p.due(1), Some(Duration::from_millis(1)));
        assert_eq!(p.due(2500), Some(Duration::from_millis(2500)));
        let p = Pacer::new(3.0);
        assert_eq!(p.due(3), Some(Duration::from_secs(1)));
    }

    #[test]
    fn bounds_stop_at_total_or_deadline() {
        let b = Bounds::new(100, Duration::from_secs(10));
        assert!(b.admits(0, None, Duration::ZERO));
        assert!(b.admits(99, None, Duration::from_secs(9)));
        assert!(!b.admits(100, None, Duration::ZERO), "total reached");
        assert!(!b.admits(5, None, Duration::from_secs(10)), "deadline passed");
        assert!(
            !b.admits(5, Some(Duration::from_secs(10)), Duration::from_secs(1)),
            "due after the deadline"
        );
        assert!(b.admits(5, Some(Duration::from_secs(9)), Duration::from_secs(1)));
    }

    #[test]
    fn duration_is_capped() {
        assert_eq!(Bounds::new(1, Duration::from_secs(100_000)).duration, MAX_DURATION);
    }
}

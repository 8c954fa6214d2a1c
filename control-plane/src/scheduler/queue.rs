//! The scheduling queue, as kube-scheduler's: pending pods live in exactly one of three places.
//! - **active**: ready to be tried, highest `spec.priority` first, then the one waiting longest;
//! - **backoff**: tried and failed, waiting 1 s doubling up to 10 s per attempt;
//! - **unschedulable**: found no node; they wait for an event that could change that (a node
//!   added or changed, a bound pod deleted: `move_all`) or for five minutes, whichever is first.
//!
//! A pod popped for scheduling is "in flight" until the runner reports `done`, `unschedulable`
//! or `error`. If a move event happened while it was in flight, an unschedulable result sends it
//! to backoff rather than to the unschedulable set: the event might be exactly the one it needs.
//! Pure: the caller passes the time, so tests need no clock.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::model::PodInfo;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// kube-scheduler's podMaxInUnschedulablePodsDuration.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// A pending pod: the decoded view the plugins read and the object as read (for the binding).
#[derive(Clone, Debug)]
pub struct QueuedPod {
    pub info: Arc<PodInfo>,
    pub obj: Arc<Value>,
    pub rv: i64,
    /// Digest of what scheduling depends on (spec, labels): a status-only update does not
    /// make an unschedulable pod worth another try.
    pub fingerprint: u64,
}

impl QueuedPod {
    pub fn key(&self) -> String {
        format!("{}/{}", self.info.namespace, self.info.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    InFlight { moves: u64 },
}

#[derive(Debug)]
struct Entry {
    pod: QueuedPod,
    place: Place,
    attempts: u32,
    /// Bumped whenever the entry is (re)queued, so stale heap and backoff items are skipped.
    gen: u64,
}

#[derive(Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<(i32, Reverse<u64>, u64, String)>,
    backoff: BTreeSet<(Instant, u64, String)>,
    seq: u64,
    moves: u64,
}

fn backoff_for(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

impl Queue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn activate(&mut self, key: &str) {
        let seq = self.next_seq();
        if let Some(e) = self.entries.get_mut(key) {
            e.place = Place::Active;
            e.gen = seq;
            self.active
                .push((e.pod.info.priority, Reverse(seq), seq, key.to_string()));
        }
    }

    fn back_off(&mut self, key: &str, now: Instant) {
        let seq = self.next_seq();
        if let Some(e) = self.entries.get_mut(key) {
            let until = now + backoff_for(e.attempts);
            e.place = Place::Backoff(until);
            e.gen = seq;
            self.backoff.insert((until, seq, key.to_string()));
        }
    }

    /// A pending pod seen (created or updated).
    pub fn add(&mut self, pod: QueuedPod, now: Instant) {
        let key = pod.key();
        match self.entries.get_mut(&key) {
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        place: Place::Active,
                        attempts: 0,
                        gen: 0,
                    },
                );
                self.activate(&key);
            }
            Some(e) => {
                let changed = e.pod.fingerprint != pod.fingerprint;
                let priority_changed = e.pod.info.priority != pod.info.priority;
                e.pod = pod;
                match e.place {
                    Place::Unschedulable(_) if changed => self.wake(&key, now),
                    Place::Active if priority_changed => self.activate(&key),
                    _ => {}
                }
            }
        }
    }

    /// An unschedulable pod may be worth another try: to backoff if it is still backing off.
    fn wake(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get(key) else {
            return;
        };
        if now < e.pod_backoff_until(now) {
            self.back_off(key, now);
        } else {
            self.activate(key);
        }
    }

    /// The pod is gone or bound by someone else.
    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// The cluster changed in a way that may let unschedulable pods fit.
    pub fn move_all(&mut self, now: Instant) {
        self.moves += 1;
        let keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.place, Place::Unschedulable(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.wake(&k, now);
        }
    }

    /// Moves due backoff pods and long-unschedulable ones to active.
    fn flush(&mut self, now: Instant) {
        while let Some(first) = self.backoff.first().cloned() {
            if first.0 > now {
                break;
            }
            self.backoff.pop_first();
            let (_, gen, key) = first;
            if self.entries.get(&key).is_some_and(|e| e.gen == gen) {
                self.activate(&key);
            }
        }
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.place, Place::Unschedulable(t) if now.duration_since(t) >= MAX_UNSCHEDULABLE))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.activate(&k);
        }
    }

    /// The next pod to schedule, now in flight.
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        self.flush(now);
        while let Some((_, _, gen, key)) = self.active.pop() {
            let moves = self.moves;
            if let Some(e) = self.entries.get_mut(&key) {
                if e.gen == gen && e.place == Place::Active {
                    e.place = Place::InFlight { moves };
                    e.attempts += 1;
                    return Some(e.pod.clone());
                }
            }
        }
        None
    }

    /// Scheduled (the binding is under way): the pod leaves the queue.
    pub fn done(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// No node fits.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        match e.place {
            Place::InFlight { moves } if moves != self.moves => self.back_off(key, now),
            _ => e.place = Place::Unschedulable(now),
        }
    }

    /// The attempt failed for a reason that is no verdict on the pod (a write failed): retry
    /// after backoff. `pod` is the fresh object if the caller has one. A pod no longer queued
    /// (its binding failed after `done`) comes back.
    pub fn error(&mut self, pod: QueuedPod, now: Instant) {
        let key = pod.key();
        match self.entries.get_mut(&key) {
            Some(e) => e.pod = pod,
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        place: Place::Active,
                        attempts: 1,
                        gen: 0,
                    },
                );
            }
        }
        self.back_off(&key, now);
    }

    /// When the earliest backoff ends, if any pod is backing off.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.backoff.first().map(|(t, _, _)| *t)
    }

    /// Counts per place, for metrics and logs: (active, backoff, unschedulable, in flight).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for e in self.entries.values() {
            match e.place {
                Place::Active => c.0 += 1,
                Place::Backoff(_) => c.1 += 1,
                Place::Unschedulable(_) => c.2 += 1,
                Place::InFlight { .. } => c.3 += 1,
            }
        }
        c
    }
}

impl Entry {
    /// When the backoff of the last attempt ends (an unschedulable pod woken before that waits).
    fn pod_backoff_until(&self, now: Instant) -> Instant {
        match self.place {
            Place::Unschedulable(at) => at + backoff_for(self.attempts),
            _ => now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32) -> QueuedPod {
        let obj = json!({"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"priority": priority, "containers": [{"name": "c", "image": "i"}]}});
        QueuedPod {
            info: Arc::new(PodInfo::from_value(&obj).expect("pod")),
            obj: Arc::new(obj),
            rv: 1,
            fingerprint: priority as u64,
        }
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.add(pod("a", 0), t);
        q.add(pod("b", 10), t);
        q.add(pod("c", 0), t);
        let order: Vec<String> = std::iter::from_fn(|| q.pop(t)).map(|p| p.info.name.clone()).collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(backoff_for(1), Duration::from_secs(1));
        assert_eq!(backoff_for(2), Duration::from_secs(2));
        assert_eq!(backoff_for(4), Duration::from_secs(8));
        assert_eq!(backoff_for(5), Duration::from_secs(10));
        assert_eq!(backoff_for(40), Duration::from_secs(10));
    }

    #[test]
    fn a_failed_write_backs_off_then_returns() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.add(pod("a", 0), t);
        let p = q.pop(t).expect("a");
        q.error(p, t);
        assert!(q.pop(t + Duration::from_millis(900)).is_none());
        assert_eq!(q.next_wakeup(), Some(t + Duration::from_secs(1)));
        assert!(q.pop(t + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn unschedulable_waits_for_a_move_or_five_minutes() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.add(pod("a", 0), t);
        q.pop(t).expect("a");
        q.unschedulable("default/a", t);
        assert!(q.pop(t + Duration::from_secs(60)).is_none());
        assert_eq!(q.counts(), (0, 0, 1, 0));
        // A move after the backoff has passed makes it active at once.
        q.move_all(t + Duration::from_secs(2));
        assert!(q.pop(t + Duration::from_secs(2)).is_some());
        q.unschedulable("default/a", t + Duration::from_secs(2));
        assert!(q.pop(t + Duration::from_secs(200)).is_none());
        assert!(q.pop(t + Duration::from_secs(302)).is_some());
    }

    #[test]
    fn a_move_while_in_flight_sends_an_unschedulable_pod_to_backoff() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.add(pod("a", 0), t);
        q.pop(t).expect("a");
        q.move_all(t);
        q.unschedulable("default/a", t);
        assert_eq!(q.counts(), (0, 1, 0, 0));
        assert!(q.pop(t + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn only_a_relevant_update_wakes_an_unschedulable_pod() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.add(pod("a", 0), t);
        q.pop(t).expect("a");
        q.unschedulable("default/a", t);
        q.add(pod("a", 0), t + Duration::from_secs(5));
        assert!(q.pop(t + Duration::from_secs(5)).is_none());
        let mut changed = pod("a", 0);
        changed.fingerprint = 99;
        q.add(changed, t + Duration::from_secs(5));
        assert_eq!(q.pop(t + Duration::from_secs(5)).map(|p| p.fingerprint), Some(99));
    }

    #[test]
    fn removed_pods_are_never_popped() {
        let t = Instant::now();
        let mut q = Queue::default();
        q.add(pod("a", 0), t);
        q.remove("default/a");
        assert!(q.pop(t).is_none());
        assert!(q.is_empty());
    }
}

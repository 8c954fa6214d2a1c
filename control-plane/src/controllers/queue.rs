//! client-go's work queue, as controllers use it: event handlers add keys, a worker takes them
//! one at a time. A key waiting is never queued twice (a burst of events is one reconcile); a key
//! being reconciled that is added again is taken once more after it is done; a failed key comes
//! back after a per-key backoff (5 ms doubling to 30 s), reset when it succeeds.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Inner {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    /// Taken by the worker, not yet done.
    active: HashSet<String>,
    /// Added while active: queue again when done.
    dirty: HashSet<String>,
    delayed: BTreeSet<(Instant, String)>,
    /// The one deadline of each delayed key (the earliest asked for).
    due: HashMap<String, Instant>,
    failures: HashMap<String, u32>,
}

#[derive(Default)]
pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

pub fn backoff(failures: u32) -> Duration {
    BASE_DELAY.saturating_mul(1u32 << failures.min(20)).min(MAX_DELAY)
}

impl WorkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, key: &str) {
        let mut q = self.lock();
        if q.active.contains(key) {
            q.dirty.insert(key.to_string());
            return;
        }
        if q.queued.insert(key.to_string()) {
            q.ready.push_back(key.to_string());
            drop(q);
            self.notify.notify_one();
        }
    }

    pub fn add_after(&self, key: &str, delay: Duration) {
        let at = Instant::now() + delay;
        {
            let mut q = self.lock();
            match q.due.get(key).copied() {
                Some(old) if old <= at => return,
                Some(old) => {
                    q.delayed.remove(&(old, key.to_string()));
                }
                None => {}
            }
            q.due.insert(key.to_string(), at);
            q.delayed.insert((at, key.to_string()));
        }
        self.notify.notify_one();
    }

    /// The reconcile of `key` failed: try again after its backoff.
    pub fn retry(&self, key: &str) {
        let n = {
            let mut q = self.lock();
            let n = q.failures.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        self.add_after(key, backoff(n - 1));
    }

    /// The reconcile of `key` succeeded: its backoff starts over.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// The worker is done with `key` (whatever the outcome).
    pub fn done(&self, key: &str) {
        let again = {
            let mut q = self.lock();
            q.active.remove(key);
            q.dirty.remove(key)
        };
        if again {
            self.add(key);
        }
    }

    /// A key to reconcile now, if any; moves due delayed keys first.
    pub fn try_next(&self, now: Instant) -> Option<String> {
        let mut q = self.lock();
        while let Some((at, _)) = q.delayed.first() {
            if *at > now {
                break;
            }
            let Some((_, key)) = q.delayed.pop_first() else {
                break;
            };
            q.due.remove(&key);
            if q.active.contains(&key) {
                q.dirty.insert(key);
            } else if q.queued.insert(key.clone()) {
                q.ready.push_back(key);
            }
        }
        let key = q.ready.pop_front()?;
        q.queued.remove(&key);
        q.active.insert(key.clone());
        Some(key)
    }

    /// When the earliest delayed key is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.lock().delayed.first().map(|(t, _)| *t)
    }

    /// Waits for a key to be added (or a delay to be set).
    pub async fn changed(&self) {
        self.notify.notified().await
    }

    pub fn len(&self) -> usize {
        let q = self.lock();
        q.ready.len() + q.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_adds_is_one_reconcile() {
        let q = WorkQueue::default();
        let now = Instant::now();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.try_next(now).as_deref(), Some("a"));
        assert_eq!(q.try_next(now).as_deref(), Some("b"));
        assert_eq!(q.try_next(now), None);
    }

    #[test]
    fn a_key_added_while_active_comes_back_after_done() {
        let q = WorkQueue::default();
        let now = Instant::now();
        q.add("a");
        let k = q.try_next(now).expect("a");
        q.add("a");
        assert_eq!(q.try_next(now), None, "never reconciled twice at once");
        q.done(&k);
        assert_eq!(q.try_next(now).as_deref(), Some("a"));
    }

    #[test]
    fn failures_back_off_and_reset() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(40));
        assert_eq!(backoff(30), MAX_DELAY);
        let q = WorkQueue::default();
        let now = Instant::now();
        q.add("a");
        let k = q.try_next(now).expect("a");
        q.retry(&k);
        q.done(&k);
        assert_eq!(q.try_next(now), None);
        assert_eq!(q.try_next(now + Duration::from_millis(6)).as_deref(), Some("a"));
        q.forget("a");
        assert!(q.lock().failures.is_empty());
    }

    #[test]
    fn a_key_waits_once_for_its_earliest_deadline() {
        let q = WorkQueue::default();
        q.add_after("a", Duration::from_secs(60));
        q.add_after("a", Duration::from_secs(600));
        q.add_after("a", Duration::from_millis(1));
        assert_eq!(q.lock().delayed.len(), 1);
        let later = Instant::now() + Duration::from_millis(5);
        assert_eq!(q.try_next(later).as_deref(), Some("a"));
        assert_eq!(q.try_next(later + Duration::from_secs(700)), None);
    }
}

//! Watch consistency: what several watchers saw against what the register clients wrote.
//!
//! Each watcher reconnects from its last revision + 1, so across reconnects it must still see
//! every revision of the watched prefix exactly once, in order (ordered, unique, resumable);
//! every acknowledged write appears at its revision with its value (reliable, no gaps); no event
//! shows a value that nobody wrote; and all watchers saw the same sequence.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::Verdict;
use crate::history::{Func, Op, Outcome};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub revision: i64,
    pub key: String,
    /// `None` for a delete.
    pub value: Option<u64>,
}

/// What one watcher saw, and whether it reached the end of the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WatchLog {
    pub name: String,
    pub events: Vec<Event>,
    pub reconnects: u64,
    pub completed: bool,
}

pub fn check(watchers: &[WatchLog], ops: &[Op]) -> Verdict {
    let mut problems = Vec::new();
    // Values are unique per run: value -> key of every write invoked (ok or info).
    let mut written: HashMap<u64, &str> = HashMap::new();
    for o in ops {
        match (o.func, o.outcome) {
            (Func::Write { value }, Outcome::Ok | Outcome::Info)
            | (Func::Cas { to: value, .. }, Outcome::Ok | Outcome::Info) => {
                written.insert(value, &o.key);
            }
            _ => {}
        }
    }
    for w in watchers {
        if !w.completed {
            problems.push(format!("{}: did not reach the end of the run", w.name));
        }
        for pair in w.events.windows(2) {
            if pair[1].revision <= pair[0].revision {
                problems.push(format!(
                    "{}: revision {} after {} (out of order or duplicate)",
                    w.name, pair[1].revision, pair[0].revision
                ));
                break;
            }
        }
        for e in &w.events {
            if let Some(v) = e.value {
                if written.get(&v) != Some(&e.key.as_str()) {
                    problems.push(format!(
                        "{}: phantom event {e:?}: nobody wrote that value to that key",
                        w.name
                    ));
                    break;
                }
            }
        }
        let by_rev: HashMap<i64, &Event> = w.events.iter().map(|e| (e.revision, e)).collect();
        for o in ops {
            let value = match (o.func, o.outcome) {
                (Func::Write { value }, Outcome::Ok) | (Func::Cas { to: value, .. }, Outcome::Ok) => value,
                _ => continue,
            };
            let Some(rev) = o.revision else { continue };
            match by_rev.get(&rev) {
                Some(e) if e.key == o.key && e.value == Some(value) => {}
                Some(e) => {
                    problems.push(format!(
                        "{}: acknowledged write {}={value} at revision {rev} but the watcher saw {e:?} there",
                        w.name, o.key
                    ));
                    break;
                }
                None if w.completed => {
                    problems.push(format!(
                        "{}: acknowledged write {}={value} at revision {rev} never seen (gap)",
                        w.name, o.key
                    ));
                    break;
                }
                None => {}
            }
        }
    }
    if let Some(first) = watchers.first() {
        for w in &watchers[1..] {
            if let Some(i) =
                (0..first.events.len().max(w.events.len())).find(|&i| first.events.get(i) != w.events.get(i))
            {
                problems.push(format!(
                    "{} and {} disagree at event {i}: {:?} vs {:?}",
                    first.name,
                    w.name,
                    first.events.get(i),
                    w.events.get(i)
                ));
            }
        }
    }
    if problems.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Invalid {
            reason: problems.join("; "),
        }
    }
}

/// The last value per key according to a watcher, to compare with a final read.
pub fn final_values(w: &WatchLog) -> BTreeMap<String, Option<u64>> {
    let mut out = BTreeMap::new();
    for e in &w.events {
        out.insert(e.key.clone(), e.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, value: u64, rev: Option<i64>, outcome: Outcome) -> Op {
        Op {
            process: 0,
            key: key.into(),
            func: Func::Write { value },
            outcome,
            invoke: 0,
            complete: Some(1),
            start_us: 0,
            end_us: 0,
            revision: rev,
            error: None,
        }
    }
    fn ev(revision: i64, key: &str, value: u64) -> Event {
        Event {
            revision,
            key: key.into(),
            value: Some(value),
        }
    }
    fn log(name: &str, events: Vec<Event>) -> WatchLog {
        WatchLog {
            name: name.into(),
            events,
            reconnects: 0,
            completed: true,
        }
    }

    fn ops() -> Vec<Op> {
        vec![
            write("a", 1, Some(5), Outcome::Ok),
            write("b", 2, Some(6), Outcome::Ok),
            write("a", 3, None, Outcome::Info),
        ]
    }

    #[test]
    fn agreeing_complete_watchers_are_valid() {
        let evs = vec![ev(5, "a", 1), ev(6, "b", 2), ev(7, "a", 3)];
        assert_eq!(check(&[log("w1", evs.clone()), log("w2", evs)], &ops()), Verdict::Valid);
    }

    #[test]
    fn gap_duplicate_phantom_and_disagreement_are_invalid() {
        let gap = vec![ev(6, "b", 2)];
        assert!(!check(&[log("w1", gap)], &ops()).is_valid());
        let dup = vec![ev(5, "a", 1), ev(5, "a", 1), ev(6, "b", 2)];
        assert!(!check(&[log("w1", dup)], &ops()).is_valid());
        let phantom = vec![ev(5, "a", 1), ev(6, "b", 2), ev(7, "a", 99)];
        assert!(!check(&[log("w1", phantom)], &ops()).is_valid());
        let a = vec![ev(5, "a", 1), ev(6, "b", 2), ev(7, "a", 3)];
        let b = vec![ev(5, "a", 1), ev(6, "b", 2)];
        assert!(!check(&[log("w1", a), log("w2", b)], &ops()).is_valid());
        let wrong_rev = vec![ev(5, "a", 1), ev(6, "a", 3), ev(7, "b", 2)];
        assert!(!check(&[log("w1", wrong_rev)], &ops()).is_valid());
    }

    #[test]
    fn incomplete_watcher_is_reported() {
        let mut w = log("w1", vec![ev(5, "a", 1), ev(6, "b", 2)]);
        w.completed = false;
        assert!(!check(&[w], &ops()).is_valid());
    }
}

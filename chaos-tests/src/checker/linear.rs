//! Linearizability of read / write / compare-and-set registers.
//!
//! Wing & Gong's search with Lowe's just-in-time linearization and memoization (the algorithm
//! Porcupine and Knossos' `linear` use): walk the history's call/return entries in order; at a
//! call, try to linearize that operation now (if the model allows it and the pair
//! (set of linearized ops, state) was never seen); at a return of an operation not yet
//! linearized, backtrack. Registers are independent, so each key is checked alone
//! (P-compositionality) and the history is linearizable iff every key's is.
//!
//! Info operations (unknown outcome) have a call but no return: they may be linearized at any
//! point after their invocation, or never. Failed reads carry no information and are dropped; a
//! failed CAS is a CAS whose compare did not hold, so it is an observation `value != from`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use super::Verdict;
use crate::history::{Func, Op, Outcome};

/// Bounds of one key's search; exceeding either gives `Unknown`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_steps: u64,
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 20_000_000,
            deadline: Duration::from_secs(30),
        }
    }
}

/// The model's view of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Read(Option<u64>),
    Write(u64),
    Cas(u64, u64),
    /// A CAS that executed with its compare false: observed a value other than `from`.
    CasMiss(u64),
}

impl Step {
    /// The register model: the next state, or `None` if the op cannot happen in `state`.
    fn apply(self, state: Option<u64>) -> Option<Option<u64>> {
        match self {
            Step::Read(v) => (v == state).then_some(state),
            Step::Write(v) => Some(Some(v)),
            Step::Cas(from, to) => (state == Some(from)).then_some(Some(to)),
            Step::CasMiss(from) => (state != Some(from)).then_some(state),
        }
    }
}

struct KeyOp {
    step: Step,
    call: u64,
    ret: Option<u64>,
    /// Index in the caller's op slice, for counterexamples.
    index: usize,
}

/// Converts a history op into the model's op; `None` when it carries no information.
fn to_step(op: &Op) -> Option<Step> {
    match (op.func, op.outcome) {
        (Func::Read { value }, Outcome::Ok) => Some(Step::Read(value)),
        (Func::Read { .. }, _) => None,
        (Func::Write { value }, Outcome::Ok | Outcome::Info) => Some(Step::Write(value)),
        (Func::Write { .. }, Outcome::Fail) => None,
        (Func::Cas { from, to }, Outcome::Ok | Outcome::Info) => Some(Step::Cas(from, to)),
        // A failed CAS with an error never reached the store; without one, its compare was false.
        (Func::Cas { from, .. }, Outcome::Fail) if op.error.is_none() => Some(Step::CasMiss(from)),
        (Func::Cas { .. }, Outcome::Fail) => None,
    }
}

/// Result for the whole history: per-key verdicts and the overall one.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub keys: BTreeMap<String, Verdict>,
}

/// Checks every key independently; the history is initially empty (every key absent).
pub fn check(ops: &[Op], limits: Limits) -> Report {
    let mut by_key: BTreeMap<&str, Vec<KeyOp>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        let Some(step) = to_step(op) else { continue };
        let ret = match op.outcome {
            Outcome::Info => None,
            _ => op.complete,
        };
        by_key.entry(&op.key).or_default().push(KeyOp {
            step,
            call: op.invoke,
            ret,
            index,
        });
    }
    let mut keys = BTreeMap::new();
    let mut invalid = Vec::new();
    let mut unknown = Vec::new();
    for (key, kops) in by_key {
        let v = check_key(&kops, ops, limits);
        match &v {
            Verdict::Valid => {}
            Verdict::Invalid { reason } => invalid.push(format!("key {key}: {reason}")),
            Verdict::Unknown { reason } => unknown.push(format!("key {key}: {reason}")),
        }
        keys.insert(key.to_string(), v);
    }
    let verdict = if !invalid.is_empty() {
        Verdict::Invalid {
            reason: invalid.join("; "),
        }
    } else if !unknown.is_empty() {
        Verdict::Unknown {
            reason: unknown.join("; "),
        }
    } else {
        Verdict::Valid
    };
    Report { verdict, keys }
}

const NIL: usize = usize::MAX;

/// The doubly linked list of call/return entries the search lifts operations out of.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// For entry `e` (1..=m): the op it belongs to and whether it is the call.
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// For an op: its call entry and its return entry (NIL for info ops).
    call_of: Vec<usize>,
    ret_of: Vec<usize>,
}

impl Entries {
    const HEAD: usize = 0;

    fn new(kops: &[KeyOp]) -> (Entries, usize) {
        // (time, is_call, op): at equal times returns sort first, so touching ops are ordered.
        let mut ev: Vec<(u64, bool, usize)> = Vec::new();
        for (i, o) in kops.iter().enumerate() {
            ev.push((o.call, true, i));
            if let Some(r) = o.ret {
                ev.push((r, false, i));
            }
        }
        ev.sort();
        let m = ev.len();
        let tail = m + 1;
        let mut e = Entries {
            next: vec![NIL; m + 2],
            prev: vec![NIL; m + 2],
            op: vec![NIL; m + 2],
            is_call: vec![false; m + 2],
            call_of: vec![NIL; kops.len()],
            ret_of: vec![NIL; kops.len()],
        };
        for (k, &(_, is_call, op)) in ev.iter().enumerate() {
            let n = k + 1;
            e.op[n] = op;
            e.is_call[n] = is_call;
            if is_call {
                e.call_of[op] = n;
            } else {
                e.ret_of[op] = n;
            }
        }
        for n in 0..=m {
            e.next[n] = n + 1;
            e.prev[n + 1] = n;
        }
        (e, tail)
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        self.prev[x] = p;
    }

    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        self.prev[x] = n;
    }

    /// Removes an op's call and return entries.
    fn lift(&mut self, op: usize) {
        self.unlink(self.call_of[op]);
        if self.ret_of[op] != NIL {
            self.unlink(self.ret_of[op]);
        }
    }

    /// Undoes `lift`, in reverse order.
    fn unlift(&mut self, op: usize) {
        if self.ret_of[op] != NIL {
            self.relink(self.ret_of[op]);
        }
        self.relink(self.call_of[op]);
    }
}

fn check_key(kops: &[KeyOp], all: &[Op], limits: Limits) -> Verdict {
    let started = Instant::now();
    let (mut list, tail) = Entries::new(kops);
    let words = kops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut remaining = kops.iter().filter(|o| o.ret.is_some()).count();
    // Deepest point reached and the op that could not be linearized there.
    let mut best: (usize, usize, Option<u64>) = (0, NIL, None);
    let mut steps: u64 = 0;
    let mut entry = list.next[Entries::HEAD];
    loop {
        if remaining == 0 {
            return Verdict::Valid;
        }
        steps += 1;
        if steps > limits.max_steps || (steps & 0xFFFF == 0 && started.elapsed() > limits.deadline) {
            return Verdict::Unknown {
                reason: format!(
                    "search limit after {steps} steps, {} ops, {} states cached",
                    kops.len(),
                    cache.len()
                ),
            };
        }
        if entry != tail && list.is_call[entry] {
            let op = list.op[entry];
            if let Some(next) = kops[op].step.apply(state) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), next)) {
                    stack.push((op, state));
                    state = next;
                    if kops[op].ret.is_some() {
                        remaining -= 1;
                    }
                    list.lift(op);
                    entry = list.next[Entries::HEAD];
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = list.next[entry];
        } else {
            // The return of an op not linearized yet (or the end): backtrack.
            if entry != tail && stack.len() >= best.0 {
                best = (stack.len(), list.op[entry], state);
            }
            let Some((op, prev_state)) = stack.pop() else {
                return invalid(kops, all, best);
            };
            linearized[op / 64] &= !(1 << (op % 64));
            state = prev_state;
            if kops[op].ret.is_some() {
                remaining += 1;
            }
            list.unlift(op);
            entry = list.next[list.call_of[op]];
        }
    }
}

fn invalid(kops: &[KeyOp], all: &[Op], best: (usize, usize, Option<u64>)) -> Verdict {
    let (depth, op, state) = best;
    let reason = if op == NIL {
        "no linearization".to_string()
    } else {
        let o = &all[kops[op].index];
        format!(
            "no linearization: after at most {depth} ops, the register could hold {state:?} but op \
             (process {}, {:?}, {:?}, history [{}, {}]) could not be placed; ops concurrent with it: {}",
            o.process,
            o.func,
            o.outcome,
            o.invoke,
            o.complete.map_or("info".into(), |c| c.to_string()),
            concurrent(kops, all, op)
        )
    };
    Verdict::Invalid { reason }
}

fn concurrent(kops: &[KeyOp], all: &[Op], op: usize) -> String {
    let (c, r) = (kops[op].call, kops[op].ret.unwrap_or(u64::MAX));
    let mut out = Vec::new();
    for (i, k) in kops.iter().enumerate() {
        if i != op && k.call < r && k.ret.unwrap_or(u64::MAX) > c {
            let o = &all[k.index];
            out.push(format!("{:?}/{:?}@[{}]", o.func, o.outcome, o.invoke));
        }
    }
    if out.len() > 20 {
        let n = out.len();
        out.truncate(20);
        out.push(format!("... {} more", n - 20));
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact history builder: ops on key "k", times given as (call, ret), `None` = info.
    fn op(func: Func, outcome: Outcome, call: u64, ret: Option<u64>) -> Op {
        Op {
            process: call,
            key: "k".into(),
            func,
            outcome,
            invoke: call,
            complete: ret,
            start_us: call,
            end_us: ret.unwrap_or(call),
            revision: None,
            error: None,
        }
    }
    fn w(v: u64, c: u64, r: u64) -> Op {
        op(Func::Write { value: v }, Outcome::Ok, c, Some(r))
    }
    fn w_info(v: u64, c: u64) -> Op {
        op(Func::Write { value: v }, Outcome::Info, c, None)
    }
    fn rd(v: Option<u64>, c: u64, r: u64) -> Op {
        op(Func::Read { value: v }, Outcome::Ok, c, Some(r))
    }
    fn cas(from: u64, to: u64, ok: bool, c: u64, r: u64) -> Op {
        op(
            Func::Cas { from, to },
            if ok { Outcome::Ok } else { Outcome::Fail },
            c,
            Some(r),
        )
    }
    fn verdict(ops: &[Op]) -> Verdict {
        check(ops, Limits::default()).verdict
    }
    fn assert_valid(ops: &[Op]) {
        assert_eq!(verdict(ops), Verdict::Valid, "{ops:#?}");
    }
    fn assert_invalid(ops: &[Op]) {
        assert!(matches!(verdict(ops), Verdict::Invalid { .. }), "{:?}", verdict(ops));
    }

    #[test]
    fn empty_and_sequential() {
        assert_valid(&[]);
        assert_valid(&[
            rd(None, 0, 1),
            w(1, 2, 3),
            rd(Some(1), 4, 5),
            cas(1, 2, true, 6, 7),
            rd(Some(2), 8, 9),
        ]);
    }

    #[test]
    fn stale_read_after_write_is_invalid() {
        assert_invalid(&[w(1, 0, 1), w(2, 2, 3), rd(Some(1), 4, 5)]);
        assert_invalid(&[w(1, 0, 1), rd(None, 2, 3)]);
    }

    #[test]
    fn concurrent_write_may_be_seen_or_not() {
        // Read overlaps the write: both answers linearize.
        assert_valid(&[w(1, 0, 1), w(2, 2, 5), rd(Some(1), 3, 4)]);
        assert_valid(&[w(1, 0, 1), w(2, 2, 5), rd(Some(2), 3, 4)]);
    }

    #[test]
    fn reads_must_not_flip_back() {
        // Two sequential reads during one write: new then old is not linearizable.
        assert_invalid(&[w(1, 0, 1), w(2, 2, 9), rd(Some(2), 3, 4), rd(Some(1), 5, 6)]);
        assert_valid(&[w(1, 0, 1), w(2, 2, 9), rd(Some(1), 3, 4), rd(Some(2), 5, 6)]);
    }

    #[test]
    fn cas_semantics() {
        assert_invalid(&[w(1, 0, 1), cas(2, 3, true, 2, 3)]);
        assert_valid(&[w(1, 0, 1), cas(2, 3, false, 2, 3)]);
        // A failed compare observed a value other than `from`: invalid if it must have been `from`.
        assert_invalid(&[w(1, 0, 1), cas(1, 3, false, 2, 3), rd(Some(1), 4, 5)]);
        // Two concurrent CAS from the same value cannot both succeed.
        assert_invalid(&[w(1, 0, 1), cas(1, 2, true, 2, 5), cas(1, 3, true, 3, 6)]);
        assert_valid(&[
            w(1, 0, 1),
            cas(1, 2, true, 2, 5),
            cas(2, 3, true, 3, 6),
            rd(Some(3), 7, 8),
        ]);
    }

    #[test]
    fn info_ops_may_or_may_not_happen() {
        // An info write seen later: it happened.
        assert_valid(&[w(1, 0, 1), w_info(2, 2), rd(Some(2), 10, 11)]);
        // Not seen: it never happened.
        assert_valid(&[w(1, 0, 1), w_info(2, 2), rd(Some(1), 10, 11)]);
        // Seen, then the old value again with no other write: invalid (a write happens once).
        assert_invalid(&[w(1, 0, 1), w_info(2, 2), rd(Some(2), 10, 11), rd(Some(1), 12, 13)]);
        // An info write cannot take effect before it was invoked.
        assert_invalid(&[w(1, 0, 1), rd(Some(2), 2, 3), w_info(2, 4)]);
        // Info CAS.
        let info_cas = op(Func::Cas { from: 1, to: 5 }, Outcome::Info, 2, None);
        assert_valid(&[w(1, 0, 1), info_cas.clone(), rd(Some(5), 10, 11)]);
        assert_invalid(&[w(9, 0, 1), info_cas, rd(Some(5), 10, 11)]);
    }

    #[test]
    fn failed_reads_and_writes_are_ignored() {
        let failed_read = op(Func::Read { value: Some(7) }, Outcome::Fail, 2, Some(3));
        let failed_write = op(Func::Write { value: 7 }, Outcome::Fail, 4, Some(5));
        let mut unsent_cas = cas(1, 9, false, 8, 9);
        unsent_cas.error = Some("tcp connect error".into());
        assert_valid(&[
            w(1, 0, 1),
            failed_read,
            failed_write,
            rd(Some(1), 6, 7),
            unsent_cas,
            rd(Some(1), 10, 11),
        ]);
    }

    #[test]
    fn keys_are_independent() {
        let mut a = w(1, 0, 1);
        a.key = "a".into();
        let mut b = rd(Some(1), 2, 3);
        b.key = "b".into();
        // b was never written: reading 1 from it is invalid even though "a" holds 1.
        let r = check(&[a, b], Limits::default());
        assert!(matches!(r.verdict, Verdict::Invalid { .. }));
        assert_eq!(r.keys["a"], Verdict::Valid);
    }

    #[test]
    fn search_limit_gives_unknown() {
        // Many concurrent info writes plus an impossible read: exponential without a bound.
        let mut ops: Vec<Op> = (0..40).map(|i| w_info(100 + i, i)).collect();
        ops.push(rd(Some(1), 50, 51));
        let r = check(
            &ops,
            Limits {
                max_steps: 10_000,
                deadline: Duration::from_secs(5),
            },
        );
        assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{:?}", r.verdict);
    }

    #[test]
    fn long_concurrent_valid_history() {
        // 4 processes writing and reading in overlapping windows, generated to be linearizable:
        // each op takes effect at its midpoint; reads return the value at that point.
        let mut ops = Vec::new();
        let mut t = 0u64;
        let mut value = None;
        let mut effects: Vec<(u64, Op)> = Vec::new();
        for i in 0..400u64 {
            let call = t;
            let ret = t + 7 + (i % 5);
            let mid = call + 3;
            let o = if i % 3 == 0 {
                w(i, call, ret)
            } else {
                rd(None, call, ret)
            };
            effects.push((mid, o));
            t += 2;
        }
        effects.sort_by_key(|e| e.0);
        for (_, mut o) in effects {
            match o.func {
                Func::Write { value: v } => value = Some(v),
                Func::Read { .. } => o.func = Func::Read { value },
                Func::Cas { .. } => {}
            }
            ops.push(o);
        }
        // Make call/return indices unique as in real histories.
        for o in ops.iter_mut() {
            o.invoke *= 2;
            o.complete = o.complete.map(|c| c * 2 + 1);
        }
        assert_valid(&ops);
    }
}

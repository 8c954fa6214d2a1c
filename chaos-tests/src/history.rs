//! Operations and the history recorder.
//!
//! Every operation gets two positions in one global sequence (its invocation and its
//! completion), taken from a shared counter, so the history's order is consistent with real
//! time; wall-clock offsets are kept beside them for reports. An operation whose outcome is
//! unknown (timeout, connection lost after sending) is `Info` and has no completion: the
//! checker treats it as possibly applied at any point after its invocation, as Jepsen does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// What an operation does to one register (one key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Func {
    /// Linearizable read; `value` is what it returned (`None`: key absent). Only meaningful when ok.
    Read {
        value: Option<u64>,
    },
    Write {
        value: u64,
    },
    /// Txn: if value == from then put to. Ok means swapped; Fail means the compare did not hold.
    Cas {
        from: u64,
        to: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Definitely did not take effect. With an `error`: never reached the store. Without one
    /// (only for a CAS): executed, and its compare did not hold.
    Fail,
    /// Unknown: may or may not have taken effect.
    Info,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub process: u64,
    pub key: String,
    #[serde(flatten)]
    pub func: Func,
    pub outcome: Outcome,
    /// Position of the invocation in the history.
    pub invoke: u64,
    /// Position of the completion; `None` for info operations.
    pub complete: Option<u64>,
    /// Microseconds since the run started.
    pub start_us: u64,
    pub end_us: u64,
    /// Store revision of an acknowledged write (header revision of the response).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Shared by every client of a run. The lock is never held across an await.
pub struct Recorder {
    seq: AtomicU64,
    t0: Instant,
    ops: Mutex<Vec<Op>>,
}

/// An invocation in flight, returned by [`Recorder::invoke`].
pub struct Pending {
    pub process: u64,
    pub key: String,
    pub invoke: u64,
    pub start_us: u64,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            seq: AtomicU64::new(0),
            t0: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    pub fn elapsed_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    pub fn invoke(&self, process: u64, key: &str) -> Pending {
        Pending {
            process,
            key: key.to_string(),
            invoke: self.seq.fetch_add(1, Ordering::SeqCst),
            start_us: self.elapsed_us(),
        }
    }

    pub fn complete(&self, p: Pending, func: Func, outcome: Outcome, revision: Option<i64>, error: Option<String>) {
        let complete = match outcome {
            Outcome::Info => None,
            _ => Some(self.seq.fetch_add(1, Ordering::SeqCst)),
        };
        let op = Op {
            process: p.process,
            key: p.key,
            func,
            outcome,
            invoke: p.invoke,
            complete,
            start_us: p.start_us,
            end_us: self.elapsed_us(),
            revision,
            error,
        };
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone();
        ops.sort_by_key(|o| o.invoke);
        ops
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// The history as JSON lines: one `invoke` and (unless info) one completion event per operation,
/// in history order.
pub fn to_jsonl(ops: &[Op]) -> String {
    let mut events: Vec<(u64, serde_json::Value)> = Vec::new();
    for o in ops {
        events.push((
            o.invoke,
            serde_json::json!({"index": o.invoke, "type": "invoke", "process": o.process, "key": o.key,
                "f": o.func, "time_us": o.start_us}),
        ));
        let kind = match o.outcome {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        };
        let index = o.complete.unwrap_or(u64::MAX);
        events.push((
            index,
            serde_json::json!({"index": o.complete, "type": kind, "process": o.process, "key": o.key,
                "f": o.func, "time_us": o.end_us, "revision": o.revision, "error": o.error}),
        ));
    }
    events.sort_by_key(|e| e.0);
    let mut out = String::new();
    for (_, e) in events {
        out.push_str(&e.to_string());
        out.push('\n');
    }
    out
}

//! Jepsen-style fault injection for skiff's replicated store.
//!
//! A run starts a cluster of `skiff master` processes, each in its own network namespace linked
//! to a bridge made for the run (no route out, torn down at the end, on failure and on Ctrl-C),
//! drives a register workload and watchers through the `etcd-client` crate while a seeded
//! nemesis kills, pauses and partitions members, records a history of invocations and
//! completions, and checks it: per-key linearizability (WGL search with memoization) and watch
//! consistency.
//!
//! # Layout
//! - [`history`]: operations, outcomes (ok / fail / info) and the recorder shared by clients.
//! - [`checker`]: pure checkers: [`checker::linear`] (registers) and [`checker::watch`].
//! - [`net`]: network namespaces, bridge, veths and nftables partitions for one run.
//! - [`cleanup`]: the process-wide registry torn down on Drop and by the SIGINT/SIGTERM handler.
//! - [`cluster`]: skiff members as OS processes inside their namespaces (kill, pause, restart).
//! - [`nemesis`]: the fault schedule, generated from a seed, and its execution.
//! - [`workload`]: register clients and watchers.
//! - [`run`]: one whole run, its report and verdict.

pub mod checker;
pub mod cleanup;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod run;
pub mod workload;

//! The CI chaos run: a 3-member cluster in network namespaces under kill -9 and partitions,
//! checked for linearizability and watch consistency. Needs root (CI is root).
//! `CHAOS_SEED` picks the seed (default 1), `CHAOS_DURATION` the workload length in seconds.

use std::time::Duration;

use skiff_chaos_tests::checker::linear::Limits;
use skiff_chaos_tests::checker::Verdict;
use skiff_chaos_tests::nemesis::Kind;
use skiff_chaos_tests::{cleanup, cluster, run};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_and_partition_three_members_is_linearizable() -> anyhow::Result<()> {
    cleanup::install_signal_handler();
    let seed = env_u64("CHAOS_SEED", 1);
    let results = std::env::var("CHAOS_RESULTS")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir().join("skiff-chaos-results"));
    let cfg = run::RunConfig {
        seed,
        duration: Duration::from_secs(env_u64("CHAOS_DURATION", 45)),
        nemeses: vec![Kind::Kill, Kind::Partition],
        members: 3,
        clients: 6,
        keys: 6,
        watchers: 3,
        results,
        skiff_bin: cluster::skiff_bin(),
        extra_args: Vec::new(),
        limits: Limits {
            max_steps: 50_000_000,
            deadline: Duration::from_secs(20),
        },
        serializable_reads: false,
    };
    eprintln!("chaos test: seed {seed} (set CHAOS_SEED to change)");
    // run() tears down its own network and members, also on error (Drop); not teardown_all(),
    // which would also take the other test's run.
    let result = run::run(&cfg).await;
    let summary = result?;
    eprint!("{}", summary.text());
    assert!(
        summary.linearizable.is_valid(),
        "seed {seed}: {:?}",
        summary.linearizable
    );
    assert!(summary.watch.is_valid(), "seed {seed}: {:?}", summary.watch);
    // The run did something: acknowledged writes and reads, and faults were applied.
    let ok = |k: &str| summary.counts.get(k).copied().unwrap_or(0);
    assert!(ok("write ok") > 50 && ok("read ok") > 50, "{:?}", summary.counts);
    assert!(!summary.applied.is_empty());
    Ok(())
}

/// Negative control: serializable reads are served from a member's local state, so a member cut
/// off from the leader answers stale values. The checker must say so; one that never fails is
/// not known to work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_reads_under_partitions_are_caught() -> anyhow::Result<()> {
    cleanup::install_signal_handler();
    let seed = env_u64("CHAOS_NEGATIVE_SEED", 3);
    let results = std::env::var("CHAOS_RESULTS")
        .map(Into::into)
        .unwrap_or_else(|_| std::env::temp_dir().join("skiff-chaos-results"));
    let cfg = run::RunConfig {
        seed,
        duration: Duration::from_secs(25),
        nemeses: vec![Kind::Partition],
        members: 3,
        clients: 6,
        keys: 3,
        watchers: 1,
        results,
        skiff_bin: cluster::skiff_bin(),
        extra_args: Vec::new(),
        limits: Limits {
            max_steps: 50_000_000,
            deadline: Duration::from_secs(20),
        },
        serializable_reads: true,
    };
    // run() tears down its own network and members, also on error (Drop); not teardown_all(),
    // which would also take the other test's run.
    let result = run::run(&cfg).await;
    let summary = result?;
    eprint!("{}", summary.text());
    assert!(
        matches!(summary.linearizable, Verdict::Invalid { .. }),
        "seed {seed}: stale reads were not caught: {:?}",
        summary.linearizable
    );
    Ok(())
}

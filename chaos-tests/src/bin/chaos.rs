//! `chaos`: a longer fault-injection run against a skiff cluster in network namespaces.
//! Exits 1 on a violation, 2 when a checker could not decide, 0 when everything checked out.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use skiff_chaos_tests::checker::linear::Limits;
use skiff_chaos_tests::checker::Verdict;
use skiff_chaos_tests::{cleanup, cluster, nemesis, run};

#[derive(Parser, Debug)]
#[command(about = "Jepsen-style fault injection against skiff's store (needs root)")]
struct Args {
    /// RNG seed for the nemesis schedule and the clients (random when absent; always printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Length of the workload in seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Comma-separated: kill, pause, partition, power-loss (empty: no faults).
    #[arg(long, default_value = "kill,pause,partition")]
    nemesis: String,
    #[arg(long, default_value_t = 3)]
    members: usize,
    #[arg(long, default_value_t = 6)]
    clients: usize,
    #[arg(long, default_value_t = 6)]
    keys: usize,
    #[arg(long, default_value_t = 3)]
    watchers: usize,
    /// Where each run's folder is written [default: $TMPDIR/skiff-chaos-results].
    #[arg(long)]
    results: Option<PathBuf>,
    /// The skiff binary.
    #[arg(long, env = "SKIFF_BIN")]
    skiff_bin: Option<String>,
    /// Seconds the linearizability search may spend per key before answering unknown.
    #[arg(long, default_value_t = 60)]
    check_timeout: u64,
    /// Negative control: read with `serializable` (local, stale) reads; expect a violation.
    #[arg(long)]
    serializable_reads: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    cleanup::install_signal_handler();
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!("chaos: seed {seed}");
    let cfg = run::RunConfig {
        seed,
        duration: Duration::from_secs(args.duration),
        nemeses: nemesis::parse_kinds(&args.nemesis)?,
        members: args.members,
        clients: args.clients,
        keys: args.keys,
        watchers: args.watchers,
        results: args
            .results
            .unwrap_or_else(|| std::env::temp_dir().join("skiff-chaos-results")),
        skiff_bin: args.skiff_bin.unwrap_or_else(cluster::skiff_bin),
        extra_args: Vec::new(),
        serializable_reads: args.serializable_reads,
        limits: Limits {
            max_steps: 200_000_000,
            deadline: Duration::from_secs(args.check_timeout),
        },
    };
    let result = run::run(&cfg).await;
    cleanup::teardown_all();
    let summary = result?;
    print!("{}", summary.text());
    let code = if summary.valid() {
        0
    } else if matches!(summary.linearizable, Verdict::Invalid { .. })
        || matches!(summary.watch, Verdict::Invalid { .. })
    {
        1
    } else {
        2
    };
    std::process::exit(code);
}

//! Faults: a schedule generated up front from the seed (so a run is reproducible from its seed,
//! up to which member is leader when a leader-targeted fault fires), and its execution against
//! a [`Cluster`]. Every fault is healed when its window ends, and everything is healed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::net::Grudge;

/// A family of faults, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Kill,
    Pause,
    Partition,
    PowerLoss,
}

impl FromStr for Kind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Kind> {
        Ok(match s {
            "kill" => Kind::Kill,
            "pause" => Kind::Pause,
            "partition" => Kind::Partition,
            "power-loss" | "power" => Kind::PowerLoss,
            other => bail!("unknown nemesis {other:?} (kill, pause, partition, power-loss)"),
        })
    }
}

pub fn parse_kinds(s: &str) -> Result<Vec<Kind>> {
    s.split(',').filter(|x| !x.is_empty()).map(Kind::from_str).collect()
}

/// Who a fault hits: a member chosen by the seed, or whoever leads when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Member(usize),
    Leader,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// kill -9, restart on the same data when the window ends.
    Kill {
        target: Target,
    },
    /// SIGSTOP, SIGCONT when the window ends.
    Pause {
        target: Target,
    },
    /// The members in `side` are cut from the others, both ways.
    PartitionHalves {
        side: Vec<usize>,
    },
    IsolateLeader,
    /// Member i accepts only the majority {i, i+1, ..} (mod n): each sees a different majority.
    MajoritiesRing,
    /// Packets from `from` to `to` are dropped; the other direction works.
    OneWay {
        from: usize,
        to: usize,
    },
    /// Every member killed at once, all restarted when the window ends.
    PowerLoss,
}

#[derive(Clone, Debug, Serialize)]
pub struct Planned {
    pub at_ms: u64,
    pub hold_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

/// Faults over `duration`: one at a time, windows of 2-5 s separated by 1-3 s of calm, starting
/// after 2 s and healed 2 s before the end.
pub fn schedule(seed: u64, kinds: &[Kind], members: usize, duration: Duration) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    if kinds.is_empty() {
        return out;
    }
    let end = duration.as_millis() as u64;
    let mut t = 2_000u64;
    loop {
        let hold = rng.gen_range(2_000..=5_000);
        if t + hold + 2_000 > end {
            break;
        }
        let target = |rng: &mut StdRng| {
            if rng.gen_bool(0.5) {
                Target::Leader
            } else {
                Target::Member(rng.gen_range(1..=members))
            }
        };
        let fault = match kinds[rng.gen_range(0..kinds.len())] {
            Kind::Kill => Fault::Kill {
                target: target(&mut rng),
            },
            Kind::Pause => Fault::Pause {
                target: target(&mut rng),
            },
            Kind::PowerLoss => Fault::PowerLoss,
            Kind::Partition => match rng.gen_range(0..4) {
                0 => {
                    let mut all: Vec<usize> = (1..=members).collect();
                    all.shuffle(&mut rng);
                    let mut side: Vec<usize> = all[..members / 2].to_vec();
                    side.sort();
                    Fault::PartitionHalves { side }
                }
                1 => Fault::IsolateLeader,
                2 => Fault::MajoritiesRing,
                _ => {
                    let from = rng.gen_range(1..=members);
                    let to = (from + rng.gen_range(0..members - 1)) % members + 1;
                    Fault::OneWay { from, to }
                }
            },
        };
        out.push(Planned {
            at_ms: t,
            hold_ms: hold,
            fault,
        });
        t += hold + rng.gen_range(1_000..=3_000);
    }
    out
}

/// Drop rules cutting `side` from everyone else, both ways.
pub fn halves(side: &[usize], members: usize) -> Grudge {
    let mut g = Grudge::new();
    let a: BTreeSet<usize> = side.iter().copied().collect();
    let b: BTreeSet<usize> = (1..=members).filter(|i| !a.contains(i)).collect();
    for &i in &a {
        g.insert(i, b.clone());
    }
    for &i in &b {
        g.insert(i, a.clone());
    }
    g
}

/// Member i accepts packets only from its window {i, i+1, ..., i+m-1} (mod n), m a majority.
pub fn majorities_ring(members: usize) -> Grudge {
    let m = members / 2 + 1;
    let mut g = Grudge::new();
    for i in 1..=members {
        let window: BTreeSet<usize> = (0..m).map(|k| (i - 1 + k) % members + 1).collect();
        g.insert(i, (1..=members).filter(|j| !window.contains(j)).collect());
    }
    g
}

/// What actually happened, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub start_ms: u64,
    pub end_ms: u64,
    pub description: String,
}

/// What must be undone when a fault's window ends.
enum Undo {
    Restart(Vec<usize>),
    Resume(usize),
    Heal,
    Nothing,
}

/// Runs `plan` from `t0`; returns when the plan is done, everything healed.
pub async fn execute(cluster: &mut Cluster, plan: &[Planned], t0: Instant) -> Vec<Applied> {
    let mut applied = Vec::new();
    for p in plan {
        sleep_until(t0 + Duration::from_millis(p.at_ms)).await;
        let start_ms = t0.elapsed().as_millis() as u64;
        let (undo, description) = match start(cluster, &p.fault).await {
            Ok(x) => x,
            Err(e) => (Undo::Nothing, format!("{:?} not applied: {e:#}", p.fault)),
        };
        eprintln!("chaos: [{:>6} ms] {description}", start_ms);
        sleep_until(t0 + Duration::from_millis(p.at_ms + p.hold_ms)).await;
        if let Err(e) = finish(cluster, undo) {
            eprintln!("chaos: healing failed: {e:#}");
        }
        let end_ms = t0.elapsed().as_millis() as u64;
        eprintln!("chaos: [{:>6} ms] healed", end_ms);
        applied.push(Applied {
            start_ms,
            end_ms,
            description,
        });
    }
    heal_all(cluster);
    applied
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t.into()).await;
}

async fn resolve(cluster: &Cluster, target: Target) -> Result<usize> {
    match target {
        Target::Member(i) => Ok(i),
        Target::Leader => match cluster.leader().await {
            Some(l) => Ok(l),
            None => bail!("no leader known"),
        },
    }
}

async fn start(cluster: &mut Cluster, fault: &Fault) -> Result<(Undo, String)> {
    let n = cluster.size();
    Ok(match fault {
        Fault::Kill { target } => {
            let i = resolve(cluster, *target).await?;
            cluster.kill(i);
            (Undo::Restart(vec![i]), format!("kill -9 n{i} ({target:?})"))
        }
        Fault::Pause { target } => {
            let i = resolve(cluster, *target).await?;
            cluster.pause(i)?;
            (Undo::Resume(i), format!("SIGSTOP n{i} ({target:?})"))
        }
        Fault::PowerLoss => {
            for i in 1..=n {
                cluster.kill(i);
            }
            (
                Undo::Restart((1..=n).collect()),
                "power loss: kill -9 every member".into(),
            )
        }
        Fault::PartitionHalves { side } => {
            cluster.net.apply(&halves(side, n))?;
            (Undo::Heal, format!("partition {side:?} | rest"))
        }
        Fault::IsolateLeader => {
            let l = resolve(cluster, Target::Leader).await?;
            cluster.net.apply(&halves(&[l], n))?;
            (Undo::Heal, format!("isolate leader n{l}"))
        }
        Fault::MajoritiesRing => {
            let g = majorities_ring(n);
            cluster.net.apply(&g)?;
            (Undo::Heal, format!("majorities ring (node: drops from) {g:?}"))
        }
        Fault::OneWay { from, to } => {
            let mut g = BTreeMap::new();
            g.insert(*to, BTreeSet::from([*from]));
            cluster.net.apply(&g)?;
            (Undo::Heal, format!("one-way drop n{from} -> n{to}"))
        }
    })
}

fn finish(cluster: &mut Cluster, undo: Undo) -> Result<()> {
    match undo {
        Undo::Restart(ids) => {
            for i in ids {
                cluster.restart(i)?;
            }
        }
        Undo::Resume(i) => cluster.resume(i)?,
        Undo::Heal => cluster.net.heal()?,
        Undo::Nothing => {}
    }
    Ok(())
}

/// Heals every fault: network, paused and dead members.
pub fn heal_all(cluster: &mut Cluster) {
    if let Err(e) = cluster.net.heal() {
        eprintln!("chaos: heal network: {e:#}");
    }
    for i in 1..=cluster.size() {
        if let Err(e) = cluster.resume(i).and_then(|_| cluster.restart(i)) {
            eprintln!("chaos: heal n{i}: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_reproducible_and_bounded() {
        let kinds = [Kind::Kill, Kind::Pause, Kind::Partition, Kind::PowerLoss];
        let a = schedule(7, &kinds, 3, Duration::from_secs(60));
        let b = schedule(7, &kinds, 3, Duration::from_secs(60));
        assert_eq!(serde_json::to_string(&a).ok(), serde_json::to_string(&b).ok());
        assert!(!a.is_empty());
        for p in &a {
            assert!(p.at_ms + p.hold_ms + 2_000 <= 60_000);
            if let Fault::OneWay { from, to } = p.fault {
                assert_ne!(from, to);
            }
        }
    }

    #[test]
    fn ring_gives_each_member_a_distinct_majority() {
        for n in [3, 5] {
            let g = majorities_ring(n);
            let mut seen = BTreeSet::new();
            for i in 1..=n {
                let sees: BTreeSet<usize> = (1..=n).filter(|j| !g[&i].contains(j)).collect();
                assert!(sees.len() > n / 2 && sees.contains(&i));
                assert!(seen.insert(sees));
            }
        }
    }

    #[test]
    fn halves_are_symmetric() {
        let g = halves(&[2], 3);
        assert_eq!(g[&2], BTreeSet::from([1, 3]));
        assert_eq!(g[&1], BTreeSet::from([2]));
        assert_eq!(g[&3], BTreeSet::from([2]));
    }
}

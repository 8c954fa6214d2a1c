//! The leader-only runner: the scheduler and the controllers run on the master that leads the
//! Raft group, and only there. When this member wins an election in term T the runner starts
//! every component with a `Storage` whose writes are fenced by T; when it loses leadership (or
//! leads a later term) it cancels them. The fence is what makes this safe: the state machine
//! refuses, at apply time, any write fenced by T that a leader of another term appended, so a
//! deposed leader's components cannot write even while they are still winding down, and a new
//! leader need not wait for a lease to expire (ARCHITECTURE.md, fenced leadership).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::storage::Storage;

/// What a component is started with.
#[derive(Clone)]
pub struct Term {
    /// The term this member leads; every write through `storage` is fenced by it.
    pub term: u64,
    /// Writes fenced by `term`; reads are the store's as usual.
    pub storage: Storage,
    /// Cancelled when leadership of `term` ends (or the master shuts down).
    pub stop: CancellationToken,
    /// When this member became leader of `term` (failover measurements start here).
    pub since: Instant,
}

type Run = dyn Fn(Term) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// One leader-only component: a name for logs and a function that runs it for one term.
#[derive(Clone)]
pub struct Component {
    pub name: &'static str,
    run: Arc<Run>,
}

impl Component {
    pub fn new<F, Fut>(name: &'static str, run: F) -> Self
    where
        F: Fn(Term) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Component {
            name,
            run: Arc::new(move |t| Box::pin(run(t))),
        }
    }
}

struct Running {
    term: u64,
    stop: CancellationToken,
    since: Instant,
    /// Each task returns its component's index when it ends.
    tasks: JoinSet<usize>,
}

/// Pause before restarting a component that ended while its term went on.
const RESTART_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

fn spawn(tasks: &mut JoinSet<usize>, components: &[Component], i: usize, t: Term, delay: std::time::Duration) {
    let run = components[i].run.clone();
    tasks.spawn(async move {
        if !delay.is_zero() {
            tokio::select! {
                _ = t.stop.cancelled() => return i,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        // In its own task so that a panic is reported here, with the component's index. It
        // stops with `t.stop`, which is cancelled before this outer task is aborted.
        if let Err(e) = tokio::spawn(run(t)).await {
            tracing::error!(error = %e, "a leader-only component failed");
        }
        i
    });
}

/// Under `--unsafe-no-fencing` (a failure test's negative control) a deposed leader's
/// components run on this long, as a lease-elected controller manager does until its lease
/// runs out: the window the fence closes.
const UNFENCED_LAG: std::time::Duration = std::time::Duration::from_secs(5);

impl Running {
    /// Stops now, or after [`UNFENCED_LAG`] when fencing is off.
    fn deposed(self, fenced: bool) {
        if fenced {
            self.stop();
        } else {
            tracing::warn!(
                term = self.term,
                "unfenced: the deposed leader's components run on for {UNFENCED_LAG:?}"
            );
            tokio::spawn(async move {
                tokio::time::sleep(UNFENCED_LAG).await;
                self.stop();
            });
        }
    }

    fn stop(mut self) {
        self.stop.cancel();
        // Fenced writes in flight fail at apply time; the tasks need not be waited for.
        self.tasks.abort_all();
        tracing::info!(term = self.term, "leader-only components stopped");
    }
}

/// Runs `components` whenever this member leads, until `shutdown`.
pub async fn run(storage: Storage, components: Vec<Component>, shutdown: CancellationToken) {
    let mut leadership = storage.store().leadership();
    let fenced = storage.store().fencing_enforced();
    let mut running: Option<Running> = None;
    loop {
        let now = leadership.current();
        match (now, running.as_ref().map(|r| r.term)) {
            (Some(term), Some(t)) if term == t => {}
            (Some(term), _) => {
                if let Some(r) = running.take() {
                    r.deposed(fenced);
                }
                let stop = shutdown.child_token();
                let mut tasks = JoinSet::new();
                let since = Instant::now();
                for i in 0..components.len() {
                    let t = Term {
                        term,
                        storage: storage.fenced(term),
                        stop: stop.clone(),
                        since,
                    };
                    spawn(&mut tasks, &components, i, t, std::time::Duration::ZERO);
                }
                tracing::info!(term, components = components.len(), "leader-only components started");
                running = Some(Running {
                    term,
                    stop,
                    since,
                    tasks,
                });
            }
            (None, Some(_)) => {
                if let Some(r) = running.take() {
                    r.deposed(fenced);
                }
            }
            (None, None) => {}
        }
        let ended = async {
            match running.as_mut() {
                Some(r) if !r.tasks.is_empty() => r.tasks.join_next().await,
                _ => std::future::pending().await,
            }
        };
        let ended: Option<Result<usize, tokio::task::JoinError>> = tokio::select! {
            _ = shutdown.cancelled() => break,
            alive = leadership.changed() => if alive { None } else { break },
            Some(done) = ended => Some(done),
        };
        // A component ended (returned, or panicked and was reported) while this master still
        // leads: run it again, after a pause, in the same term.
        if let (Some(Ok(i)), Some(r)) = (ended, running.as_mut()) {
            if !r.stop.is_cancelled() {
                tracing::warn!(
                    component = components[i].name,
                    term = r.term,
                    "leader-only component ended; restarting"
                );
                let t = Term {
                    term: r.term,
                    storage: storage.fenced(r.term),
                    stop: r.stop.clone(),
                    since: r.since,
                };
                spawn(&mut r.tasks, &components, i, t, RESTART_AFTER);
            }
        }
    }
    if let Some(r) = running.take() {
        r.stop();
    }
}

//! Coalesces linearizable reads: every read needs a read index confirmed by a quorum of
//! heartbeats, but one confirmation can serve every read that arrived before it started.
//!
//! A read that arrives while a round is in flight waits for the *next* round, so the index it
//! gets was confirmed after it arrived (what linearizability requires). One driver task runs
//! rounds back to back while reads are waiting.

use std::future::Future;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::StoreError;

type Waiter = oneshot::Sender<Result<u64, StoreError>>;

#[derive(Default)]
pub struct ReadBatcher {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    driving: bool,
    waiters: Vec<Waiter>,
}

impl ReadBatcher {
    /// Registers a read. Returns its receiver, and whether the caller must start the driver.
    pub fn enqueue(&self) -> (oneshot::Receiver<Result<u64, StoreError>>, bool) {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.lock();
        st.waiters.push(tx);
        let start = !st.driving;
        st.driving = true;
        (rx, start)
    }

    /// The driver: runs `round` until no read is waiting. Each round answers exactly the reads
    /// registered before it started.
    pub async fn drive<F, Fut>(&self, mut round: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<u64, StoreError>>,
    {
        loop {
            let batch = {
                let mut st = self.state.lock();
                if st.waiters.is_empty() {
                    st.driving = false;
                    return;
                }
                std::mem::take(&mut st.waiters)
            };
            let res = round().await;
            for w in batch {
                let _ = w.send(res.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn one_round_serves_all_reads_that_came_before_it() {
        let b = Arc::new(ReadBatcher::default());
        let (r1, start1) = b.enqueue();
        let (r2, start2) = b.enqueue();
        assert!(start1);
        assert!(!start2, "a second driver must not start");
        let rounds = Arc::new(AtomicU64::new(0));
        let rc = rounds.clone();
        b.drive(move || {
            let n = rc.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(n * 10) }
        })
        .await;
        assert_eq!(r1.await.ok(), Some(Ok(10)));
        assert_eq!(r2.await.ok(), Some(Ok(10)));
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        // The driver stopped; the next read starts a new one.
        let (_r3, start3) = b.enqueue();
        assert!(start3);
    }

    #[tokio::test]
    async fn a_read_arriving_during_a_round_waits_for_the_next_one() {
        let b = Arc::new(ReadBatcher::default());
        let (r1, _) = b.enqueue();
        let late = std::sync::Mutex::new(None);
        let b2 = b.clone();
        let mut n = 0u64;
        b.drive(|| {
            n += 1;
            if n == 1 {
                // Arrives while round 1 is in flight.
                *late.lock().expect("lock") = Some(b2.enqueue().0);
            }
            let v = n;
            async move { Ok(v) }
        })
        .await;
        assert_eq!(r1.await.ok(), Some(Ok(1)));
        let r2 = late.lock().expect("lock").take().expect("late read");
        assert_eq!(
            r2.await.ok(),
            Some(Ok(2)),
            "served by a round that started after it arrived"
        );
    }
}

//! Did a watcher see every acknowledged write, in order?
//!
//! Every write of the watch workload creates one configmap, hence one resourceVersion (the
//! store revision) and one ADDED event on the watched namespace. A watcher is complete when
//! every resourceVersion a writer saw acknowledged is among the events it received; events
//! must arrive in strictly increasing resourceVersion order. (Writes that failed or timed out
//! on the client may still have been applied, so extra events are not an error.)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchCheck {
    /// Acknowledged revisions the watcher never saw.
    pub missing: u64,
    /// Events whose revision was not above the previous event's.
    pub out_of_order: u64,
}

/// `acked` must be sorted; `seen` is in arrival order.
pub fn check_events(acked: &[i64], seen: &[i64]) -> WatchCheck {
    let out_of_order = seen.windows(2).filter(|w| w[1] <= w[0]).count() as u64;
    let mut sorted = seen.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let missing = acked.iter().filter(|r| sorted.binary_search(r).is_err()).count() as u64;
    WatchCheck { missing, out_of_order }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_in_order_stream_passes() {
        assert_eq!(check_events(&[3, 4, 7], &[3, 4, 5, 7]), WatchCheck::default());
        assert_eq!(check_events(&[], &[]), WatchCheck::default());
    }

    #[test]
    fn missing_and_reordered_events_are_counted() {
        assert_eq!(
            check_events(&[3, 4, 7, 9], &[3, 7]),
            WatchCheck {
                missing: 2,
                out_of_order: 0
            }
        );
        assert_eq!(
            check_events(&[3, 4, 7], &[4, 3, 7, 7]),
            WatchCheck {
                missing: 0,
                out_of_order: 2
            }
        );
    }
}

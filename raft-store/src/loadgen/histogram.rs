//! A log-bucketed latency histogram in the style of HdrHistogram.
//!
//! Values are `u64` (the load generator records nanoseconds). Values below `SUB` (128) get a
//! bucket each; above that, every power-of-two range `[2^e, 2^(e+1))` is split into `SUB`
//! equal sub-buckets, so a bucket is never wider than 1/128 of its lower bound. Reporting a
//! bucket's midpoint therefore errs by at most 1/256 (0.4 %) relative, for any value up to
//! `u64::MAX`, in a fixed 7424 counters (58 KiB). Min and max are tracked exactly, and every
//! reported percentile is clamped to them.

/// Sub-buckets per power of two, as a power of two: 2^7 = 128.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Exact buckets `0..SUB`, then `SUB` sub-buckets for each exponent `SUB_BITS..=63`.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish()
    }
}

/// Bucket index of `v`.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let mantissa = v >> shift; // in [SUB, 2 * SUB)
    ((u64::from(shift) + 1) * SUB + (mantissa - SUB)) as usize
}

/// The value a bucket stands for: the midpoint of the integers it holds.
fn representative(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let lower = (i % SUB + SUB) << shift;
    let width = 1u64 << shift;
    lower + (width - 1) / 2
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Smallest recorded value (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0) by nearest rank: the smallest recorded value such
    /// that at least `q` of all values are at or below it, to within a bucket. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return representative(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn index_and_representative_round_trip_within_half_a_percent() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            for x in [v, v + 1, v * 3 / 2, v * 2 - 1] {
                let r = representative(index(x));
                let err = (r as f64 - x as f64).abs() / x as f64;
                assert!(err <= 1.0 / 256.0, "x={x} r={r} err={err}");
                assert!(index(x) < BUCKETS);
            }
            v *= 2;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        for x in 0..SUB {
            assert_eq!(representative(index(x)), x, "small values are exact");
        }
    }

    #[test]
    fn bucket_indexes_are_monotonic() {
        let mut last = 0;
        for x in (0..2_000_000u64).step_by(7) {
            let i = index(x);
            assert!(i >= last);
            last = i;
        }
    }

    #[test]
    fn percentiles_within_one_percent_of_exact() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Log-uniform latencies from 1 µs to 10 s, in ns, plus a long tail.
        let mut values: Vec<u64> = (0..200_000)
            .map(|_| 10f64.powf(rng.gen_range(3.0..10.0)) as u64)
            .collect();
        values.extend((0..50).map(|_| rng.gen_range(10_000_000_000..60_000_000_000u64)));
        let mut h = Histogram::new();
        for &v in &values {
            h.record(v);
        }
        values.sort_unstable();
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            let want = exact(&values, q);
            let got = h.quantile(q);
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err <= 0.01, "q={q} want={want} got={got} err={err}");
        }
        assert_eq!(h.quantile(1.0), *values.last().expect("values"));
        assert_eq!(h.min(), values[0]);
        assert_eq!(h.count(), values.len() as u64);
    }

    #[test]
    fn narrow_distribution_percentiles_within_one_percent() {
        // Many values packed around 2 ms: every percentile falls inside a few buckets.
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut values: Vec<u64> = (0..100_000).map(|_| rng.gen_range(1_900_000..2_100_000)).collect();
        let mut h = Histogram::new();
        values.iter().for_each(|&v| h.record(v));
        values.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999] {
            let want = exact(&values, q) as f64;
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want <= 0.01, "q={q} want={want} got={got}");
        }
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut all = Histogram::new();
        for v in 0..10_000u64 {
            let x = v * v + 17;
            if v % 3 == 0 { &mut a } else { &mut b }.record(x);
            all.record(x);
        }
        a.merge(&b);
        for q in [0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
        assert_eq!(a.count(), all.count());
        assert_eq!(a.min(), all.min());
        assert_eq!(a.max(), all.max());
        assert_eq!(a.mean(), all.mean());
    }

    #[test]
    fn empty_and_single_value() {
        let h = Histogram::new();
        assert_eq!((h.quantile(0.5), h.min(), h.max(), h.mean()), (0, 0, 0, 0.0));
        let mut h = Histogram::new();
        h.record(123_456_789);
        for q in [0.0, 0.5, 0.999, 1.0] {
            assert_eq!(h.quantile(q), 123_456_789, "clamped to min/max");
        }
    }
}

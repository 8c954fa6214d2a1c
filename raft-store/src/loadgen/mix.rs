//! Weighted choice of the next operation for the mixed workload.
//!
//! The Kubernetes-like mix (see docs/benchmarks.md): 60 % small serializable gets (what an API
//! server's reads of single objects cost when its watch cache cannot serve them and it reads
//! locally), 20 % txn-cas updates (every Kubernetes update: read mod_revision, compare-and-put),
//! 10 % plain puts (creates), 10 % lists of one 256-key group (a namespace list).

use super::op_kind::OpKind;

#[derive(Debug, Clone)]
pub struct Mix {
    /// (kind, cumulative weight), cumulative weights strictly increasing.
    table: Vec<(OpKind, u32)>,
}

impl Mix {
    /// Kinds with weight 0 are dropped. Panics never; an empty mix is refused.
    pub fn new(weights: &[(OpKind, u32)]) -> Result<Self, String> {
        let mut table = Vec::new();
        let mut acc = 0u32;
        for &(k, w) in weights.iter().filter(|(_, w)| *w > 0) {
            acc = acc.checked_add(w).ok_or("mix weights overflow")?;
            table.push((k, acc));
        }
        if table.is_empty() {
            return Err("mix has no operation with a positive weight".into());
        }
        Ok(Mix { table })
    }

    /// 60 % range (serializable), 20 % txn-cas, 10 % put, 10 % list.
    pub fn kubernetes() -> Self {
        Mix {
            table: vec![
                (OpKind::Range, 60),
                (OpKind::TxnCas, 80),
                (OpKind::Put, 90),
                (OpKind::List, 100),
            ],
        }
    }

    pub fn total_weight(&self) -> u32 {
        self.table.last().map_or(0, |&(_, w)| w)
    }

    /// The kind for a uniform random `r` (any `u32`; reduced modulo the total weight).
    pub fn pick(&self, r: u32) -> OpKind {
        let x = r % self.total_weight().max(1);
        self.table
            .iter()
            .find(|&&(_, cum)| x < cum)
            .map_or(self.table[0].0, |&(k, _)| k)
    }

    /// `(kind, weight in percent)` for documentation and reports.
    pub fn describe(&self) -> Vec<(OpKind, f64)> {
        let total = f64::from(self.total_weight());
        let mut prev = 0;
        self.table
            .iter()
            .map(|&(k, cum)| {
                let w = cum - prev;
                prev = cum;
                (k, 100.0 * f64::from(w) / total)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_mix_boundaries() {
        let m = Mix::kubernetes();
        assert_eq!(m.pick(0), OpKind::Range);
        assert_eq!(m.pick(59), OpKind::Range);
        assert_eq!(m.pick(60), OpKind::TxnCas);
        assert_eq!(m.pick(79), OpKind::TxnCas);
        assert_eq!(m.pick(80), OpKind::Put);
        assert_eq!(m.pick(90), OpKind::List);
        assert_eq!(m.pick(99), OpKind::List);
        assert_eq!(m.pick(100), OpKind::Range, "wraps modulo the total");
    }

    #[test]
    fn uniform_input_gives_the_weights() {
        let m = Mix::kubernetes();
        let mut counts = std::collections::HashMap::new();
        for r in 0..100_000u32 {
            *counts.entry(m.pick(r.wrapping_mul(2_654_435_761))).or_insert(0u32) += 1;
        }
        let pct = |k| f64::from(counts[&k]) / 1000.0;
        assert!((pct(OpKind::Range) - 60.0).abs() < 1.0);
        assert!((pct(OpKind::TxnCas) - 20.0).abs() < 1.0);
        assert!((pct(OpKind::Put) - 10.0).abs() < 1.0);
        assert!((pct(OpKind::List) - 10.0).abs() < 1.0);
    }

    #[test]
    fn zero_weights_dropped_and_empty_refused() {
        let m = Mix::new(&[(OpKind::Put, 0), (OpKind::Range, 3)]).expect("mix");
        assert!((0..10).all(|r| m.pick(r) == OpKind::Range));
        assert!(Mix::new(&[(OpKind::Put, 0)]).is_err());
        assert_eq!(
            Mix::new(&[(OpKind::Put, 1), (OpKind::List, 3)])
                .expect("mix")
                .describe(),
            vec![(OpKind::Put, 25.0), (OpKind::List, 75.0)]
        );
    }
}

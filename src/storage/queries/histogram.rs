//! A latency histogram in log bins, as the per-minute rollups
//! (`genai_minutes`, `service_minutes`) store it: mergeable across minutes,
//! services and models, which percentiles over raw spans are not, and
//! within a bin's width (9 %) of the exact percentile.

use crate::storage::writer::derived::genai_rollup::BINS_PER_OCTAVE;

/// The SQL for the log bin of the column `v`, as `genai_rollup::bin_of`
/// computes it in Rust.
pub fn bin_sql(v: &str) -> String {
    format!("floor(log2(greatest({v}, 1)) * {BINS_PER_OCTAVE})::INTEGER")
}

/// A latency histogram: bin → (count, min, max).
#[derive(Default, Clone)]
pub struct Histogram(std::collections::BTreeMap<i32, (u64, f64, f64)>);

impl Histogram {
    pub fn add(&mut self, bin: i32, n: u64, min: f64, max: f64) {
        let e = self.0.entry(bin).or_insert((0, f64::MAX, f64::MIN));
        e.0 += n;
        e.1 = e.1.min(min);
        e.2 = e.2.max(max);
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (b, (n, lo, hi)) in &o.0 {
            self.add(*b, *n, *lo, *hi);
        }
    }

    /// The `p` quantile (as `quantile_cont` ranks it), interpolated inside
    /// its bin between the bin's smallest and largest value.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let n: u64 = self.0.values().map(|(c, _, _)| c).sum();
        if n == 0 {
            return None;
        }
        let rank = p * (n - 1) as f64;
        let mut before = 0u64;
        for (c, lo, hi) in self.0.values() {
            if rank < (before + c) as f64 {
                let within = if *c > 1 {
                    (rank - before as f64) / (*c - 1) as f64
                } else {
                    0.0
                };
                return Some(lo + (hi - lo) * within.clamp(0.0, 1.0));
            }
            before += c;
        }
        self.0.values().last().map(|(_, _, hi)| *hi)
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn histogram_quantiles_are_exact_for_single_values_and_close_otherwise() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        h.add(10, 2, 400.0, 400.0);
        assert_eq!(h.quantile(0.5), Some(400.0));
        assert_eq!(h.quantile(0.99), Some(400.0));
        // 1..=1000 in log bins of 8 per doubling: within a bin's width.
        let mut h = Histogram::default();
        for v in 1..=1000u32 {
            let v = f64::from(v);
            h.add((v.log2() * 8.0).floor() as i32, 1, v, v);
        }
        for (p, exact) in [(0.5, 500.5), (0.95, 950.05), (0.99, 990.01)] {
            let q = h.quantile(p).unwrap();
            assert!((q - exact).abs() / exact < 0.01, "p{p}: {q} vs {exact}");
        }
    }
}

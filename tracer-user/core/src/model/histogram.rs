//! A cumulative latency histogram with fixed buckets from 1 ms to 60 s,
//! exported as a Prometheus histogram in seconds.

/// Upper bounds of the buckets, in seconds (`+Inf` is implied).
pub const BUCKETS_S: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Observations since start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot is above 60 s.
    counts: [u64; BUCKETS_S.len() + 1],
    sum_ns: u128,
    count: u64,
}

/// `(upper bound, cumulative count)` of per-bucket `counts` (one more
/// than `bounds`: the last is above them all), ending with `+Inf`.
pub(crate) fn cumulative<'a>(
    bounds: &'a [f64],
    counts: &'a [u64],
) -> impl Iterator<Item = (f64, u64)> + 'a {
    let mut running = 0;
    bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(counts.iter().copied())
        .map(move |(le, n)| {
            running += n;
            (le, running)
        })
}

/// What the exposition reads of a histogram.
pub trait Buckets {
    /// `(upper bound, cumulative count)`, ending with `+Inf`.
    fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_;
    /// The sum of the observations, in the exported unit.
    fn sum(&self) -> f64;
    fn count(&self) -> u64;
}

impl Buckets for Histogram {
    fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        Histogram::cumulative(self)
    }

    fn sum(&self) -> f64 {
        self.sum_seconds()
    }

    fn count(&self) -> u64 {
        Histogram::count(self)
    }
}

impl Histogram {
    pub fn observe_ns(&mut self, ns: u64) {
        let s = ns as f64 / 1e9;
        let slot = BUCKETS_S
            .iter()
            .position(|&le| s <= le)
            .unwrap_or(BUCKETS_S.len());
        self.counts[slot] += 1;
        self.sum_ns += u128::from(ns);
        self.count += 1;
    }

    /// `(upper bound in seconds, cumulative count)`, ending with `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        cumulative(&BUCKETS_S, &self.counts)
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let mut h = Histogram::default();
        h.observe_ns(1_000_000); // exactly 1 ms: in le=0.001
        h.observe_ns(700_000_000); // 0.7 s: le=1
        h.observe_ns(90_000_000_000); // 90 s: only +Inf
        let b: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(b.len(), 16);
        assert_eq!(b[0], (0.001, 1));
        assert_eq!(b[8], (0.5, 1));
        assert_eq!(b[9], (1.0, 2));
        assert_eq!(b[14], (60.0, 2));
        assert_eq!(b[15], (f64::INFINITY, 3));
        assert_eq!(h.count(), 3);
        assert!((h.sum_seconds() - 90.701).abs() < 1e-9);
    }
}

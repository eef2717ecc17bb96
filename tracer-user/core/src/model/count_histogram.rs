//! A cumulative histogram of counts (watchers per write), with fixed
//! buckets from 0 to 5,000, exported as a Prometheus histogram.

use super::histogram::{Buckets, cumulative};

/// Upper bounds of the buckets (`+Inf` is implied).
pub const COUNT_BUCKETS: [f64; 13] = [
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Observations since start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CountHistogram {
    /// Per bucket (not cumulative); the last slot is above 5,000.
    counts: [u64; COUNT_BUCKETS.len() + 1],
    sum: u64,
    count: u64,
}

impl CountHistogram {
    pub fn observe(&mut self, n: u64) {
        let slot = COUNT_BUCKETS
            .iter()
            .position(|&le| n as f64 <= le)
            .unwrap_or(COUNT_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += n;
        self.count += 1;
    }
}

impl Buckets for CountHistogram {
    fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        cumulative(&COUNT_BUCKETS, &self.counts)
    }

    fn sum(&self) -> f64 {
        self.sum as f64
    }

    fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_in_inclusive_buckets() {
        let mut h = CountHistogram::default();
        for n in [0, 1, 3, 9000] {
            h.observe(n);
        }
        let b: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(b[0], (0.0, 1));
        assert_eq!(b[1], (1.0, 2));
        assert_eq!(b[3], (5.0, 3));
        assert_eq!(b[12], (5000.0, 3));
        assert_eq!(b[13], (f64::INFINITY, 4));
        assert_eq!((h.sum(), h.count()), (9004.0, 4));
    }
}

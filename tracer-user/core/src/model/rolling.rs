//! Rolling sums over a recent span (events per second, stalls in the last
//! minute), kept in fixed buckets so the cost does not grow with the rate.

use std::collections::VecDeque;

/// A sum over the last `buckets × bucket_ns` of time.
#[derive(Clone, Debug)]
pub(crate) struct RollingSum {
    bucket_ns: u64,
    buckets: usize,
    /// (bucket index = ts / bucket_ns, sum), oldest first.
    sums: VecDeque<(u64, u64)>,
}

impl RollingSum {
    pub(crate) fn new(span_ns: u64, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        Self {
            bucket_ns: (span_ns / buckets as u64).max(1),
            buckets,
            // Allocated on first use: most short streams never count.
            sums: VecDeque::new(),
        }
    }

    /// One second in tenths: rates per second.
    #[cfg(test)]
    pub(crate) fn per_second() -> Self {
        Self::new(1_000_000_000, 10)
    }

    /// Five seconds in half seconds: the rates `top` shows. Over one
    /// second, bursty sends made a steady connection's TX read
    /// 362K, 0, 0, 0, 247K on successive refreshes.
    pub(crate) fn smoothed_rate() -> Self {
        Self::new(5_000_000_000, 10)
    }

    /// One minute in seconds: "last minute" counts.
    pub(crate) fn per_minute() -> Self {
        Self::new(60_000_000_000, 60)
    }

    /// Adds `amount` at `ts`. Amounts older than the span before `now` are
    /// ignored (they would not be counted anyway).
    pub(crate) fn add(&mut self, ts: u64, amount: u64, now: u64) {
        let index = ts / self.bucket_ns;
        let oldest = self.oldest_index(now);
        if index < oldest {
            return;
        }
        while self.sums.front().is_some_and(|&(i, _)| i < oldest) {
            self.sums.pop_front();
        }
        // Usually the newest bucket; a late amount finds its own.
        match self.sums.iter().rposition(|&(i, _)| i <= index) {
            Some(p) if self.sums[p].0 == index => self.sums[p].1 += amount,
            Some(p) => self.sums.insert(p + 1, (index, amount)),
            None => self.sums.push_front((index, amount)),
        }
    }

    /// The first bucket index inside the span ending at `now`.
    fn oldest_index(&self, now: u64) -> u64 {
        (now / self.bucket_ns).saturating_sub(self.buckets as u64 - 1)
    }

    /// The sum over the span ending at `now` (the current, partial bucket
    /// and the full ones before it).
    pub(crate) fn sum(&self, now: u64) -> u64 {
        let oldest = self.oldest_index(now);
        let newest = now / self.bucket_ns;
        self.sums
            .iter()
            .filter(|&&(i, _)| i >= oldest && i <= newest)
            .map(|&(_, s)| s)
            .sum()
    }

    /// The sum divided by the span in seconds: a rate per second.
    pub(crate) fn rate(&self, now: u64) -> f64 {
        let span_s = (self.bucket_ns * self.buckets as u64) as f64 / 1e9;
        self.sum(now) as f64 / span_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    #[test]
    fn rate_counts_the_last_second_only() {
        let mut r = RollingSum::per_second();
        // 20 events, 100 ms apart, from t = 10 s: 10 per second.
        for i in 0..20 {
            let ts = 10 * S + i * 100 * MS;
            r.add(ts, 1, ts);
        }
        let now = 10 * S + 19 * 100 * MS;
        assert_eq!(r.sum(now), 10);
        assert!((r.rate(now) - 10.0).abs() < 1e-9);
        // Quiet for a second: nothing left.
        assert_eq!(r.sum(now + S), 0);
    }

    #[test]
    fn a_minute_sum_keeps_sixty_seconds() {
        let mut m = RollingSum::per_minute();
        m.add(S, 7, S);
        m.add(30 * S, 5, 30 * S);
        assert_eq!(m.sum(60 * S), 12);
        assert_eq!(m.sum(61 * S), 5, "the bucket of second 1 aged out");
        assert_eq!(m.sum(90 * S), 0);
    }

    #[test]
    fn late_amounts_land_in_their_own_bucket() {
        let mut m = RollingSum::per_minute();
        m.add(10 * S, 1, 10 * S);
        m.add(20 * S, 1, 20 * S);
        m.add(15 * S, 4, 20 * S);
        m.add(5 * S, 8, 20 * S);
        assert_eq!(m.sum(20 * S), 14);
        assert_eq!(m.sum(65 * S), 6, "only the amounts after second 5 remain");
        assert_eq!(m.sum(70 * S), 5);
        // Older than the span: ignored.
        m.add(S, 100, 70 * S);
        assert_eq!(m.sum(70 * S), 5);
        assert!(m.sums.len() <= 61);
    }
}

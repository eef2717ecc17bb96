//! A rolling window of timed samples, for quantiles over the last minute.
//! Bounded: past its capacity the oldest sample goes (and is counted), so
//! a busy window covers less than its span rather than growing.

use std::collections::VecDeque;

/// Samples `(ts, value)` of the last `span_ns`, at most `cap` of them.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    span_ns: u64,
    cap: usize,
    samples: VecDeque<(u64, u64)>,
    /// Samples dropped for room before they aged out.
    evicted: u64,
}

impl Window {
    pub(crate) fn new(span_ns: u64, cap: usize) -> Self {
        Self {
            span_ns,
            cap: cap.max(1),
            samples: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Adds a sample taken at `ts`; `now` (the model's clock) ages out old
    /// ones. Samples arrive nearly in order, so trimming from the front is
    /// enough: a slightly late one is only filtered later, at query time.
    pub(crate) fn push(&mut self, ts: u64, value: u64, now: u64) {
        self.trim(now);
        if self.samples.len() == self.cap {
            self.samples.pop_front();
            self.evicted += 1;
        }
        self.samples.push_back((ts, value));
    }

    /// Drops the samples older than the span before `now`.
    pub(crate) fn trim(&mut self, now: u64) {
        let horizon = now.saturating_sub(self.span_ns);
        while self.samples.front().is_some_and(|&(ts, _)| ts <= horizon) {
            self.samples.pop_front();
        }
    }

    /// The samples in `(now - span, now]`.
    fn live(&self, now: u64) -> impl Iterator<Item = u64> + '_ {
        let horizon = now.saturating_sub(self.span_ns);
        self.samples
            .iter()
            .filter(move |&&(ts, _)| ts > horizon && ts <= now)
            .map(|&(_, v)| v)
    }

    /// How many samples the span before `now` holds.
    pub(crate) fn count(&self, now: u64) -> u64 {
        self.live(now).count() as u64
    }

    /// The `q` quantile (nearest rank: the smallest value with at least
    /// `q` of the samples at or below it) over the span before `now`.
    pub(crate) fn quantile(&self, now: u64, q: f64) -> Option<u64> {
        let mut values: Vec<u64> = self.live(now).collect();
        if values.is_empty() {
            return None;
        }
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        let (_, v, _) = values.select_nth_unstable(rank - 1);
        Some(*v)
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn p99_of_a_hundred_samples_is_the_99th_smallest() {
        let mut w = Window::new(60 * S, 1000);
        // Values 1..=100 in shuffled order.
        for i in 0..100u64 {
            let v = (i * 37) % 100 + 1;
            w.push(S + i, v, S + i);
        }
        assert_eq!(w.quantile(2 * S, 0.99), Some(99));
        assert_eq!(w.quantile(2 * S, 0.5), Some(50));
        assert_eq!(w.quantile(2 * S, 1.0), Some(100));
        assert_eq!(w.count(2 * S), 100);
    }

    #[test]
    fn samples_older_than_the_span_stop_counting() {
        let mut w = Window::new(60 * S, 1000);
        w.push(S, 5_000, S);
        w.push(30 * S, 10, 30 * S);
        assert_eq!(w.quantile(60 * S, 0.99), Some(5_000));
        // At 61 s the first sample is exactly one span old: out.
        assert_eq!(w.quantile(61 * S, 0.99), Some(10));
        assert_eq!(w.quantile(91 * S, 0.99), None);
        w.trim(91 * S);
        assert!(w.samples.is_empty());
    }

    #[test]
    fn a_full_window_drops_and_counts_its_oldest() {
        let mut w = Window::new(60 * S, 3);
        for (i, v) in [100, 1, 2, 3].into_iter().enumerate() {
            w.push(S + i as u64, v, S + i as u64);
        }
        assert_eq!(w.evicted(), 1);
        assert_eq!(w.quantile(2 * S, 1.0), Some(3), "the 100 was dropped");
    }
}

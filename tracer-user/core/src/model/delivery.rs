//! Delivery delays over the last minute, some of them lower bounds: an
//! event whose ack did not come within the ack deadline counts with how
//! long it had waited then (a client that stops reading shows as late
//! while it does), so a P99 over such events is "at least".

use super::{MINUTE_NS, snapshot::Delay, window::Window};

#[derive(Clone, Debug)]
pub(crate) struct DelayWindow {
    window: Window,
    /// The newest lower bound's event time.
    lower_bound_at: Option<u64>,
}

impl DelayWindow {
    pub(crate) fn new(samples: usize) -> Self {
        Self {
            window: Window::new(MINUTE_NS, samples),
            lower_bound_at: None,
        }
    }

    /// A delay at `ts`; `lower_bound`: the event had not been acknowledged.
    pub(crate) fn push(&mut self, ts: u64, ns: u64, lower_bound: bool, now: u64) {
        self.window.push(ts, ns, now);
        if lower_bound {
            self.lower_bound_at = Some(self.lower_bound_at.map_or(ts, |t| t.max(ts)));
        }
    }

    /// The P99 over the last minute, marked "at least" while a lower bound
    /// is among its events.
    pub(crate) fn p99(&self, now: u64) -> Option<Delay> {
        let ns = self.window.quantile(now, 0.99)?;
        let at_least = self
            .lower_bound_at
            .is_some_and(|t| t.saturating_add(MINUTE_NS) > now);
        Some(Delay { ns, at_least })
    }

    pub(crate) fn count(&self, now: u64) -> u64 {
        self.window.count(now)
    }

    pub(crate) fn trim(&mut self, now: u64) {
        self.window.trim(now);
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.window.evicted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn p99(ns: u64, at_least: bool) -> Option<Delay> {
        Some(Delay { ns, at_least })
    }

    #[test]
    fn a_p99_is_at_least_while_an_unacknowledged_wait_is_in_its_minute() {
        let mut w = DelayWindow::new(1024);
        w.push(1_000 * MS, 5 * MS, false, 1_000 * MS);
        assert_eq!(w.p99(1_000 * MS), p99(5 * MS, false));
        w.push(2_000 * MS, 1_100 * MS, true, 2_000 * MS);
        assert_eq!(w.p99(2_000 * MS), p99(1_100 * MS, true));
        // A minute on, the lower bound has left the window.
        w.push(62_000 * MS, 5 * MS, false, 62_000 * MS);
        assert_eq!(w.p99(62_000 * MS), p99(5 * MS, false));
    }
}

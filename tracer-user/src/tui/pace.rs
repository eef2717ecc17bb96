//! Pacing a replay by its records' timestamps. Pure: given a record's
//! time, says when (after the replay started) it is due.

use std::time::Duration;

/// Maps record times to wall-clock offsets at a speed factor.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Recording time per wall time; 0 means no pacing at all.
    speed: f64,
    first_ns: Option<u64>,
}

impl Pacer {
    /// `speed` 1 replays in real time, 10 ten times faster; 0 (or anything
    /// not finite and positive) as fast as possible.
    pub fn new(speed: f64) -> Self {
        Self {
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                0.0
            },
            first_ns: None,
        }
    }

    /// How long after the start of the replay the record stamped `ts_ns`
    /// (CLOCK_MONOTONIC) is due. The first record is due at once; a record
    /// stamped before it (userspace records are stamped a little out of
    /// order) is due at once too.
    pub fn due(&mut self, ts_ns: u64) -> Duration {
        let first = *self.first_ns.get_or_insert(ts_ns);
        if self.speed == 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(ts_ns.saturating_sub(first) as f64 / 1e9 / self.speed)
    }

    /// The recording's clock `elapsed` after the start of the replay: the
    /// record time being replayed now. `None` before the first record and
    /// when unpaced (there is no such clock then).
    pub fn position(&self, elapsed: Duration) -> Option<u64> {
        let first = self.first_ns?;
        (self.speed > 0.0)
            .then(|| first.saturating_add((elapsed.as_secs_f64() * self.speed * 1e9) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_due_at_their_offset_scaled_by_the_speed() {
        let mut pacer = Pacer::new(2.0);
        assert_eq!(pacer.due(5_000_000_000), Duration::ZERO);
        assert_eq!(pacer.due(7_000_000_000), Duration::from_secs(1));
        assert_eq!(pacer.due(4_000_000_000), Duration::ZERO);
        let mut realtime = Pacer::new(1.0);
        realtime.due(100);
        assert_eq!(realtime.due(100 + 250_000_000), Duration::from_millis(250));
        assert_eq!(pacer.position(Duration::from_secs(3)), Some(11_000_000_000));
        assert_eq!(Pacer::new(1.0).position(Duration::from_secs(3)), None);
    }

    #[test]
    fn speed_zero_means_everything_is_due_now() {
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut pacer = Pacer::new(speed);
            pacer.due(1);
            assert_eq!(pacer.due(u64::MAX), Duration::ZERO, "speed {speed}");
            assert_eq!(pacer.position(Duration::from_secs(1)), None);
        }
    }
}

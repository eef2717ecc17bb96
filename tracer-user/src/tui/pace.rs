//! Pacing a replay by its records' timestamps. Pure: a virtual clock in
//! the recording's time (its "position"), moved by the wall time the
//! caller reports, paused and stepped by keys; records up to the position
//! are due.

use std::time::Duration;

/// When a record is due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Due {
    Now,
    /// After this much more wall time.
    After(Duration),
    /// Not while paused (a step or resuming moves the position).
    Held,
}

/// The replay's clock.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Recording time per wall time; 0 means no pacing at all.
    speed: f64,
    /// The recording time fed up to; `None` before the first record.
    position: Option<u64>,
    /// Records before this recording time are fed at once (`--since`).
    since_ns: Option<u64>,
    paused: bool,
    /// Unpaced until [`Pacer::pause`] (seeking the next stall).
    seeking: bool,
    /// The wall time of the last [`Pacer::tick`].
    last_wall: Duration,
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
            position: None,
            since_ns: None,
            paused: false,
            seeking: false,
            last_wall: Duration::ZERO,
        }
    }

    /// Records stamped before `ts_ns` are fed at once; pacing starts there.
    pub fn start_at(&mut self, ts_ns: u64) {
        self.since_ns = Some(ts_ns);
    }

    /// The wall clock (time since the replay started) moved to `wall`: the
    /// position moves with it at the speed, unless paused.
    pub fn tick(&mut self, wall: Duration) {
        let elapsed = wall.saturating_sub(self.last_wall);
        self.last_wall = self.last_wall.max(wall);
        if self.paused || self.speed == 0.0 {
            return;
        }
        if let Some(p) = &mut self.position {
            *p = p.saturating_add((elapsed.as_secs_f64() * self.speed * 1e9) as u64);
        }
    }

    /// Is the record stamped `ts_ns` (CLOCK_MONOTONIC) due? The first
    /// record starts the clock (at `--since`, if later). Records stamped a
    /// little out of order (userspace ones) are due at once.
    pub fn due(&mut self, ts_ns: u64) -> Due {
        let position = *self
            .position
            .get_or_insert(self.since_ns.map_or(ts_ns, |s| s.max(ts_ns)));
        if ts_ns <= position {
            return Due::Now;
        }
        if self.paused {
            return Due::Held;
        }
        if self.speed == 0.0 || self.seeking {
            self.position = Some(ts_ns);
            return Due::Now;
        }
        Due::After(Duration::from_secs_f64(
            (ts_ns - position) as f64 / 1e9 / self.speed,
        ))
    }

    /// The recording time fed up to; `None` before the first record.
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    pub fn pause(&mut self) {
        self.paused = true;
        self.seeking = false;
    }

    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Moves the position `ns` of recording time on, and stays paused.
    pub fn step(&mut self, ns: u64) {
        self.paused = true;
        self.seeking = false;
        if let Some(p) = &mut self.position {
            *p = p.saturating_add(ns);
        }
    }

    /// Plays unpaced until [`Pacer::pause`] (the caller pauses at the next
    /// stall).
    pub fn seek(&mut self) {
        self.paused = false;
        self.seeking = true;
    }

    pub fn seeking(&self) -> bool {
        self.seeking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn records_are_due_at_their_offset_scaled_by_the_speed() {
        let mut pacer = Pacer::new(2.0);
        assert_eq!(pacer.due(5 * S), Due::Now);
        assert_eq!(pacer.due(7 * S), Due::After(Duration::from_secs(1)));
        pacer.tick(Duration::from_millis(500));
        assert_eq!(pacer.due(7 * S), Due::After(Duration::from_millis(500)));
        pacer.tick(Duration::from_secs(1));
        assert_eq!(pacer.due(7 * S), Due::Now);
        assert_eq!(pacer.due(4 * S), Due::Now, "out of order: at once");
        assert_eq!(pacer.position(), Some(7 * S));
    }

    #[test]
    fn speed_zero_means_everything_is_due_now() {
        for speed in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut pacer = Pacer::new(speed);
            assert_eq!(pacer.due(1), Due::Now);
            assert_eq!(pacer.due(u64::MAX), Due::Now, "speed {speed}");
        }
    }

    #[test]
    fn a_paused_replay_holds_records_until_a_step_or_resume() {
        let mut pacer = Pacer::new(1.0);
        assert_eq!(pacer.due(10 * S), Due::Now);
        pacer.pause();
        pacer.tick(Duration::from_secs(5));
        assert_eq!(
            pacer.due(11 * S),
            Due::Held,
            "the wall clock does not move it"
        );
        pacer.step(S);
        assert_eq!(pacer.due(11 * S), Due::Now);
        assert_eq!(pacer.due(11 * S + 1), Due::Held);
        assert!(pacer.paused());
        pacer.resume();
        // The paused wall time does not count: 1 ns of recording is due
        // after 1 ns of wall time from here.
        assert_eq!(pacer.due(11 * S + 1), Due::After(Duration::from_nanos(1)));
        pacer.tick(Duration::from_secs(6));
        assert_eq!(pacer.due(11 * S + 1), Due::Now);
    }

    #[test]
    fn seeking_feeds_at_once_until_paused_there() {
        let mut pacer = Pacer::new(1.0);
        pacer.due(S);
        pacer.seek();
        assert_eq!(pacer.due(60 * S), Due::Now);
        pacer.pause();
        assert!(!pacer.seeking());
        assert_eq!(pacer.position(), Some(60 * S));
        assert_eq!(pacer.due(61 * S), Due::Held);
    }

    #[test]
    fn since_feeds_the_records_before_it_at_once() {
        let mut pacer = Pacer::new(1.0);
        pacer.start_at(30 * S);
        assert_eq!(pacer.due(S), Due::Now);
        assert_eq!(pacer.due(30 * S), Due::Now);
        assert_eq!(pacer.due(31 * S), Due::After(Duration::from_secs(1)));
    }
}

//! One stall episode: a fault seen as on-phases separated by short gaps.
//! Shared by socket stalls (`stalls`) and HTTP/2 window stalls (the
//! pipeline's `window_stalls`): one rule for both, documented in `stalls`.

use super::stalls::{MIN_STALL_NS, QUIET_NS};

/// An episode: on, or ended and waiting out [`QUIET_NS`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Episode {
    pub(crate) start_ns: u64,
    /// When the current on-phase began.
    phase_ns: u64,
    /// When it last ended; `None` while it is on.
    pub(crate) ended_ns: Option<u64>,
    /// The end of its longest on-phase so far, and that phase's length.
    longest: Option<(u64, u64)>,
    pub(crate) flaps: u32,
    /// Its `stall_start` was given (it lasted [`MIN_STALL_NS`]).
    pub(crate) announced: bool,
}

impl Episode {
    pub(crate) fn new(ts: u64) -> Self {
        Self {
            start_ns: ts,
            phase_ns: ts,
            ended_ns: None,
            longest: None,
            flaps: 0,
            announced: false,
        }
    }

    /// On again at `ts`: a flap, if it had ended.
    pub(crate) fn on(&mut self, ts: u64) {
        if self.ended_ns.take().is_some() {
            self.phase_ns = ts;
            self.flaps += 1;
        }
    }

    /// Ends the current on-phase at `ts` (if it is on).
    pub(crate) fn off(&mut self, ts: u64) {
        if self.ended_ns.is_some() {
            return;
        }
        let len = ts.saturating_sub(self.phase_ns);
        if self.longest.is_none_or(|(_, longest)| len > longest) {
            self.longest = Some((ts, len));
        }
        self.ended_ns = Some(ts);
    }

    /// Its end is final as of `now`: it stayed over for [`QUIET_NS`].
    pub(crate) fn is_over(&self, now: u64) -> bool {
        self.ended_ns
            .is_some_and(|end| end.saturating_add(QUIET_NS) <= now)
    }

    /// Due for its `stall_start` at `now`: on, unannounced, and one of its
    /// on-phases (this one or an earlier) has lasted [`MIN_STALL_NS`]
    /// (touches of zero, however many, are no stall). Marks it announced.
    pub(crate) fn announce(&mut self, now: u64) -> bool {
        let lasted = now >= self.phase_ns.saturating_add(MIN_STALL_NS)
            || self.longest.is_some_and(|(_, len)| len >= MIN_STALL_NS);
        let due = !self.announced && self.ended_ns.is_none() && lasted;
        self.announced |= due;
        due
    }

    /// The episode's end: that of its longest on-phase (the fault), not of
    /// the aftershocks.
    pub(crate) fn end_ns(&self) -> u64 {
        self.longest
            .map(|(end, _)| end)
            .or(self.ended_ns)
            .unwrap_or(self.start_ns)
    }

    /// No on-phase lasted [`MIN_STALL_NS`]: no stall, never announced as
    /// one.
    pub(crate) fn brief(&self) -> bool {
        !self.announced && self.longest.is_none_or(|(_, len)| len < MIN_STALL_NS)
    }
}

//! Flow-control windows ([RFC 9113 §5.2, §6.9]) and window stalls.
//!
//! A sender's window on the connection and on each stream starts at 65535
//! (streams: `SETTINGS_INITIAL_WINDOW_SIZE` of the receiver, once the sender
//! acknowledged it), shrinks by the whole payload of every DATA frame it
//! sends (padding and the pad-length byte included), and grows with the
//! receiver's WINDOW_UPDATEs. A change of `SETTINGS_INITIAL_WINDOW_SIZE`
//! shifts every open stream's window by the difference, possibly below
//! zero (§6.9.2).
//!
//! A *stall* starts when a known window reaches 0 or less and ends when it
//! is positive again (or stops being tracked). A window that is not known
//! (joined mid-connection, bytes lost) is `None` and never stalls: an
//! unknown window plus an update is still unknown.

use super::frame::MAX_WINDOW;

/// Which window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowScope {
    Connection,
    Stream(u32),
}

/// Why a stall ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallEndCause {
    /// A WINDOW_UPDATE made the window positive.
    WindowUpdate,
    /// A `SETTINGS_INITIAL_WINDOW_SIZE` increase made it positive.
    Settings,
    /// The window stopped being known (bytes lost).
    WindowUnknown,
    /// The stream ended (or was evicted from tracking).
    StreamClosed,
    /// The connection was closed.
    ConnectionClosed,
}

/// A change in stall state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StallChange {
    Started,
    Ended { since: u64, cause: StallEndCause },
}

/// One window and its stall state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Window {
    value: Option<i64>,
    stalled_since: Option<u64>,
}

/// Result of consuming window with DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Consumed {
    pub(crate) stall: Option<StallChange>,
    /// The window (before) was smaller than the frame: flow control was
    /// broken, or the two directions were fed out of order.
    pub(crate) exceeded: Option<i64>,
}

impl Window {
    /// An unknown window.
    pub(crate) fn unknown() -> Self {
        Self::default()
    }

    /// A window starting at `initial` (if known) at `ts`; starting at 0 or
    /// less is a stall from the start.
    pub(crate) fn new(initial: Option<i64>, ts: u64) -> (Self, Option<StallChange>) {
        let mut w = Self {
            value: initial,
            stalled_since: None,
        };
        let change = w.settle(ts, StallEndCause::WindowUpdate);
        (w, change)
    }

    pub(crate) fn value(&self) -> Option<i64> {
        self.value
    }

    #[cfg(test)]
    pub(crate) fn stalled_since(&self) -> Option<u64> {
        self.stalled_since
    }

    /// The sender sent a DATA frame of `len` payload bytes.
    pub(crate) fn consume(&mut self, len: u32, ts: u64) -> Consumed {
        let exceeded = self.value.filter(|&v| i64::from(len) > v);
        self.value = self.value.map(|v| v - i64::from(len));
        Consumed {
            stall: self.settle(ts, StallEndCause::WindowUpdate),
            exceeded,
        }
    }

    /// The window moves by `delta` (WINDOW_UPDATE increment, or a settings
    /// difference). Returns the stall change and, if the window went past
    /// 2^31 - 1, its new value.
    pub(crate) fn credit(
        &mut self,
        delta: i64,
        ts: u64,
        cause: StallEndCause,
    ) -> (Option<StallChange>, Option<i64>) {
        self.value = self.value.map(|v| v + delta);
        let overflow = self.value.filter(|&v| v > MAX_WINDOW);
        (self.settle(ts, cause), overflow)
    }

    /// The window is no longer known.
    pub(crate) fn forget(&mut self, ts: u64) -> Option<StallChange> {
        self.value = None;
        self.settle(ts, StallEndCause::WindowUnknown)
    }

    /// The window stops being tracked (stream or connection closed).
    pub(crate) fn close(&mut self, cause: StallEndCause) -> Option<StallChange> {
        self.value = None;
        self.stalled_since
            .take()
            .map(|since| StallChange::Ended { since, cause })
    }

    fn settle(&mut self, ts: u64, cause: StallEndCause) -> Option<StallChange> {
        match (self.stalled_since, self.value) {
            (None, Some(v)) if v <= 0 => {
                self.stalled_since = Some(ts);
                Some(StallChange::Started)
            }
            (Some(since), Some(v)) if v > 0 => {
                self.stalled_since = None;
                Some(StallChange::Ended { since, cause })
            }
            (Some(since), None) => {
                self.stalled_since = None;
                Some(StallChange::Ended {
                    since,
                    cause: StallEndCause::WindowUnknown,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Invariant: a stall starts exactly when the window reaches 0 and ends
    // when an update makes it positive, with the start time preserved.
    #[test]
    fn stall_starts_at_zero_and_ends_on_update() {
        let (mut w, c) = Window::new(Some(100), 0);
        assert_eq!(c, None);
        assert_eq!(w.consume(60, 1).stall, None);
        assert_eq!(w.consume(40, 2).stall, Some(StallChange::Started));
        assert_eq!(w.value(), Some(0));
        assert_eq!(
            w.credit(10, 5, StallEndCause::WindowUpdate).0,
            Some(StallChange::Ended {
                since: 2,
                cause: StallEndCause::WindowUpdate
            })
        );
    }

    // Invariant: a settings decrease can push a window below zero (a stall
    // without DATA); an increase that leaves it <= 0 does not end it.
    #[test]
    fn settings_delta_can_go_negative() {
        let (mut w, _) = Window::new(Some(100), 0);
        let (c, _) = w.credit(-150, 3, StallEndCause::Settings);
        assert_eq!(c, Some(StallChange::Started));
        assert_eq!(w.value(), Some(-50));
        assert_eq!(w.credit(50, 4, StallEndCause::Settings).0, None);
        assert!(matches!(
            w.credit(1, 5, StallEndCause::Settings).0,
            Some(StallChange::Ended { since: 3, .. })
        ));
    }

    // Invariant: an unknown window never stalls, and forgetting a stalled
    // window ends the stall explicitly.
    #[test]
    fn unknown_windows_never_stall() {
        let mut w = Window::unknown();
        assert_eq!(w.consume(1 << 20, 1).stall, None);
        assert_eq!(w.value(), None);
        let (mut w, _) = Window::new(Some(0), 7);
        assert_eq!(w.stalled_since(), Some(7));
        assert_eq!(
            w.forget(9),
            Some(StallChange::Ended {
                since: 7,
                cause: StallEndCause::WindowUnknown
            })
        );
    }

    // Invariant: DATA beyond the window and updates past 2^31-1 are flagged.
    #[test]
    fn violations_are_flagged() {
        let (mut w, _) = Window::new(Some(10), 0);
        assert_eq!(w.consume(11, 1).exceeded, Some(10));
        let (mut w, _) = Window::new(Some(MAX_WINDOW), 0);
        assert_eq!(
            w.credit(1, 1, StallEndCause::WindowUpdate).1,
            Some(MAX_WINDOW + 1)
        );
    }
}

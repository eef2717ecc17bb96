//! SETTINGS tracking ([RFC 9113 §6.5]): what each side announced, and when
//! it took effect.
//!
//! A side's SETTINGS constrain its *peer*, and they take effect for the peer
//! when the peer acknowledges them (§6.5.3): the peer applies them on
//! receipt and sends the ACK, so in the peer's byte stream the ACK marks the
//! point after which its frames follow the new values. Acknowledgements come
//! in order, so a queue of unacknowledged SETTINGS per side matches them.
//!
//! The two directions are captured separately, so an ACK can be processed
//! before the SETTINGS it acknowledges was seen (joined late, lost bytes,
//! or the two directions fed slightly out of order). An ACK only matches a
//! queued SETTINGS captured no later than itself; otherwise it is
//! *unmatched*. If SETTINGS from that side may have gone unseen, an
//! unmatched ACK means values we do not know took effect, so they become
//! unknown; never guessed.
//!
//! [RFC 9113 §6.5]: https://www.rfc-editor.org/rfc/rfc9113#section-6.5

use std::collections::VecDeque;

use super::frame::{DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, setting};

/// Settings one side announced, as in effect for its peer. `None`: not
/// known (joined mid-connection and not announced since, or lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsValues {
    /// Limit on the peer's HPACK dynamic table capacity.
    pub header_table_size: Option<u32>,
    pub enable_push: Option<u32>,
    /// `u32::MAX` stands for the default, unlimited.
    pub max_concurrent_streams: Option<u32>,
    /// Initial send window of the peer's streams.
    pub initial_window_size: Option<u32>,
    /// Largest frame payload the peer may send.
    pub max_frame_size: Option<u32>,
    /// `u32::MAX` stands for the default, unlimited.
    pub max_header_list_size: Option<u32>,
}

impl SettingsValues {
    /// The protocol defaults, in effect at the start of a connection.
    pub const DEFAULTS: Self = Self {
        header_table_size: Some(4096),
        enable_push: Some(1),
        max_concurrent_streams: Some(u32::MAX),
        initial_window_size: Some(DEFAULT_WINDOW),
        max_frame_size: Some(DEFAULT_MAX_FRAME_SIZE),
        max_header_list_size: Some(u32::MAX),
    };

    /// Nothing known.
    pub const UNKNOWN: Self = Self {
        header_table_size: None,
        enable_push: None,
        max_concurrent_streams: None,
        initial_window_size: None,
        max_frame_size: None,
        max_header_list_size: None,
    };

    fn slot(&mut self, id: u16) -> Option<&mut Option<u32>> {
        Some(match id {
            setting::HEADER_TABLE_SIZE => &mut self.header_table_size,
            setting::ENABLE_PUSH => &mut self.enable_push,
            setting::MAX_CONCURRENT_STREAMS => &mut self.max_concurrent_streams,
            setting::INITIAL_WINDOW_SIZE => &mut self.initial_window_size,
            setting::MAX_FRAME_SIZE => &mut self.max_frame_size,
            setting::MAX_HEADER_LIST_SIZE => &mut self.max_header_list_size,
            _ => return None,
        })
    }

    fn apply(&mut self, params: &[(u16, u32)]) {
        for &(id, value) in params {
            if let Some(slot) = self.slot(id) {
                *slot = Some(value);
            }
        }
    }

    fn forget(&mut self, params: &[(u16, u32)]) {
        for &(id, _) in params {
            if let Some(slot) = self.slot(id) {
                *slot = None;
            }
        }
    }
}

#[derive(Debug)]
struct Pending {
    /// `None`: a SETTINGS frame we know was sent but could not read.
    params: Option<Vec<(u16, u32)>>,
    ts: u64,
    seq: u64,
}

/// What an ACK did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// Matched a queued SETTINGS, now in effect.
    Matched,
    /// Matched nothing we saw; the values became unknown if SETTINGS may
    /// have gone unseen (`forgot`), else nothing changed.
    Unmatched { forgot: bool },
}

/// One side's announced settings.
#[derive(Debug)]
pub(crate) struct SettingsSide {
    pub(crate) values: SettingsValues,
    pending: VecDeque<Pending>,
    next_seq: u64,
    /// SETTINGS sent before the one with this sequence number may have gone
    /// unseen; cleared when a later one is acknowledged (ACKs are ordered).
    unseen_before: Option<u64>,
    cap: usize,
}

impl SettingsSide {
    /// From the start of a connection: defaults in effect.
    pub(crate) fn from_start(cap: usize) -> Self {
        Self {
            values: SettingsValues::DEFAULTS,
            pending: VecDeque::new(),
            next_seq: 0,
            unseen_before: None,
            cap: cap.max(1),
        }
    }

    /// Joined late: values unknown, earlier SETTINGS unseen.
    pub(crate) fn mid_stream(cap: usize) -> Self {
        Self {
            values: SettingsValues::UNKNOWN,
            unseen_before: Some(0),
            ..Self::from_start(cap)
        }
    }

    /// This side sent SETTINGS (not an ACK).
    pub(crate) fn announce(&mut self, params: Vec<(u16, u32)>, ts: u64) {
        self.push(Some(params), ts);
    }

    /// This side sent a SETTINGS frame we could not read (it fell in a
    /// gap): its ACK will make every value unknown.
    pub(crate) fn announce_lost(&mut self, ts: u64) {
        self.push(None, ts);
    }

    fn push(&mut self, params: Option<Vec<(u16, u32)>>, ts: u64) {
        if self.pending.len() >= self.cap {
            // A peer that never acknowledges: stop tracking what is in
            // effect rather than mis-match later ACKs.
            self.pending.clear();
            self.values = SettingsValues::UNKNOWN;
            self.unseen_before = Some(self.next_seq);
        }
        self.pending.push_back(Pending {
            params,
            ts,
            seq: self.next_seq,
        });
        self.next_seq += 1;
    }

    /// Bytes of this side's direction were lost: SETTINGS may be unseen.
    pub(crate) fn mark_unseen(&mut self) {
        self.unseen_before = Some(self.next_seq);
    }

    /// The peer's direction lost bytes: ACKs of our queued SETTINGS may be
    /// among them, so whether those values are in effect is unknown.
    pub(crate) fn acks_maybe_lost(&mut self) {
        for p in self.pending.drain(..) {
            match &p.params {
                Some(params) => self.values.forget(params),
                None => self.values = SettingsValues::UNKNOWN,
            }
        }
        self.unseen_before = Some(self.next_seq);
    }

    /// The peer acknowledged, at `ts`.
    pub(crate) fn ack(&mut self, ts: u64) -> AckOutcome {
        match self.pending.front() {
            Some(p) if p.ts <= ts => {
                let Some(p) = self.pending.pop_front() else {
                    return AckOutcome::Unmatched { forgot: false };
                };
                match &p.params {
                    Some(params) => self.values.apply(params),
                    None => self.values = SettingsValues::UNKNOWN,
                }
                if self.unseen_before.is_some_and(|s| p.seq >= s) {
                    self.unseen_before = None;
                }
                AckOutcome::Matched
            }
            _ if self.unseen_before.is_some() => {
                self.values = SettingsValues::UNKNOWN;
                AckOutcome::Unmatched { forgot: true }
            }
            _ => AckOutcome::Unmatched { forgot: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Invariant: a setting takes effect at its ACK, not when announced, and
    // ACKs match announcements in order.
    #[test]
    fn effect_at_ack_in_order() {
        let mut s = SettingsSide::from_start(16);
        s.announce(vec![(setting::INITIAL_WINDOW_SIZE, 1000)], 10);
        s.announce(vec![(setting::INITIAL_WINDOW_SIZE, 2000)], 11);
        assert_eq!(s.values.initial_window_size, Some(65535));
        assert_eq!(s.ack(12), AckOutcome::Matched);
        assert_eq!(s.values.initial_window_size, Some(1000));
        assert_eq!(s.ack(13), AckOutcome::Matched);
        assert_eq!(s.values.initial_window_size, Some(2000));
        assert_eq!(s.ack(14), AckOutcome::Unmatched { forgot: false });
        assert_eq!(s.values.initial_window_size, Some(2000));
    }

    // Invariant: joined late, an ACK captured before the first SETTINGS we
    // saw acknowledges an unseen one: values become unknown, not guessed;
    // after an ACK of a SETTINGS we saw, later ACKs are trusted again.
    #[test]
    fn mid_stream_unmatched_ack_forgets() {
        let mut s = SettingsSide::mid_stream(16);
        s.announce(vec![(setting::MAX_FRAME_SIZE, 1 << 20)], 100);
        assert_eq!(s.ack(50), AckOutcome::Unmatched { forgot: true });
        assert_eq!(s.ack(150), AckOutcome::Matched);
        assert_eq!(s.values.max_frame_size, Some(1 << 20));
        assert_eq!(s.values.initial_window_size, None);
        assert_eq!(s.ack(160), AckOutcome::Unmatched { forgot: false });
        assert_eq!(s.values.max_frame_size, Some(1 << 20));
    }

    // Invariant: a SETTINGS frame known to be lost makes all values unknown
    // when acknowledged; ACKs possibly lost make the queued values unknown.
    #[test]
    fn losses_make_values_unknown() {
        let mut s = SettingsSide::from_start(16);
        s.announce_lost(5);
        assert_eq!(s.ack(6), AckOutcome::Matched);
        assert_eq!(s.values, SettingsValues::UNKNOWN);
        let mut s = SettingsSide::from_start(16);
        s.announce(vec![(setting::HEADER_TABLE_SIZE, 0)], 5);
        s.acks_maybe_lost();
        assert_eq!(s.values.header_table_size, None);
        assert_eq!(s.values.max_frame_size, Some(16384));
    }

    // Invariant: the queue is bounded; overflowing it gives up on values.
    #[test]
    fn pending_queue_is_bounded() {
        let mut s = SettingsSide::from_start(2);
        for ts in 0..3 {
            s.announce(vec![(setting::ENABLE_PUSH, 0)], ts);
        }
        assert_eq!(s.values, SettingsValues::UNKNOWN);
        assert_eq!(s.pending.len(), 1);
    }
}

//! Send-stall episodes of one socket, one per fault.
//!
//! - **Socket buffer full**: a send that fails with EAGAIN starts it (the
//!   kernel would not take more bytes: the send queue is at its limit); a
//!   successful send ends it.
//! - **Peer zero window**: a segment from the peer advertising a zero
//!   window starts it (the client is not reading); a segment with a
//!   non-zero window ends it.
//!
//! A client that stops reading makes the window flap while its buffer
//! drains and fills: open for a few hundred µs, zero again. One fault is
//! one stall: an end is final only once [`QUIET_NS`] pass without the
//! stall starting again; a restart before that is a flap of the same
//! episode, counted on it (`flaps`), not a stall of its own. The episode
//! lasts from its first start to its last end.

use serde::Serialize;

/// How long a stall must stay over before it counts as over.
pub const QUIET_NS: u64 = 250_000_000;

/// Why a socket could not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallKind {
    SendBufferFull,
    PeerZeroWindow,
}

/// One finished stall episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketStall {
    pub kind: StallKind,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Times it ended and started again within [`QUIET_NS`].
    pub flaps: u32,
}

impl SocketStall {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// An episode of one kind: open, or ended and waiting out the quiet period.
#[derive(Clone, Copy, Debug)]
struct Episode {
    start_ns: u64,
    /// When it last ended; `None` while it is on.
    ended_ns: Option<u64>,
    flaps: u32,
}

impl Episode {
    fn stall(&self, kind: StallKind) -> SocketStall {
        SocketStall {
            kind,
            start_ns: self.start_ns,
            end_ns: self.ended_ns.unwrap_or(self.start_ns),
            flaps: self.flaps,
        }
    }
}

/// Episodes of one socket: buffer full, zero window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StallState {
    episodes: [Option<Episode>; 2],
}

fn slot(kind: StallKind) -> usize {
    match kind {
        StallKind::SendBufferFull => 0,
        StallKind::PeerZeroWindow => 1,
    }
}

const KINDS: [StallKind; 2] = [StallKind::SendBufferFull, StallKind::PeerZeroWindow];

impl StallState {
    /// A send finished with `ret` at `ts`; episodes whose quiet period
    /// passed are returned, ended.
    pub(crate) fn on_send(&mut self, ret: i32, ts: u64, out: &mut Vec<SocketStall>) {
        const EAGAIN: i32 = 11;
        self.poll(ts, out);
        if ret == -EAGAIN {
            self.on(StallKind::SendBufferFull, ts);
        } else if ret > 0 {
            self.off(StallKind::SendBufferFull, ts);
        }
    }

    /// The peer advertised `window` at `ts`.
    pub(crate) fn on_window(&mut self, window: u16, ts: u64, out: &mut Vec<SocketStall>) {
        self.poll(ts, out);
        if window == 0 {
            self.on(StallKind::PeerZeroWindow, ts);
        } else {
            self.off(StallKind::PeerZeroWindow, ts);
        }
    }

    fn on(&mut self, kind: StallKind, ts: u64) {
        let episode = &mut self.episodes[slot(kind)];
        match episode {
            Some(e) if e.ended_ns.is_some() => {
                e.ended_ns = None;
                e.flaps += 1;
            }
            Some(_) => {}
            None => {
                *episode = Some(Episode {
                    start_ns: ts,
                    ended_ns: None,
                    flaps: 0,
                });
            }
        }
    }

    fn off(&mut self, kind: StallKind, ts: u64) {
        if let Some(e) = &mut self.episodes[slot(kind)]
            && e.ended_ns.is_none()
        {
            e.ended_ns = Some(ts);
        }
    }

    /// The episodes whose end is final as of `now` (quiet since).
    pub(crate) fn poll(&mut self, now: u64, out: &mut Vec<SocketStall>) {
        for kind in KINDS {
            let episode = &mut self.episodes[slot(kind)];
            if let Some(e) = episode
                && e.ended_ns
                    .is_some_and(|end| end.saturating_add(QUIET_NS) <= now)
            {
                out.push(e.stall(kind));
                *episode = None;
            }
        }
    }

    /// An episode ended and waits out its quiet period.
    pub(crate) fn settling(&self) -> bool {
        self.episodes.iter().flatten().any(|e| e.ended_ns.is_some())
    }

    /// Episodes not yet over, ended at `ts` (connection closed or capture
    /// over); one already ended keeps its end.
    pub(crate) fn close(&mut self, ts: u64) -> Vec<SocketStall> {
        let mut out = Vec::new();
        for kind in KINDS {
            if let Some(mut e) = self.episodes[slot(kind)].take() {
                e.ended_ns.get_or_insert(ts);
                out.push(e.stall(kind));
            }
        }
        out
    }

    /// Start times of the episodes not yet over (on, or flapping within
    /// their quiet period: one stall to a reader).
    pub(crate) fn open_since(&self) -> [Option<(StallKind, u64)>; 2] {
        KINDS.map(|kind| self.episodes[slot(kind)].map(|e| (kind, e.start_ns)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stall(kind: StallKind, start_ns: u64, end_ns: u64, flaps: u32) -> SocketStall {
        SocketStall {
            kind,
            start_ns,
            end_ns,
            flaps,
        }
    }

    #[test]
    fn eagain_starts_and_a_success_ends_a_buffer_full_stall_once_quiet() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        s.on_send(100, 1, &mut out);
        s.on_send(-11, 10, &mut out);
        s.on_send(-11, 15, &mut out);
        s.on_send(4096, 40, &mut out);
        assert!(out.is_empty(), "not over before its quiet period");
        s.on_send(10, 40 + QUIET_NS, &mut out);
        assert_eq!(out, [stall(StallKind::SendBufferFull, 10, 40, 0)]);
    }

    #[test]
    fn a_window_that_flaps_is_one_stall_with_its_flaps_counted() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        s.on_window(0, 1_000, &mut out);
        // Open a few hundred µs at a time while the client's buffer drains.
        let mut t = 1_000;
        for _ in 0..14 {
            t += 50_000_000;
            s.on_window(512, t, &mut out);
            s.on_window(0, t + 300_000, &mut out);
        }
        let end = t + 1_000_000_000;
        s.on_window(65_535, end, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.open_since()[1], Some((StallKind::PeerZeroWindow, 1_000)));
        s.poll(end + QUIET_NS, &mut out);
        assert_eq!(out, [stall(StallKind::PeerZeroWindow, 1_000, end, 14)]);
        assert_eq!(s.open_since(), [None, None]);
    }

    #[test]
    fn a_restart_after_the_quiet_period_is_a_new_stall() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        s.on_window(0, 5, &mut out);
        s.on_window(9, 25, &mut out);
        s.on_window(0, 25 + QUIET_NS, &mut out);
        assert_eq!(out, [stall(StallKind::PeerZeroWindow, 5, 25, 0)]);
        assert_eq!(
            s.open_since()[1],
            Some((StallKind::PeerZeroWindow, 25 + QUIET_NS))
        );
    }

    #[test]
    fn closing_ends_open_episodes_and_keeps_an_end_already_seen() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        s.on_send(-11, 3, &mut out);
        s.on_window(0, 4, &mut out);
        s.on_window(7, 6, &mut out);
        let open = s.close(9);
        assert_eq!(
            open,
            [
                stall(StallKind::SendBufferFull, 3, 9, 0),
                stall(StallKind::PeerZeroWindow, 4, 6, 0),
            ]
        );
        assert!(s.close(10).is_empty());
    }
}

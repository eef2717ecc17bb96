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
//! fills: open for a few hundred µs, zero again; and once it reads again,
//! the backlog the server then sends makes the buffer full or the window
//! zero again for moments while it drains. One fault is one stall: an end
//! is final only once [`QUIET_NS`] pass without the stall starting again;
//! a restart before that is a flap of the same episode, counted on it
//! (`flaps`), not a stall of its own. The episode lasts from its first
//! start to the end of its longest on-phase (the fault itself): the
//! aftershocks while the backlog drains are counted as flaps but do not
//! stretch it (they moved its end 28 to 122 ms past the server's last
//! blocked write on the testbed's fault).

use serde::Serialize;

use super::episode::Episode;

/// How long a stall must stay over before it counts as over.
pub const QUIET_NS: u64 = 250_000_000;

/// How long one on-phase of an episode must last for it to be a stall. A
/// busy client's window touches zero for tens of µs now and then (99 µs
/// seen on the testbed before its fault): real, but no fault, and no stall
/// to report, however many touches come close together. An episode is
/// announced (`stall_start`, dated at its first start) once one of its
/// on-phases has lasted this long; one where none did is dropped (and
/// counted).
pub const MIN_STALL_NS: u64 = 10_000_000;

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

impl Episode {
    fn stall(&self, kind: StallKind) -> SocketStall {
        SocketStall {
            kind,
            start_ns: self.start_ns,
            end_ns: self.end_ns(),
            flaps: self.flaps,
        }
    }
}

/// Episodes of one socket: buffer full, zero window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StallState {
    episodes: [Option<Episode>; 2],
    /// Episodes dropped as too brief to be stalls.
    pub(crate) brief: u64,
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
        match &mut self.episodes[slot(kind)] {
            Some(e) => e.on(ts),
            episode @ None => *episode = Some(Episode::new(ts)),
        }
    }

    fn off(&mut self, kind: StallKind, ts: u64) {
        if let Some(e) = &mut self.episodes[slot(kind)] {
            e.off(ts);
        }
    }

    /// The episodes whose end is final as of `now` (quiet since).
    pub(crate) fn poll(&mut self, now: u64, out: &mut Vec<SocketStall>) {
        for kind in KINDS {
            let episode = &mut self.episodes[slot(kind)];
            if let Some(e) = episode
                && e.is_over(now)
            {
                if e.brief() {
                    self.brief += 1;
                } else {
                    out.push(e.stall(kind));
                }
                *episode = None;
            }
        }
    }

    /// An episode ended and waits out its quiet period, or is on and not
    /// announced yet: the socket needs looking at as time passes.
    pub(crate) fn settling(&self) -> bool {
        self.episodes
            .iter()
            .flatten()
            .any(|e| e.ended_ns.is_some() || !e.announced)
    }

    /// Episodes on for [`MIN_STALL_NS`] as of `now` and not yet announced:
    /// now announced, with their kind and start.
    pub(crate) fn announce(&mut self, now: u64) -> [Option<(StallKind, u64)>; 2] {
        KINDS.map(|kind| {
            let e = self.episodes[slot(kind)].as_mut()?;
            e.announce(now).then_some((kind, e.start_ns))
        })
    }

    /// Episodes not yet over, ended at `ts` (connection closed or capture
    /// over); one already ended keeps its end.
    pub(crate) fn close(&mut self, ts: u64) -> Vec<SocketStall> {
        let mut out = Vec::new();
        for kind in KINDS {
            if let Some(mut e) = self.episodes[slot(kind)].take() {
                e.off(ts);
                if e.brief() {
                    self.brief += 1;
                    continue;
                }
                out.push(e.stall(kind));
            }
        }
        out
    }

    /// Start times of the announced episodes not yet over (on, or
    /// flapping within their quiet period: one stall to a reader).
    pub(crate) fn open_since(&self) -> [Option<(StallKind, u64)>; 2] {
        KINDS.map(|kind| {
            self.episodes[slot(kind)]
                .filter(|e| e.announced)
                .map(|e| (kind, e.start_ns))
        })
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

    const MS: u64 = 1_000_000;

    #[test]
    fn eagain_starts_and_a_success_ends_a_buffer_full_stall_once_quiet() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        s.on_send(100, MS, &mut out);
        s.on_send(-11, 10 * MS, &mut out);
        s.on_send(-11, 15 * MS, &mut out);
        s.on_send(4096, 40 * MS, &mut out);
        assert!(out.is_empty(), "not over before its quiet period");
        s.on_send(10, 40 * MS + QUIET_NS, &mut out);
        assert_eq!(out, [stall(StallKind::SendBufferFull, 10 * MS, 40 * MS, 0)]);
    }

    #[test]
    fn an_episode_is_announced_once_it_lasts_and_a_brief_one_is_no_stall() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        // 99 µs of zero window: never announced, dropped, counted.
        s.on_window(0, 5 * MS, &mut out);
        assert_eq!(s.announce(5 * MS + 50_000), [None, None]);
        s.on_window(512, 5 * MS + 99_000, &mut out);
        s.poll(6 * MS + QUIET_NS, &mut out);
        assert!(out.is_empty());
        assert_eq!((s.brief, s.open_since()), (1, [None, None]));
        // One that lasts is announced once, at its start.
        s.on_window(0, 1_000 * MS, &mut out);
        assert_eq!(s.open_since(), [None, None], "not yet announced");
        assert!(s.settling(), "the socket is watched until announced");
        assert_eq!(
            s.announce(1_010 * MS),
            [None, Some((StallKind::PeerZeroWindow, 1_000 * MS))]
        );
        assert_eq!(s.announce(1_020 * MS), [None, None]);
        assert!(!s.settling());
        assert_eq!(
            s.open_since()[1],
            Some((StallKind::PeerZeroWindow, 1_000 * MS))
        );
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
        assert_eq!(
            s.announce(t),
            [None, Some((StallKind::PeerZeroWindow, 1_000))]
        );
        let end = t + 1_000_000_000;
        s.on_window(65_535, end, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.open_since()[1], Some((StallKind::PeerZeroWindow, 1_000)));
        s.poll(end + QUIET_NS, &mut out);
        assert_eq!(out, [stall(StallKind::PeerZeroWindow, 1_000, end, 14)]);
        assert_eq!(s.open_since(), [None, None]);
    }

    #[test]
    fn aftershocks_while_the_backlog_drains_are_flaps_that_do_not_stretch_the_stall() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        // The fault: 5 s of EAGAIN.
        s.on_send(-11, 1_000, &mut out);
        let fault_end = 5_000_001_000;
        s.on_send(4096, fault_end, &mut out);
        // Then the backlog fills the buffer again for moments.
        let mut t = fault_end;
        for _ in 0..3 {
            t += 30_000_000;
            s.on_send(-11, t, &mut out);
            s.on_send(4096, t + 2_000_000, &mut out);
        }
        s.poll(t + 2_000_000 + QUIET_NS, &mut out);
        assert_eq!(out, [stall(StallKind::SendBufferFull, 1_000, fault_end, 3)]);
    }

    #[test]
    fn a_restart_after_the_quiet_period_is_a_new_stall() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        s.on_window(0, 5 * MS, &mut out);
        s.on_window(9, 25 * MS, &mut out);
        s.on_window(0, 25 * MS + QUIET_NS, &mut out);
        assert_eq!(out, [stall(StallKind::PeerZeroWindow, 5 * MS, 25 * MS, 0)]);
        s.announce(40 * MS + QUIET_NS);
        assert_eq!(
            s.open_since()[1],
            Some((StallKind::PeerZeroWindow, 25 * MS + QUIET_NS))
        );
    }

    #[test]
    fn closing_ends_open_episodes_and_keeps_an_end_already_seen() {
        let mut s = StallState::default();
        let mut out = Vec::new();
        s.on_send(-11, 3 * MS, &mut out);
        s.on_window(0, 4 * MS, &mut out);
        s.on_window(7, 60 * MS, &mut out);
        let open = s.close(90 * MS);
        assert_eq!(
            open,
            [
                stall(StallKind::SendBufferFull, 3 * MS, 90 * MS, 0),
                stall(StallKind::PeerZeroWindow, 4 * MS, 60 * MS, 0),
            ]
        );
        assert!(s.close(100 * MS).is_empty());
    }
}

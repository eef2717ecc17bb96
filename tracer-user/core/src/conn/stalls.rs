//! Send-stall episodes of one socket.
//!
//! - **Socket buffer full**: a send that fails with EAGAIN starts it (the
//!   kernel would not take more bytes: the send queue is at its limit); the
//!   next successful send ends it.
//! - **Peer zero window**: a segment from the peer advertising a zero
//!   window starts it (the client is not reading); the next segment with a
//!   non-zero window ends it.

use serde::Serialize;

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
}

impl SocketStall {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// Open episodes of one socket.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StallState {
    buffer_full_since: Option<u64>,
    zero_window_since: Option<u64>,
}

impl StallState {
    /// A send finished with `ret` at `ts`.
    pub(crate) fn on_send(&mut self, ret: i32, ts: u64) -> Option<SocketStall> {
        const EAGAIN: i32 = 11;
        if ret == -EAGAIN {
            self.buffer_full_since.get_or_insert(ts);
            None
        } else if ret > 0 {
            self.buffer_full_since.take().map(|start_ns| SocketStall {
                kind: StallKind::SendBufferFull,
                start_ns,
                end_ns: ts,
            })
        } else {
            None
        }
    }

    /// The peer advertised `window` at `ts`.
    pub(crate) fn on_window(&mut self, window: u16, ts: u64) -> Option<SocketStall> {
        if window == 0 {
            self.zero_window_since.get_or_insert(ts);
            None
        } else {
            self.zero_window_since.take().map(|start_ns| SocketStall {
                kind: StallKind::PeerZeroWindow,
                start_ns,
                end_ns: ts,
            })
        }
    }

    /// Episodes still open, ended at `ts` (connection closed or capture over).
    pub(crate) fn close(&mut self, ts: u64) -> Vec<SocketStall> {
        let mut out = Vec::new();
        if let Some(start_ns) = self.buffer_full_since.take() {
            out.push(SocketStall {
                kind: StallKind::SendBufferFull,
                start_ns,
                end_ns: ts,
            });
        }
        if let Some(start_ns) = self.zero_window_since.take() {
            out.push(SocketStall {
                kind: StallKind::PeerZeroWindow,
                start_ns,
                end_ns: ts,
            });
        }
        out
    }

    /// Start times of the episodes still open.
    pub(crate) fn open_since(&self) -> [Option<(StallKind, u64)>; 2] {
        [
            self.buffer_full_since
                .map(|t| (StallKind::SendBufferFull, t)),
            self.zero_window_since
                .map(|t| (StallKind::PeerZeroWindow, t)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eagain_starts_and_the_next_success_ends_a_buffer_full_stall() {
        let mut s = StallState::default();
        assert_eq!(s.on_send(100, 1), None);
        assert_eq!(s.on_send(-11, 10), None);
        assert_eq!(
            s.on_send(-11, 15),
            None,
            "repeated EAGAIN keeps the first start"
        );
        assert_eq!(
            s.on_send(4096, 40),
            Some(SocketStall {
                kind: StallKind::SendBufferFull,
                start_ns: 10,
                end_ns: 40
            })
        );
        assert_eq!(s.on_send(10, 41), None);
    }

    #[test]
    fn zero_window_lasts_until_a_non_zero_window() {
        let mut s = StallState::default();
        assert_eq!(s.on_window(0, 5), None);
        assert_eq!(s.on_window(0, 7), None);
        let stall = s.on_window(512, 25).unwrap();
        assert_eq!(
            (stall.kind, stall.duration_ns()),
            (StallKind::PeerZeroWindow, 20)
        );
    }

    #[test]
    fn closing_ends_open_episodes() {
        let mut s = StallState::default();
        s.on_send(-11, 3);
        s.on_window(0, 4);
        let open = s.close(9);
        assert_eq!(open.len(), 2);
        assert!(s.close(10).is_empty());
    }
}

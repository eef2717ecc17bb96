//! Which sent bytes the peer has acknowledged, and when.
//!
//! Each successful send reports `write_seq` after it: the TCP sequence
//! number just past its last byte. An ACK number from the peer covers every
//! send whose end is at or before it (in sequence space, which wraps).

use std::collections::VecDeque;

/// A send the peer has now acknowledged in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Sequence number just past the send's last byte.
    pub end_seq: u32,
    /// When the bytes entered the kernel.
    pub sent_ns: u64,
    /// When the covering ACK arrived.
    pub acked_ns: u64,
}

/// Sends waiting for their ACK, bounded: beyond `capacity` the oldest are
/// dropped and counted (their ACK time is then unknown, never guessed).
#[derive(Debug)]
pub struct AckTracker {
    pending: VecDeque<(u32, u64)>,
    capacity: usize,
    dropped: u64,
}

/// `a` is at or before `b` in wrapping sequence space.
fn seq_le(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) < 1 << 31
}

impl AckTracker {
    pub fn new(capacity: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// A send ending at `end_seq` entered the kernel at `ts`.
    pub fn on_send(&mut self, end_seq: u32, ts: u64) {
        if self.pending.len() == self.capacity {
            self.pending.pop_front();
            self.dropped += 1;
        }
        self.pending.push_back((end_seq, ts));
    }

    /// The peer acknowledged everything before `ack` at `ts`.
    pub fn on_ack(&mut self, ack: u32, ts: u64, out: &mut Vec<Acked>) {
        while let Some(&(end_seq, sent_ns)) = self.pending.front() {
            if !seq_le(end_seq, ack) {
                break;
            }
            self.pending.pop_front();
            out.push(Acked {
                end_seq,
                sent_ns,
                acked_ns: ts,
            });
        }
    }

    /// Sends dropped unacknowledged because the tracker was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes sent but not yet acknowledged, as of the last send, given the
    /// latest ACK number.
    pub fn unacked_bytes(&self, ack: u32) -> u32 {
        self.pending
            .back()
            .map_or(0, |&(end, _)| end.wrapping_sub(ack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_covers_every_send_ending_at_or_before_it() {
        let mut t = AckTracker::new(16);
        t.on_send(1100, 1);
        t.on_send(1200, 2);
        t.on_send(1300, 3);
        let mut out = Vec::new();
        t.on_ack(1150, 10, &mut out);
        assert_eq!(
            out,
            vec![Acked {
                end_seq: 1100,
                sent_ns: 1,
                acked_ns: 10
            }]
        );
        out.clear();
        t.on_ack(1300, 20, &mut out);
        assert_eq!(
            out.iter().map(|a| a.end_seq).collect::<Vec<_>>(),
            vec![1200, 1300]
        );
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut t = AckTracker::new(4);
        t.on_send(u32::MAX - 10, 1);
        t.on_send(20, 2);
        let mut out = Vec::new();
        t.on_ack(5, 9, &mut out);
        assert_eq!(out.len(), 1, "only the send before the wrap");
        t.on_ack(20, 10, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_it() {
        let mut t = AckTracker::new(2);
        t.on_send(10, 1);
        t.on_send(20, 2);
        t.on_send(30, 3);
        assert_eq!(t.dropped(), 1);
        let mut out = Vec::new();
        t.on_ack(30, 4, &mut out);
        assert_eq!(
            out.iter().map(|a| a.end_seq).collect::<Vec<_>>(),
            vec![20, 30]
        );
    }
}

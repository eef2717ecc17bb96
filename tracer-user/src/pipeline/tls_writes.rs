//! When a Go TLS Write's bytes reached the kernel, from the sends on its
//! socket.
//!
//! Go's `crypto/tls.(*Conn).Write` encrypts its plaintext into records and
//! hands each record to the socket with one write(2), retried with the rest
//! after a partial write; a conn's Writes are serialised by its lock. There
//! is no probe on the Write's return (a RET cannot be emulated, so its
//! uprobe would cost the traced process a second trap per Write), so its
//! end is inferred:
//! - the sends after a Write's entry, up to the next Write's entry, are its
//!   own;
//! - a send that took all it asked for (`ret == requested`) ends a record;
//! - the Write is complete when its complete records carry exactly its
//!   plaintext: `bytes sent - records × overhead == plaintext`, where the
//!   per-record overhead is 22 bytes in TLS 1.3 (5 header, 16 tag, 1 type),
//!   29 with TLS 1.2 AES-GCM, 21 with TLS 1.2 ChaCha20, learnt per conn from
//!   its first complete Write;
//! - failing that (another cipher, or a send that was not the Write's: a
//!   KeyUpdate, an alert), the next Write's entry shows it was complete at
//!   its last send.

/// Per-record overheads tried until one is learnt.
const OVERHEADS: [u64; 3] = [22, 29, 21];

/// A Write's bytes reached the kernel at `t_ns`, the socket's `write_seq`
/// then being `write_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) t_ns: u64,
    pub(crate) write_seq: u32,
}

/// What a new Write's entry says of the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Previous {
    /// There was none open.
    None,
    /// It was complete at its last send (not proven by the accounting).
    Sent(Sent),
    /// It made no send at all (it failed): its bytes never reached the
    /// kernel.
    Unsent,
}

#[derive(Clone, Copy, Debug, Default)]
struct Write {
    plaintext: u64,
    sent: u64,
    records: u64,
    last: Option<Sent>,
}

/// One TLS conn's Writes.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsWrites {
    overhead: Option<u64>,
    open: Option<Write>,
}

impl TlsWrites {
    /// A Write of `len` plaintext bytes entered the TLS layer.
    pub(crate) fn on_write(&mut self, len: u64) -> Previous {
        let previous = match self.open.take() {
            None => Previous::None,
            Some(Write {
                last: Some(sent), ..
            }) => Previous::Sent(sent),
            Some(Write { last: None, .. }) => Previous::Unsent,
        };
        self.open = Some(Write {
            plaintext: len,
            ..Write::default()
        });
        previous
    }

    /// More plaintext of the open Write (its later chunks).
    pub(crate) fn on_more(&mut self, len: u64) {
        if let Some(write) = &mut self.open {
            write.plaintext += len;
        }
    }

    /// Bytes of the open Write were lost: its plaintext length is unknown,
    /// so only the next Write can end it.
    pub(crate) fn on_gap(&mut self) {
        if let Some(write) = &mut self.open {
            write.plaintext = u64::MAX;
        }
    }

    /// A send on the conn's socket: `ret` bytes of the `requested`. Returns
    /// the open Write's completion when this send completes it.
    pub(crate) fn on_send(
        &mut self,
        t_ns: u64,
        ret: i32,
        requested: u32,
        write_seq: u32,
    ) -> Option<Sent> {
        let write = self.open.as_mut()?;
        if ret <= 0 {
            return None;
        }
        let sent = Sent { t_ns, write_seq };
        write.sent += ret as u64;
        write.last = Some(sent);
        if requested == 0 || ret as u64 != u64::from(requested) {
            // Partial (the rest follows), or a send whose length is unknown.
            return None;
        }
        write.records += 1;
        let carried = |overhead: u64| {
            write
                .sent
                .checked_sub(write.records * overhead)
                .is_some_and(|body| body == write.plaintext)
        };
        let matched = match self.overhead {
            Some(overhead) => carried(overhead).then_some(overhead),
            None => OVERHEADS.into_iter().find(|&o| carried(o)),
        };
        let overhead = matched?;
        self.overhead = Some(overhead);
        self.open = None;
        Some(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_record_write_is_complete_at_its_send() {
        let mut writes = TlsWrites::default();
        assert_eq!(writes.on_write(100), Previous::None);
        // TLS 1.3: 100 bytes of plaintext are a 122-byte record.
        assert_eq!(
            writes.on_send(7, 122, 122, 5000),
            Some(Sent {
                t_ns: 7,
                write_seq: 5000
            })
        );
        assert_eq!(writes.on_write(10), Previous::None);
    }

    #[test]
    fn a_write_of_several_records_and_partial_sends_ends_at_its_last_byte() {
        let mut writes = TlsWrites::default();
        writes.on_write(30_000);
        // Record 1: 16384 + 22, sent in two parts.
        assert_eq!(writes.on_send(1, 10_000, 16_406, 100), None);
        assert_eq!(writes.on_send(2, 6_406, 6_406, 200), None);
        // Record 2: the other 13616 + 22.
        assert_eq!(
            writes.on_send(3, 13_638, 13_638, 300),
            Some(Sent {
                t_ns: 3,
                write_seq: 300
            })
        );
    }

    #[test]
    fn a_send_that_is_not_the_writes_leaves_the_next_write_to_end_it() {
        let mut writes = TlsWrites::default();
        writes.on_write(100);
        assert!(writes.on_send(1, 122, 122, 10).is_some());
        writes.on_write(100);
        // An alert or KeyUpdate first, then the Write's own record.
        assert_eq!(writes.on_send(2, 24, 24, 20), None);
        assert_eq!(writes.on_send(3, 122, 122, 30), None);
        assert_eq!(
            writes.on_write(5),
            Previous::Sent(Sent {
                t_ns: 3,
                write_seq: 30
            })
        );
    }

    #[test]
    fn a_write_without_sends_is_unsent() {
        let mut writes = TlsWrites::default();
        writes.on_write(100);
        assert_eq!(writes.on_write(100), Previous::Unsent);
    }

    #[test]
    fn the_overhead_learnt_first_is_kept() {
        let mut writes = TlsWrites::default();
        writes.on_write(100);
        // TLS 1.2 AES-GCM: 29 bytes per record.
        assert!(writes.on_send(1, 129, 129, 10).is_some());
        writes.on_write(7);
        // 7 + 22 would match TLS 1.3's overhead, but this conn is 1.2.
        assert_eq!(writes.on_send(2, 29, 29, 20), None);
        // Its own 36-byte record then completes it (29 + 36 - 2 × 29 = 7).
        assert!(writes.on_send(3, 36, 36, 30).is_some());
    }

    #[test]
    fn later_chunks_of_a_large_write_add_to_its_plaintext() {
        let mut writes = TlsWrites::default();
        writes.on_write(16_384);
        writes.on_more(100);
        assert_eq!(writes.on_send(1, 16_406, 16_406, 1), None);
        assert!(writes.on_send(2, 122, 122, 2).is_some());
    }
}

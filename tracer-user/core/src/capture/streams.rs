//! Per-connection, per-direction byte streams rebuilt from chunk records,
//! with every hole made explicit.
//!
//! The kernel numbers every byte of a stream, captured or not, so a chunk
//! that starts past the end of the previous one proves a loss of exactly the
//! difference; a close record carries the final offsets, so losses at the
//! very end are counted too.

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use tracer_common::record::{ChunkHeader, ChunkSource, Direction, SockClose};

/// What the kernel keys a connection's captured streams by: the socket
/// (`struct sock` address) and where the bytes come from (Go TLS plaintext
/// or the socket's own payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub tgid: u32,
    /// A [`ChunkSource`] value.
    pub source: u8,
    /// The socket.
    pub key: u64,
}

impl ConnId {
    pub fn source(&self) -> Option<ChunkSource> {
        source_of(self.source)
    }
}

fn source_of(raw: u8) -> Option<ChunkSource> {
    match raw {
        1 => Some(ChunkSource::GoTls),
        2 => Some(ChunkSource::Syscall),
        _ => None,
    }
}

/// Identity of one captured byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub conn: ConnId,
    /// A [`Direction`] value.
    pub direction: u8,
    /// Distinguishes successive connections that reused the same key.
    pub generation: u32,
}

impl StreamId {
    pub fn direction(&self) -> Option<Direction> {
        match self.direction {
            0 => Some(Direction::Egress),
            1 => Some(Direction::Ingress),
            _ => None,
        }
    }

    pub fn source(&self) -> Option<ChunkSource> {
        self.conn.source()
    }
}

/// What a chunk says of its connection: the fd the process uses (-1 when
/// not known) and, for Go TLS, the `*tls.Conn` (0 when not known yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub fd: i32,
    /// The Go `*tls.Conn` whose plaintext it is, once known, else 0.
    pub tls_conn: u64,
}

/// What happened to a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// The first bytes of a stream (or of a reused fd).
    Start { id: StreamId, ts_ns: u64 },
    /// Contiguous bytes at `offset`. `call_start`: they begin a call (a Go
    /// TLS Write, a decrypted record, a send or receive). `sent`: the call's
    /// bytes are all in the kernel now, the socket's `write_seq` being this.
    Data {
        id: StreamId,
        offset: u64,
        ts_ns: u64,
        bytes: &'a [u8],
        place: Place,
        call_start: bool,
        sent: Option<u32>,
    },
    /// `len` bytes at `offset` were seen by the kernel but not captured.
    Gap {
        id: StreamId,
        offset: u64,
        len: u64,
        ts_ns: u64,
    },
    /// The socket was closed with the stream at `end_offset`.
    End {
        id: StreamId,
        end_offset: u64,
        ts_ns: u64,
    },
}

/// Totals kept by [`Streams`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    pub captured_bytes: u64,
    pub gap_bytes: u64,
    pub gaps: u64,
    /// Bytes that arrived at an offset already passed (out of order
    /// delivery between CPUs), dropped rather than guessed into place.
    pub reordered_bytes: u64,
    /// Streams forgotten because the table was full.
    pub evicted_streams: u64,
}

#[derive(Clone, Copy, Debug)]
struct State {
    id: StreamId,
    next_offset: u64,
    last_ts: u64,
}

type Key = (ConnId, u8);

/// The table of open streams, bounded by `capacity`; when full, the stream
/// idle the longest is evicted and counted.
#[derive(Debug)]
pub struct Streams {
    open: HashMap<Key, State>,
    /// Streams evicted from `open`, until their close: a close for a
    /// stream never seen at all means every record of it was lost; for an
    /// evicted one it does not.
    evicted: HashSet<Key>,
    capacity: usize,
    next_generation: u32,
    stats: StreamStats,
}

impl Streams {
    pub fn new(capacity: usize) -> Self {
        Self {
            open: HashMap::new(),
            evicted: HashSet::new(),
            capacity: capacity.max(1),
            next_generation: 0,
            stats: StreamStats::default(),
        }
    }

    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Feeds one chunk record.
    pub fn on_chunk<'a>(
        &mut self,
        chunk: &ChunkHeader,
        data: &'a [u8],
        out: &mut Vec<StreamEvent<'a>>,
    ) {
        let key = (
            ConnId {
                tgid: chunk.header.tgid,
                source: chunk.source,
                key: chunk.sock,
            },
            chunk.direction,
        );
        let ts_ns = chunk.header.ts_ns;
        let restart = chunk.flags & tracer_common::record::CHUNK_FLAG_STREAM_START != 0;
        if restart && let Some(old) = self.open.remove(&key) {
            // The kernel lost its offset (eviction) or the fd was reused
            // without a close we saw: end the old stream where it stood.
            out.push(StreamEvent::End {
                id: old.id,
                end_offset: old.next_offset,
                ts_ns,
            });
        }
        if !self.open.contains_key(&key) {
            self.make_room();
            self.evicted.remove(&key);
            let id = StreamId {
                conn: key.0,
                direction: key.1,
                generation: self.next_generation,
            };
            self.next_generation = self.next_generation.wrapping_add(1);
            // The kernel counts every stream from 0 at its first sight of
            // it and flags chunks until one is delivered, so a START chunk
            // at offset X follows X lost bytes. A chunk without START for an
            // unknown stream (its START chunk arrived before this table
            // evicted it) begins wherever it stands.
            let next_offset = if restart { 0 } else { chunk.offset };
            self.open.insert(
                key,
                State {
                    id,
                    next_offset,
                    last_ts: ts_ns,
                },
            );

            out.push(StreamEvent::Start { id, ts_ns });
        }
        let state = self.open.get_mut(&key).expect("inserted above");
        state.last_ts = ts_ns;
        let mut offset = chunk.offset;
        let mut bytes = data;
        if offset > state.next_offset {
            push_gap(&mut self.stats, state, offset, ts_ns, out);
        } else if offset < state.next_offset {
            let overlap = (state.next_offset - offset).min(bytes.len() as u64);
            self.stats.reordered_bytes += overlap;
            bytes = &bytes[overlap as usize..];
            offset += overlap;
        }
        if !bytes.is_empty() {
            self.stats.captured_bytes += bytes.len() as u64;
            out.push(StreamEvent::Data {
                id: state.id,
                offset,
                ts_ns,
                bytes,
                place: Place {
                    fd: chunk.fd,
                    tls_conn: chunk.tls_conn,
                },
                call_start: chunk.flags & tracer_common::record::CHUNK_FLAG_CALL_START != 0
                    && offset == chunk.offset,
                sent: (chunk.flags & tracer_common::record::CHUNK_FLAG_SENT != 0)
                    .then_some(chunk.write_seq),
            });
            state.next_offset = offset + bytes.len() as u64;
        }
    }

    /// Feeds a close record: ends each stream the socket carried, reporting
    /// any bytes lost after the last captured chunk.
    pub fn on_close(&mut self, close: &SockClose, out: &mut Vec<StreamEvent<'static>>) {
        const ORDER: [(Direction, ChunkSource); 4] = [
            (Direction::Egress, ChunkSource::GoTls),
            (Direction::Ingress, ChunkSource::GoTls),
            (Direction::Egress, ChunkSource::Syscall),
            (Direction::Ingress, ChunkSource::Syscall),
        ];
        let ts_ns = close.header.ts_ns;
        let mut ends = Vec::new();
        for (i, (direction, source)) in ORDER.iter().enumerate() {
            if close.sock == 0 {
                continue;
            }
            let key = (
                ConnId {
                    tgid: close.header.tgid,
                    source: *source as u8,
                    key: close.sock,
                },
                *direction as u8,
            );
            let end = close.end_offsets[i];
            let Some(state) = self.open.remove(&key) else {
                // Never seen, not evicted, yet the kernel counted bytes:
                // the ring lost every record of it. Report it whole.
                if !self.evicted.remove(&key) && end != u64::MAX && end > 0 {
                    let id = StreamId {
                        conn: key.0,
                        direction: key.1,
                        generation: self.next_generation,
                    };
                    self.next_generation = self.next_generation.wrapping_add(1);
                    out.push(StreamEvent::Start { id, ts_ns });
                    let lost = State {
                        id,
                        next_offset: 0,
                        last_ts: ts_ns,
                    };
                    push_gap(&mut self.stats, &lost, end, ts_ns, out);
                    ends.push(StreamEvent::End {
                        id,
                        end_offset: end,
                        ts_ns,
                    });
                }
                continue;
            };
            if end != u64::MAX && end > state.next_offset {
                push_gap(&mut self.stats, &state, end, ts_ns, out);
            }
            let end_offset = if end == u64::MAX {
                state.next_offset
            } else {
                end
            };
            ends.push(StreamEvent::End {
                id: state.id,
                end_offset,
                ts_ns,
            });
        }
        // Every direction's loss before any end: one direction's end is
        // its connection's, and a gap after it would belong to nothing.
        out.extend(ends);
    }

    fn make_room(&mut self) {
        if self.open.len() < self.capacity {
            return;
        }
        if let Some(oldest) = self
            .open
            .iter()
            .min_by_key(|(_, s)| s.last_ts)
            .map(|(k, _)| *k)
        {
            self.open.remove(&oldest);
            self.stats.evicted_streams += 1;
            if self.evicted.len() >= self.capacity {
                self.evicted.clear();
            }
            self.evicted.insert(oldest);
        }
    }
}

/// Reports the bytes between where `state` stands and `upto` as lost.
fn push_gap(
    stats: &mut StreamStats,
    state: &State,
    upto: u64,
    ts_ns: u64,
    out: &mut Vec<StreamEvent<'_>>,
) {
    let len = upto - state.next_offset;
    out.push(StreamEvent::Gap {
        id: state.id,
        offset: state.next_offset,
        len,
        ts_ns,
    });
    stats.gaps += 1;
    stats.gap_bytes += len;
}

#[cfg(test)]
mod tests {
    use tracer_common::record::{CHUNK_FLAG_STREAM_START, RecordHeader, RecordKind};

    use super::*;

    fn chunk(offset: u64, len: u32, flags: u16, ts: u64) -> ChunkHeader {
        ChunkHeader {
            header: RecordHeader {
                ts_ns: ts,
                kind: RecordKind::Chunk as u16,
                _pad0: 0,
                tgid: 1,
                tid: 1,
                _pad1: 0,
            },
            fd: 5,
            direction: Direction::Egress as u8,
            source: ChunkSource::GoTls as u8,
            flags,
            offset,
            tls_conn: 0,
            sock: 0xffff_8880_0000_0010,
            len,
            write_seq: 0,
        }
    }

    #[test]
    fn contiguous_chunks_have_no_gap_and_holes_are_exact() {
        let mut streams = Streams::new(8);
        let mut out = Vec::new();
        streams.on_chunk(&chunk(0, 3, CHUNK_FLAG_STREAM_START, 1), b"abc", &mut out);
        streams.on_chunk(&chunk(3, 2, 0, 2), b"de", &mut out);
        // 10 bytes at offset 5 were lost.
        streams.on_chunk(&chunk(15, 1, 0, 3), b"z", &mut out);
        let gaps: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Gap { offset, len, .. } => Some((*offset, *len)),
                _ => None,
            })
            .collect();
        assert_eq!(gaps, vec![(5, 10)]);
        assert_eq!(streams.stats().captured_bytes, 6);
        assert_eq!(streams.stats().gap_bytes, 10);
    }

    /// A close of socket `sock` of process 1, its TLS egress stream ending
    /// at `egress_end`.
    fn close_record(sock: u64, egress_end: u64) -> SockClose {
        SockClose {
            header: RecordHeader {
                ts_ns: 9,
                kind: RecordKind::SockClose as u16,
                _pad0: 0,
                tgid: 1,
                tid: 1,
                _pad1: 0,
            },
            fd: 5,
            _pad0: 0,
            tls_conn: 0,
            sock,
            end_offsets: [egress_end, u64::MAX, u64::MAX, u64::MAX],
        }
    }

    #[test]
    fn a_close_reports_every_direction_s_loss_before_any_end() {
        // Both directions lost their tails; the first end closes the
        // connection, so a gap after it would be reported nowhere.
        let mut streams = Streams::new(8);
        let mut out = Vec::new();
        streams.on_chunk(
            &chunk(0, 10, CHUNK_FLAG_STREAM_START, 1),
            &[0; 10],
            &mut out,
        );
        let mut ingress = chunk(0, 10, CHUNK_FLAG_STREAM_START, 2);
        ingress.direction = Direction::Ingress as u8;
        streams.on_chunk(&ingress, &[0; 10], &mut out);
        out.clear();
        let mut close = close_record(0xffff_8880_0000_0010, 30);
        close.end_offsets[1] = 52;
        streams.on_close(&close, &mut out);
        let kinds: Vec<(&str, u64)> = out
            .iter()
            .map(|e| match e {
                StreamEvent::Gap { len, .. } => ("gap", *len),
                StreamEvent::End { end_offset, .. } => ("end", *end_offset),
                _ => ("other", 0),
            })
            .collect();
        assert_eq!(kinds, [("gap", 20), ("gap", 42), ("end", 30), ("end", 52)]);
    }

    #[test]
    fn a_stream_whose_every_record_was_lost_is_reported_whole() {
        let close = |conn: u64, egress_end: u64| close_record(conn, egress_end);
        let mut streams = Streams::new(1);
        let mut out = Vec::new();
        streams.on_close(&close(0xffff_8880_0000_0010, 300), &mut out);
        assert!(matches!(out[0], StreamEvent::Start { .. }));
        assert!(matches!(
            out[1],
            StreamEvent::Gap {
                offset: 0,
                len: 300,
                ..
            }
        ));
        assert!(matches!(
            out[2],
            StreamEvent::End {
                end_offset: 300,
                ..
            }
        ));
        assert_eq!(streams.stats().gap_bytes, 300);
        // An evicted stream was seen: its close is not a loss of it all.
        out.clear();
        streams.on_chunk(&chunk(0, 4, CHUNK_FLAG_STREAM_START, 1), b"abcd", &mut out);
        let mut other = chunk(0, 1, CHUNK_FLAG_STREAM_START, 2);
        other.sock = 0xffff_8880_0000_0020;
        streams.on_chunk(&other, b"x", &mut out);
        assert_eq!(streams.stats().evicted_streams, 1);
        out.clear();
        streams.on_close(&close(0xffff_8880_0000_0010, 4), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn close_reports_loss_at_the_end_and_reuse_starts_a_new_generation() {
        let mut streams = Streams::new(8);
        let mut out = Vec::new();
        streams.on_chunk(&chunk(0, 4, CHUNK_FLAG_STREAM_START, 1), b"abcd", &mut out);
        let close = close_record(0xffff_8880_0000_0010, 7);
        let mut closed = Vec::new();
        streams.on_close(&close, &mut closed);
        assert!(matches!(
            closed[0],
            StreamEvent::Gap {
                offset: 4,
                len: 3,
                ..
            }
        ));
        assert!(matches!(closed[1], StreamEvent::End { end_offset: 7, .. }));
        let mut again = Vec::new();
        streams.on_chunk(&chunk(0, 1, CHUNK_FLAG_STREAM_START, 10), b"x", &mut again);
        let StreamEvent::Start { id, .. } = again[0] else {
            panic!("{again:?}")
        };
        assert_eq!(id.generation, 1);
    }

    #[test]
    fn mid_stream_first_chunk_is_not_a_gap_and_overlaps_are_trimmed() {
        let mut streams = Streams::new(8);
        let mut out = Vec::new();
        streams.on_chunk(&chunk(1000, 2, 0, 1), b"ab", &mut out);
        assert_eq!(
            streams.stats().gaps,
            0,
            "no START flag: not the kernel's first chunk"
        );

        streams.on_chunk(&chunk(1001, 3, 0, 2), b"bcd", &mut out);
        let data: Vec<u8> = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Data { bytes, .. } => Some(bytes.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(data, b"abcd");
        assert_eq!(streams.stats().gaps, 0);
        assert_eq!(streams.stats().reordered_bytes, 1);
    }

    #[test]
    fn a_full_table_evicts_the_idlest_stream_and_counts_it() {
        let mut streams = Streams::new(1);
        let mut out = Vec::new();
        streams.on_chunk(&chunk(0, 1, CHUNK_FLAG_STREAM_START, 1), b"a", &mut out);
        let mut other = chunk(0, 1, CHUNK_FLAG_STREAM_START, 2);
        other.sock = 0xffff_8880_0000_0020;
        streams.on_chunk(&other, b"b", &mut out);
        assert_eq!(streams.stats().evicted_streams, 1);
    }
}

#[cfg(test)]
mod start_tests {
    use tracer_common::record::{CHUNK_FLAG_STREAM_START, RecordHeader, RecordKind};

    use super::*;

    #[test]
    fn a_start_chunk_past_zero_follows_lost_bytes() {
        let chunk = ChunkHeader {
            header: RecordHeader {
                ts_ns: 1,
                kind: RecordKind::Chunk as u16,
                _pad0: 0,
                tgid: 1,
                tid: 1,
                _pad1: 0,
            },
            fd: 3,
            direction: 0,
            source: 1,
            flags: CHUNK_FLAG_STREAM_START,
            offset: 40,
            tls_conn: 0,
            sock: 0xffff_8880_0000_0010,
            len: 2,
            write_seq: 0,
        };
        let mut streams = Streams::new(4);
        let mut out = Vec::new();
        streams.on_chunk(&chunk, b"xy", &mut out);
        assert!(
            matches!(
                out[1],
                StreamEvent::Gap {
                    offset: 0,
                    len: 40,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(streams.stats().gap_bytes, 40);
    }
}

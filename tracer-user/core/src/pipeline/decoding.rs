//! The per-connection half of the pipeline: byte streams reassembled and
//! decoded (HTTP/2, HPACK, watch streams, etcd responses). Nothing here
//! depends on another socket's records, so the sockets can be split among
//! shards on worker threads (see `workers`); what joins connections to each
//! other (numbering, acks, etcd revisions, stalls) runs after, in record
//! order (see `join`).

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use tracer_common::record::{ChunkSource, Direction};

use super::{connection::Connection, output::OutputEvent};
use crate::capture::{ConnId, Record, StreamEvent, StreamId, StreamStats, Streams};

/// What decoding one stream event produced, for the join. Events a
/// decoder wrote are in the batch's `events`, `events` of them per item,
/// in order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decoded {
    /// A stream's first bytes are coming.
    Start { id: StreamId, ts_ns: u64 },
    /// Bytes decoded; see [`StreamEvent::Data`].
    Data {
        id: StreamId,
        offset: u64,
        ts_ns: u64,
        len: u64,
        fd: i32,
        /// The Go `*tls.Conn` whose plaintext it is, once known, else 0.
        tls_conn: u64,
        call_start: bool,
        sent: Option<u32>,
        role: super::Role,
        /// `role` is the decoder's guess (joined mid-way).
        role_guessed: bool,
        /// The connection's decoder holds bytes from this time on (the
        /// records' clock) that it could not decode yet: their events are
        /// still to come. See `Connection::undecoded_since`.
        undecoded_since: Option<u64>,
        events: usize,
    },
    /// The stream is TLS ciphertext (it began with a handshake): its
    /// plaintext comes from the Go TLS probes as another connection.
    /// `full`: the set of such streams was full and emptied first.
    Ciphertext { key: ConnId, full: bool },
    /// `len` bytes lost at `offset`.
    Gap {
        id: StreamId,
        offset: u64,
        len: u64,
        ts_ns: u64,
        events: usize,
    },
    /// The socket closed: the connection's end.
    End {
        id: StreamId,
        ts_ns: u64,
        events: usize,
    },
}

/// One record's decoding.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) items: Vec<Decoded>,
    pub(crate) events: Vec<OutputEvent>,
    /// The resources of the streams a window stall may hold (the stalled
    /// stream, or the connection's open ones), looked up when it ended.
    pub(crate) resources: Vec<(u32, Option<String>)>,
}

impl Batch {
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.events.clear();
        self.resources.clear();
    }
}

/// Counters of the decoding half.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DecodingStats {
    pub(crate) streams: StreamStats,
    /// Decoders dropped at the cap (the connection's next bytes start a
    /// new one, joined mid-way).
    pub(crate) evicted_decoders: u64,
    /// Times the set of ciphertext streams was full and emptied.
    pub(crate) evicted_ciphertext: u64,
}

impl DecodingStats {
    pub(crate) fn add(&mut self, other: &Self) {
        let (s, o) = (&mut self.streams, &other.streams);
        s.captured_bytes += o.captured_bytes;
        s.gap_bytes += o.gap_bytes;
        s.gaps += o.gaps;
        s.reordered_bytes += o.reordered_bytes;
        s.evicted_streams += o.evicted_streams;
        self.evicted_decoders += other.evicted_decoders;
        self.evicted_ciphertext += other.evicted_ciphertext;
    }
}

struct Decoder {
    connection: Connection,
    last_ns: u64,
}

/// The streams and decoders of a set of sockets (all of them, or a
/// shard's), each table bounded.
pub(crate) struct Decoding {
    offset_ns: i128,
    streams: Streams,
    decoders: HashMap<ConnId, Decoder>,
    /// Syscall streams that began with a TLS handshake.
    ciphertext: HashSet<ConnId>,
    cap: usize,
    stats: DecodingStats,
    stream_events: Vec<StreamEvent<'static>>,
}

impl Decoding {
    pub(crate) fn new(max_streams: usize, max_connections: usize, offset_ns: i128) -> Self {
        Self {
            offset_ns,
            streams: Streams::new(max_streams),
            decoders: HashMap::new(),
            ciphertext: HashSet::new(),
            cap: max_connections.max(1),
            stats: DecodingStats::default(),
            stream_events: Vec::new(),
        }
    }

    pub(crate) fn stats(&self) -> DecodingStats {
        DecodingStats {
            streams: self.streams.stats(),
            ..self.stats
        }
    }

    /// Decodes what `record` carries for its socket's streams into `out`
    /// (cleared first). Records that carry no stream bytes give nothing.
    pub(crate) fn on_record(&mut self, record: &Record<'_>, out: &mut Batch) {
        out.clear();
        let mut events = std::mem::take(&mut self.stream_events);
        match record {
            Record::Chunk(header, data) => {
                let mut borrowed = recycle(events);
                self.streams.on_chunk(header, data, &mut borrowed);
                for event in borrowed.drain(..) {
                    self.on_stream_event(event, out);
                }
                events = recycle(borrowed);
            }
            Record::SockClose(close) => {
                let mut borrowed: Vec<StreamEvent<'static>> = recycle(events);
                self.streams.on_close(close, &mut borrowed);
                for event in borrowed.drain(..) {
                    self.on_stream_event(event, out);
                }
                events = recycle(borrowed);
                // A handshake's ciphertext stream never opened a connection.
                self.ciphertext.remove(&ConnId {
                    tgid: close.header.tgid,
                    source: ChunkSource::Syscall as u8,
                    key: close.sock,
                });
            }
            Record::TlsBind(b) => {
                // The socket's bytes seen before it was known to carry TLS
                // were ciphertext, not a connection (the join closes it).
                let ghost = ConnId {
                    tgid: b.header.tgid,
                    source: ChunkSource::Syscall as u8,
                    key: b.sock,
                };
                self.ciphertext.remove(&ghost);
                self.decoders.remove(&ghost);
            }
            _ => {}
        }
        self.stream_events = events;
    }

    fn on_stream_event(&mut self, event: StreamEvent<'_>, out: &mut Batch) {
        match event {
            StreamEvent::Start { id, ts_ns } => {
                if !self.ciphertext.contains(&id.conn) {
                    out.items.push(Decoded::Start { id, ts_ns });
                }
            }
            StreamEvent::Data {
                id,
                offset,
                ts_ns,
                bytes,
                place,
                call_start,
                sent,
            } => {
                let key = id.conn;
                if self.ciphertext.contains(&key) {
                    return;
                }
                let syscall = id.source() == Some(ChunkSource::Syscall);
                // A TLS record (handshake, version 3.x) at offset 0: the
                // socket's ciphertext, before the kernel knew it was TLS.
                if syscall && offset == 0 && bytes.starts_with(&[0x16, 0x03]) {
                    self.decoders.remove(&key);
                    let full = self.ciphertext.len() >= self.cap;
                    if full {
                        self.ciphertext.clear();
                        self.stats.evicted_ciphertext += 1;
                    }
                    self.ciphertext.insert(key);
                    out.items.push(Decoded::Ciphertext { key, full });
                    return;
                }
                let egress = id.direction() == Some(Direction::Egress);
                let before = out.events.len();
                let decoder = self.decoder(key, ts_ns);
                decoder.last_ns = ts_ns;
                decoder
                    .connection
                    .on_data(egress, offset, ts_ns, bytes, &mut out.events);
                let (role, role_guessed) =
                    (decoder.connection.role(), decoder.connection.role_guessed());
                let undecoded_since = decoder.connection.undecoded_since();
                resources(
                    &decoder.connection,
                    &out.events[before..],
                    &mut out.resources,
                );
                out.items.push(Decoded::Data {
                    id,
                    offset,
                    ts_ns,
                    len: bytes.len() as u64,
                    fd: place.fd,
                    tls_conn: place.tls_conn,
                    call_start,
                    sent,
                    role,
                    role_guessed,
                    undecoded_since,
                    events: out.events.len() - before,
                });
            }
            StreamEvent::Gap {
                id,
                offset,
                len,
                ts_ns,
            } => {
                let egress = id.direction() == Some(Direction::Egress);
                let before = out.events.len();
                if let Some(decoder) = self.decoders.get_mut(&id.conn) {
                    decoder
                        .connection
                        .on_gap(egress, ts_ns, len, &mut out.events);
                }
                out.items.push(Decoded::Gap {
                    id,
                    offset,
                    len,
                    ts_ns,
                    events: out.events.len() - before,
                });
            }
            StreamEvent::End { id, ts_ns, .. } => {
                if self.ciphertext.remove(&id.conn) {
                    out.items.push(Decoded::End {
                        id,
                        ts_ns,
                        events: 0,
                    });
                    return;
                }
                let before = out.events.len();
                // One direction's end is the connection's end: the kernel
                // ends both streams of an fd together.
                if let Some(mut decoder) = self.decoders.remove(&id.conn) {
                    decoder.connection.close(ts_ns, &mut out.events);
                }
                out.items.push(Decoded::End {
                    id,
                    ts_ns,
                    events: out.events.len() - before,
                });
            }
        }
    }

    /// The connection's decoder, a new one if it has none. At the cap the
    /// idlest decoder (the smaller key among equals, so any shard decides
    /// alike) makes room.
    fn decoder(&mut self, key: ConnId, ts_ns: u64) -> &mut Decoder {
        if !self.decoders.contains_key(&key) {
            if self.decoders.len() >= self.cap
                && let Some(idle) = self
                    .decoders
                    .iter()
                    .min_by_key(|(k, d)| (d.last_ns, **k))
                    .map(|(k, _)| *k)
            {
                self.decoders.remove(&idle);
                self.stats.evicted_decoders += 1;
            }
            self.decoders.insert(
                key,
                Decoder {
                    // Numbered by the join.
                    connection: Connection::new(0, self.offset_ns),
                    last_ns: ts_ns,
                },
            );
        }
        self.decoders.get_mut(&key).expect("inserted above")
    }
}

/// The streams a window stall among `events` may hold, with the resources
/// their requests named.
fn resources(
    connection: &Connection,
    events: &[OutputEvent],
    out: &mut Vec<(u32, Option<String>)>,
) {
    for event in events {
        if let OutputEvent::WindowStall {
            stream,
            open_streams,
            ..
        } = event
        {
            let held: &[u32] = match stream {
                Some(s) => std::slice::from_ref(s),
                None => open_streams,
            };
            for &s in held {
                if !out.iter().any(|(known, _)| *known == s) {
                    out.push((s, connection.resource_of(s)));
                }
            }
        }
    }
}

/// An empty vector of stream events, reused whatever the lifetime of the
/// bytes its last contents borrowed: only its allocation is kept.
fn recycle<'a, 'b>(mut events: Vec<StreamEvent<'a>>) -> Vec<StreamEvent<'b>> {
    events.clear();
    events
        .into_iter()
        .map(|_| unreachable!("emptied"))
        .collect()
}

/// The shard a socket's records go to, among `shards`: the same for every
/// record that names the socket, whatever the record.
pub(crate) fn shard_of(tgid: u32, sock: u64, shards: usize) -> usize {
    let mixed = (sock ^ (u64::from(tgid) << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((mixed >> 32) % shards as u64) as usize
}

/// The socket whose streams a record carries bytes or news of, if any.
pub(crate) fn stream_socket(record: &Record<'_>) -> Option<(u32, u64)> {
    match record {
        Record::Chunk(header, _) => Some((header.header.tgid, header.sock)),
        Record::SockClose(close) => Some((close.header.tgid, close.sock)),
        Record::TlsBind(b) => Some((b.header.tgid, b.sock)),
        _ => None,
    }
}

//! The etcd Watch stream decoder: gRPC length-prefixed messages
//! (`flag(1) | length(4, BE) | protobuf`) carrying WatchRequests (client to
//! server) or WatchResponses (server to client), with content-based
//! resynchronisation.

use crate::http2::Flow;

use super::{
    request::{WatchRequestInfo, decode_watch_request},
    response::{WatchResponseInfo, decode_header, decode_watch_response},
    wire::{Reader, WireError},
};

/// Default cap on one message.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// A seek buffer whose consumed front exceeds this is compacted.
const COMPACT_BYTES: usize = 64 << 10;

/// Decoder settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtcdDecoderConfig {
    /// Largest gRPC message decoded (including its 5-byte prefix). A larger
    /// declared length is not trusted: the prefix is reported dropped and
    /// the decoder resynchronises.
    pub max_message_bytes: u64,
}

impl Default for EtcdDecoderConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// A decoded message with its framing facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framed<T> {
    pub msg: T,
    /// Size on the wire, including the 5-byte gRPC prefix.
    pub bytes: u64,
    pub t_first_byte: u64,
    pub t_last_byte: u64,
    /// The first message after a boundary found by content.
    pub resynced: bool,
}

/// Why bytes produced no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtcdDropReason {
    /// gRPC-compressed (flag 1): not decoded.
    Compressed,
    Oversized,
    Malformed,
    CutByGap,
    Truncated,
}

/// One output of [`EtcdWatchDecoder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EtcdItem {
    Response(Framed<WatchResponseInfo>),
    Request(Framed<WatchRequestInfo>),
    /// A message boundary was found by content after `skipped_bytes`.
    Synced {
        skipped_bytes: u64,
        ts_ns: u64,
    },
    Dropped {
        reason: EtcdDropReason,
        bytes: u64,
        ts_ns: u64,
    },
}

/// Running counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdStats {
    pub messages: u64,
    pub message_bytes: u64,
    /// mvcc events in responses.
    pub events: u64,
    pub progress_notifies: u64,
    pub gaps: u64,
    pub gap_bytes: u64,
    pub syncs: u64,
    pub skipped_bytes: u64,
    pub compressed_messages: u64,
    pub compressed_bytes: u64,
    pub oversized_messages: u64,
    pub oversized_bytes: u64,
    pub malformed_messages: u64,
    pub malformed_bytes: u64,
    pub cut_messages: u64,
    pub cut_bytes: u64,
    pub truncated_messages: u64,
    pub truncated_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Seek,
    Aligned,
}

/// Decodes one direction of one etcd `Watch` gRPC stream.
///
/// Aligned messages are parsed in place when a piece holds them whole and
/// copied only when split. While seeking, bytes are kept (up to the message
/// cap) until a candidate boundary is confirmed by parsing the whole
/// message, so a wrong candidate costs no data: scanning resumes one byte
/// after it.
///
/// `Debug` shows state and counters only: the buffers may hold values.
pub struct EtcdWatchDecoder {
    dir: Flow,
    cfg: EtcdDecoderConfig,
    mode: Mode,
    stats: EtcdStats,

    // Seeking.
    sbuf: Vec<u8>,
    /// Piece start offsets in `sbuf` with their timestamps.
    sbuf_ts: Vec<(usize, u64)>,
    /// Next offset of `sbuf` to try as a boundary.
    spos: usize,
    /// Bytes discarded since the last boundary.
    skipped: u64,
    next_resynced: bool,
    /// Bytes to decode before the rest of the current input (what followed
    /// a message confirmed while seeking).
    pending: Vec<u8>,
    /// Start offsets in `pending` of each piece, with its timestamp.
    pending_ts: Vec<(usize, u64)>,

    // Aligned framing.
    hdr: [u8; 5],
    hdr_len: usize,
    in_body: bool,
    body_len: u64,
    got: u64,
    buf: Vec<u8>,
    t_first: u64,
}

impl std::fmt::Debug for EtcdWatchDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdWatchDecoder")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field(
                "buffered",
                &(self.buf.len() + self.sbuf.len() + self.pending.len()),
            )
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl EtcdWatchDecoder {
    fn new(dir: Flow, cfg: EtcdDecoderConfig, mode: Mode) -> Self {
        Self {
            dir,
            cfg,
            mode,
            stats: EtcdStats::default(),
            sbuf: Vec::new(),
            sbuf_ts: Vec::new(),
            spos: 0,
            skipped: 0,
            next_resynced: false,
            pending: Vec::new(),
            pending_ts: Vec::new(),
            hdr: [0; 5],
            hdr_len: 0,
            in_body: false,
            body_len: 0,
            got: 0,
            buf: Vec::new(),
            t_first: 0,
        }
    }

    /// A stream seen from its first byte.
    #[must_use]
    pub fn from_start(dir: Flow, cfg: EtcdDecoderConfig) -> Self {
        Self::new(dir, cfg, Mode::Aligned)
    }

    /// A stream joined at an unknown offset.
    #[must_use]
    pub fn mid_stream(dir: Flow, cfg: EtcdDecoderConfig) -> Self {
        Self::new(dir, cfg, Mode::Seek)
    }

    #[must_use]
    pub fn stats(&self) -> &EtcdStats {
        &self.stats
    }

    /// Feeds captured bytes of the stream (the DATA payloads, in order).
    pub fn push(&mut self, data: &[u8], ts_ns: u64, out: &mut Vec<EtcdItem>) {
        self.run(data, ts_ns, out);
        // Seeking may confirm a boundary and leave what follows it to be
        // decoded; doing that here rather than recursively keeps the stack
        // flat whatever the input.
        while !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            let runs = std::mem::take(&mut self.pending_ts);
            for (k, &(start, t)) in runs.iter().enumerate() {
                let end = runs.get(k + 1).map_or(p.len(), |r| r.0);
                self.run(&p[start..end], t, out);
                if !self.pending.is_empty() {
                    // A boundary was confirmed inside this run: the rest
                    // of `p` comes after what it left pending.
                    let base = self.pending.len();
                    self.pending.extend_from_slice(&p[end..]);
                    self.pending_ts
                        .extend(runs[k + 1..].iter().map(|&(s, t)| (s - end + base, t)));
                    break;
                }
            }
        }
    }

    fn run(&mut self, data: &[u8], ts: u64, out: &mut Vec<EtcdItem>) {
        let mut rest = data;
        while !rest.is_empty() {
            let used = match self.mode {
                Mode::Seek => self.seek(rest, ts, out),
                Mode::Aligned => self.aligned(rest, ts, out),
            };
            rest = &rest[used..];
        }
    }

    /// `lost_bytes` were not captured: the message in progress is dropped
    /// and the next boundary is looked for by content.
    pub fn gap(&mut self, lost_bytes: u64, ts_ns: u64, out: &mut Vec<EtcdItem>) {
        self.stats.gaps += 1;
        self.stats.gap_bytes += lost_bytes;
        self.abandon(EtcdDropReason::CutByGap, ts_ns, out);
    }

    /// The stream ended: a partial message is reported truncated.
    pub fn finish(&mut self, ts_ns: u64, out: &mut Vec<EtcdItem>) {
        self.abandon(EtcdDropReason::Truncated, ts_ns, out);
        self.stats.skipped_bytes += std::mem::take(&mut self.skipped);
    }

    fn abandon(&mut self, reason: EtcdDropReason, ts: u64, out: &mut Vec<EtcdItem>) {
        match self.mode {
            Mode::Seek => {
                // Bytes before `spos` were counted when passed over.
                self.skipped += (self.sbuf.len() - self.spos) as u64;
            }
            Mode::Aligned => {
                let partial = self.hdr_len as u64 + self.got;
                if partial > 0 {
                    self.drop_bytes(reason, partial, ts, out);
                }
            }
        }
        self.clear_seek();
        self.reset_framing();
        self.mode = Mode::Seek;
    }

    fn clear_seek(&mut self) {
        self.sbuf.clear();
        self.sbuf_ts.clear();
        self.spos = 0;
    }

    fn reset_framing(&mut self) {
        self.hdr_len = 0;
        self.in_body = false;
        self.got = 0;
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    fn drop_bytes(&mut self, reason: EtcdDropReason, bytes: u64, ts: u64, out: &mut Vec<EtcdItem>) {
        let s = &mut self.stats;
        let (n, b) = match reason {
            EtcdDropReason::Compressed => (&mut s.compressed_messages, &mut s.compressed_bytes),
            EtcdDropReason::Oversized => (&mut s.oversized_messages, &mut s.oversized_bytes),
            EtcdDropReason::Malformed => (&mut s.malformed_messages, &mut s.malformed_bytes),
            EtcdDropReason::CutByGap => (&mut s.cut_messages, &mut s.cut_bytes),
            EtcdDropReason::Truncated => (&mut s.truncated_messages, &mut s.truncated_bytes),
        };
        *n += 1;
        *b += bytes;
        out.push(EtcdItem::Dropped {
            reason,
            bytes,
            ts_ns: ts,
        });
    }

    /// Parses a whole message body; `strict` adds the checks used to
    /// confirm a boundary found by content.
    fn parse(&self, body: &[u8], strict: bool) -> Option<Parsed> {
        match self.dir {
            Flow::ServerToClient => {
                let r = decode_watch_response(body).ok()?;
                // A boundary guessed from content must look like what etcd
                // sends: a full header (cluster and member ids are random
                // 64-bit values, never 0), only WatchResponse fields, and
                // a key in every event.
                if strict
                    && (!r
                        .header
                        .is_some_and(|h| h.cluster_id != 0 && h.member_id != 0 && h.revision != 0)
                        || r.events.iter().any(|e| e.kv.key.is_empty())
                        || !only_fields(body, &[1, 2, 3, 4, 5, 6, 7, 11]))
                {
                    return None;
                }
                Some(Parsed::Response(r))
            }
            Flow::ClientToServer => decode_watch_request(body).ok().map(Parsed::Request),
        }
    }

    fn emit(
        &mut self,
        parsed: Parsed,
        bytes: u64,
        t_first: u64,
        t_last: u64,
        out: &mut Vec<EtcdItem>,
    ) {
        let resynced = std::mem::take(&mut self.next_resynced);
        self.stats.messages += 1;
        self.stats.message_bytes += bytes;
        out.push(match parsed {
            Parsed::Response(msg) => {
                self.stats.events += msg.events.len() as u64;
                if msg.is_progress_notify() {
                    self.stats.progress_notifies += 1;
                }
                EtcdItem::Response(Framed {
                    msg,
                    bytes,
                    t_first_byte: t_first,
                    t_last_byte: t_last,
                    resynced,
                })
            }
            Parsed::Request(msg) => EtcdItem::Request(Framed {
                msg,
                bytes,
                t_first_byte: t_first,
                t_last_byte: t_last,
                resynced,
            }),
        });
    }

    fn aligned(&mut self, data: &[u8], ts: u64, out: &mut Vec<EtcdItem>) -> usize {
        let mut i = 0;
        if !self.in_body {
            if self.hdr_len == 0 {
                self.t_first = ts;
            }
            while self.hdr_len < 5 && i < data.len() {
                self.hdr[self.hdr_len] = data[i];
                self.hdr_len += 1;
                i += 1;
            }
            if self.hdr_len < 5 {
                return i;
            }
            let flag = self.hdr[0];
            let n = u64::from(u32::from_be_bytes([
                self.hdr[1],
                self.hdr[2],
                self.hdr[3],
                self.hdr[4],
            ]));
            if flag > 1 || n + 5 > self.cfg.max_message_bytes {
                let reason = if flag > 1 {
                    EtcdDropReason::Malformed
                } else {
                    EtcdDropReason::Oversized
                };
                self.drop_bytes(reason, 5, ts, out);
                self.reset_framing();
                self.mode = Mode::Seek;
                return i;
            }
            self.in_body = true;
            self.body_len = n;
            self.got = 0;
        }
        let want = self.body_len - self.got;
        let avail = (data.len() - i) as u64;
        let take = want.min(avail) as usize;
        let compressed = self.hdr[0] == 1;
        let bytes = 5 + self.body_len;
        if compressed {
            // Not decoded: the payload is only stepped over.
            self.got += take as u64;
            i += take;
            if self.got == self.body_len {
                self.reset_framing();
                self.drop_bytes(EtcdDropReason::Compressed, bytes, ts, out);
            }
            return i;
        }
        if self.got == 0 && take as u64 == want {
            // The whole message is in this piece: parse in place.
            let body = &data[i..i + take];
            i += take;
            let parsed = self.parse(body, false);
            self.finish_message(parsed, bytes, ts, out);
            return i;
        }
        self.buf.extend_from_slice(&data[i..i + take]);
        self.got += take as u64;
        i += take;
        if self.got == self.body_len {
            let body = std::mem::take(&mut self.buf);
            let parsed = self.parse(&body, false);
            self.buf = body;
            self.finish_message(parsed, bytes, ts, out);
        }
        i
    }

    fn finish_message(
        &mut self,
        parsed: Option<Parsed>,
        bytes: u64,
        ts: u64,
        out: &mut Vec<EtcdItem>,
    ) {
        let t_first = self.t_first;
        self.reset_framing();
        match parsed {
            Some(p) => self.emit(p, bytes, t_first, ts, out),
            None => {
                self.drop_bytes(EtcdDropReason::Malformed, bytes, ts, out);
                // The length may be wrong too: look again from here.
                self.mode = Mode::Seek;
            }
        }
    }

    fn ts_at(&self, off: usize) -> u64 {
        self.sbuf_ts
            .iter()
            .take_while(|(start, _)| *start <= off)
            .last()
            .map_or(0, |&(_, t)| t)
    }

    /// Drops the first `k` bytes of the seek buffer.
    fn compact(&mut self, k: usize) {
        if k == 0 {
            return;
        }
        let t0 = self.ts_at(k);
        self.sbuf.drain(..k);
        self.sbuf_ts.retain(|&(s, _)| s > k);
        for e in &mut self.sbuf_ts {
            e.0 -= k;
        }
        self.sbuf_ts.insert(0, (0, t0));
        self.spos -= k;
    }

    fn seek(&mut self, data: &[u8], ts: u64, out: &mut Vec<EtcdItem>) -> usize {
        if self.sbuf.is_empty() {
            self.sbuf_ts.clear();
            self.spos = 0;
        }
        self.sbuf_ts.push((self.sbuf.len(), ts));
        self.sbuf.extend_from_slice(data);
        loop {
            let from = self.spos;
            match self.find(from) {
                Cand::At(p, n) => {
                    let end = p + 5 + n as usize;
                    if self.sbuf.len() < end {
                        // Wait for the whole message; bytes before it are
                        // skipped.
                        self.skipped += (p - from) as u64;
                        self.spos = p;
                        if p > COMPACT_BYTES {
                            self.compact(p);
                        }
                        return data.len();
                    }
                    let parsed = self.parse(&self.sbuf[p + 5..end], true);
                    let Some(parsed) = parsed else {
                        // A false candidate: its first byte is skipped.
                        self.skipped += (p + 1 - from) as u64;
                        self.spos = p + 1;
                        continue;
                    };
                    self.skipped += (p - from) as u64;
                    let t_first = self.ts_at(p);
                    let t_last = self.ts_at(end - 1);
                    let skipped = std::mem::take(&mut self.skipped);
                    self.stats.syncs += 1;
                    self.stats.skipped_bytes += skipped;
                    out.push(EtcdItem::Synced {
                        skipped_bytes: skipped,
                        ts_ns: t_first,
                    });
                    self.next_resynced = true;
                    self.emit(parsed, 5 + n, t_first, t_last, out);
                    // What follows is decoded aligned, before any later
                    // input (see `push`).
                    // `pending` is empty here: `push` takes it before
                    // running it.
                    let mut runs = vec![(0, self.ts_at(end))];
                    runs.extend(
                        self.sbuf_ts
                            .iter()
                            .filter(|&&(s, _)| s > end)
                            .map(|&(s, t)| (s - end, t)),
                    );
                    self.pending = self.sbuf.split_off(end);
                    self.pending_ts = runs;
                    self.clear_seek();
                    self.mode = Mode::Aligned;
                    self.reset_framing();
                    return data.len();
                }
                Cand::NeedMore(p) => {
                    self.skipped += (p - from) as u64;
                    self.spos = p;
                    self.compact(p);
                    return data.len();
                }
                Cand::Nothing => {
                    self.skipped += (self.sbuf.len() - from) as u64;
                    self.clear_seek();
                    return data.len();
                }
            }
        }
    }

    /// The first candidate boundary at or after `from` in the seek buffer.
    fn find(&self, from: usize) -> Cand {
        let w = &self.sbuf;
        // Candidates start with flag 0 (compressed messages cannot be
        // checked, so they are never taken as a boundary).
        let mut p = from;
        while p < w.len() {
            let Some(off) = w[p..].iter().position(|&b| b == 0) else {
                return Cand::Nothing;
            };
            p += off;
            match probe(&w[p..], self.dir, self.cfg.max_message_bytes) {
                Probe::Match(n) => return Cand::At(p, n),
                Probe::NeedMore => return Cand::NeedMore(p),
                Probe::No => p += 1,
            }
        }
        Cand::Nothing
    }
}

enum Parsed {
    Response(WatchResponseInfo),
    Request(WatchRequestInfo),
}

enum Cand {
    At(usize, u64),
    NeedMore(usize),
    Nothing,
}

#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Match(u64),
    NeedMore,
    No,
}

/// Longest ResponseHeader: four tags and four 10-byte varints.
const MAX_HEADER: u64 = 44;

/// Whether a gRPC message carrying a Watch message plausibly starts at
/// `w[0]`, judging from its first bytes. The caller confirms by parsing the
/// whole message.
fn probe(w: &[u8], dir: Flow, cap: u64) -> Probe {
    if w.len() < 7 {
        return Probe::NeedMore;
    }
    if w[0] != 0 {
        return Probe::No;
    }
    let n = u64::from(u32::from_be_bytes([w[1], w[2], w[3], w[4]]));
    if n < 2 || n + 5 > cap {
        return Probe::No;
    }
    let body = &w[5..];
    match dir {
        Flow::ServerToClient => {
            // The header (field 1) comes first and holds a revision.
            if body[0] != 0x0A {
                return Probe::No;
            }
            let hlen = u64::from(body[1]);
            if hlen > MAX_HEADER || hlen + 2 > n {
                return Probe::No;
            }
            let hend = 2 + hlen as usize;
            // The header and the next tag must be in hand to decide.
            let need = if hlen + 2 < n { hend + 1 } else { hend };
            if body.len() < need {
                return Probe::NeedMore;
            }
            if !strict_header(&body[2..hend]) {
                return Probe::No;
            }
            if hlen + 2 < n && !matches!(body[hend], 0x10 | 0x18 | 0x20 | 0x28 | 0x32 | 0x38 | 0x5A)
            {
                return Probe::No;
            }
            Probe::Match(n)
        }
        Flow::ClientToServer => {
            // One oneof member spanning the whole message.
            if !matches!(body[0], 0x0A | 0x12 | 0x1A) {
                return Probe::No;
            }
            let mut r = Reader::new(&body[1..]);
            match r.varint() {
                // A varint can be near u64::MAX: no overflow on bad bytes.
                Ok(l) if l.checked_add(1 + r.position() as u64) == Some(n) => Probe::Match(n),
                Ok(_) => Probe::No,
                Err(WireError::Truncated) if body.len() < 11 => Probe::NeedMore,
                Err(_) => Probe::No,
            }
        }
    }
}

/// Whether every field of a message is one of `known`.
fn only_fields(b: &[u8], known: &[u32]) -> bool {
    let mut r = Reader::new(b);
    loop {
        match r.field() {
            Ok(None) => return true,
            Ok(Some((f, _))) if known.contains(&f) => {}
            _ => return false,
        }
    }
}

/// A ResponseHeader with only its four varint fields, ids and a revision.
fn strict_header(b: &[u8]) -> bool {
    let mut r = Reader::new(b);
    loop {
        match r.field() {
            Ok(None) => break,
            Ok(Some((1..=4, super::wire::Value::Varint(_)))) => {}
            _ => return false,
        }
    }
    decode_header(b).is_ok_and(|h| h.cluster_id != 0 && h.member_id != 0 && h.revision != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::fixture::{encode_grpc, response_with_puts};

    // Found by fuzzing (etcd_watch): a request's oneof length varint near
    // u64::MAX overflowed the length check.
    #[test]
    fn probe_rejects_a_request_length_that_overflows() {
        let mut m = vec![0, 0, 0, 0, 11, 0x0A];
        m.extend([0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
        assert_eq!(
            probe(&m, Flow::ClientToServer, DEFAULT_MAX_MESSAGE_BYTES),
            Probe::No
        );
    }

    #[test]
    fn probe_matches_real_responses_only() {
        let m = encode_grpc(&response_with_puts(7, 100, &["/registry/pods/a/b"]));
        assert_eq!(
            probe(&m, Flow::ServerToClient, DEFAULT_MAX_MESSAGE_BYTES),
            Probe::Match(m.len() as u64 - 5)
        );
        for k in 0..12 {
            assert_eq!(
                probe(&m[..k], Flow::ServerToClient, DEFAULT_MAX_MESSAGE_BYTES),
                Probe::NeedMore,
                "{k}"
            );
        }
        let mut c = m.clone();
        c[0] = 1;
        assert_eq!(
            probe(&c, Flow::ServerToClient, DEFAULT_MAX_MESSAGE_BYTES),
            Probe::No
        );
        assert_eq!(probe(&m, Flow::ServerToClient, 10), Probe::No);
        assert_eq!(
            probe(&m, Flow::ClientToServer, DEFAULT_MAX_MESSAGE_BYTES),
            Probe::No
        );
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    /// WatchResponse{header{cluster 1, member 2, revision 3}, watch_id 4,
    /// events[{type DELETE, kv{key "k", mod_revision 3}}]} in gRPC framing.
    const MSG: &[u8] = &[
        0, 0, 0, 0, 21, // flag, length
        0x0A, 6, 0x08, 1, 0x10, 2, 0x18, 3, // header
        0x10, 4, // watch_id
        0x5A, 9, 0x08, 1, 0x12, 5, 0x0A, 1, b'k', 0x18, 3, // event
    ];

    fn revs(out: &[EtcdItem]) -> Vec<(i64, i64, u64, u64, u64)> {
        out.iter()
            .filter_map(|i| match i {
                EtcdItem::Response(f) => Some((
                    f.msg.watch_id,
                    f.msg.revision(),
                    f.bytes,
                    f.t_first_byte,
                    f.t_last_byte,
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn byte_literal_message_at_every_split() {
        assert_eq!(MSG.len(), 26);
        let body = [MSG, MSG].concat();
        for split in 1..body.len() {
            let mut d =
                EtcdWatchDecoder::from_start(Flow::ServerToClient, EtcdDecoderConfig::default());
            let mut out = Vec::new();
            for (i, c) in body.chunks(split).enumerate() {
                d.push(c, i as u64, &mut out);
            }
            let last_of_first = (25 / split) as u64;
            assert_eq!(revs(&out)[0], (4, 3, 26, 0, last_of_first), "split {split}");
            assert_eq!(revs(&out).len(), 2);
            let EtcdItem::Response(f) = &out[0] else {
                panic!()
            };
            assert_eq!(f.msg.events[0].kv.key, "k");
            assert_eq!(f.msg.events[0].kv.value_len, 0);
        }
    }

    #[test]
    fn mid_stream_and_false_candidates() {
        // A zero byte and a length that would fit, but no header after.
        let mut body = vec![0xFF, 0, 0, 0, 0, 2, 0x0A, 0x00];
        body.extend_from_slice(MSG);
        let mut d =
            EtcdWatchDecoder::mid_stream(Flow::ServerToClient, EtcdDecoderConfig::default());
        let mut out = Vec::new();
        for c in body.chunks(3) {
            d.push(c, 9, &mut out);
        }
        assert_eq!(
            out[0],
            EtcdItem::Synced {
                skipped_bytes: 8,
                ts_ns: 9
            }
        );
        assert_eq!(revs(&out), [(4, 3, 26, 9, 9)]);
        let EtcdItem::Response(f) = &out[1] else {
            panic!()
        };
        assert!(f.resynced);
    }

    #[test]
    fn requests_direction() {
        // progress_request{}
        let body = [0u8, 0, 0, 0, 2, 0x1A, 0x00];
        let mut d =
            EtcdWatchDecoder::mid_stream(Flow::ClientToServer, EtcdDecoderConfig::default());
        let mut out = Vec::new();
        d.push(&body, 1, &mut out);
        assert!(matches!(
            &out[1],
            EtcdItem::Request(Framed {
                msg: WatchRequestInfo::Progress,
                bytes: 7,
                ..
            })
        ));
    }

    #[test]
    fn gap_and_finish() {
        let mut d =
            EtcdWatchDecoder::from_start(Flow::ServerToClient, EtcdDecoderConfig::default());
        let mut out = Vec::new();
        d.push(&MSG[..10], 1, &mut out);
        d.gap(100, 2, &mut out);
        d.push(MSG, 3, &mut out);
        d.push(&MSG[..3], 4, &mut out);
        d.finish(5, &mut out);
        assert_eq!(
            out[0],
            EtcdItem::Dropped {
                reason: EtcdDropReason::CutByGap,
                bytes: 10,
                ts_ns: 2
            }
        );
        assert_eq!(revs(&out), [(4, 3, 26, 3, 3)]);
        // Aligned again after the sync: the 3 trailing bytes were the
        // start of a message.
        assert_eq!(
            out.last(),
            Some(&EtcdItem::Dropped {
                reason: EtcdDropReason::Truncated,
                bytes: 3,
                ts_ns: 5
            })
        );
    }
}

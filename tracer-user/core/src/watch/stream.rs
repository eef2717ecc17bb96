//! The watch-body decoder: frames events (JSON lines or length-prefixed
//! protobuf), finds boundaries by content when joined mid-way or after a
//! gap, and reports every byte it could not turn into an event.

use memchr::memchr;

use super::{
    cbor::{self, CborError, SELF_DESCRIBED},
    event::{DropReason, EventMeta, WatchEvent, WatchItem, WatchStats, WireFormat},
    json::extract,
    json_scan::is_single_value,
    protobuf::{Walk, Walker},
    sync::{Found, Looking, MAX_PROBE, Scan, scan},
};

/// Default cap on one event: far above etcd's object limit (1.5 MiB by
/// default) and the apiserver's request limit (3 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: u64 = 64 << 20;

/// A buffer grown past this by one large JSON event is released afterwards,
/// so that thousands of idle streams do not each pin their largest event.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// Decoder settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Largest framed event decoded. A larger JSON event is skipped to its
    /// newline; a larger protobuf length is not trusted (it is likelier a
    /// desync): its 4 header bytes are reported dropped and the decoder
    /// resynchronises, the body counting as skipped bytes.
    pub max_event_bytes: u64,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Looking for a boundary.
    Seek,
    Json,
    Protobuf,
    /// Items buffered whole (each item's length is known only once it is).
    Cbor,
    /// Looking for a CBOR item: one that starts with the self-described tag
    /// and decodes to an event.
    CborSeek,
}

/// Decodes one watch response body, fed in pieces as captured.
///
/// Sans-IO: time is the caller's `ts_ns` per piece. Outputs are appended to
/// a caller-owned `Vec` (reuse it across calls). Memory is bounded by the
/// event cap for JSON (the current incomplete line) and by a few hundred
/// bytes for protobuf (which is never buffered).
///
/// `Debug` shows state and counters only: the buffers may hold object
/// content.
pub struct WatchStreamDecoder {
    cfg: DecoderConfig,
    mode: Mode,
    /// The format: given by the caller, or detected.
    format: Option<WireFormat>,
    /// The format was detected from content, not given: a JSON detection
    /// can be undone by a malformed line.
    inferred: bool,
    stats: WatchStats,

    // Seeking.
    /// Offset 0 of the next bytes follows a gap or the stream start.
    at_start: bool,
    /// Bytes held back because a candidate may start in them, with the
    /// timestamp of each (at most a few dozen).
    carry: Vec<u8>,
    carry_ts: Vec<u64>,
    /// Bytes discarded since the last boundary was committed.
    skipped: u64,
    /// The next event is the first after a content-found boundary.
    next_resynced: bool,

    // JSON framing.
    jbuf: Vec<u8>,
    /// Bytes of the current line seen so far (buffered or not).
    j_seen: u64,
    j_t_first: u64,
    /// The current line is over the cap: discard it up to its newline.
    j_discarding: bool,
    /// The current line starts at a guessed boundary: validate it first.
    j_candidate: bool,

    // Protobuf framing.
    hdr: [u8; 4],
    hdr_len: usize,
    in_body: bool,
    body_len: u64,
    p_t_first: u64,
    walker: Walker,
    /// Frames after a content sync that must still parse to confirm it.
    unconfirmed: u8,

    // CBOR framing: the current item's bytes so far, and when its first
    // byte came.
    cbuf: Vec<u8>,
    c_t_first: u64,
}

impl std::fmt::Debug for WatchStreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStreamDecoder")
            .field("mode", &self.mode)
            .field("format", &self.format)
            .field("buffered", &(self.jbuf.len() + self.carry.len()))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl WatchStreamDecoder {
    fn new(cfg: DecoderConfig, mode: Mode, format: Option<WireFormat>) -> Self {
        Self {
            cfg,
            mode,
            format,
            inferred: false,
            stats: WatchStats::default(),
            at_start: true,
            carry: Vec::new(),
            carry_ts: Vec::new(),
            skipped: 0,
            next_resynced: false,
            jbuf: Vec::new(),
            j_seen: 0,
            j_t_first: 0,
            j_discarding: false,
            j_candidate: false,
            hdr: [0; 4],
            hdr_len: 0,
            in_body: false,
            body_len: 0,
            p_t_first: 0,
            walker: Walker::default(),
            unconfirmed: 0,
            cbuf: Vec::new(),
            c_t_first: 0,
        }
    }

    /// A body seen from its first byte (the response HEADERS were seen, so
    /// the format is known and offset 0 is an event boundary).
    #[must_use]
    pub fn from_start(format: WireFormat, cfg: DecoderConfig) -> Self {
        let mode = match format {
            WireFormat::Json => Mode::Json,
            WireFormat::Protobuf => Mode::Protobuf,
            WireFormat::Cbor => Mode::Cbor,
        };
        Self::new(cfg, mode, Some(format))
    }

    /// A body joined at an unknown offset (the tracer attached after the
    /// watch began). With `format` unknown it is detected from the bytes.
    /// Emits [`WatchItem::Synced`] once a boundary is found.
    #[must_use]
    pub fn mid_stream(format: Option<WireFormat>, cfg: DecoderConfig) -> Self {
        let mode = match format {
            Some(WireFormat::Cbor) => Mode::CborSeek,
            _ => Mode::Seek,
        };
        Self::new(cfg, mode, format)
    }

    /// The format, once known.
    #[must_use]
    pub fn format(&self) -> Option<WireFormat> {
        self.format
    }

    #[must_use]
    pub fn stats(&self) -> &WatchStats {
        &self.stats
    }

    /// Feeds the next captured bytes of the body.
    pub fn push(&mut self, data: &[u8], ts_ns: u64, out: &mut Vec<WatchItem>) {
        let mut rest = data;
        while !rest.is_empty() {
            if self.mode == Mode::Seek
                && self.format.is_none()
                && let Some(p) = cbor::find_event_start(rest)
            {
                // A CBOR watch event's opening: the stream is CBOR (JSON
                // never holds these bytes; protobuf only inside a value
                // that is itself such an event).
                self.skipped += (self.carry.len() + p) as u64;
                self.carry.clear();
                self.carry_ts.clear();
                self.at_start = false;
                self.mode = Mode::CborSeek;
                rest = &rest[p..];
            }
            let used = match self.mode {
                Mode::Seek => self.seek(rest, ts_ns, out),
                Mode::Json => self.json(rest, ts_ns, out),
                Mode::Protobuf => self.protobuf(rest, ts_ns, out),
                Mode::Cbor | Mode::CborSeek => self.cbor(rest, ts_ns, out),
            };
            rest = &rest[used..];
        }
    }

    /// `lost_bytes` of the body were not captured. The event in progress is
    /// dropped and the decoder looks for the next boundary by content.
    pub fn gap(&mut self, lost_bytes: u64, ts_ns: u64, out: &mut Vec<WatchItem>) {
        self.stats.gaps += 1;
        self.stats.gap_bytes += lost_bytes;
        self.abandon(DropReason::CutByGap, ts_ns, out);
    }

    /// The body ended (END_STREAM, RST_STREAM, connection closed): an
    /// incomplete event is reported as truncated.
    pub fn finish(&mut self, ts_ns: u64, out: &mut Vec<WatchItem>) {
        self.abandon(DropReason::Truncated, ts_ns, out);
        // Nothing follows; skipped bytes with no boundary after them are
        // still counted.
        self.stats.skipped_bytes += std::mem::take(&mut self.skipped);
    }

    /// Drops the partial event, if any, and starts seeking.
    fn abandon(&mut self, reason: DropReason, ts: u64, out: &mut Vec<WatchItem>) {
        let partial = match self.mode {
            Mode::Seek => {
                self.skipped += self.carry.len() as u64;
                0
            }
            Mode::Json => {
                if self.j_candidate {
                    // A guessed boundary never confirmed: skipped, not lost.
                    self.skipped += self.j_seen;
                    0
                } else {
                    self.j_seen
                }
            }
            Mode::Protobuf => {
                self.hdr_len as u64
                    + if self.in_body {
                        self.walker.consumed()
                    } else {
                        0
                    }
            }
            Mode::Cbor => self.cbuf.len() as u64,
            // Not yet an item: skipped, not lost.
            Mode::CborSeek => {
                self.skipped += self.cbuf.len() as u64;
                0
            }
        };
        if partial > 0 {
            self.drop_bytes(reason, partial, ts, out);
        }
        self.reset_json();
        self.reset_protobuf();
        self.cbuf.clear();
        self.carry.clear();
        self.carry_ts.clear();
        self.mode = if self.format == Some(WireFormat::Cbor) {
            Mode::CborSeek
        } else {
            Mode::Seek
        };
        self.at_start = true;
    }

    fn reset_json(&mut self) {
        if self.jbuf.capacity() > KEEP_BUFFER_BYTES {
            self.jbuf = Vec::new();
        } else {
            self.jbuf.clear();
        }
        self.j_seen = 0;
        self.j_discarding = false;
        self.j_candidate = false;
    }

    fn reset_protobuf(&mut self) {
        self.hdr_len = 0;
        self.in_body = false;
    }

    fn looking(&self) -> Looking {
        match self.format {
            Some(WireFormat::Json) => Looking::Json,
            Some(WireFormat::Protobuf) => Looking::Protobuf,
            // CBOR is sought by `cbor`, never here; an unknown format is
            // found to be CBOR by `push` (`cbor::find_event_start`).
            Some(WireFormat::Cbor) | None => Looking::Either,
        }
    }

    fn seek(&mut self, rest: &[u8], ts: u64, out: &mut Vec<WatchItem>) -> usize {
        let looking = self.looking();
        let cap = self.cfg.max_event_bytes;
        if self.carry.is_empty() {
            return match scan(rest, looking, self.at_start, cap) {
                Scan::At(p, found) => {
                    self.skipped += p as u64;
                    self.at_start = false;
                    self.commit(found, ts, out);
                    p
                }
                Scan::NeedMore(p) => {
                    self.skipped += p as u64;
                    self.at_start &= p == 0;
                    self.carry.extend_from_slice(&rest[p..]);
                    self.carry_ts.resize(self.carry.len(), ts);
                    rest.len()
                }
                Scan::Nothing => {
                    self.skipped += rest.len() as u64;
                    self.at_start = false;
                    rest.len()
                }
            };
        }
        // Rescan the held-back bytes with enough of the new ones to decide
        // every candidate that starts in them.
        let mut w = std::mem::take(&mut self.carry);
        let mut wts = std::mem::take(&mut self.carry_ts);
        let held = w.len();
        let look = rest.len().min(MAX_PROBE);
        w.extend_from_slice(&rest[..look]);
        let at_start = std::mem::replace(&mut self.at_start, false);
        match scan(&w, looking, at_start, cap) {
            Scan::At(p, found) if p < held => {
                self.skipped += p as u64;
                self.commit(found, wts[p], out);
                // Replay the held bytes, each run with its own timestamp.
                let mut a = p;
                while a < held {
                    let t = wts[a];
                    let b = a + wts[a..held].iter().take_while(|&&x| x == t).count();
                    self.push(&w[a..b], t, out);
                    a = b;
                }
                0
            }
            Scan::At(p, found) => {
                // The boundary is in `rest`, found thanks to the held bytes
                // (a newline just before it).
                self.skipped += p as u64;
                self.commit(found, ts, out);
                p - held
            }
            Scan::NeedMore(p) if p < held && look == rest.len() => {
                // Still undecided with every byte we have: hold on.
                self.skipped += p as u64;
                self.at_start = at_start && p == 0;
                w.drain(..p);
                wts.drain(..p);
                wts.resize(w.len(), ts);
                self.carry = w;
                self.carry_ts = wts;
                rest.len()
            }
            _ => {
                // No candidate starts in the held bytes: they are skipped
                // and `rest` is scanned on its own.
                self.skipped += held as u64;
                0
            }
        }
    }

    /// Adopts a boundary found by content.
    fn commit(&mut self, found: Found, ts: u64, out: &mut Vec<WatchItem>) {
        match found {
            Found::Json => {
                self.mode = Mode::Json;
                self.reset_json();
                self.synced(WireFormat::Json, ts, out);
            }
            Found::JsonCandidate => {
                self.mode = Mode::Json;
                self.reset_json();
                self.j_candidate = true;
            }
            Found::Protobuf => {
                if self.format.is_none() {
                    self.format = Some(WireFormat::Protobuf);
                    self.inferred = true;
                }
                self.mode = Mode::Protobuf;
                self.reset_protobuf();
                self.unconfirmed = 2;
                self.synced(WireFormat::Protobuf, ts, out);
            }
        }
    }

    fn synced(&mut self, format: WireFormat, ts: u64, out: &mut Vec<WatchItem>) {
        let skipped = std::mem::take(&mut self.skipped);
        self.stats.syncs += 1;
        self.stats.skipped_bytes += skipped;
        self.next_resynced = true;
        out.push(WatchItem::Synced {
            format,
            skipped_bytes: skipped,
            ts_ns: ts,
        });
    }

    fn drop_bytes(&mut self, reason: DropReason, bytes: u64, ts: u64, out: &mut Vec<WatchItem>) {
        self.stats.count_drop(reason, bytes);
        out.push(WatchItem::Dropped {
            reason,
            bytes,
            ts_ns: ts,
        });
    }

    fn emit(
        &mut self,
        meta: EventMeta,
        bytes: u64,
        t_first: u64,
        t_last: u64,
        out: &mut Vec<WatchItem>,
    ) {
        self.stats.fields_too_long += u64::from(meta.fields_too_long);
        let resynced = std::mem::take(&mut self.next_resynced);
        match meta.into_event(bytes, t_first, t_last, resynced) {
            Some(ev) => {
                self.stats.events += 1;
                self.stats.event_bytes += bytes;
                out.push(WatchItem::Event(ev));
            }
            None => self.drop_bytes(DropReason::Malformed, bytes, t_last, out),
        }
    }

    /// CBOR items: buffered until whole (an item says its length only
    /// through its structure), then walked for metadata. Seeking, an item
    /// must start with the self-described tag and decode to an event.
    fn cbor(&mut self, data: &[u8], ts: u64, out: &mut Vec<WatchItem>) -> usize {
        if self.cbuf.is_empty() {
            self.c_t_first = ts;
        }
        self.cbuf.extend_from_slice(data);
        loop {
            if self.mode == Mode::CborSeek {
                // Skip to the next self-described tag (keeping a partial
                // one at the end).
                let start = self
                    .cbuf
                    .windows(SELF_DESCRIBED.len())
                    .position(|w| w == SELF_DESCRIBED)
                    .unwrap_or_else(|| self.cbuf.len().saturating_sub(SELF_DESCRIBED.len() - 1));
                if start > 0 {
                    self.skipped += start as u64;
                    self.cbuf.drain(..start);
                    self.c_t_first = ts;
                }
                if self.cbuf.len() < SELF_DESCRIBED.len() {
                    break;
                }
            }
            match cbor::item_len(&self.cbuf) {
                Ok(n) if n as u64 > self.cfg.max_event_bytes => {
                    self.drop_bytes(DropReason::Oversized, n as u64, ts, out);
                    self.cbuf.drain(..n);
                    self.c_t_first = ts;
                    if self.cbuf.is_empty() {
                        break;
                    }
                }
                Ok(n) => {
                    let meta = cbor::event_meta(&self.cbuf[..n]);
                    match (self.mode, meta) {
                        (Mode::CborSeek, Ok(meta)) if meta.event_type.is_some() => {
                            self.mode = Mode::Cbor;
                            self.format = Some(WireFormat::Cbor);
                            self.synced(WireFormat::Cbor, self.c_t_first, out);
                            self.emit(meta, n as u64, self.c_t_first, ts, out);
                        }
                        // A tag inside a value, not an item: look further.
                        (Mode::CborSeek, _) => {
                            self.skipped += 1;
                            self.cbuf.drain(..1);
                            continue;
                        }
                        (_, Ok(meta)) => self.emit(meta, n as u64, self.c_t_first, ts, out),
                        (_, Err(_)) => self.drop_bytes(DropReason::Malformed, n as u64, ts, out),
                    }
                    self.cbuf.drain(..n);
                    self.c_t_first = ts;
                    if self.cbuf.is_empty() {
                        break;
                    }
                }
                Err(CborError::Incomplete)
                    if (self.cbuf.len() as u64) < self.cfg.max_event_bytes =>
                {
                    break;
                }
                Err(e) => {
                    if self.mode == Mode::CborSeek {
                        self.skipped += 1;
                        self.cbuf.drain(..1);
                        continue;
                    }
                    // Not an item, or larger than any event: dropped, and
                    // the next item is sought by its tag.
                    let reason = match e {
                        CborError::Incomplete => DropReason::Oversized,
                        _ => DropReason::Malformed,
                    };
                    let bytes = self.cbuf.len() as u64;
                    self.drop_bytes(reason, bytes, ts, out);
                    self.cbuf.clear();
                    self.mode = Mode::CborSeek;
                    break;
                }
            }
        }
        if self.cbuf.capacity() > KEEP_BUFFER_BYTES && self.cbuf.is_empty() {
            self.cbuf = Vec::new();
        }
        data.len()
    }

    fn json(&mut self, data: &[u8], ts: u64, out: &mut Vec<WatchItem>) -> usize {
        if self.j_seen == 0 {
            self.j_t_first = ts;
        }
        let Some(q) = memchr(b'\n', data) else {
            self.j_seen += data.len() as u64;
            if !self.j_discarding {
                if self.j_seen + 1 > self.cfg.max_event_bytes {
                    self.j_discarding = true;
                    self.jbuf = Vec::new();
                } else {
                    self.jbuf.extend_from_slice(data);
                }
            }
            return data.len();
        };
        let bytes = self.j_seen + q as u64 + 1;
        let t_first = self.j_t_first;
        if self.j_discarding || bytes > self.cfg.max_event_bytes {
            if self.j_candidate {
                self.candidate_failed(bytes, ts, out);
            } else {
                self.drop_bytes(DropReason::Oversized, bytes, ts, out);
            }
        } else if self.jbuf.is_empty() {
            self.json_line(&data[..q], bytes, t_first, ts, out);
        } else {
            let mut line = std::mem::take(&mut self.jbuf);
            line.extend_from_slice(&data[..q]);
            self.json_line(&line, bytes, t_first, ts, out);
            line.clear();
            self.jbuf = line;
        }
        // The line is done (the candidate flag, if any, was settled).
        self.reset_json();
        q + 1
    }

    /// One complete line (without its newline).
    fn json_line(
        &mut self,
        line: &[u8],
        bytes: u64,
        t_first: u64,
        ts: u64,
        out: &mut Vec<WatchItem>,
    ) {
        let parsed = extract(line);
        if self.j_candidate {
            self.j_candidate = false;
            if parsed.is_err() || !is_single_value(line) {
                self.candidate_failed(bytes, ts, out);
                return;
            }
            if self.format.is_none() {
                self.format = Some(WireFormat::Json);
                self.inferred = true;
            }
            self.synced(WireFormat::Json, t_first, out);
        }
        match parsed {
            Ok(meta) => self.emit(meta, bytes, t_first, ts, out),
            Err(_) => {
                self.drop_bytes(DropReason::Malformed, bytes, ts, out);
                if self.inferred {
                    // JSON was a guess from one line; binary content that
                    // happened to hold a JSON event must not lock us in.
                    self.format = None;
                    self.inferred = false;
                    self.mode = Mode::Seek;
                    self.at_start = true;
                }
            }
        }
    }

    /// A guessed JSON boundary was wrong: the line was the tail of an event.
    fn candidate_failed(&mut self, bytes: u64, ts: u64, out: &mut Vec<WatchItem>) {
        self.j_candidate = false;
        self.skipped += bytes;
        if self.format == Some(WireFormat::Json) {
            // With the format known, the byte after this newline is an
            // exact boundary.
            self.synced(WireFormat::Json, ts, out);
        } else {
            // The byte after this newline would be a boundary if the body
            // is JSON: let seeking consider it (it validates what it finds).
            self.mode = Mode::Seek;
            self.at_start = true;
        }
    }

    fn protobuf(&mut self, data: &[u8], ts: u64, out: &mut Vec<WatchItem>) -> usize {
        let mut i = 0;
        if !self.in_body {
            if self.hdr_len == 0 {
                self.p_t_first = ts;
            }
            while self.hdr_len < 4 && i < data.len() {
                self.hdr[self.hdr_len] = data[i];
                self.hdr_len += 1;
                i += 1;
            }
            if self.hdr_len < 4 {
                return i;
            }
            let n = u64::from(u32::from_be_bytes(self.hdr));
            if n + 4 > self.cfg.max_event_bytes {
                self.drop_bytes(DropReason::Oversized, 4, ts, out);
                self.refute();
                self.reset_protobuf();
                self.mode = Mode::Seek;
                self.at_start = false;
                return i;
            }
            self.body_len = n;
            self.walker.start(n);
            self.in_body = true;
        }
        let (used, state) = self.walker.feed(&data[i..]);
        i += used;
        match state {
            Walk::NeedMore => {}
            Walk::Done => {
                let bytes = 4 + self.body_len;
                let t_first = self.p_t_first;
                self.reset_protobuf();
                match self.walker.take_meta() {
                    Some(meta) => {
                        self.unconfirmed = self.unconfirmed.saturating_sub(1);
                        self.emit(meta, bytes, t_first, ts, out);
                    }
                    None => self.malformed_frame(bytes, ts, out),
                }
            }
            Walk::Malformed => {
                let bytes = 4 + self.walker.consumed();
                self.reset_protobuf();
                self.malformed_frame(bytes, ts, out);
            }
        }
        i
    }

    fn malformed_frame(&mut self, bytes: u64, ts: u64, out: &mut Vec<WatchItem>) {
        self.drop_bytes(DropReason::Malformed, bytes, ts, out);
        self.refute();
        // The length may be wrong too: do not trust it, look again from here.
        self.mode = Mode::Seek;
        self.at_start = false;
    }

    /// A failure right after a content sync proves the sync wrong.
    fn refute(&mut self) {
        if self.unconfirmed > 0 {
            self.unconfirmed = 0;
            self.stats.syncs_refuted += 1;
        }
    }
}

/// Convenience for tests and tools: decodes a whole body at once.
#[must_use]
pub fn decode_all(body: &[u8], format: WireFormat, ts_ns: u64) -> Vec<WatchEvent> {
    let mut d = WatchStreamDecoder::from_start(format, DecoderConfig::default());
    let mut out = Vec::new();
    d.push(body, ts_ns, &mut out);
    d.finish(ts_ns, &mut out);
    out.into_iter()
        .filter_map(|i| match i {
            WatchItem::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::event::EventType;

    const A: &[u8] = br#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"n","resourceVersion":"1"}}}"#;
    const B: &[u8] = br#"{"type":"DELETED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"b","namespace":"n","resourceVersion":"2"}}}"#;

    fn lines(parts: &[&[u8]]) -> Vec<u8> {
        parts
            .iter()
            .flat_map(|p| p.iter().chain(b"\n"))
            .copied()
            .collect()
    }

    fn names(out: &[WatchItem]) -> Vec<String> {
        out.iter()
            .filter_map(|i| match i {
                WatchItem::Event(e) => Some(e.name.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn json_events_with_times_and_sizes() {
        let body = lines(&[A, B]);
        let mut d = WatchStreamDecoder::from_start(WireFormat::Json, DecoderConfig::default());
        let mut out = Vec::new();
        // The first event spans two pieces; the second ends in the third.
        d.push(&body[..10], 100, &mut out);
        d.push(&body[10..A.len() + 5], 200, &mut out);
        d.push(&body[A.len() + 5..], 300, &mut out);
        let [WatchItem::Event(a), WatchItem::Event(b)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(a.event_type, EventType::Added);
        assert_eq!(
            (a.bytes, a.t_first_byte, a.t_last_byte),
            (A.len() as u64 + 1, 100, 200)
        );
        assert_eq!(
            (b.bytes, b.t_first_byte, b.t_last_byte),
            (B.len() as u64 + 1, 200, 300)
        );
        assert!(!a.resynced && !b.resynced);
    }

    #[test]
    fn mid_stream_json_skips_the_partial_line() {
        let body = lines(&[A, B]);
        let mut d = WatchStreamDecoder::mid_stream(None, DecoderConfig::default());
        let mut out = Vec::new();
        d.push(&body[7..], 5, &mut out);
        assert_eq!(
            out[0],
            WatchItem::Synced {
                format: WireFormat::Json,
                skipped_bytes: A.len() as u64 + 1 - 7,
                ts_ns: 5
            }
        );
        assert_eq!(names(&out), ["b"]);
        assert_eq!(d.format(), Some(WireFormat::Json));
    }

    #[test]
    fn json_candidate_at_the_first_byte_must_be_a_whole_event() {
        // Joined exactly at an event: it is kept.
        let body = lines(&[A, B]);
        let mut d =
            WatchStreamDecoder::mid_stream(Some(WireFormat::Json), DecoderConfig::default());
        let mut out = Vec::new();
        d.push(&body, 1, &mut out);
        assert_eq!(names(&out), ["a", "b"]);
        // Joined at a nested object that starts like an event: skipped.
        let trap: &[u8] = br#"{"type":"Ready","status":"True"}]}}}"#;
        let body = lines(&[trap, B]);
        let mut d =
            WatchStreamDecoder::mid_stream(Some(WireFormat::Json), DecoderConfig::default());
        let mut out = Vec::new();
        for c in body.chunks(3) {
            d.push(c, 1, &mut out);
        }
        assert_eq!(names(&out), ["b"]);
        assert_eq!(d.stats().skipped_bytes, trap.len() as u64 + 1);
        assert_eq!(d.stats().malformed_events, 0);
    }

    #[test]
    fn json_gap_drops_the_cut_event() {
        let body = lines(&[A, B, A]);
        let mut d = WatchStreamDecoder::from_start(WireFormat::Json, DecoderConfig::default());
        let mut out = Vec::new();
        let cut = A.len() + 1 + 20;
        d.push(&body[..cut], 1, &mut out);
        d.gap(30, 2, &mut out);
        d.push(&body[cut + 30..], 3, &mut out);
        assert_eq!(names(&out), ["a", "a"]);
        assert!(out.contains(&WatchItem::Dropped {
            reason: DropReason::CutByGap,
            bytes: 20,
            ts_ns: 2
        }));
        assert_eq!(d.stats().gap_bytes, 30);
    }

    /// WatchEvent{type "ADDED", object{raw "k8s\0" Unknown{typeMeta{"v1",
    /// "Pod"}, raw Pod{metadata{name "p", rv "5"}}}}} with its length.
    const FRAME: &[u8] = &[
        0, 0, 0, 36, // length
        0x0A, 5, b'A', b'D', b'D', b'E', b'D', // type
        0x12, 27, 0x0A, 25, b'k', b'8', b's', 0, // object, raw, magic
        0x0A, 9, 0x0A, 2, b'v', b'1', 0x12, 3, b'P', b'o', b'd', // typeMeta
        0x12, 8, 0x0A, 6, 0x0A, 1, b'p', 0x32, 1, b'5', // raw: metadata
    ];

    #[test]
    fn protobuf_byte_literal_frames() {
        assert_eq!(FRAME.len(), 40);
        let body = [FRAME, FRAME].concat();
        for split in 1..body.len() {
            let mut d =
                WatchStreamDecoder::from_start(WireFormat::Protobuf, DecoderConfig::default());
            let mut out = Vec::new();
            for (i, c) in body.chunks(split).enumerate() {
                d.push(c, i as u64, &mut out);
            }
            assert_eq!(names(&out), ["p", "p"], "split {split}");
            let WatchItem::Event(e) = &out[0] else {
                panic!()
            };
            assert_eq!(
                (e.bytes, e.resource_version.as_str(), e.object_kind.as_str()),
                (40, "5", "Pod")
            );
            assert_eq!(e.t_first_byte, 0);
            assert_eq!(e.t_last_byte, (39 / split) as u64);
        }
    }

    #[test]
    fn protobuf_mid_stream_finds_the_next_frame() {
        let body = [FRAME, FRAME].concat();
        for k in 1..=40 {
            let mut d = WatchStreamDecoder::mid_stream(None, DecoderConfig::default());
            let mut out = Vec::new();
            d.push(&body[k..], 1, &mut out);
            assert_eq!(
                out[0],
                WatchItem::Synced {
                    format: WireFormat::Protobuf,
                    skipped_bytes: 40 - k as u64,
                    ts_ns: 1
                },
                "k {k}"
            );
            assert_eq!(names(&out), ["p"]);
        }
    }

    #[test]
    fn oversized_protobuf_length_is_not_trusted() {
        let mut body = vec![0x7F, 0xFF, 0xFF, 0xFF];
        body.extend_from_slice(FRAME);
        let mut d = WatchStreamDecoder::from_start(WireFormat::Protobuf, DecoderConfig::default());
        let mut out = Vec::new();
        d.push(&body, 1, &mut out);
        assert_eq!(
            out[0],
            WatchItem::Dropped {
                reason: DropReason::Oversized,
                bytes: 4,
                ts_ns: 1
            }
        );
        assert_eq!(names(&out), ["p"]);
    }

    #[test]
    fn a_cbor_stream_joined_mid_way_without_its_headers_is_found_to_be_cbor() {
        use crate::watch::fixture::{ObjectSpec, encode_cbor_item};
        let items: Vec<Vec<u8>> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| encode_cbor_item(&ObjectSpec::pod("ADDED", "ns", n, &i.to_string())))
            .collect();
        let body = items.concat();
        let first = items[0].len();
        for k in 1..first {
            // Splits that do not cut the second item's opening (one that
            // does is missed: the third item's is found, below).
            let opening = first - k..first - k + 11;
            for split in [0, 5, first - k + 12, body.len() - k - 1] {
                if opening.contains(&split) && split != opening.start {
                    continue;
                }
                let mut d = WatchStreamDecoder::mid_stream(None, DecoderConfig::default());
                let mut out = Vec::new();
                let (x, y) = body[k..].split_at(split.min(body.len() - k));
                d.push(x, 1, &mut out);
                d.push(y, 2, &mut out);
                let synced: Vec<_> = out
                    .iter()
                    .filter_map(|i| match i {
                        WatchItem::Synced {
                            format,
                            skipped_bytes,
                            ..
                        } => Some((*format, *skipped_bytes)),
                        _ => None,
                    })
                    .collect();
                assert_eq!(
                    synced,
                    [(WireFormat::Cbor, (first - k) as u64)],
                    "k {k} split {split}"
                );
                assert_eq!(names(&out), ["b", "c"], "k {k} split {split}");
                assert_eq!(d.format(), Some(WireFormat::Cbor));
            }
        }
        let mut d = WatchStreamDecoder::mid_stream(None, DecoderConfig::default());
        let mut out = Vec::new();
        let (x, y) = body[1..].split_at(first + 1);
        d.push(x, 1, &mut out);
        d.push(y, 2, &mut out);
        assert_eq!(names(&out), ["c"], "an opening cut in two is missed");
    }

    #[test]
    fn finish_counts_held_back_bytes() {
        let mut d = WatchStreamDecoder::mid_stream(None, DecoderConfig::default());
        let mut out = Vec::new();
        d.push(b"xyz", 1, &mut out);
        d.finish(2, &mut out);
        assert!(out.is_empty());
        assert_eq!(d.stats().skipped_bytes, 3);
    }
}

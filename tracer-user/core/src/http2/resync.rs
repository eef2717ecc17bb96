//! Finding a frame boundary in bytes that start at an unknown position: after
//! joining a connection mid-way (the normal case for this tool), after a gap
//! of unknown structure, and after a framing error.
//!
//! # Evidence
//!
//! A candidate position is accepted when the frames it implies chain:
//! the header there, and the header right after its payload, and so on, all
//! pass the strict checks of [`frame::check`] (known type, only defined
//! flags, reserved bit clear, length and stream-id rules, length within the
//! frame size limit) plus cheap payload checks for small control frames
//! (setting ids and values, WINDOW_UPDATE increment, padding length,
//! CONTINUATION only after an open header block on the same stream), plus
//! two rules that real peers keep and random bytes do not: no even stream
//! ids (server push, disabled by real clients) and a fresh candidate does
//! not start with an empty frame. Each valid header scores [`ORDINARY`] if
//! its length is within the known `SETTINGS_MAX_FRAME_SIZE` (or 16384 when
//! that is unknown) and its stream id below 2^24, and only [`LARGE`]
//! otherwise (plausible, but what random bytes mostly give). A
//! candidate is accepted at [`ACCEPT_SCORE`] (three ordinary headers), or at
//! [`EXACT_END_SCORE`] if the chain ends exactly where the bytes available
//! end at a chunk boundary (writers often hand whole frames to one write
//! call, and a random 24-bit length is unlikely to match exactly).
//!
//! Two overlapping chains cannot both be right. An exact-end acceptance
//! waits if an overlapping candidate has as much evidence; and when a
//! chain is accepted, a competing chain starting inside its first frames
//! that joins it later (a bogus header made of one payload's tail and the
//! next header's first bytes can end exactly on a real boundary) makes
//! decoding start at the join, unless ours has more non-empty frames before
//! it: never a phantom frame, at worst a few real frames reported skipped.
//!
//! # Bounds
//!
//! The scanner holds at most `cap` bytes. When frames are larger than that,
//! the next header of a promising chain lies beyond the buffer; the scanner
//! then keeps a *checkpoint* (where that header must be, and the evidence so
//! far) and discards bytes. When the stream reaches a checkpoint the chain
//! continues from there, so even a stream of frames larger than the buffer
//! synchronises, after a few frames. Discarded bytes are counted as skipped.

use super::frame::{
    self, DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_LEN, FrameHeader, FrameType, MAX_FRAME_SIZE_LIMIT,
    PrioritySpec, Strictness, be_u32, flags, setting, setting_value_ok, settings_params,
};

/// Score of a valid header whose length is ordinary.
pub(crate) const ORDINARY: u32 = 2;
/// Score of a valid header only plausible with a raised frame size limit.
pub(crate) const LARGE: u32 = 1;
/// Score at which a chain is accepted.
pub(crate) const ACCEPT_SCORE: u32 = 3 * ORDINARY;
/// Score at which a chain ending exactly at a chunk boundary is accepted.
pub(crate) const EXACT_END_SCORE: u32 = ORDINARY;
/// Stream ids below this are ordinary evidence; higher ones exist on busy
/// long-lived connections (ids grow by 2 per request) but are what a bogus
/// header's random bytes mostly give.
const ORDINARY_STREAM_IDS: u32 = 1 << 24;
/// Largest scan buffer allocation kept after a resync.
const RETAINED: usize = 4096;
/// Checkpoints kept at once.
const MAX_CHECKPOINTS: usize = 32;

/// Header-block state at a point of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// First header of a fresh candidate: a CONTINUATION is allowed (the
    /// block's start was lost).
    Unknown,
    /// No block open: CONTINUATION is not allowed.
    Closed,
    /// A block is open on this stream: only its CONTINUATION is allowed.
    Open(u32),
}

/// Outcome of following a chain from one position.
#[derive(Debug, PartialEq, Eq)]
enum Chain {
    Invalid,
    Accept,
    /// Accepted on the weaker exact-end evidence, with this score and the
    /// header-block state after its last frame (to follow it further if
    /// the evidence is not enough yet).
    AcceptAtEnd {
        score: u32,
        block: Block,
    },
    /// Valid so far; the next header (or the payload a check needs) starts
    /// at `next`, which may lie beyond the buffer.
    Incomplete {
        score: u32,
        next: usize,
        block: Block,
    },
}

/// Frame size limits for the direction being scanned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The acknowledged `SETTINGS_MAX_FRAME_SIZE` for frames in this
    /// direction, if known.
    pub(crate) max_frame_size: Option<u32>,
}

impl Limits {
    fn max_len(self) -> u32 {
        self.max_frame_size.unwrap_or(MAX_FRAME_SIZE_LIMIT)
    }

    fn ordinary_len(self) -> u32 {
        self.max_frame_size.unwrap_or(DEFAULT_MAX_FRAME_SIZE)
    }
}

/// One step of a chain: the header at `pos` judged in context.
enum Link {
    /// Valid; the chain continues at `next` with this block state.
    Valid {
        h: FrameHeader,
        next: usize,
        block: Block,
    },
    Invalid,
    /// The header or the payload bytes a check needs are not there yet.
    NeedMore,
}

/// Judges the header at `pos`. `fresh`: it would start a new candidate.
fn link(buf: &[u8], pos: usize, block: Block, fresh: bool, limits: Limits) -> Link {
    let Some(h) = buf.get(pos..).and_then(FrameHeader::parse_prefix) else {
        return Link::NeedMore;
    };
    let Some(kind) = h.kind() else {
        return Link::Invalid;
    };
    if frame::check(&h, kind, limits.max_len(), Strictness::Strict).is_err() {
        return Link::Invalid;
    }
    // Valid, but pointless, so senders do not emit it; while five zero
    // bytes are common in binary payloads.
    if kind == FrameType::Data && h.len == 0 && !h.has(flags::END_STREAM) {
        return Link::Invalid;
    }
    // A fresh candidate must not start with an empty frame: nine bytes of a
    // payload's tail that happen to form a valid empty header just before a
    // real boundary would otherwise join the real chain and become a
    // phantom frame. Skipping a real empty frame instead only costs its
    // nine bytes, reported as skipped.
    if fresh && h.len == 0 {
        return Link::Invalid;
    }
    // Even stream ids are server-pushed streams, which real peers do not
    // use (Go and browser clients disable push), while bogus headers hit
    // them half the time.
    if h.stream != 0 && h.stream.is_multiple_of(2) {
        return Link::Invalid;
    }
    let sequencing_ok = match (block, kind) {
        (Block::Open(s), FrameType::Continuation) => h.stream == s,
        (Block::Open(_), _) | (Block::Closed, FrameType::Continuation) => false,
        (Block::Unknown | Block::Closed, _) => true,
    };
    if !sequencing_ok {
        return Link::Invalid;
    }
    let payload_start = pos + FRAME_HEADER_LEN;
    match payload_plausible(&h, kind, buf.get(payload_start..).unwrap_or(&[])) {
        Some(true) => {}
        Some(false) => return Link::Invalid,
        None => return Link::NeedMore,
    }
    let block = match kind {
        FrameType::Headers | FrameType::PushPromise | FrameType::Continuation
            if !h.has(flags::END_HEADERS) =>
        {
            Block::Open(h.stream)
        }
        _ => Block::Closed,
    };
    Link::Valid {
        h,
        next: payload_start + h.len as usize,
        block,
    }
}

/// Follows the chain of frames from `start`.
fn chain(
    buf: &[u8],
    start: usize,
    mut score: u32,
    mut block: Block,
    at_chunk_end: bool,
    limits: Limits,
) -> Chain {
    let mut pos = start;
    loop {
        let fresh = pos == start && score == 0;
        let (h, end) = match link(buf, pos, block, fresh, limits) {
            Link::Invalid => return Chain::Invalid,
            Link::NeedMore => {
                return Chain::Incomplete {
                    score,
                    next: pos,
                    block,
                };
            }
            Link::Valid { h, next, block: b } => {
                block = b;
                (h, next)
            }
        };
        score += if h.len <= limits.ordinary_len() && h.stream < ORDINARY_STREAM_IDS {
            ORDINARY
        } else {
            LARGE
        };
        if score >= ACCEPT_SCORE {
            return Chain::Accept;
        }
        if end == buf.len() && at_chunk_end && score >= EXACT_END_SCORE {
            return Chain::AcceptAtEnd { score, block };
        }
        if end >= buf.len() {
            return Chain::Incomplete {
                score,
                next: end,
                block,
            };
        }
        pos = end;
    }
}

/// Header positions of the chain from `start`, while valid and below
/// `until`.
fn walk(buf: &[u8], start: usize, until: usize, limits: Limits) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = start;
    let mut block = Block::Unknown;
    while pos < until {
        match link(buf, pos, block, pos == start, limits) {
            Link::Valid { next, block: b, .. } => {
                out.push(pos);
                block = b;
                pos = next;
            }
            Link::Invalid | Link::NeedMore => break,
        }
    }
    out
}

/// How many leading frames of an accepted chain [`converge`] questions.
const QUESTIONED_FRAMES: usize = 3;

/// An accepted chain starting at `start`: if another candidate inside its
/// first frames also forms a chain that joins it, the two disagree about
/// where frames begin before the join, and either choice could invent a
/// frame (a bogus header made of a payload's tail and the next real
/// header's first bytes can end exactly on a later real boundary). Start
/// where they agree instead; the bytes before are reported skipped. Later
/// frames are not questioned: the chain's own earlier frames vouch for
/// them.
fn converge(buf: &[u8], start: usize, limits: Limits) -> usize {
    let ours = walk(buf, start, buf.len(), limits);
    let Some(&last) = ours.last() else {
        return start;
    };
    let questioned_end = ours.get(QUESTIONED_FRAMES).copied().unwrap_or(last);
    let mut agreed = start;
    for q in start + 1..questioned_end {
        if ours.binary_search(&q).is_ok() {
            continue;
        }
        let theirs = walk(buf, q, last + 1, limits);
        let Some(&join) = theirs.iter().find(|p| ours.binary_search(p).is_ok()) else {
            continue;
        };
        // Each chain's evidence before the join: its non-empty frames (an
        // empty frame is nine bytes, cheap to fake from a payload's zeros).
        // A bogus chain of several frames each landing exactly on the next
        // is much rarer than one of a single frame, so more evidence wins;
        // on a tie neither is trusted before the join.
        let evidence = |chain: &[usize]| {
            chain
                .iter()
                .take_while(|&&p| p < join)
                .filter(|&&p| buf[p..p + 3] != [0, 0, 0])
                .count()
        };
        if evidence(&ours) <= evidence(&theirs) {
            agreed = agreed.max(join);
        }
    }
    agreed
}

/// Cheap payload checks: `Some(valid)`, or `None` if the bytes needed are
/// not there yet. Only looks at small, fixed parts of the payload.
fn payload_plausible(h: &FrameHeader, kind: FrameType, avail: &[u8]) -> Option<bool> {
    let need = |n: usize| (avail.len() >= n).then_some(());
    if h.has(flags::PADDED)
        && matches!(
            kind,
            FrameType::Data | FrameType::Headers | FrameType::PushPromise
        )
    {
        need(1)?;
        if frame::check_padding(h, avail[0]).is_err() {
            return Some(false);
        }
    }
    Some(match kind {
        FrameType::Settings => {
            need(h.len as usize)?;
            settings_params(&avail[..h.len as usize]).all(|(id, value)| {
                matches!(
                    id,
                    setting::HEADER_TABLE_SIZE
                        ..=setting::MAX_HEADER_LIST_SIZE
                            | setting::ENABLE_CONNECT_PROTOCOL
                            | setting::NO_RFC7540_PRIORITIES
                ) && setting_value_ok(id, value)
            })
        }
        FrameType::WindowUpdate => {
            need(4)?;
            let inc = be_u32(avail, 0);
            inc & 0x8000_0000 == 0 && inc != 0
        }
        FrameType::GoAway => {
            need(4)?;
            avail[0] & 0x80 == 0
        }
        FrameType::Priority => {
            need(5)?;
            let spec = PrioritySpec::parse(avail[..5].try_into().ok()?);
            spec.depends_on != h.stream
        }
        FrameType::Headers if h.has(flags::PRIORITY) => {
            let at = usize::from(h.has(flags::PADDED));
            need(at + 5)?;
            let spec = PrioritySpec::parse(avail[at..at + 5].try_into().ok()?);
            spec.depends_on != h.stream
        }
        FrameType::PushPromise => {
            let at = usize::from(h.has(flags::PADDED));
            need(at + 4)?;
            let promised = be_u32(avail, at);
            promised & 0x8000_0000 == 0 && promised != 0
        }
        _ => true,
    })
}

/// Where a chain must continue, beyond the bytes already scanned.
#[derive(Clone, Copy, Debug)]
struct Checkpoint {
    /// Offset (since the resync began) of the chain's first header, while
    /// it is still buffered: accepting the chain then starts there.
    origin: Option<u64>,
    /// Offset of the next header.
    at: u64,
    score: u32,
    block: Block,
}

/// Result of [`Resync::step`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A boundary at `buf[at]`; `skipped` bytes (since the resync began,
    /// including the seed's) precede it.
    Found { at: usize, skipped: u64 },
    /// Not yet; feed more bytes.
    NeedMore,
}

/// The bytes buffered when a boundary was found, with the time of the
/// chunk each came in: decoding them later must give each frame the time
/// its bytes arrived, not the time the boundary was confirmed.
#[derive(Debug, Default)]
pub(crate) struct Buffered {
    pub(crate) bytes: Vec<u8>,
    /// `(index, ts)`: `bytes[index..]` up to the next entry came at `ts`;
    /// ascending, the first at index 0.
    times: Vec<(usize, u64)>,
}

impl Buffered {
    /// `bytes[from..]` as runs of bytes that came in one chunk, each with
    /// its time.
    pub(crate) fn pieces(&self, from: usize) -> impl Iterator<Item = (&[u8], u64)> + '_ {
        let ends = self
            .times
            .iter()
            .skip(1)
            .map(|&(i, _)| i)
            .chain(std::iter::once(self.bytes.len()));
        self.times
            .iter()
            .zip(ends)
            .filter(move |&(_, end)| end > from)
            .map(move |(&(start, ts), end)| (&self.bytes[start.max(from)..end], ts))
    }
}

/// Resync state for one direction.
#[derive(Debug)]
pub(crate) struct Resync {
    buf: Vec<u8>,
    /// `(offset since the resync began, ts)` of each chunk whose bytes are
    /// buffered: the chunk's bytes start there. Ascending; at most one
    /// entry per buffered byte, so bounded by the buffer's cap.
    times: Vec<(u64, u64)>,
    /// Offset of `buf[0]` since the resync began.
    base: u64,
    /// Bytes skipped before the resync's first buffered byte.
    pre_skipped: u64,
    /// Candidates before this index have been rejected (or handed to a
    /// checkpoint).
    scan_from: usize,
    checkpoints: Vec<Checkpoint>,
    cap: usize,
}

impl Resync {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            times: Vec::new(),
            base: 0,
            pre_skipped: 0,
            scan_from: 0,
            checkpoints: Vec::new(),
            // Room for a few headers at least.
            cap: cap.max(4 * FRAME_HEADER_LEN),
        }
    }

    /// Begins a resync with `seed` (bytes already seen that must be
    /// rescanned, of the chunk at `ts`) after `pre_skipped` discarded bytes.
    pub(crate) fn start(&mut self, seed: &[u8], pre_skipped: u64, ts: u64) {
        self.buf.clear();
        self.times.clear();
        self.base = 0;
        self.extend(seed, ts);
        self.pre_skipped = pre_skipped;
        self.scan_from = 0;
        self.checkpoints.clear();
    }

    /// Bytes that can be added before the buffer is full.
    pub(crate) fn room(&self) -> usize {
        self.cap.saturating_sub(self.buf.len())
    }

    /// Appends bytes of the chunk at `ts` (callers respect
    /// [`Resync::room`], except when re-seeding with bytes that were already
    /// buffered).
    pub(crate) fn extend(&mut self, data: &[u8], ts: u64) {
        if data.is_empty() {
            return;
        }
        if self.times.last().is_none_or(|&(_, t)| t != ts) {
            self.times.push((self.base + self.buf.len() as u64, ts));
        }
        self.buf.extend_from_slice(data);
    }

    /// The time of the oldest buffered byte's chunk, if any is buffered.
    pub(crate) fn oldest_ts(&self) -> Option<u64> {
        self.times.first().map(|&(_, ts)| ts)
    }

    /// Bytes seen since the resync began (buffered or discarded).
    pub(crate) fn seen(&self) -> u64 {
        self.pre_skipped + self.base + self.buf.len() as u64
    }

    /// Takes the buffer after [`Step::Found`] (the caller decodes from the
    /// boundary on and gives the allocation back with [`Resync::recycle`]).
    pub(crate) fn take_buffer(&mut self) -> Buffered {
        let base = self.base;
        let times = self
            .times
            .drain(..)
            // Within the buffer (discard keeps the entry of its first byte).
            .map(|(at, ts)| ((at.max(base) - base) as usize, ts))
            .collect();
        Buffered {
            bytes: std::mem::take(&mut self.buf),
            times,
        }
    }

    /// Returns a buffer's allocation for reuse, unless it grew large: after
    /// attaching, every connection resyncs once, and keeping each one's scan
    /// buffer would cost far more than the rare later resync saves.
    pub(crate) fn recycle(&mut self, buffered: Buffered) {
        let mut buf = buffered.bytes;
        if self.buf.capacity() == 0 && buf.capacity() <= RETAINED {
            buf.clear();
            self.buf = buf;
        }
    }

    /// Looks for a boundary in the buffered bytes. `at_chunk_end`: the
    /// buffer ends where a chunk of input ended.
    pub(crate) fn step(&mut self, at_chunk_end: bool, limits: Limits) -> Step {
        if let Some(at) = self.follow_checkpoints(at_chunk_end, limits) {
            return self.found(at, limits);
        }
        let len = self.buf.len();
        let force = len >= self.cap;
        let mut p = self.scan_from;
        while p < len {
            match chain(&self.buf, p, 0, Block::Unknown, at_chunk_end, limits) {
                Chain::Invalid => {}
                Chain::Accept => return self.found(p, limits),
                Chain::AcceptAtEnd { score, block } => {
                    if self.unrivalled(p, score, None, limits) {
                        return self.found(p, limits);
                    }
                    // Rivalled: keep following it. Dropping it here would
                    // lose the real chain for good when every chunk is one
                    // whole frame with a rival inside (an etcd watch
                    // stream: one WatchResponse per read, protobuf
                    // payloads full of plausible headers).
                    self.add_checkpoint(Checkpoint {
                        origin: Some(self.base + p as u64),
                        at: self.base + len as u64,
                        score,
                        block,
                    });
                }
                Chain::Incomplete { score, next, block } => {
                    if p + FRAME_HEADER_LEN > len {
                        // A header cut by the end of the bytes: this and
                        // every later candidate need more bytes.
                        break;
                    }
                    // Valid as far as the bytes go (possibly only up to a
                    // payload check): follow it from there as more bytes
                    // arrive, and keep scanning meanwhile so that one
                    // candidate cannot stall the others.
                    self.add_checkpoint(Checkpoint {
                        origin: Some(self.base + p as u64),
                        at: self.base + next as u64,
                        score,
                        block,
                    });
                }
            }
            p += 1;
        }
        self.scan_from = p;
        self.discard(force);
        Step::NeedMore
    }

    /// Continues chains whose next header is now buffered.
    fn follow_checkpoints(&mut self, at_chunk_end: bool, limits: Limits) -> Option<usize> {
        let end = self.base + self.buf.len() as u64;
        let mut i = 0;
        while i < self.checkpoints.len() {
            let c = self.checkpoints[i];
            if c.at < self.base {
                self.checkpoints.swap_remove(i);
                continue;
            }
            let start = match c.origin {
                Some(o) if o >= self.base => (o - self.base) as usize,
                _ => usize::try_from(c.at - self.base.min(c.at)).unwrap_or(usize::MAX),
            };
            if c.at == end
                && at_chunk_end
                && c.score >= EXACT_END_SCORE
                && self.unrivalled(start.min(self.buf.len()), c.score, Some(i), limits)
            {
                // The chain's last frame ended exactly where a chunk did.
                return Some(start.min(self.buf.len()));
            }
            if c.at >= end {
                i += 1;
                continue;
            }
            // Within the buffer, so the difference fits.
            let idx = (c.at - self.base) as usize;
            let start = match c.origin {
                Some(o) if o >= self.base => (o - self.base) as usize,
                _ => idx,
            };
            match chain(&self.buf, idx, c.score, c.block, at_chunk_end, limits) {
                Chain::Accept => return Some(start),
                Chain::AcceptAtEnd { score, .. }
                    if self.unrivalled(start, score, Some(i), limits) =>
                {
                    return Some(start);
                }
                Chain::AcceptAtEnd { score, block } => {
                    self.checkpoints[i] = Checkpoint {
                        at: end,
                        score,
                        block,
                        ..c
                    };
                }
                Chain::Invalid => {
                    self.checkpoints.swap_remove(i);
                    continue;
                }
                Chain::Incomplete { score, next, block } => {
                    self.checkpoints[i] = Checkpoint {
                        at: self.base + next as u64,
                        score,
                        block,
                        ..c
                    };
                }
            }
            i += 1;
        }
        None
    }

    /// Whether a chain from `start` accepted on the weaker exact-end
    /// evidence (`score`) has no rival: no other pending chain that started
    /// earlier and covers `start` with as much evidence, and no candidate
    /// inside its frames with as much (real frames swallowed by a bogus
    /// header whose length happens to reach the end). One of two
    /// overlapping chains is wrong; without a clear winner, wait.
    /// `own`: the checkpoint being accepted, if any.
    fn unrivalled(&self, start: usize, score: u32, own: Option<usize>, limits: Limits) -> bool {
        let here = self.base + start as u64;
        let earlier = self.checkpoints.iter().enumerate().any(|(i, c)| {
            Some(i) != own && c.origin.is_some_and(|o| o < here) && here < c.at && c.score >= score
        });
        if earlier {
            return false;
        }
        // (Our own later headers never qualify: their chains lack our
        // first header's evidence.)
        !(start + 1..self.buf.len()).any(|q| {
            match chain(&self.buf, q, 0, Block::Unknown, false, limits) {
                Chain::Invalid => false,
                Chain::Accept | Chain::AcceptAtEnd { .. } => true,
                Chain::Incomplete { score: s, .. } => s >= score,
            }
        })
    }

    fn add_checkpoint(&mut self, c: Checkpoint) {
        if self.checkpoints.iter().any(|k| k.at == c.at) {
            return;
        }
        if self.checkpoints.len() >= MAX_CHECKPOINTS {
            // Keep the most promising chains: more evidence, then nearer
            // (bogus headers tend to claim huge lengths).
            let rank = |k: &Checkpoint| (k.score, std::cmp::Reverse(k.at));
            let Some((weakest, w)) = self
                .checkpoints
                .iter()
                .enumerate()
                .min_by_key(|(_, k)| rank(k))
            else {
                return;
            };
            if rank(w) >= rank(&c) {
                return;
            }
            self.checkpoints.swap_remove(weakest);
        }
        self.checkpoints.push(c);
    }

    /// Drops bytes no candidate or checkpoint needs.
    fn discard(&mut self, force: bool) {
        let len = self.buf.len();
        let idx = |off: u64| {
            off.checked_sub(self.base)
                .map(|i| usize::try_from(i).unwrap_or(usize::MAX))
        };
        let mut keep_from = self.scan_from;
        for c in &self.checkpoints {
            if let Some(i) = idx(c.at) {
                keep_from = keep_from.min(i);
            }
            if !force && let Some(i) = c.origin.and_then(idx) {
                keep_from = keep_from.min(i);
            }
        }
        if force && len - keep_from.min(len) >= self.cap {
            // A checkpoint pins a full buffer: progress matters more.
            let end = self.base + len as u64;
            self.checkpoints.retain(|c| c.at >= end);
            keep_from = self.scan_from;
        }
        let keep_from = keep_from.min(len);
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.base += keep_from as u64;
            // Keep the entry of the first byte left and those after it.
            let first = self.times.partition_point(|&(at, _)| at <= self.base);
            self.times.drain(..first.saturating_sub(1));
            self.scan_from -= keep_from;
            let base = self.base;
            for c in &mut self.checkpoints {
                c.origin = c.origin.filter(|&o| o >= base);
            }
        }
    }

    fn found(&mut self, at: usize, limits: Limits) -> Step {
        let at = converge(&self.buf, at, limits);
        Step::Found {
            at,
            skipped: self.pre_skipped + self.base + at as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNKNOWN: Limits = Limits {
        max_frame_size: None,
    };

    fn frame(len: u32, ty: u8, fl: u8, sid: u32, fill: u8) -> Vec<u8> {
        let mut v = FrameHeader {
            len,
            frame_type: ty,
            flags: fl,
            stream: sid,
            reserved: false,
        }
        .encode()
        .to_vec();
        v.resize(FRAME_HEADER_LEN + len as usize, fill);
        v
    }

    fn data(len: u32, sid: u32) -> Vec<u8> {
        frame(len, 0, 0, sid, 0xaa)
    }

    fn run(r: &mut Resync, bytes: &[u8], chunk: usize) -> Option<(u64, u64)> {
        // Returns (stream offset of the boundary, skipped).
        let mut fed = 0u64;
        for c in bytes.chunks(chunk) {
            let mut c = c;
            while !c.is_empty() {
                let n = r.room().min(c.len());
                r.extend(&c[..n], 0);
                fed += n as u64;
                c = &c[n..];
                if let Step::Found { skipped, .. } = r.step(c.is_empty(), UNKNOWN) {
                    return Some((skipped, fed));
                }
            }
        }
        None
    }

    // Invariant: three chained valid headers are enough, and the boundary
    // found is the first real one after the cut.
    #[test]
    fn finds_boundary_after_partial_frame() {
        let mut s = data(100, 1);
        s.extend(data(50, 3));
        s.extend(data(60, 1));
        s.extend(data(70, 3));
        s.extend(data(10, 1));
        let cut = 37;
        let mut r = Resync::new(65536);
        r.start(&[], 0, 0);
        let (skipped, _) = run(&mut r, &s[cut..], 7).unwrap();
        assert_eq!(skipped as usize, 109 - cut);
    }

    // Invariant: the bytes handed back keep the time of the chunk each came
    // in, also after the buffer discarded its oldest bytes.
    #[test]
    fn buffered_bytes_keep_their_chunk_times() {
        let mut s = vec![0x55; 37];
        for sid in [1, 3, 1, 3, 1] {
            s.extend(data(20, sid));
        }
        let mut r = Resync::new(40);
        r.start(&[], 0, 0);
        let chunk = 7;
        for (i, c) in s.chunks(chunk).enumerate() {
            r.extend(c, i as u64);
            if let Step::Found { at, skipped } = r.step(true, UNKNOWN) {
                let buffered = r.take_buffer();
                let base = skipped as usize - at;
                assert!(base > 0, "the oldest bytes were discarded");
                let mut idx = at;
                let mut pieces = 0;
                for (piece, ts) in buffered.pieces(at) {
                    for k in 0..piece.len() {
                        assert_eq!(
                            (base + idx + k) / chunk,
                            ts as usize,
                            "byte {}",
                            base + idx + k
                        );
                    }
                    idx += piece.len();
                    pieces += 1;
                }
                assert_eq!(idx, buffered.bytes.len());
                assert!(pieces > 1, "the boundary's bytes span chunks");
                return;
            }
        }
        panic!("no boundary found");
    }

    // Invariant: with one ordinary frame ending exactly at a chunk end, the
    // boundary is accepted without waiting for more frames.
    #[test]
    fn exact_end_of_chunk_is_evidence() {
        let mut s = vec![0x55; 20];
        s.extend(data(30, 5));
        let mut r = Resync::new(65536);
        r.start(&[], 0, 0);
        r.extend(&s, 0);
        assert_eq!(
            r.step(true, UNKNOWN),
            Step::Found {
                at: 20,
                skipped: 20
            }
        );
        // The same bytes not at a chunk end: not enough.
        let mut r = Resync::new(65536);
        r.start(&[], 0, 0);
        r.extend(&s, 0);
        assert_eq!(r.step(false, UNKNOWN), Step::NeedMore);
    }

    // Invariant: a chunk-sized frame whose exact end is rivalled (a
    // plausible long header inside its payload) stays a candidate, so the
    // next chunk-sized frame confirms it. Seen on a real etcd watch stream
    // (one WatchResponse per read): before, each such frame was dropped as
    // a candidate and the connection never synchronised.
    #[test]
    fn rivalled_exact_end_is_confirmed_by_the_next_chunk() {
        let with_rival = |sid| {
            let mut f = data(200, sid);
            // DATA, 16384 bytes, stream 1: ordinary, and incomplete to the
            // end of any chunk.
            f[40..49].copy_from_slice(&[0, 0x40, 0, 0, 0, 0, 0, 0, 1]);
            f
        };
        let frames = [with_rival(11), with_rival(11), with_rival(11)];
        let mut r = Resync::new(65536);
        r.start(&[], 0, 0);
        r.extend(&frames[0], 0);
        assert_eq!(r.step(true, UNKNOWN), Step::NeedMore, "rivalled at first");
        r.extend(&frames[1], 0);
        assert_eq!(
            r.step(true, UNKNOWN),
            Step::Found { at: 0, skipped: 0 },
            "two chunk-sized frames in a row"
        );
    }

    // Invariant: undefined flags, reserved bit, unknown types, bad stream ids
    // and a CONTINUATION that does not follow its block are not boundaries.
    #[test]
    fn implausible_headers_are_rejected() {
        let bad = [
            frame(4, 0, 0x40, 1, 0), // undefined flag on DATA
            frame(4, 0xa, 0, 1, 0),  // extension type
            frame(8, 6, 0, 1, 0),    // PING on a stream
            frame(4, 8, 0, 0, 0),    // WINDOW_UPDATE increment 0
            frame(7, 4, 0, 0, 0),    // SETTINGS not a multiple of 6
            frame(4, 3, 0, 0, 0),    // RST_STREAM on stream 0
        ];
        for b in bad {
            let mut s = b.clone();
            s.extend(data(1, 1));
            assert_eq!(
                chain(&s, 0, 0, Block::Unknown, true, UNKNOWN),
                Chain::Invalid,
                "{b:?}"
            );
        }
        // HEADERS without END_HEADERS followed by DATA is not a chain.
        let mut s = frame(3, 1, 0, 1, 0x82);
        s.extend(data(1, 1));
        assert_eq!(
            chain(&s, 0, 0, Block::Unknown, true, UNKNOWN),
            Chain::Invalid
        );
        // ...but followed by its CONTINUATION it is.
        let mut s = frame(3, 1, 0, 1, 0x82);
        s.extend(frame(1, 9, 4, 1, 0x82));
        assert_eq!(
            chain(&s, 0, 0, Block::Unknown, true, UNKNOWN),
            Chain::AcceptAtEnd {
                score: 2 * ORDINARY,
                block: Block::Closed
            }
        );
    }

    // Invariant: a SETTINGS frame's parameters must be known ids with valid
    // values to count as evidence.
    #[test]
    fn settings_payload_is_checked() {
        let mut good = frame(6, 4, 0, 0, 0);
        good[9..].copy_from_slice(&[0, 4, 0, 0x40, 0, 0]);
        assert_eq!(
            chain(&good, 0, 0, Block::Unknown, true, UNKNOWN),
            Chain::AcceptAtEnd {
                score: ORDINARY,
                block: Block::Closed
            }
        );
        let mut bad = frame(6, 4, 0, 0, 0);
        bad[9..].copy_from_slice(&[0, 5, 0, 0, 0, 1]); // MAX_FRAME_SIZE 1
        assert_eq!(
            chain(&bad, 0, 0, Block::Unknown, true, UNKNOWN),
            Chain::Invalid
        );
    }

    // Invariant: frames larger than the buffer still synchronise, through
    // checkpoints, and skipped counts every byte before the boundary.
    #[test]
    fn frames_larger_than_the_buffer_sync_via_checkpoints() {
        let mut s = Vec::new();
        let mut starts = Vec::new();
        for i in 0..12 {
            starts.push(s.len());
            s.extend(frame(100_000, 0, 0, 2 * i + 1, 0x5a));
        }
        let cut = 1234;
        let mut r = Resync::new(4096);
        r.start(&[], 0, 0);
        let (skipped, _) = run(&mut r, &s[cut..], 1500).unwrap();
        let boundary = cut as u64 + skipped;
        assert!(starts.contains(&(boundary as usize)), "boundary {boundary}");
    }

    // Invariant: with the frame size limit known, a header beyond it is not
    // a candidate, and ordinary evidence applies up to the limit.
    #[test]
    fn known_limit_governs_lengths() {
        let known = Limits {
            max_frame_size: Some(1 << 18),
        };
        let mut s = frame(100_000, 0, 0, 1, 0);
        s.extend(frame(100_000, 0, 0, 1, 0));
        s.extend(frame(100_000, 0, 0, 1, 0));
        assert_eq!(chain(&s, 0, 0, Block::Unknown, false, known), Chain::Accept);
        let small = Limits {
            max_frame_size: Some(16384),
        };
        assert_eq!(
            chain(&s, 0, 0, Block::Unknown, false, small),
            Chain::Invalid
        );
    }
}

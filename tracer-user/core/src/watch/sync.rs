//! Finding an event boundary by content, for a stream joined mid-way (the
//! normal case: watches outlive the tracer's attach) or resumed after lost
//! bytes.
//!
//! * JSON: Go escapes control characters inside strings, so every `\n` in a
//!   JSON watch body ends an event and the next byte starts one: the
//!   boundary after a newline is exact. A guess at a position not preceded
//!   by a newline (the first byte seen) is accepted only if the whole line
//!   is one valid JSON document (checked by the JSON framing).
//! * Protobuf: a frame starts with a 4-byte length N followed by
//!   `0x0A <len> <ADDED|MODIFIED|DELETED|BOOKMARK|ERROR> 0x12 <len1> 0x0A
//!   <len2> "k8s\0"`, where `len1` must reach exactly the end of the frame
//!   and `len2` exactly the end of `len1`. About 15 fixed bytes and two
//!   length equations: random bytes match with negligible probability. Only
//!   content built to imitate a frame (a Secret holding a watch stream) can
//!   fool it; the next frame then fails and is counted as a refuted sync.
//!
//! Both searches key on the byte `0x0A` (the newline, and the tag of
//! `WatchEvent.type`), found with `memchr`.

use memchr::memchr;

use super::{event::EventType, protobuf::MAGIC};

/// What is known of the body's format while looking for a boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Looking {
    Json,
    Protobuf,
    Either,
}

/// A boundary candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// An exact JSON boundary (after a newline, format known).
    Json,
    /// A JSON boundary to confirm by validating the line (first position of
    /// a stream, or format not known yet).
    JsonCandidate,
    /// A protobuf frame header matching the signature.
    Protobuf,
}

/// Result of scanning a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A boundary at this offset.
    At(usize, Found),
    /// A candidate may start at this offset but more bytes are needed:
    /// keep the bytes from here and rescan when more arrive.
    NeedMore(usize),
    /// No boundary in the window (nothing needs keeping).
    Nothing,
}

/// Longest stretch of bytes a signature check needs; a `NeedMore` never
/// asks to keep more than this.
pub(crate) const MAX_PROBE: usize = 32;

/// `{"type":"`: how Go's encoder starts every JSON watch event.
pub(crate) const JSON_START: &[u8] = br#"{"type":""#;

/// Scans `w` for the first boundary. `at_start`: offset 0 directly follows
/// a known boundary or a gap, so it is itself a candidate.
pub(crate) fn scan(w: &[u8], looking: Looking, at_start: bool, max_frame: u64) -> Scan {
    // (A protobuf frame at 0 has its 0x0A at 4: the loop below sees it.)
    if at_start && looking != Looking::Protobuf {
        match prefix(w, JSON_START) {
            Some(true) => return Scan::At(0, Found::JsonCandidate),
            None => return Scan::NeedMore(0),
            Some(false) => {}
        }
    }
    let mut from = 0;
    while let Some(off) = memchr(0x0A, &w[from..]) {
        let idx = from + off;
        if looking != Looking::Json && idx >= 4 {
            match probe_protobuf(&w[idx - 4..], max_frame) {
                Probe::Match => return Scan::At(idx - 4, Found::Protobuf),
                Probe::NeedMore => return Scan::NeedMore(idx - 4),
                Probe::No => {}
            }
        }
        if looking != Looking::Protobuf {
            let start = idx + 1;
            if looking == Looking::Json {
                return Scan::At(start, Found::Json);
            }
            match prefix(&w[start..], JSON_START) {
                Some(true) => return Scan::At(start, Found::JsonCandidate),
                None => return Scan::NeedMore(idx),
                Some(false) => {}
            }
        }
        from = idx + 1;
    }
    if looking != Looking::Json {
        // A frame may start in the last 4 bytes, its 0x0A not yet seen.
        let keep = w.len().min(4);
        if keep > 0 {
            return Scan::NeedMore(w.len() - keep);
        }
    }
    Scan::Nothing
}

/// `Some(true)` if `w` starts with `p`, `None` if `w` is a strict prefix
/// of `p` (undecided).
fn prefix(w: &[u8], p: &[u8]) -> Option<bool> {
    if w.len() >= p.len() {
        Some(w.starts_with(p))
    } else if p.starts_with(w) {
        None
    } else {
        Some(false)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    Match,
    No,
    NeedMore,
}

/// Whether a protobuf watch frame starts at `w[0]`.
pub(crate) fn probe_protobuf(w: &[u8], max_frame: u64) -> Probe {
    let mut r = Reader { w, i: 0 };
    match probe_inner(&mut r, max_frame) {
        Ok(true) => Probe::Match,
        Ok(false) => Probe::No,
        Err(Short) => Probe::NeedMore,
    }
}

/// Ran out of bytes before deciding.
struct Short;

struct Reader<'a> {
    w: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Short> {
        let b = *self.w.get(self.i).ok_or(Short)?;
        self.i += 1;
        Ok(b)
    }

    /// A varint of at most 5 bytes (lengths here are < 4 GiB).
    fn varint(&mut self) -> Result<Option<u64>, Short> {
        let mut v = 0u64;
        for k in 0..5 {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * k);
            if b & 0x80 == 0 {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

fn probe_inner(r: &mut Reader<'_>, max_frame: u64) -> Result<bool, Short> {
    let mut len = [0u8; 4];
    for b in &mut len {
        *b = r.byte()?;
    }
    let n = u64::from(u32::from_be_bytes(len));
    if n > max_frame {
        return Ok(false);
    }
    // Offsets below are relative to the frame body start (4).
    if r.byte()? != 0x0A {
        return Ok(false);
    }
    let tlen = r.byte()? as usize;
    if !EventType::KNOWN.iter().any(|t| t.len() == tlen) {
        return Ok(false);
    }
    let mut t = [0u8; 8];
    for b in t.iter_mut().take(tlen) {
        *b = r.byte()?;
    }
    if !EventType::KNOWN.contains(&&t[..tlen]) {
        return Ok(false);
    }
    if r.byte()? != 0x12 {
        return Ok(false);
    }
    let Some(l1) = r.varint()? else {
        return Ok(false);
    };
    // The object is the last field: it must end exactly at the frame end.
    if (r.i as u64 - 4) + l1 != n {
        return Ok(false);
    }
    if r.byte()? != 0x0A {
        return Ok(false);
    }
    let start = r.i;
    let Some(l2) = r.varint()? else {
        return Ok(false);
    };
    if (r.i - start) as u64 + 1 + l2 != l1 {
        return Ok(false);
    }
    for m in MAGIC {
        if r.byte()? != m {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::fixture::{ObjectSpec, encode_json_line, encode_protobuf_frame};

    const MAX: u64 = 64 << 20;

    #[test]
    fn probe_accepts_real_frames_and_needs_their_prefix() {
        for t in ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] {
            let f = encode_protobuf_frame(&ObjectSpec::pod(t, "ns", "n", "5"));
            assert_eq!(probe_protobuf(&f, MAX), Probe::Match, "{t}");
            // Every strict prefix up to the magic is undecided.
            let sig_len = 4 + 2 + t.len() + 1 + 2 + 1 + 2 + 4;
            for k in 0..sig_len.min(f.len()) {
                assert_eq!(probe_protobuf(&f[..k], MAX), Probe::NeedMore, "{t} {k}");
            }
            assert!(sig_len <= MAX_PROBE);
        }
    }

    #[test]
    fn probe_rejects_near_misses() {
        let f = encode_protobuf_frame(&ObjectSpec::pod("ADDED", "ns", "n", "5"));
        // Wrong total length.
        let mut g = f.clone();
        g[3] ^= 1;
        assert_eq!(probe_protobuf(&g, MAX), Probe::No);
        // Unknown type word.
        let mut g = f.clone();
        g[6] = b'X';
        assert_eq!(probe_protobuf(&g, MAX), Probe::No);
        // Over the cap.
        assert_eq!(probe_protobuf(&f, 10), Probe::No);
        // Broken magic.
        let mut g = f.clone();
        let m = g.windows(4).position(|w| w == MAGIC).unwrap();
        g[m + 3] = 1;
        assert_eq!(probe_protobuf(&g, MAX), Probe::No);
    }

    #[test]
    fn scan_finds_protobuf_frame_after_garbage() {
        let f = encode_protobuf_frame(&ObjectSpec::pod("MODIFIED", "ns", "n", "5"));
        let mut w = vec![0x0A, 0x0A, 1, 2, 3, 0x0A, 0xFF];
        w.extend_from_slice(&f);
        assert_eq!(
            scan(&w, Looking::Either, false, MAX),
            Scan::At(7, Found::Protobuf)
        );
        assert_eq!(
            scan(&w, Looking::Protobuf, true, MAX),
            Scan::At(7, Found::Protobuf)
        );
        // Cut inside the signature: keep from the candidate.
        assert_eq!(
            scan(&w[..7 + 12], Looking::Protobuf, false, MAX),
            Scan::NeedMore(7)
        );
    }

    #[test]
    fn scan_json_boundaries() {
        let a = encode_json_line(&ObjectSpec::pod("ADDED", "a", "b", "1"));
        let mut w = a[10..].to_vec();
        let tail = w.len();
        w.extend_from_slice(&a);
        assert_eq!(
            scan(&w, Looking::Json, false, MAX),
            Scan::At(tail, Found::Json)
        );
        assert_eq!(
            scan(&w, Looking::Either, false, MAX),
            Scan::At(tail, Found::JsonCandidate)
        );
        // At the start, the prefix makes a candidate only.
        assert_eq!(
            scan(&a, Looking::Json, true, MAX),
            Scan::At(0, Found::JsonCandidate)
        );
        assert_eq!(scan(b"{\"ty", Looking::Json, true, MAX), Scan::NeedMore(0));
        // A newline at the very end, format unknown: undecided.
        assert_eq!(
            scan(b"xx\n{", Looking::Either, false, MAX),
            Scan::NeedMore(2)
        );
        assert_eq!(scan(b"xx", Looking::Json, false, MAX), Scan::Nothing);
        // Trailing bytes may start a protobuf frame.
        assert_eq!(
            scan(b"xxxxxx", Looking::Either, false, MAX),
            Scan::NeedMore(2)
        );
    }
}

//! What the watch-body targets share: how an input is cut into pieces, and
//! the byte accounting every decoder must keep.
#![allow(dead_code, reason = "each target uses a different subset")]

use watchtrace::watch::{WatchItem, WatchStats, WatchStreamDecoder};

/// The input's first byte (a mode for the target) and the rest cut into
/// pieces whose lengths come from a tiny PRNG seeded by its next two bytes,
/// so that the same input always splits the same way.
pub fn pieces(data: &[u8]) -> (u8, Vec<&[u8]>) {
    let (head, body) = data.split_at(data.len().min(3));
    let mode = head.first().copied().unwrap_or(0);
    let mut seed = u32::from(head.get(1).copied().unwrap_or(1)) << 8
        | u32::from(head.get(2).copied().unwrap_or(1))
        | 1;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed as usize % 64 + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    (mode, out)
}

/// Every byte fed is an event's, or counted as dropped or skipped.
pub fn accounted(s: &WatchStats) -> u64 {
    s.event_bytes
        + s.malformed_bytes
        + s.oversized_bytes
        + s.cut_bytes
        + s.truncated_bytes
        + s.skipped_bytes
}

/// Feeds `pieces` to a watch decoder (a 3-byte gap before every fifth
/// when `mode & 8`), finishes it, and checks what every watch target
/// checks: each byte accounted for, each event within what was fed.
pub fn feed_watch(d: &mut WatchStreamDecoder, mode: u8, pieces: &[&[u8]]) {
    let mut out: Vec<WatchItem> = Vec::new();
    let mut fed = 0u64;
    for (i, p) in pieces.iter().enumerate() {
        if mode & 8 != 0 && i % 5 == 4 {
            d.gap(3, i as u64, &mut out);
        }
        d.push(p, i as u64, &mut out);
        fed += p.len() as u64;
    }
    d.finish(u64::MAX, &mut out);
    assert_eq!(accounted(d.stats()), fed, "{:?}", d.stats());
    for item in &out {
        if let WatchItem::Event(e) = item {
            assert!(e.bytes <= fed && e.t_first_byte <= e.t_last_byte);
        }
    }
}

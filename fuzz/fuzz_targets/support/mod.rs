//! What the watch-body targets share: how an input is cut into pieces, and
//! the byte accounting every decoder must keep.

use watchtrace::watch::WatchStats;

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

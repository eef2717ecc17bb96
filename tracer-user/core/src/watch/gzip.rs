//! `Content-Encoding: gzip` on a watch response (watch-list streams since
//! Kubernetes 1.37 when the client accepts it, as Go clients do): the
//! captured bytes inflated as they come, per stream, in bounded memory
//! (the inflater's 32 KiB window and what one piece inflates to), so the
//! watch decoder sees the JSON, protobuf or CBOR underneath.
//!
//! Inflating needs every byte from the member's start: after a gap, or on
//! a stream joined mid-member, nothing more can be inflated. That is
//! reported (see [`Gunzip::push`]), never guessed.

use std::io::Write as _;

use flate2::write::MultiGzDecoder;

/// Why a gzip body cannot be inflated further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GzipStop {
    /// Bytes that are not gzip (or a corrupt member).
    Corrupt,
    /// Bytes were lost (a gap): the inflater's state is gone.
    CutByGap,
    /// The body was joined mid-member: its start was never seen.
    JoinedMidMember,
}

/// The empty stored block a deflate sync flush (Go's `gzip.Writer.Flush`,
/// zlib's `Z_SYNC_FLUSH`) ends with: an apiserver's gzip watch stream
/// ends every flushed write with it.
pub const SYNC_FLUSH_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why a piece was not (all) inflated, and how many of its bytes were not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GzipStopped {
    pub why: GzipStop,
    pub unread: u64,
}

/// One body's inflater.
pub struct Gunzip {
    decoder: MultiGzDecoder<Vec<u8>>,
    stopped: Option<GzipStop>,
    /// Compressed bytes seen, and what they inflated to.
    wire_bytes: u64,
    inflated_bytes: u64,
}

impl std::fmt::Debug for Gunzip {
    /// State only: the buffer holds object content.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gunzip")
            .field("stopped", &self.stopped)
            .field("wire_bytes", &self.wire_bytes)
            .field("inflated_bytes", &self.inflated_bytes)
            .finish()
    }
}

impl Default for Gunzip {
    fn default() -> Self {
        Self {
            decoder: MultiGzDecoder::new(Vec::new()),
            stopped: None,
            wire_bytes: 0,
            inflated_bytes: 0,
        }
    }
}

impl Gunzip {
    /// Inflates the next captured bytes of the body into `out` (cleared
    /// first). `Err` says why nothing more can be inflated, and how many of
    /// these bytes were not (the first time it is seen; for every later
    /// piece, all of them); `out` then holds what the bytes before the stop
    /// inflated to, which the caller decodes as well.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), GzipStopped> {
        out.clear();
        if let Some(why) = self.stopped {
            return Err(GzipStopped {
                why,
                unread: bytes.len() as u64,
            });
        }
        // Written piece by piece, so the bytes the inflater took before a
        // corrupt one are known.
        let mut rest = bytes;
        let mut failed = false;
        while !rest.is_empty() {
            match self.decoder.write(rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        failed |= self.decoder.flush().is_err();
        self.wire_bytes += (bytes.len() - rest.len()) as u64;
        std::mem::swap(out, self.decoder.get_mut());
        self.decoder.get_mut().clear();
        self.inflated_bytes += out.len() as u64;
        if failed || !rest.is_empty() {
            self.stopped = Some(GzipStop::Corrupt);
            return Err(GzipStopped {
                why: GzipStop::Corrupt,
                unread: rest.len() as u64,
            });
        }
        Ok(())
    }

    /// Bytes were lost: nothing after them can be inflated.
    pub fn gap(&mut self) {
        self.stopped.get_or_insert(GzipStop::CutByGap);
    }

    /// Compressed bytes seen, and what they inflated to.
    #[must_use]
    pub fn totals(&self) -> (u64, u64) {
        (self.wire_bytes, self.inflated_bytes)
    }
}

#[cfg(test)]
mod tests {
    use flate2::{Compression, write::GzEncoder};

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_body_inflates_the_same_however_it_is_split() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        let compressed = gzip(&text);
        for piece in [1, 7, 1000, compressed.len()] {
            let mut g = Gunzip::default();
            let (mut all, mut out) = (Vec::new(), Vec::new());
            for c in compressed.chunks(piece) {
                g.push(c, &mut out).unwrap();
                all.extend_from_slice(&out);
            }
            assert_eq!(all, text, "pieces of {piece}");
            assert_eq!(g.totals(), (compressed.len() as u64, text.len() as u64));
        }
    }

    #[test]
    fn after_a_gap_or_on_garbage_nothing_more_is_inflated() {
        let compressed = gzip(b"{\"type\":\"ADDED\"}\n");
        let mut g = Gunzip::default();
        let mut out = Vec::new();
        g.push(&compressed[..5], &mut out).unwrap();
        g.gap();
        let stopped = |why, unread| Err(GzipStopped { why, unread });
        let rest = compressed.len() as u64 - 5;
        assert_eq!(
            g.push(&compressed[5..], &mut out),
            stopped(GzipStop::CutByGap, rest)
        );
        assert!(out.is_empty());
        // Joined mid-member: the bytes are no gzip header.
        let mut g = Gunzip::default();
        let err = g.push(&compressed[12..], &mut out).unwrap_err();
        assert_eq!(err.why, GzipStop::Corrupt);
        assert!(err.unread <= compressed.len() as u64 - 12);
        assert_eq!(g.push(b"more", &mut out), stopped(GzipStop::Corrupt, 4));
    }

    #[test]
    fn what_inflated_before_corrupt_bytes_is_given_and_the_rest_counted() {
        let text = b"{\"type\":\"ADDED\"}\n".repeat(50);
        // A whole member, then bytes that are no gzip member.
        let mut piece = gzip(&text);
        piece.extend_from_slice(b"not-a-gzip-member");
        let mut g = Gunzip::default();
        let mut out = Vec::new();
        let err = g.push(&piece, &mut out).unwrap_err();
        assert_eq!(err.why, GzipStop::Corrupt);
        assert_eq!(out, text, "the events before the damage are kept");
        assert!(err.unread <= 17, "{err:?}");
    }
}

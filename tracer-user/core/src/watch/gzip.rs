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
    /// first). `Err` says why nothing more can be inflated: the first time
    /// it is seen, and for every later piece.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), GzipStop> {
        out.clear();
        if let Some(stop) = self.stopped {
            return Err(stop);
        }
        self.wire_bytes += bytes.len() as u64;
        let written = self
            .decoder
            .write_all(bytes)
            .and_then(|()| self.decoder.flush());
        std::mem::swap(out, self.decoder.get_mut());
        self.inflated_bytes += out.len() as u64;
        if written.is_err() {
            self.stopped = Some(GzipStop::Corrupt);
            return Err(GzipStop::Corrupt);
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
        assert_eq!(g.push(&compressed[5..], &mut out), Err(GzipStop::CutByGap));
        assert!(out.is_empty());
        // Joined mid-member: the bytes are no gzip header.
        let mut g = Gunzip::default();
        assert_eq!(g.push(&compressed[12..], &mut out), Err(GzipStop::Corrupt));
        assert_eq!(g.push(b"more", &mut out), Err(GzipStop::Corrupt));
    }
}

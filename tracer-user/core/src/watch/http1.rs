//! A watch body over HTTP/1.1: chunked transfer coding in front of the
//! event decoder.

use super::{
    chunked::{ChunkItem, ChunkStats, ChunkedDecoder},
    event::{WatchItem, WatchStats, WireFormat},
    stream::{DecoderConfig, WatchStreamDecoder},
};

/// Decodes a chunked HTTP/1.1 watch response body.
///
/// Losses in the chunk framing reach the event decoder as gaps of the
/// bytes the chunk layer discarded, so its items and counters cover both
/// layers.
#[derive(Debug)]
pub struct Http1WatchDecoder {
    chunked: ChunkedDecoder,
    watch: WatchStreamDecoder,
}

impl Http1WatchDecoder {
    /// A body seen from its first byte.
    #[must_use]
    pub fn from_start(format: WireFormat, cfg: DecoderConfig) -> Self {
        Self {
            chunked: ChunkedDecoder::from_start(),
            watch: WatchStreamDecoder::from_start(format, cfg),
        }
    }

    /// A body joined at an unknown offset.
    #[must_use]
    pub fn mid_stream(format: Option<WireFormat>, cfg: DecoderConfig) -> Self {
        Self {
            chunked: ChunkedDecoder::mid_stream(),
            watch: WatchStreamDecoder::mid_stream(format, cfg),
        }
    }

    /// Feeds captured bytes of the (chunked) body.
    pub fn push(&mut self, data: &[u8], ts_ns: u64, out: &mut Vec<WatchItem>) {
        let watch = &mut self.watch;
        self.chunked.push(data, |item| match item {
            ChunkItem::Data(d) => watch.push(d, ts_ns, out),
            ChunkItem::Resynced { skipped } => {
                if skipped > 0 {
                    watch.gap(skipped, ts_ns, out);
                }
            }
            ChunkItem::End => watch.finish(ts_ns, out),
        });
    }

    /// `lost_bytes` of the chunked body were not captured.
    pub fn gap(&mut self, lost_bytes: u64, ts_ns: u64, out: &mut Vec<WatchItem>) {
        self.chunked.gap();
        self.watch.gap(lost_bytes, ts_ns, out);
    }

    /// The connection ended.
    pub fn finish(&mut self, ts_ns: u64, out: &mut Vec<WatchItem>) {
        if !self.chunked.is_done() {
            self.watch.finish(ts_ns, out);
        }
    }

    /// The terminating chunk was read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.chunked.is_done()
    }

    #[must_use]
    pub fn watch_stats(&self) -> &WatchStats {
        self.watch.stats()
    }

    #[must_use]
    pub fn chunk_stats(&self) -> &ChunkStats {
        self.chunked.stats()
    }

    #[must_use]
    pub fn format(&self) -> Option<WireFormat> {
        self.watch.format()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::{
        event::EventType,
        fixture::{ObjectSpec, encode_cbor_item, encode_json_line, encode_protobuf_frame},
    };

    fn chunk(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }

    #[test]
    fn chunked_json_and_protobuf_at_every_split() {
        for format in [WireFormat::Json, WireFormat::Protobuf, WireFormat::Cbor] {
            let enc = |s: &ObjectSpec| match format {
                WireFormat::Json => encode_json_line(s),
                WireFormat::Protobuf => encode_protobuf_frame(s),
                WireFormat::Cbor => encode_cbor_item(s),
            };
            let a = enc(&ObjectSpec::pod("ADDED", "ns", "a", "1"));
            let b = enc(&ObjectSpec::pod("MODIFIED", "ns", "b", "2"));
            let mut body = Vec::new();
            // One flush with two events, then a protobuf-style split write.
            chunk(&mut body, &[a.clone(), b.clone()].concat());
            chunk(&mut body, &b[..4]);
            chunk(&mut body, &b[4..]);
            body.extend_from_slice(b"0\r\n\r\n");
            for split in [1, 2, 3, 7, 64, body.len()] {
                let mut d = Http1WatchDecoder::from_start(format, DecoderConfig::default());
                let mut out = Vec::new();
                for piece in body.chunks(split) {
                    d.push(piece, 5, &mut out);
                }
                assert!(d.is_done());
                let names: Vec<_> = out
                    .iter()
                    .map(|i| match i {
                        WatchItem::Event(e) => (e.event_type.clone(), e.name.clone(), e.bytes),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert_eq!(
                    names,
                    vec![
                        (EventType::Added, "a".into(), a.len() as u64),
                        (EventType::Modified, "b".into(), b.len() as u64),
                        (EventType::Modified, "b".into(), b.len() as u64),
                    ],
                    "{format} split {split}"
                );
            }
        }
    }

    #[test]
    fn mid_stream_chunked_json() {
        let a = encode_json_line(&ObjectSpec::pod("ADDED", "ns", "a", "1"));
        let b = encode_json_line(&ObjectSpec::pod("DELETED", "ns", "b", "2"));
        let mut body = Vec::new();
        chunk(&mut body, &a);
        chunk(&mut body, &b);
        // Join in the middle of the first chunk's data.
        let mut d = Http1WatchDecoder::mid_stream(None, DecoderConfig::default());
        let mut out = Vec::new();
        d.push(&body[20..], 1, &mut out);
        let events: Vec<_> = out
            .iter()
            .filter_map(|i| match i {
                WatchItem::Event(e) => Some(e.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(events, ["b"]);
        assert_eq!(d.format(), Some(WireFormat::Json));
    }
}

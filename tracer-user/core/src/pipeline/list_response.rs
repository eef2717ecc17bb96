//! What one LIST response cost: its bytes on the wire and decoded, its
//! encoding, and when its first and last bytes were written. A relist
//! storm then shows as bytes and seconds, not just a count of requests.
//!
//! The body is counted, not decoded. A gzip body's decoded size is read
//! from its trailer (RFC 1952: ISIZE, the input size mod 2^32, in the
//! member's last four bytes), not by inflating it: inflating runs at about
//! 0.5 GB/s per core (`cargo xtask bench decode`, `json+gzip`), which a
//! relist storm of large LISTs would turn into whole cores of the agent.
//! The trailer is trusted only when the body was seen whole from its
//! first byte (gzip magic there) and ended with END_STREAM.

use serde::Serialize;

use crate::watch::WireFormat;

/// The gzip member's magic and method (deflate): `1f 8b 08`.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// A gzip member's trailer: CRC32 then ISIZE, both little-endian.
const GZIP_TRAILER: usize = 8;

/// A LIST response's body encoding: the media type's format, and whether
/// it was gzip-compressed (`Content-Encoding: gzip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListEncoding {
    /// `None`: a media type watchtrace does not know (tables, YAML).
    pub format: Option<WireFormat>,
    pub gzip: bool,
}

impl ListEncoding {
    /// As the `encoding` label spells it: `json`, `protobuf`, `cbor` or
    /// `other`, with `+gzip` when compressed.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match (self.format, self.gzip) {
            (Some(WireFormat::Json), false) => "json",
            (Some(WireFormat::Json), true) => "json+gzip",
            (Some(WireFormat::Protobuf), false) => "protobuf",
            (Some(WireFormat::Protobuf), true) => "protobuf+gzip",
            (Some(WireFormat::Cbor), false) => "cbor",
            (Some(WireFormat::Cbor), true) => "cbor+gzip",
            (None, false) => "other",
            (None, true) => "other+gzip",
        }
    }
}

impl Serialize for ListEncoding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The media type of a LIST body: `application/cbor` for CBOR (a watch
/// says `cbor-seq`), else as a watch's.
fn list_format(content_type: &str) -> Option<WireFormat> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/cbor") {
        return Some(WireFormat::Cbor);
    }
    WireFormat::from_content_type(content_type)
}

/// One LIST response being counted. Times are the records' clock.
#[derive(Clone, Debug)]
pub(crate) struct ListResponse {
    /// When the request's HEADERS were read.
    pub(crate) t_request: u64,
    /// When the response's HEADERS were written (its first byte).
    pub(crate) t_first_byte: u64,
    pub(crate) t_last_byte: u64,
    pub(crate) status: Option<u16>,
    pub(crate) encoding: ListEncoding,
    /// Body bytes on the wire (compressed, when gzip), lost ones included.
    pub(crate) wire_bytes: u64,
    /// Body bytes lost to gaps.
    pub(crate) lost_bytes: u64,
    /// Bytes of its connection were lost where the HTTP/2 framing could
    /// not say whose they were: some may have been this body's.
    pub(crate) maybe_lost: bool,
    /// A content coding other than gzip (the apiserver sends none): its
    /// decoded size is not known.
    other_coding: bool,
    /// The first bytes of the body (up to three), to check the gzip magic.
    head: [u8; 3],
    head_len: u8,
    /// The last eight bytes of the body so far: a gzip trailer at the end.
    tail: [u8; GZIP_TRAILER],
}

impl ListResponse {
    /// A response whose HEADERS (`status`, `content_type`,
    /// `content_encoding`) were written at `ts`, to a request read at
    /// `t_request`.
    pub(crate) fn new(
        t_request: u64,
        ts: u64,
        status: Option<u16>,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Self {
        Self {
            t_request,
            t_first_byte: ts,
            t_last_byte: ts,
            status,
            encoding: ListEncoding {
                format: content_type.and_then(list_format),
                gzip: content_encoding.is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip")),
            },
            wire_bytes: 0,
            lost_bytes: 0,
            maybe_lost: false,
            other_coding: content_encoding.is_some_and(|e| {
                let e = e.trim();
                !e.is_empty()
                    && !e.eq_ignore_ascii_case("gzip")
                    && !e.eq_ignore_ascii_case("identity")
            }),
            head: [0; 3],
            head_len: 0,
            tail: [0; GZIP_TRAILER],
        }
    }

    /// The next body bytes, written at `ts`.
    pub(crate) fn push(&mut self, bytes: &[u8], ts: u64) {
        if bytes.is_empty() {
            return;
        }
        // The head is only meaningful while nothing was lost before it.
        if self.lost_bytes == 0 {
            let have = usize::from(self.head_len);
            let want = (self.head.len() - have).min(bytes.len());
            self.head[have..have + want].copy_from_slice(&bytes[..want]);
            self.head_len += want as u8;
        }
        if bytes.len() >= GZIP_TRAILER {
            self.tail
                .copy_from_slice(&bytes[bytes.len() - GZIP_TRAILER..]);
        } else {
            self.tail.rotate_left(bytes.len());
            self.tail[GZIP_TRAILER - bytes.len()..].copy_from_slice(bytes);
        }
        self.wire_bytes += bytes.len() as u64;
        self.t_last_byte = ts;
    }

    /// `len` body bytes were lost.
    pub(crate) fn gap(&mut self, len: u64, ts: u64) {
        self.wire_bytes += len;
        self.lost_bytes += len;
        self.t_last_byte = self.t_last_byte.max(ts);
    }

    /// Every byte of the body was seen, up to an END_STREAM (`ended`).
    pub(crate) fn whole(&self, ended: bool) -> bool {
        ended && self.lost_bytes == 0 && !self.maybe_lost
    }

    /// The body's decoded size, when it is known: the wire size for an
    /// uncompressed body seen whole; a gzip member's ISIZE when the body
    /// was seen whole from its magic to its end (`complete`); else `None`.
    pub(crate) fn decoded_bytes(&self, complete: bool) -> Option<u64> {
        if !self.whole(complete) || self.other_coding {
            return None;
        }
        if !self.encoding.gzip {
            return Some(self.wire_bytes);
        }
        let whole_member = self.head_len as usize == GZIP_MAGIC.len()
            && self.head == GZIP_MAGIC
            && self.wire_bytes >= 18; // 10-byte header + 8-byte trailer
        whole_member.then(|| {
            let isize = &self.tail[4..];
            u64::from(u32::from_le_bytes([isize[0], isize[1], isize[2], isize[3]]))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    }

    fn response(content_encoding: Option<&str>) -> ListResponse {
        ListResponse::new(
            10,
            20,
            Some(200),
            Some("application/json"),
            content_encoding,
        )
    }

    #[test]
    fn a_gzip_body_seen_whole_is_as_large_as_its_trailer_says_however_it_was_split() {
        let body: Vec<u8> = (0..2000u64)
            .flat_map(|i| format!(r#"{{"name":"cm-{i}","v":{}}},"#, i * 7919 % 10007).into_bytes())
            .collect();
        let wire = gzip(&body);
        for cut in [1, 3, 7, 8, 9, 500, wire.len() - 8, wire.len() - 1] {
            let mut list = response(Some("gzip"));
            list.push(&wire[..cut], 30);
            for b in wire[cut..].chunks(5) {
                list.push(b, 40);
            }
            assert_eq!(list.wire_bytes, wire.len() as u64);
            assert_eq!(
                list.decoded_bytes(true),
                Some(body.len() as u64),
                "cut at {cut}"
            );
            assert_eq!(list.t_last_byte, if cut == wire.len() { 30 } else { 40 });
        }
    }

    #[test]
    fn a_gzip_body_with_a_gap_or_cut_short_has_no_decoded_size() {
        let wire = gzip(&b"x".repeat(4000));
        let mut list = response(Some("gzip"));
        list.push(&wire[..10], 30);
        list.gap(5, 31);
        list.push(&wire[15..], 32);
        assert_eq!(list.wire_bytes, wire.len() as u64);
        assert_eq!(list.lost_bytes, 5);
        assert_eq!(list.decoded_bytes(true), None);

        let mut list = response(Some("gzip"));
        list.push(&wire, 30);
        assert_eq!(list.decoded_bytes(false), None, "not ended by END_STREAM");

        let mut list = response(Some("gzip"));
        list.push(&wire, 30);
        list.maybe_lost = true;
        assert_eq!(list.decoded_bytes(true), None, "the connection lost bytes");
    }

    #[test]
    fn a_body_that_says_gzip_but_is_not_has_no_decoded_size() {
        let mut list = response(Some("gzip"));
        list.push(b"{\"kind\":\"ConfigMapList\"} padding padding", 30);
        assert_eq!(list.decoded_bytes(true), None);
    }

    #[test]
    fn an_uncompressed_body_is_its_own_decoded_size() {
        let mut list = response(None);
        list.push(b"{\"kind\":\"ConfigMapList\"}", 30);
        assert_eq!(list.decoded_bytes(true), Some(24));
        assert_eq!(list.encoding.as_str(), "json");
    }

    #[test]
    fn encodings_are_named_by_media_type_and_compression() {
        let enc = |ct: &str, ce: Option<&str>| {
            ListResponse::new(0, 0, None, Some(ct), ce)
                .encoding
                .as_str()
        };
        assert_eq!(enc("application/cbor", Some("gzip")), "cbor+gzip");
        assert_eq!(enc("application/vnd.kubernetes.protobuf", None), "protobuf");
        assert_eq!(
            enc("application/json;charset=utf-8", Some("GZIP")),
            "json+gzip"
        );
        assert_eq!(enc("application/yaml", None), "other");
        assert_eq!(enc("application/json", Some("br")), "json");
    }

    #[test]
    fn a_body_in_a_coding_other_than_gzip_has_no_decoded_size() {
        let mut list = response(Some("br"));
        list.push(b"\x1b\x03\x00", 30);
        assert_eq!(list.decoded_bytes(true), None);
        let mut list = response(Some("identity"));
        list.push(b"{}", 30);
        assert_eq!(list.decoded_bytes(true), Some(2));
    }
}

//! HPACK header block decoding ([RFC 7541]), tolerant of joining a
//! connection late.
//!
//! One [`Decoder`] per direction of a connection decodes the complete header
//! blocks (HEADERS or PUSH_PROMISE plus CONTINUATIONs) that direction sends,
//! in order. A decoder made with [`Decoder::mid_stream`] does not know the
//! dynamic table's older entries: references to them decode as
//! [`FieldText::Unknown`], literals still decode and are added to the table,
//! and [`Decoder::take_became_complete`] reports when the table is fully
//! known again (the reasoning is in the private `table` module).
//!
//! Allocation is per decoded name or value (static-table names and values
//! are borrowed, not copied).
//!
//! [RFC 7541]: https://www.rfc-editor.org/rfc/rfc7541

mod huffman;
mod static_table;
mod table;

use std::borrow::Cow;

use thiserror::Error;

use self::table::{DynamicTable, Lookup};
pub use self::{huffman::HuffmanError, table::TableSizeBasis};

/// A decoded name or value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldText {
    /// The bytes (borrowed from the static table, or owned).
    Known(Cow<'static, [u8]>),
    /// Refers to a dynamic table entry inserted before we started watching.
    Unknown,
}

impl FieldText {
    /// The bytes, if known.
    pub fn known(&self) -> Option<&[u8]> {
        match self {
            Self::Known(b) => Some(b),
            Self::Unknown => None,
        }
    }

    fn owned(bytes: Vec<u8>) -> Self {
        Self::Known(Cow::Owned(bytes))
    }
}

/// One decoded header field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderField {
    pub name: FieldText,
    pub value: FieldText,
    /// Sent as "never indexed" (RFC 7541 §6.2.3): the sender marked it
    /// sensitive (e.g. `authorization`).
    pub sensitive: bool,
}

impl HeaderField {
    /// Whether name and value are both known.
    pub fn is_known(&self) -> bool {
        matches!(
            (&self.name, &self.value),
            (FieldText::Known(_), FieldText::Known(_))
        )
    }
}

/// Why a header block could not be decoded. After an error the block's
/// effect on the dynamic table is uncertain; callers should
/// [`Decoder::forget`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    #[error("header block truncated")]
    Truncated,
    /// An integer does not fit in 32 bits.
    #[error("integer overflow")]
    IntegerOverflow,
    /// Index 0 is never valid.
    #[error("index 0")]
    ZeroIndex,
    /// An index past a fully known dynamic table.
    #[error("index {index} past the dynamic table ({dynamic_len} entries)")]
    InvalidIndex { index: u32, dynamic_len: usize },
    /// A size update above the acknowledged `SETTINGS_HEADER_TABLE_SIZE`.
    #[error("table size update to {size} exceeds the limit {limit}")]
    SizeUpdateTooLarge { size: u32, limit: u32 },
    /// A size update after the first header field of a block (§4.2).
    #[error("table size update after a header field")]
    SizeUpdateAfterField,
    /// A bad Huffman string.
    #[error("invalid Huffman string")]
    Huffman(#[from] HuffmanError),
}

/// HPACK decoder for one direction of a connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
}

/// Memory bound for a table whose capacity is unknown (or above it).
pub const DEFAULT_RETAIN_CAP: usize = 64 * 1024;

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder from the start of a connection (empty table, capacity and
    /// `SETTINGS_HEADER_TABLE_SIZE` at their 4096 default).
    pub fn new() -> Self {
        Self::with_retain_cap(DEFAULT_RETAIN_CAP)
    }

    /// As [`Decoder::new`], holding at most `retain_cap` bytes of table.
    pub fn with_retain_cap(retain_cap: usize) -> Self {
        Self {
            table: DynamicTable::from_start(retain_cap),
        }
    }

    /// A decoder joining mid-connection: table contents, capacity and limit
    /// unknown. `assumed_capacity` (normally `Some(4096)`, what Go and most
    /// peers use) lets it declare the table complete once new entries would
    /// have filled that much; `None` waits for real evidence.
    pub fn mid_stream(retain_cap: usize, assumed_capacity: Option<u32>) -> Self {
        Self {
            table: DynamicTable::mid_stream(retain_cap, assumed_capacity),
        }
    }

    /// The `SETTINGS_HEADER_TABLE_SIZE` the decoding side announced took
    /// effect (the encoder acknowledged it); `None` if it may have changed to
    /// an unknown value.
    pub fn set_size_limit(&mut self, limit: Option<u32>) {
        self.table.set_limit(limit);
    }

    /// Header blocks were lost: forget the table.
    pub fn forget(&mut self) {
        self.table.forget_all();
    }

    /// Whether every dynamic table entry is known.
    pub fn is_complete(&self) -> bool {
        self.table.is_complete()
    }

    /// If the table became complete since the last call, on what basis.
    pub fn take_became_complete(&mut self) -> Option<TableSizeBasis> {
        self.table.take_became_complete()
    }

    /// Entries evicted or forgotten so far.
    pub fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    /// The table capacity, if known (from the start, or a size update seen).
    pub fn capacity(&self) -> Option<u32> {
        self.table.capacity()
    }

    /// Known entries and their total size.
    pub fn table_len_and_size(&self) -> (usize, usize) {
        (self.table.len(), self.table.size())
    }

    /// Decodes one complete header block, appending to `out`.
    pub fn decode(&mut self, block: &[u8], out: &mut Vec<HeaderField>) -> Result<(), HpackError> {
        let mut r = Reader { buf: block, pos: 0 };
        let mut seen_field = false;
        while let Some(&first) = r.buf.get(r.pos) {
            if first & 0x80 != 0 {
                // Indexed header field (§6.1).
                let index = r.int(7)?;
                out.push(match self.table.get(index)? {
                    Lookup::Static(n, v) => HeaderField {
                        name: FieldText::Known(Cow::Borrowed(n)),
                        value: FieldText::Known(Cow::Borrowed(v)),
                        sensitive: false,
                    },
                    Lookup::Dynamic(e) => HeaderField {
                        name: e
                            .name
                            .as_ref()
                            .map_or(FieldText::Unknown, |n| FieldText::owned(n.to_vec())),
                        value: FieldText::owned(e.value.to_vec()),
                        sensitive: false,
                    },
                    Lookup::Unknown => HeaderField {
                        name: FieldText::Unknown,
                        value: FieldText::Unknown,
                        sensitive: false,
                    },
                });
                seen_field = true;
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3), only before any field.
                if seen_field {
                    return Err(HpackError::SizeUpdateAfterField);
                }
                let size = r.int(5)?;
                self.table.size_update(size)?;
            } else {
                // Literal header field (§6.2): with incremental indexing
                // (01), without indexing (0000) or never indexed (0001).
                let (prefix, indexing) = if first & 0x40 != 0 {
                    (6, true)
                } else {
                    (4, false)
                };
                let sensitive = !indexing && first & 0x10 != 0;
                let index = r.int(prefix)?;
                let name = if index == 0 {
                    FieldText::owned(r.string()?)
                } else {
                    match self.table.get(index)? {
                        Lookup::Static(n, _) => FieldText::Known(Cow::Borrowed(n)),
                        Lookup::Dynamic(e) => e
                            .name
                            .as_ref()
                            .map_or(FieldText::Unknown, |n| FieldText::owned(n.to_vec())),
                        Lookup::Unknown => FieldText::Unknown,
                    }
                };
                let value = r.string()?;
                if indexing {
                    self.table
                        .insert(name.known().map(Into::into), value.as_slice().into());
                }
                out.push(HeaderField {
                    name,
                    value: FieldText::owned(value),
                    sensitive,
                });
                seen_field = true;
            }
        }
        Ok(())
    }
}

/// Cursor over a header block.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, HpackError> {
        let b = *self.buf.get(self.pos).ok_or(HpackError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// An integer with an N-bit prefix (§5.1), at most 2^32 - 1.
    fn int(&mut self, prefix: u8) -> Result<u32, HpackError> {
        let mask = (1u8 << prefix) - 1;
        let first = self.byte()? & mask;
        if first < mask {
            return Ok(u32::from(first));
        }
        let mut value = u64::from(mask);
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            value += u64::from(b & 0x7f) << shift;
            if value > u64::from(u32::MAX) {
                return Err(HpackError::IntegerOverflow);
            }
            if b & 0x80 == 0 {
                // Fits: checked against u32::MAX above.
                return Ok(value as u32);
            }
            shift += 7;
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
        }
    }

    /// A string literal (§5.2).
    fn string(&mut self) -> Result<Vec<u8>, HpackError> {
        let huffman = *self.buf.get(self.pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = self.int(7)? as usize;
        let end = self.pos.checked_add(len).ok_or(HpackError::Truncated)?;
        let raw = self.buf.get(self.pos..end).ok_or(HpackError::Truncated)?;
        self.pos = end;
        if huffman {
            let mut out = Vec::new();
            huffman::decode(raw, &mut out)?;
            Ok(out)
        } else {
            Ok(raw.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(d: &mut Decoder, wire: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(&hex(wire), &mut out).unwrap();
        out.into_iter()
            .map(|f| {
                let s = |t: &FieldText| {
                    t.known().map_or_else(
                        || "?".to_owned(),
                        |b| String::from_utf8_lossy(b).into_owned(),
                    )
                };
                (s(&f.name), s(&f.value))
            })
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    // Invariant: RFC 7541 C.1 integer examples (5-bit prefix 10 and 1337,
    // 8-bit prefix 42) and overflow rejection.
    #[test]
    fn integers_c1() {
        let mut r = Reader {
            buf: &[0x0a],
            pos: 0,
        };
        assert_eq!(r.int(5), Ok(10));
        let mut r = Reader {
            buf: &[0x1f, 0x9a, 0x0a],
            pos: 0,
        };
        assert_eq!(r.int(5), Ok(1337));
        let mut r = Reader {
            buf: &[0x2a],
            pos: 0,
        };
        assert_eq!(r.int(8 - 1), Ok(42));
        let mut r = Reader {
            buf: &[0x1f, 0xff, 0xff, 0xff, 0xff, 0x7f],
            pos: 0,
        };
        assert_eq!(r.int(5), Err(HpackError::IntegerOverflow));
        let mut r = Reader {
            buf: &[0x1f, 0x9a],
            pos: 0,
        };
        assert_eq!(r.int(5), Err(HpackError::Truncated));
    }

    // Invariant: RFC 7541 C.2 single representations, including that
    // "without indexing" and "never indexed" leave the table alone.
    #[test]
    fn representations_c2() {
        let mut d = Decoder::new();
        assert_eq!(
            decode(
                &mut d,
                "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"
            ),
            pairs(&[("custom-key", "custom-header")])
        );
        assert_eq!(d.table_len_and_size(), (1, 55));
        let mut d = Decoder::new();
        assert_eq!(
            decode(&mut d, "040c 2f73 616d 706c 652f 7061 7468"),
            pairs(&[(":path", "/sample/path")])
        );
        assert_eq!(d.table_len_and_size(), (0, 0));
        let mut out = Vec::new();
        d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), &mut out)
            .unwrap();
        assert!(out[0].sensitive);
        assert_eq!(d.table_len_and_size(), (0, 0));
        assert_eq!(decode(&mut d, "82"), pairs(&[(":method", "GET")]));
    }

    const REQ1: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    const REQ2: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ];
    const REQ3: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];

    // Invariant: RFC 7541 C.3 (requests, no Huffman) through one decoder.
    #[test]
    fn requests_c3() {
        let mut d = Decoder::new();
        assert_eq!(
            decode(&mut d, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
            pairs(REQ1)
        );
        assert_eq!(d.table_len_and_size(), (1, 57));
        assert_eq!(
            decode(&mut d, "8286 84be 5808 6e6f 2d63 6163 6865"),
            pairs(REQ2)
        );
        assert_eq!(d.table_len_and_size(), (2, 110));
        assert_eq!(
            decode(
                &mut d,
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"
            ),
            pairs(REQ3)
        );
        assert_eq!(d.table_len_and_size(), (3, 164));
    }

    // Invariant: RFC 7541 C.4 (requests, Huffman) through one decoder.
    #[test]
    fn requests_c4() {
        let mut d = Decoder::new();
        assert_eq!(
            decode(&mut d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
            pairs(REQ1)
        );
        assert_eq!(decode(&mut d, "8286 84be 5886 a8eb 1064 9cbf"), pairs(REQ2));
        assert_eq!(
            decode(
                &mut d,
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"
            ),
            pairs(REQ3)
        );
        assert_eq!(d.table_len_and_size(), (3, 164));
    }

    const RESP1: &[(&str, &str)] = &[
        (":status", "302"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ];
    const RESP2: &[(&str, &str)] = &[
        (":status", "307"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ];
    const RESP3: &[(&str, &str)] = &[
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        (
            "set-cookie",
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        ),
    ];

    /// A decoder whose table capacity is 256, as in C.5/C.6 (the encoder's
    /// capacity follows SETTINGS_HEADER_TABLE_SIZE = 256 there).
    fn decoder_256() -> Decoder {
        let mut d = Decoder::new();
        d.set_size_limit(Some(256));
        d.table.size_update(256).unwrap();
        d
    }

    // Invariant: RFC 7541 C.5 (responses, eviction, no Huffman).
    #[test]
    fn responses_c5() {
        let mut d = decoder_256();
        assert_eq!(
            decode(
                &mut d,
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                 6c65 2e63 6f6d"
            ),
            pairs(RESP1)
        );
        assert_eq!(d.table_len_and_size(), (4, 222));
        assert_eq!(decode(&mut d, "4803 3330 37c1 c0bf"), pairs(RESP2));
        assert_eq!(d.table_len_and_size(), (4, 222));
        assert_eq!(
            decode(
                &mut d,
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                 3d31"
            ),
            pairs(RESP3)
        );
        assert_eq!(d.table_len_and_size(), (3, 215));
    }

    // Invariant: RFC 7541 C.6 (responses, eviction, Huffman).
    #[test]
    fn responses_c6() {
        let mut d = decoder_256();
        assert_eq!(
            decode(
                &mut d,
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"
            ),
            pairs(RESP1)
        );
        assert_eq!(decode(&mut d, "4883 640e ffc1 c0bf"), pairs(RESP2));
        assert_eq!(
            decode(
                &mut d,
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                 9587 3160 65c0 03ed 4ee5 b106 3d50 07"
            ),
            pairs(RESP3)
        );
        assert_eq!(d.table_len_and_size(), (3, 215));
    }

    // Invariant: joined mid-connection, a reference to a pre-existing entry
    // is Unknown (never invented), a literal with indexing still decodes and
    // is immediately resolvable at index 62 even with unknown entries behind
    // it, and a literal naming an unknown entry keeps its known value.
    #[test]
    fn mid_stream_unknowns() {
        let mut d = Decoder::mid_stream(DEFAULT_RETAIN_CAP, None);
        // C.3.2's block references index 62 (":authority: www.example.com"
        // from C.3.1, which we never saw).
        assert_eq!(
            decode(&mut d, "8286 84be 5808 6e6f 2d63 6163 6865"),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("?", "?"),
                ("cache-control", "no-cache"),
            ])
        );
        // Now index 62 is the entry we saw inserted; 63 is still unknown.
        assert_eq!(
            decode(&mut d, "be bf"),
            pairs(&[("cache-control", "no-cache"), ("?", "?")])
        );
        // Literal with indexing, name from unknown index 63: value known,
        // entry inserted with an unknown name.
        assert_eq!(decode(&mut d, "7f00 0178"), pairs(&[("?", "x")]));
        assert_eq!(
            decode(&mut d, "be bf"),
            pairs(&[("?", "x"), ("cache-control", "no-cache")])
        );
        assert!(!d.is_complete());
    }

    // Invariant: size updates are only allowed before the first field, and
    // not above the acknowledged limit.
    #[test]
    fn size_update_rules() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        assert_eq!(
            d.decode(&[0x82, 0x20], &mut out),
            Err(HpackError::SizeUpdateAfterField)
        );
        let mut d = Decoder::new();
        // 0x3f e1 1f = 31 + 97 + (31 << 7) = 4096: fine; 4097 is not.
        assert!(d.decode(&[0x3f, 0xe1, 0x1f], &mut out).is_ok());
        assert!(matches!(
            d.decode(&[0x3f, 0xe2, 0x1f], &mut out),
            Err(HpackError::SizeUpdateTooLarge { .. })
        ));
    }

    // Invariant: truncated and out-of-range input is an error, not a panic
    // or a made-up field.
    #[test]
    fn malformed_blocks() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(&[0x80], &mut out), Err(HpackError::ZeroIndex));
        assert!(matches!(
            d.decode(&[0xbe], &mut out),
            Err(HpackError::InvalidIndex { index: 62, .. })
        ));
        assert_eq!(
            d.decode(&[0x40, 0x05, b'a'], &mut out),
            Err(HpackError::Truncated)
        );
        assert_eq!(
            d.decode(&[0x00, 0x81, 0xff], &mut out),
            Err(HpackError::Huffman(HuffmanError::Padding))
        );
    }
}

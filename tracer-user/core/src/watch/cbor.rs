//! CBOR (RFC 8949) watch events, as a Kubernetes apiserver with
//! `CBORServingAndStorage` writes them (`application/cbor-seq`, RFC 8742:
//! items back to back, no length prefix). Seen on a v1.36 apiserver: every
//! item begins with the self-described tag 55799 (`d9 d9 f7`), map keys
//! are byte strings (major type 2), a WatchEvent is a map
//! `{object, type}`, and key order is not fixed.
//!
//! A walker, not a decoder: [`item_len`] finds where an item ends without
//! copying anything out, and [`event_meta`] reads only the metadata
//! (type, kind, apiVersion, namespace, name, resourceVersion, Status code
//! and reason, the initial-events-end annotation), stepping over every
//! other value (Secret data included) by its length. Text and byte-string
//! keys, definite and indefinite lengths, and tags are all accepted. The
//! stream decoder (`stream.rs`) buffers an item until it is whole and
//! finds boundaries after a gap by the self-described tag.

use thiserror::Error;

use super::event::{EventMeta, EventType, MAX_FIELD_BYTES, MetaString};

/// The self-described CBOR tag (55799) each item of an apiserver's
/// `cbor-seq` stream begins with: a boundary signature for resync.
pub const SELF_DESCRIBED: [u8; 3] = [0xd9, 0xd9, 0xf7];

/// Where a CBOR watch event surely begins in `buf`: the self-described
/// tag, a map of two entries (or of indefinite length), and a first key
/// `object` or `type` as a byte or text string. What tells a stream joined
/// mid-way, its response headers unseen, to be CBOR: JSON never holds
/// these bytes (`d9 d9` is not UTF-8), and a protobuf stream only inside a
/// value that is itself such an event. An opening split between two
/// pieces is missed; the next event's is found.
#[must_use]
pub fn find_event_start(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buf[from..]
        .windows(SELF_DESCRIBED.len())
        .position(|w| w == SELF_DESCRIBED)
    {
        let at = from + i;
        let rest = &buf[at + SELF_DESCRIBED.len()..];
        let key = |k: &[u8]| {
            let len = k.len() as u8;
            rest.len() > 2 + k.len()
                && matches!(rest[0], 0xa2 | 0xbf)
                && (rest[1] == (0x40 | len) || rest[1] == (0x60 | len))
                && &rest[2..2 + k.len()] == k
        };
        if key(b"object") || key(b"type") {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Deepest nesting walked; an object deeper than this is refused rather
/// than risk the stack (Kubernetes objects are far shallower).
const MAX_DEPTH: usize = 128;

/// Why bytes are not (yet) a CBOR item.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum CborError {
    /// The item continues past the bytes given.
    #[error("the item continues past the bytes given")]
    Incomplete,
    /// Not well-formed CBOR (a reserved additional-information value, a
    /// stray break, a chunk of the wrong type in an indefinite string).
    #[error("not well-formed CBOR at byte {at}")]
    Malformed { at: usize },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// An item's head: major type, and its argument (a length, a count, a
/// value, a tag), or `None` for an indefinite length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    major: u8,
    arg: Option<u64>,
    /// Bytes the head took.
    len: usize,
}

fn head(buf: &[u8], at: usize) -> Result<Head, CborError> {
    let first = *buf.get(at).ok_or(CborError::Incomplete)?;
    let (major, info) = (first >> 5, first & 0x1f);
    let extra = match info {
        0..=23 => {
            return Ok(Head {
                major,
                arg: Some(u64::from(info)),
                len: 1,
            });
        }
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        // Indefinite length: strings, arrays, maps; 0xff (break) in 7.
        31 if matches!(major, 2..=5 | 7) => {
            return Ok(Head {
                major,
                arg: None,
                len: 1,
            });
        }
        _ => return Err(CborError::Malformed { at }),
    };
    let bytes = buf
        .get(at + 1..at + 1 + extra)
        .ok_or(CborError::Incomplete)?;
    let arg = bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
    Ok(Head {
        major,
        arg: Some(arg),
        len: 1 + extra,
    })
}

/// The length of the complete data item starting at `buf[0]`.
pub fn item_len(buf: &[u8]) -> Result<usize, CborError> {
    skip(buf, 0, 0)
}

/// Where the item at `at` ends.
fn skip(buf: &[u8], at: usize, depth: usize) -> Result<usize, CborError> {
    if depth > MAX_DEPTH {
        return Err(CborError::TooDeep);
    }
    let h = head(buf, at)?;
    let mut pos = at + h.len;
    match (h.major, h.arg) {
        (0 | 1, Some(_)) => Ok(pos),
        (2 | 3, Some(n)) => {
            let end = pos
                .checked_add(usize::try_from(n).map_err(|_| CborError::Incomplete)?)
                .ok_or(CborError::Malformed { at })?;
            if end > buf.len() {
                return Err(CborError::Incomplete);
            }
            Ok(end)
        }
        // Indefinite string: definite chunks of the same type, then break.
        (2 | 3, None) => loop {
            if *buf.get(pos).ok_or(CborError::Incomplete)? == 0xff {
                return Ok(pos + 1);
            }
            let chunk = head(buf, pos)?;
            if chunk.major != h.major || chunk.arg.is_none() {
                return Err(CborError::Malformed { at: pos });
            }
            pos = skip(buf, pos, depth + 1)?;
        },
        (4 | 5, Some(n)) => {
            let items = if h.major == 5 { n.saturating_mul(2) } else { n };
            for _ in 0..items {
                pos = skip(buf, pos, depth + 1)?;
            }
            Ok(pos)
        }
        (4 | 5, None) => loop {
            if *buf.get(pos).ok_or(CborError::Incomplete)? == 0xff {
                return Ok(pos + 1);
            }
            pos = skip(buf, pos, depth + 1)?;
        },
        // A tag wraps one item.
        (6, Some(_)) => skip(buf, pos, depth + 1),
        // Simple values and floats: the head is all (a stray break is not).
        (7, Some(_)) => Ok(pos),
        _ => Err(CborError::Malformed { at }),
    }
}

/// A string's bytes (definite length only: the apiserver writes no
/// indefinite strings, and metadata in one is not read).
fn string_at(buf: &[u8], at: usize) -> Option<&[u8]> {
    let h = head(buf, at).ok()?;
    if !matches!(h.major, 2 | 3) {
        return None;
    }
    let start = at + h.len;
    buf.get(start..start + usize::try_from(h.arg?).ok()?)
}

/// The map at `at` (after any tags), as `(key, value offset)` pairs
/// visited in order; `visit` sees each key's bytes and the value's offset.
fn each_entry(
    buf: &[u8],
    at: usize,
    depth: usize,
    mut visit: impl FnMut(&[u8], usize) -> Result<(), CborError>,
) -> Result<(), CborError> {
    let mut at = at;
    let mut h = head(buf, at)?;
    while h.major == 6 {
        at += h.len;
        h = head(buf, at)?;
    }
    if h.major != 5 {
        return Err(CborError::Malformed { at });
    }
    let mut pos = at + h.len;
    let mut left = h.arg;
    loop {
        match left {
            Some(0) => return Ok(()),
            Some(n) => left = Some(n - 1),
            None if *buf.get(pos).ok_or(CborError::Incomplete)? == 0xff => return Ok(()),
            None => {}
        }
        let value = skip(buf, pos, depth + 1)?;
        if let Some(key) = string_at(buf, pos) {
            visit(key, value)?;
        }
        pos = skip(buf, value, depth + 1)?;
    }
}

/// A metadata string at `at`, or `None` when it is no string or too long
/// (counted in `too_long`).
fn meta_string(buf: &[u8], at: usize, too_long: &mut u32) -> MetaString {
    match string_at(buf, at) {
        Some(s) if s.len() <= MAX_FIELD_BYTES => {
            MetaString::from(String::from_utf8_lossy(s).as_ref())
        }
        Some(_) => {
            *too_long += 1;
            MetaString::default()
        }
        None => MetaString::default(),
    }
}

/// An integer at `at` (major 0 or 1), if it fits an `i32`.
fn int_at(buf: &[u8], at: usize) -> Option<i32> {
    let h = head(buf, at).ok()?;
    let v = i64::try_from(h.arg?).ok()?;
    match h.major {
        0 => i32::try_from(v).ok(),
        1 => i32::try_from(-1 - v).ok(),
        _ => None,
    }
}

/// One watch event of a `cbor-seq` stream: `item` is a whole item (see
/// [`item_len`]), whose bytes were seen at `t_first_byte` and
/// `t_last_byte`. `None` when the item names no event type.
pub fn decode_event(
    item: &[u8],
    t_first_byte: u64,
    t_last_byte: u64,
) -> Result<Option<super::WatchEvent>, CborError> {
    let meta = event_meta(item)?;
    Ok(meta.into_event(item.len() as u64, t_first_byte, t_last_byte, false))
}

/// The metadata of one watch event: `item` is a whole item.
pub(crate) fn event_meta(item: &[u8]) -> Result<EventMeta, CborError> {
    let mut meta = EventMeta::default();
    let mut object = None;
    each_entry(item, 0, 0, |key, value| {
        match key {
            b"type" => {
                if let Some(t) = string_at(item, value) {
                    meta.event_type = Some(EventType::from_wire(t));
                }
            }
            b"object" => object = Some(value),
            _ => {}
        }
        Ok(())
    })?;
    if let Some(object) = object {
        object_meta(item, object, &mut meta)?;
    }
    Ok(meta)
}

/// The embedded object's kind, apiVersion and metadata (or a Status's code
/// and reason).
fn object_meta(buf: &[u8], at: usize, meta: &mut EventMeta) -> Result<(), CborError> {
    let mut too_long = 0;
    let mut metadata = None;
    let (mut code, mut reason) = (None, None);
    each_entry(buf, at, 1, |key, value| {
        match key {
            b"kind" => meta.kind = meta_string(buf, value, &mut too_long),
            b"apiVersion" => meta.api_version = meta_string(buf, value, &mut too_long),
            b"metadata" => metadata = Some(value),
            b"code" => code = int_at(buf, value),
            b"reason" => {
                reason = string_at(buf, value)
                    .filter(|s| s.len() <= MAX_FIELD_BYTES)
                    .map(|s| String::from_utf8_lossy(s).into_owned());
            }
            _ => {}
        }
        Ok(())
    })?;
    if let Some(metadata) = metadata {
        each_entry(buf, metadata, 2, |key, value| {
            match key {
                b"name" => meta.name = meta_string(buf, value, &mut too_long),
                b"namespace" => meta.namespace = meta_string(buf, value, &mut too_long),
                b"resourceVersion" => {
                    meta.resource_version = meta_string(buf, value, &mut too_long);
                }
                b"annotations" => {
                    // Not a map: no annotations to read.
                    let _ = each_entry(buf, value, 3, |key, value| {
                        if key == b"k8s.io/initial-events-end" {
                            meta.initial_events_end = string_at(buf, value) == Some(b"true");
                        }
                        Ok(())
                    });
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    meta.error_code = code;
    meta.error_reason = reason;
    meta.fields_too_long = too_long;
    Ok(())
}

#[cfg(test)]
mod tests;

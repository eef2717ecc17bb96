//! Metadata of one protobuf watch event, read incrementally.
//!
//! A frame body is `metav1.WatchEvent{type=1, object=2 RawExtension{raw=1}}`
//! where `raw` is `"k8s\0"` + `runtime.Unknown{typeMeta=1 {apiVersion=1,
//! kind=2}, raw=2 <object>, contentEncoding=3, contentType=4}` and the
//! object's field 1 is its `ObjectMeta` (or `ListMeta` for a Status).
//!
//! The walker is fed the body in arbitrary pieces and keeps only a stack of
//! message ends and the few short strings it wants. Fields it does not need
//! are skipped by length, across pieces, without being buffered: the object
//! bytes (Secret data among them) are never copied, and a split event costs
//! no reassembly. Work per event is proportional to the number of fields on
//! the path to the metadata, not to the event's size.

use super::{
    event::{EventMeta, EventType, MAX_FIELD_BYTES, MetaString},
    json::INITIAL_EVENTS_END,
};

/// `protoEncodingPrefix`: marks a `runtime.Unknown` envelope.
pub(crate) const MAGIC: [u8; 4] = *b"k8s\0";

/// The messages on the path to the metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    WatchEvent,
    RawExtension,
    /// `runtime.Unknown`, after the magic.
    Unknown,
    /// `runtime.TypeMeta` (apiVersion=1, kind=2; the reverse of metav1's).
    TypeMeta,
    /// The typed object (`v1.Pod`, `metav1.Status`, ...).
    Object,
    ObjectMeta,
    /// `metav1.ListMeta` (Status, Table and lists): resourceVersion=2.
    ListMeta,
    /// One `map<string,string>` entry of `ObjectMeta.annotations`.
    Annotation,
}

/// Deepest path: event, raw extension, unknown, object, metadata, entry.
const MAX_DEPTH: usize = 6;

/// Strings the walker keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Type,
    ApiVersion,
    Kind,
    Name,
    Namespace,
    ResourceVersion,
    Reason,
    AnnotationKey,
    AnnotationValue,
}

const SLOTS: usize = 9;

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Reading a field tag.
    Tag,
    /// Reading the length of a length-delimited field.
    Len { field: u32 },
    /// Reading a varint value; `code` when it is a Status `code`.
    Varint { code: bool },
    /// Stepping over bytes we do not need.
    Skip(u64),
    /// Copying a wanted string.
    Capture { slot: Slot, remaining: u64 },
    /// Checking the `k8s\0` magic; the count matched so far.
    Magic(u8),
}

/// Progress of [`Walker::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Walk {
    /// The body is not complete yet.
    NeedMore,
    /// The body is complete and well-formed.
    Done,
    /// The body is not a WatchEvent (bad wire type, a length past its
    /// enclosing message, an overlong varint, or no `type`).
    Malformed,
}

/// Incremental reader of one frame body.
#[derive(Debug)]
pub(crate) struct Walker {
    /// Body bytes consumed.
    pos: u64,
    /// End offsets (in the body) of the open messages, outermost first.
    stack: [(Msg, u64); MAX_DEPTH],
    depth: usize,
    step: Step,
    /// Partial varint.
    var: u64,
    shift: u32,
    bufs: [Vec<u8>; SLOTS],
    seen: [bool; SLOTS],
    too_long: u32,
    code: Option<i32>,
    initial_events_end: bool,
    /// The object is a Status (decides the schema of its fields).
    status: bool,
}

impl Default for Walker {
    fn default() -> Self {
        Self {
            pos: 0,
            stack: [(Msg::WatchEvent, 0); MAX_DEPTH],
            depth: 0,
            step: Step::Tag,
            var: 0,
            shift: 0,
            bufs: Default::default(),
            seen: [false; SLOTS],
            too_long: 0,
            code: None,
            initial_events_end: false,
            status: false,
        }
    }
}

impl Walker {
    /// Starts a body of `len` bytes.
    pub(crate) fn start(&mut self, len: u64) {
        self.pos = 0;
        self.stack[0] = (Msg::WatchEvent, len);
        self.depth = 1;
        self.step = Step::Tag;
        self.var = 0;
        self.shift = 0;
        for b in &mut self.bufs {
            b.clear();
        }
        self.seen = [false; SLOTS];
        self.too_long = 0;
        self.code = None;
        self.initial_events_end = false;
        self.status = false;
    }

    /// Body bytes consumed so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.pos
    }

    /// Consumes bytes of the body (never past its end). Returns how many
    /// were used and the state; after `Done` or `Malformed` it uses nothing.
    pub(crate) fn feed(&mut self, data: &[u8]) -> (usize, Walk) {
        let mut i = 0;
        loop {
            let end = self.stack[self.depth.max(1) - 1].1;
            // Steps with nothing left finish without input (empty strings
            // and messages are common: go-to-protobuf writes every field).
            match self.step {
                Step::Skip(0) => self.step = Step::Tag,
                Step::Capture { slot, remaining: 0 } => {
                    self.seen[slot as usize] = true;
                    self.step = Step::Tag;
                }
                Step::Magic(_) if self.pos == end => {
                    // Shorter than the magic: not a `runtime.Unknown`.
                    self.step = Step::Tag;
                }
                _ => {}
            }
            if let Step::Tag = self.step
                && self.shift == 0
            {
                // Close every message that ends here.
                while self.depth > 0 && self.pos == self.stack[self.depth - 1].1 {
                    self.depth -= 1;
                    self.close(self.stack[self.depth].0);
                }
                if self.depth == 0 {
                    let ok = self.seen[Slot::Type as usize];
                    return (i, if ok { Walk::Done } else { Walk::Malformed });
                }
            }
            let end = self.stack[self.depth - 1].1;
            let in_varint = matches!(
                self.step,
                Step::Tag | Step::Len { .. } | Step::Varint { .. }
            );
            // A varint may not run past its message.
            if in_varint && self.pos >= end {
                return (i, Walk::Malformed);
            }
            if i == data.len() {
                return (i, Walk::NeedMore);
            }
            match self.step {
                Step::Tag | Step::Len { .. } | Step::Varint { .. } => {
                    let b = data[i];
                    i += 1;
                    self.pos += 1;
                    if self.shift >= 64 || (self.shift == 63 && b > 1) {
                        return (i, Walk::Malformed);
                    }
                    self.var |= u64::from(b & 0x7f) << self.shift;
                    if b & 0x80 != 0 {
                        self.shift += 7;
                        continue;
                    }
                    let v = self.var;
                    self.var = 0;
                    self.shift = 0;
                    if !self.on_varint(v, end) {
                        return (i, Walk::Malformed);
                    }
                }
                Step::Skip(n) => {
                    let take = n.min((data.len() - i) as u64);
                    i += take as usize;
                    self.pos += take;
                    self.step = if take == n {
                        Step::Tag
                    } else {
                        Step::Skip(n - take)
                    };
                }
                Step::Capture { slot, remaining } => {
                    let take = remaining.min((data.len() - i) as u64) as usize;
                    let buf = &mut self.bufs[slot as usize];
                    if buf.len() + take <= MAX_FIELD_BYTES {
                        buf.extend_from_slice(&data[i..i + take]);
                    }
                    i += take;
                    self.pos += take as u64;
                    let left = remaining - take as u64;
                    if left == 0 {
                        self.step = Step::Tag;
                        self.seen[slot as usize] = true;
                    } else {
                        self.step = Step::Capture {
                            slot,
                            remaining: left,
                        };
                    }
                }
                Step::Magic(k) => {
                    if self.pos == end || data[i] != MAGIC[k as usize] {
                        // Not a `runtime.Unknown`: an encoding we do not
                        // read. The event is kept, without kind or metadata.
                        self.step = Step::Skip(end - self.pos);
                        continue;
                    }
                    i += 1;
                    self.pos += 1;
                    self.step = if k == 3 {
                        Step::Tag
                    } else {
                        Step::Magic(k + 1)
                    };
                }
            }
        }
    }

    /// Acts on a completed varint; false if the body is malformed.
    fn on_varint(&mut self, v: u64, end: u64) -> bool {
        match self.step {
            Step::Tag => {
                let Ok(field) = u32::try_from(v >> 3) else {
                    return false;
                };
                if field == 0 {
                    return false;
                }
                let msg = self.stack[self.depth - 1].0;
                self.step = match v & 7 {
                    0 => Step::Varint {
                        code: msg == Msg::Object && self.status && field == 6,
                    },
                    1 | 5 => {
                        let n = if v & 7 == 1 { 8 } else { 4 };
                        if self.pos + n > end {
                            return false;
                        }
                        Step::Skip(n)
                    }
                    2 => Step::Len { field },
                    // Groups (3, 4) are not used by Kubernetes; 6 and 7 do
                    // not exist.
                    _ => return false,
                };
            }
            Step::Varint { code } => {
                if code {
                    // int32 is sign-extended to 64 bits on the wire.
                    self.code = Some(v as i64 as i32);
                }
                self.step = Step::Tag;
            }
            Step::Len { field } => {
                if v > end - self.pos {
                    return false;
                }
                self.open(field, v);
            }
            _ => {}
        }
        true
    }

    /// Decides what to do with a length-delimited field of `len` bytes.
    fn open(&mut self, field: u32, len: u64) {
        let msg = self.stack[self.depth - 1].0;
        let end = self.pos + len;
        let enter = |s: &mut Self, m: Msg, step: Step| {
            s.stack[s.depth] = (m, end);
            s.depth += 1;
            s.step = step;
        };
        let capture = |s: &mut Self, slot: Slot| {
            s.bufs[slot as usize].clear();
            s.seen[slot as usize] = false;
            if len as usize > MAX_FIELD_BYTES {
                s.too_long += 1;
            }
            s.step = Step::Capture {
                slot,
                remaining: len,
            };
        };
        match (msg, field) {
            (Msg::WatchEvent, 1) => capture(self, Slot::Type),
            (Msg::WatchEvent, 2) => enter(self, Msg::RawExtension, Step::Tag),
            (Msg::RawExtension, 1) => enter(self, Msg::Unknown, Step::Magic(0)),
            (Msg::Unknown, 1) => enter(self, Msg::TypeMeta, Step::Tag),
            (Msg::Unknown, 2) => {
                // TypeMeta comes first (fields are written in order), so
                // the kind is known; an ERROR event carries a Status even
                // if it were not.
                let kind = &self.bufs[Slot::Kind as usize];
                let kind_known = self.seen[Slot::Kind as usize];
                self.status = if kind_known {
                    kind == b"Status"
                } else {
                    self.bufs[Slot::Type as usize] == b"ERROR"
                };
                enter(self, Msg::Object, Step::Tag);
            }
            (Msg::TypeMeta, 1) => capture(self, Slot::ApiVersion),
            (Msg::TypeMeta, 2) => capture(self, Slot::Kind),
            (Msg::Object, 1) => {
                let kind = &self.bufs[Slot::Kind as usize];
                // Status, Table and *List carry a ListMeta at field 1.
                let list_meta =
                    self.status || kind == b"Table" || (kind.ends_with(b"List") && kind.len() > 4);
                let m = if list_meta {
                    Msg::ListMeta
                } else {
                    Msg::ObjectMeta
                };
                enter(self, m, Step::Tag);
            }
            (Msg::Object, 4) if self.status => capture(self, Slot::Reason),
            (Msg::ObjectMeta, 1) => capture(self, Slot::Name),
            (Msg::ObjectMeta, 3) => capture(self, Slot::Namespace),
            (Msg::ObjectMeta, 6) | (Msg::ListMeta, 2) => capture(self, Slot::ResourceVersion),
            (Msg::ObjectMeta, 12) => {
                self.bufs[Slot::AnnotationKey as usize].clear();
                self.seen[Slot::AnnotationKey as usize] = false;
                self.seen[Slot::AnnotationValue as usize] = false;
                enter(self, Msg::Annotation, Step::Tag);
            }
            (Msg::Annotation, 1) => capture(self, Slot::AnnotationKey),
            // Only the one annotation value we need is read; others (such
            // as last-applied-configuration) are content and can be large.
            (Msg::Annotation, 2)
                if self.seen[Slot::AnnotationKey as usize]
                    && self.bufs[Slot::AnnotationKey as usize] == INITIAL_EVENTS_END =>
            {
                capture(self, Slot::AnnotationValue);
            }
            _ => self.step = Step::Skip(len),
        }
    }

    fn close(&mut self, msg: Msg) {
        if msg == Msg::Annotation
            && self.seen[Slot::AnnotationValue as usize]
            && self.bufs[Slot::AnnotationValue as usize] == b"true"
        {
            self.initial_events_end = true;
        }
    }

    /// The metadata read, after [`Walk::Done`]. `None` if a kept string is
    /// not UTF-8 (Kubernetes names are ASCII: such bytes are not a real
    /// event).
    pub(crate) fn take_meta(&mut self) -> Option<EventMeta> {
        // Each slot's buffer keeps its capacity for the next event; short
        // strings are kept inline.
        let mut take = |slot: Slot| -> Option<MetaString> {
            let b = &mut self.bufs[slot as usize];
            let s = if b.len() > MAX_FIELD_BYTES {
                Some(MetaString::default())
            } else {
                std::str::from_utf8(b).ok().map(MetaString::from)
            };
            b.clear();
            s
        };
        let t = take(Slot::Type)?;
        let meta = EventMeta {
            event_type: Some(EventType::from_wire(t.as_bytes())),
            api_version: take(Slot::ApiVersion)?,
            kind: take(Slot::Kind)?,
            name: take(Slot::Name)?,
            namespace: take(Slot::Namespace)?,
            resource_version: take(Slot::ResourceVersion)?,
            error_reason: if self.seen[Slot::Reason as usize] {
                Some(take(Slot::Reason)?.into_string())
            } else {
                None
            },
            error_code: self.code,
            initial_events_end: self.initial_events_end,
            fields_too_long: self.too_long,
        };
        Some(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::fixture::{ObjectSpec, encode_protobuf_body};

    fn walk_all(body: &[u8], split: usize) -> (Walk, Option<EventMeta>) {
        let mut w = Walker::default();
        w.start(body.len() as u64);
        let mut state = Walk::NeedMore;
        for piece in body.chunks(split.max(1)) {
            let (used, s) = w.feed(piece);
            state = s;
            if s != Walk::NeedMore {
                assert_eq!(used, piece.len(), "the body ends with the last piece");
                break;
            }
            assert_eq!(used, piece.len());
        }
        if body.is_empty() {
            state = w.feed(&[]).1;
        }
        let meta = (state == Walk::Done).then(|| w.take_meta()).flatten();
        (state, meta)
    }

    #[test]
    fn pod_event_at_every_split() {
        let spec = ObjectSpec::pod("ADDED", "default", "nginx", "10596");
        let body = encode_protobuf_body(&spec);
        for split in 1..body.len() + 1 {
            let (state, meta) = walk_all(&body, split);
            assert_eq!(state, Walk::Done, "split {split}");
            let m = meta.unwrap();
            assert_eq!(m.event_type, Some(EventType::Added));
            assert_eq!(m.kind, "Pod");
            assert_eq!(m.api_version, "v1");
            assert_eq!(m.namespace, "default");
            assert_eq!(m.name, "nginx");
            assert_eq!(m.resource_version, "10596");
            assert!(!m.initial_events_end);
        }
    }

    #[test]
    fn initial_events_end_annotation() {
        let mut spec = ObjectSpec::pod("BOOKMARK", "", "", "12746");
        spec.annotations = vec![
            ("a".into(), "true".into()),
            (
                String::from_utf8(INITIAL_EVENTS_END.to_vec()).unwrap(),
                "true".into(),
            ),
        ];
        let (state, m) = walk_all(&encode_protobuf_body(&spec), 7);
        assert_eq!(state, Walk::Done);
        let m = m.unwrap();
        assert!(m.initial_events_end);
        assert_eq!(m.event_type, Some(EventType::Bookmark));

        spec.annotations = vec![("k8s.io/initial-events-end".into(), "false".into())];
        let (_, m) = walk_all(&encode_protobuf_body(&spec), 3);
        assert!(!m.unwrap().initial_events_end);
    }

    #[test]
    fn error_status_410() {
        let spec = ObjectSpec::status_error(410, "Expired");
        let (state, m) = walk_all(&encode_protobuf_body(&spec), 5);
        assert_eq!(state, Walk::Done);
        let m = m.unwrap();
        assert_eq!(m.kind, "Status");
        assert_eq!(m.error_code, Some(410));
        assert_eq!(m.error_reason.as_deref(), Some("Expired"));
        assert_eq!(m.name, "");
    }

    #[test]
    fn negative_int32_code() {
        let spec = ObjectSpec::status_error(-1, "X");
        let (_, m) = walk_all(&encode_protobuf_body(&spec), 100);
        assert_eq!(m.unwrap().error_code, Some(-1));
    }

    #[test]
    fn byte_literal_minimal_event() {
        // WatchEvent{type:"DELETED", object:{raw:"k8s\0" Unknown{
        //   typeMeta{apiVersion:"v1", kind:"Pod"},
        //   raw: Pod{metadata{name:"a", namespace:"b", resourceVersion:"9"}}}}}
        let body: &[u8] = &[
            0x0A, 7, b'D', b'E', b'L', b'E', b'T', b'E', b'D', // type
            0x12, 32, // object: RawExtension
            0x0A, 30, // raw
            b'k', b'8', b's', 0, // magic
            0x0A, 9, 0x0A, 2, b'v', b'1', 0x12, 3, b'P', b'o', b'd', // typeMeta
            0x12, 13, 0x0A, 11, // Unknown.raw = Pod, Pod.metadata
            0x0A, 1, b'a', 0x1A, 1, b'b', 0x32, 1, b'9', // name, namespace, rv
            0x38, 0x05, // generation: a varint, skipped
        ];
        assert_eq!(body.len(), 43);
        let (state, m) = walk_all(body, 1);
        assert_eq!(state, Walk::Done);
        let m = m.unwrap();
        assert_eq!(m.event_type, Some(EventType::Deleted));
        assert_eq!((m.name.as_str(), m.namespace.as_str()), ("a", "b"));
        assert_eq!(m.resource_version, "9");
    }

    #[test]
    fn malformed_bodies() {
        // Length past the end of the enclosing message.
        let (s, _) = walk_all(&[0x0A, 9, b'A'], 1);
        assert_eq!(s, Walk::Malformed);
        // Group wire type.
        let (s, _) = walk_all(&[0x0B, 0x0C], 1);
        assert_eq!(s, Walk::Malformed);
        // Field number 0.
        let (s, _) = walk_all(&[0x02, 0x00], 1);
        assert_eq!(s, Walk::Malformed);
        // No type at all.
        let (s, _) = walk_all(&[0x12, 0x00], 1);
        assert_eq!(s, Walk::Malformed);
        let (s, _) = walk_all(&[], 1);
        assert_eq!(s, Walk::Malformed);
        // Varint running past the body.
        let (s, _) = walk_all(&[0x0A, 0x00, 0x10, 0x80], 1);
        assert_eq!(s, Walk::Malformed);
        // 11-byte varint.
        let mut v = vec![0x0A, 0, 0x10];
        v.extend([0xFF; 10]);
        v.push(0x01);
        let (s, _) = walk_all(&v, 1);
        assert_eq!(s, Walk::Malformed);
        // fixed64 past the end.
        let (s, _) = walk_all(&[0x0A, 0, 0x11, 1, 2], 1);
        assert_eq!(s, Walk::Malformed);
    }

    #[test]
    fn object_without_magic_is_kept_without_metadata() {
        let body = [
            0x0A, 5, b'A', b'D', b'D', b'E', b'D', 0x12, 4, 0x0A, 2, b'{', b'}',
        ];
        let (s, m) = walk_all(&body, 2);
        assert_eq!(s, Walk::Done);
        let m = m.unwrap();
        assert_eq!(m.event_type, Some(EventType::Added));
        assert_eq!(m.kind, "");
    }

    #[test]
    fn table_objects_read_list_meta() {
        let mut spec = ObjectSpec::pod("ADDED", "", "", "77");
        spec.kind = "Table".into();
        spec.api_version = "meta.k8s.io/v1".into();
        let (_, m) = walk_all(&encode_protobuf_body(&spec), 4);
        let m = m.unwrap();
        // The fixture writes ListMeta for a Table: resourceVersion at 2.
        assert_eq!(m.resource_version, "77");
    }
}

//! Encoders that build watch streams the way kube-apiserver writes them,
//! for tests, fuzzing and benchmarks. Never used on the capture path.
//!
//! The protobuf layout follows the go-to-protobuf marshalers: every field of
//! a message written in ascending field order, empty strings included.

/// A minimal protobuf writer (proto2/proto3 wire format).
#[derive(Clone, Debug, Default)]
pub struct ProtoWriter {
    pub buf: Vec<u8>,
}

impl ProtoWriter {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a base-128 varint.
    pub fn raw_varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
        self
    }

    /// A varint field (wire type 0).
    pub fn varint(&mut self, field: u32, v: u64) -> &mut Self {
        self.raw_varint(u64::from(field) << 3);
        self.raw_varint(v)
    }

    /// A length-delimited field (wire type 2).
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.raw_varint(u64::from(field) << 3 | 2);
        self.raw_varint(b.len() as u64);
        self.buf.extend_from_slice(b);
        self
    }

    /// A string field.
    pub fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    /// A nested message field built by `f`.
    pub fn message(&mut self, field: u32, f: impl FnOnce(&mut ProtoWriter)) -> &mut Self {
        let mut inner = ProtoWriter::new();
        f(&mut inner);
        self.bytes(field, &inner.buf)
    }

    /// A fixed64 field (wire type 1).
    pub fn fixed64(&mut self, field: u32, v: u64) -> &mut Self {
        self.raw_varint(u64::from(field) << 3 | 1);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A fixed32 field (wire type 5).
    pub fn fixed32(&mut self, field: u32, v: u32) -> &mut Self {
        self.raw_varint(u64::from(field) << 3 | 5);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
}

/// What one test event carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    pub event_type: String,
    pub kind: String,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// Status `code` and `reason` (used when `kind` is `Status`).
    pub status_code: i32,
    pub status_reason: String,
    /// Opaque object content (think Secret data): it must never show up in
    /// decoder output.
    pub payload: Vec<u8>,
}

impl ObjectSpec {
    /// A Pod event.
    #[must_use]
    pub fn pod(event_type: &str, namespace: &str, name: &str, rv: &str) -> Self {
        Self {
            event_type: event_type.into(),
            kind: "Pod".into(),
            api_version: "v1".into(),
            namespace: namespace.into(),
            name: name.into(),
            resource_version: rv.into(),
            labels: vec![("app".into(), "web".into())],
            annotations: vec![],
            status_code: 0,
            status_reason: String::new(),
            payload: b"nginx:1.27".to_vec(),
        }
    }

    /// An ERROR event carrying a failure `Status`.
    #[must_use]
    pub fn status_error(code: i32, reason: &str) -> Self {
        Self {
            event_type: "ERROR".into(),
            kind: "Status".into(),
            api_version: "v1".into(),
            namespace: String::new(),
            name: String::new(),
            resource_version: String::new(),
            labels: vec![],
            annotations: vec![],
            status_code: code,
            status_reason: reason.into(),
            payload: b"too old resource version: 123 (456)".to_vec(),
        }
    }

    fn is_status(&self) -> bool {
        self.kind == "Status"
    }

    fn has_list_meta(&self) -> bool {
        self.is_status() || self.kind == "Table"
    }
}

/// The object bytes (what `runtime.Unknown.raw` holds).
fn encode_object(s: &ObjectSpec) -> Vec<u8> {
    let mut w = ProtoWriter::new();
    if s.is_status() {
        w.message(1, |m| {
            m.string(1, "").string(2, &s.resource_version).string(3, "");
        });
        w.string(2, "Failure");
        w.bytes(3, &s.payload);
        w.string(4, &s.status_reason);
        w.message(5, |d| {
            d.string(1, "").string(2, "").string(3, "pods");
        });
        w.varint(6, i64::from(s.status_code) as u64);
        return w.buf;
    }
    if s.has_list_meta() {
        w.message(1, |m| {
            m.string(1, "").string(2, &s.resource_version).string(3, "");
        });
        w.bytes(3, &s.payload);
        return w.buf;
    }
    w.message(1, |m| {
        m.string(1, &s.name)
            .string(2, "")
            .string(3, &s.namespace)
            .string(4, "")
            .string(5, "2f1c0a48-6a55-4fd4-8b6b-0a7c1c9c2a11")
            .string(6, &s.resource_version)
            .varint(7, 3)
            .message(8, |t| {
                t.varint(1, 1_700_000_000).varint(2, 0);
            });
        for (k, v) in &s.labels {
            m.message(11, |e| {
                e.string(1, k).string(2, v);
            });
        }
        for (k, v) in &s.annotations {
            m.message(12, |e| {
                e.string(1, k).string(2, v);
            });
        }
        m.message(17, |mf| {
            mf.string(1, "kubelet")
                .string(2, "Update")
                .bytes(7, &s.payload);
        });
    });
    // spec: a container whose image is the opaque payload.
    w.message(2, |spec| {
        spec.message(2, |c| {
            c.string(1, "main").bytes(2, &s.payload);
        });
        spec.fixed64(3, 30).fixed32(4, 7);
    });
    // status with a condition (field 2 is `type`, as a trap for scanners).
    w.message(3, |st| {
        st.string(1, "Running").message(2, |c| {
            c.string(1, "Ready").string(2, "True");
        });
    });
    w.buf
}

/// A `metav1.WatchEvent` body, without the 4-byte length.
#[must_use]
pub fn encode_protobuf_body(s: &ObjectSpec) -> Vec<u8> {
    let mut raw = b"k8s\0".to_vec();
    let mut unknown = ProtoWriter::new();
    unknown
        .message(1, |t| {
            t.string(1, &s.api_version).string(2, &s.kind);
        })
        .bytes(2, &encode_object(s))
        .string(3, "")
        .string(4, "");
    raw.extend_from_slice(&unknown.buf);
    let mut ev = ProtoWriter::new();
    ev.string(1, &s.event_type).message(2, |r| {
        r.bytes(1, &raw);
    });
    ev.buf
}

/// A length-prefixed protobuf frame as written by `LengthDelimitedFramer`.
#[must_use]
pub fn encode_protobuf_frame(s: &ObjectSpec) -> Vec<u8> {
    let body = encode_protobuf_body(s);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Escapes like Go's `encoding/json` (HTML-safe, control characters as
/// `\u00XX`).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", ch as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_map(out: &mut String, m: &[(String, String)]) {
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_str(out, v);
    }
    out.push('}');
}

/// One JSON watch event line, with its trailing newline, as the JSON
/// serializer writes it (compact, Go field order, empty strings omitted).
#[must_use]
pub fn encode_json_line(s: &ObjectSpec) -> Vec<u8> {
    let payload = String::from_utf8_lossy(&s.payload).into_owned();
    let mut o = String::from(r#"{"type":"#);
    json_str(&mut o, &s.event_type);
    o.push_str(r#","object":{"kind":"#);
    json_str(&mut o, &s.kind);
    o.push_str(r#","apiVersion":"#);
    json_str(&mut o, &s.api_version);
    o.push_str(r#","metadata":{"#);
    let mut first = true;
    let mut field = |o: &mut String, k: &str, v: &str| {
        if v.is_empty() {
            return;
        }
        if !first {
            o.push(',');
        }
        first = false;
        json_str(o, k);
        o.push(':');
        json_str(o, v);
    };
    if !s.is_status() {
        field(&mut o, "name", &s.name);
        field(&mut o, "namespace", &s.namespace);
        field(&mut o, "uid", "2f1c0a48-6a55-4fd4-8b6b-0a7c1c9c2a11");
    }
    field(&mut o, "resourceVersion", &s.resource_version);
    if !s.is_status() {
        if !first {
            o.push(',');
        }
        o.push_str(r#""creationTimestamp":"2024-01-01T00:00:00Z""#);
        if !s.labels.is_empty() {
            o.push_str(r#","labels":"#);
            json_map(&mut o, &s.labels);
        }
        if !s.annotations.is_empty() {
            o.push_str(r#","annotations":"#);
            json_map(&mut o, &s.annotations);
        }
        o.push_str(r#","managedFields":[{"manager":"kubelet","operation":"Update","fieldsV1":{"f:data":{}}}]"#);
    }
    o.push('}');
    if s.is_status() {
        o.push_str(r#","status":"Failure","message":"#);
        json_str(&mut o, &payload);
        o.push_str(r#","reason":"#);
        json_str(&mut o, &s.status_reason);
        o.push_str(&format!(r#","code":{}}}}}"#, s.status_code));
    } else {
        o.push_str(r#","spec":{"containers":[{"name":"main","image":"#);
        json_str(&mut o, &payload);
        o.push_str(r#"}]},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"},{"type":"ADDED","object":{"kind":"Fake"}}]}}}"#);
    }
    o.push('\n');
    o.into_bytes()
}

/// One CBOR item of an `application/cbor-seq` watch, shaped as a v1.36
/// apiserver writes it: the self-described tag 55799, byte-string keys,
/// `object` before `type`, and inside the object its content (`data`)
/// before `metadata`.
#[must_use]
pub fn encode_cbor_item(s: &ObjectSpec) -> Vec<u8> {
    let mut o = vec![0xd9, 0xd9, 0xf7];
    cbor_head(&mut o, 5, 2);
    cbor_key(&mut o, "object");
    let mut metadata: Vec<(&str, &str)> = Vec::new();
    if !s.is_status() {
        metadata.push(("name", &s.name));
        metadata.push(("namespace", &s.namespace));
    }
    metadata.push(("resourceVersion", &s.resource_version));
    metadata.retain(|(_, v)| !v.is_empty());
    let status = s.is_status();
    let fields = 4 + if status { 2 } else { 0 };
    cbor_head(&mut o, 5, fields);
    cbor_key(&mut o, "data");
    cbor_head(&mut o, 5, 1);
    cbor_key(&mut o, "payload");
    cbor_head(&mut o, 2, s.payload.len() as u64);
    o.extend_from_slice(&s.payload);
    cbor_key(&mut o, "metadata");
    let annotations = !s.annotations.is_empty();
    cbor_head(&mut o, 5, metadata.len() as u64 + u64::from(annotations));
    for (k, v) in &metadata {
        cbor_key(&mut o, k);
        cbor_text(&mut o, v);
    }
    if annotations {
        cbor_key(&mut o, "annotations");
        cbor_head(&mut o, 5, s.annotations.len() as u64);
        for (k, v) in &s.annotations {
            cbor_key(&mut o, k);
            cbor_text(&mut o, v);
        }
    }
    cbor_key(&mut o, "apiVersion");
    cbor_text(&mut o, &s.api_version);
    cbor_key(&mut o, "kind");
    cbor_text(&mut o, &s.kind);
    if status {
        cbor_key(&mut o, "code");
        match u64::try_from(s.status_code) {
            Ok(code) => cbor_head(&mut o, 0, code),
            // A negative integer n is major type 1 with -1 - n.
            Err(_) => cbor_head(&mut o, 1, (-1 - i64::from(s.status_code)) as u64),
        }
        cbor_key(&mut o, "reason");
        cbor_text(&mut o, &s.status_reason);
    }
    cbor_key(&mut o, "type");
    cbor_text(&mut o, &s.event_type);
    o
}

fn cbor_head(o: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => o.push(m | n as u8),
        24..=0xff => o.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            o.push(m | 25);
            o.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            o.push(m | 26);
            o.extend((n as u32).to_be_bytes());
        }
        _ => {
            o.push(m | 27);
            o.extend(n.to_be_bytes());
        }
    }
}

/// A map key as the apiserver writes it: a byte string.
fn cbor_key(o: &mut Vec<u8>, k: &str) {
    cbor_head(o, 2, k.len() as u64);
    o.extend_from_slice(k.as_bytes());
}

fn cbor_text(o: &mut Vec<u8>, v: &str) {
    cbor_head(o, 3, v.len() as u64);
    o.extend_from_slice(v.as_bytes());
}

/// `parts` as one gzip member (Content-Encoding: gzip), flushed after each
/// part as the apiserver flushes after each event (Go's compress/gzip at
/// its default level, `Flush` a sync flush): the compressed bytes each
/// part adds, the last with the member's trailer.
#[must_use]
pub fn gzip_flushed(parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut out = Vec::new();
    for part in parts {
        e.write_all(part).expect("writing to a Vec");
        e.flush().expect("writing to a Vec");
        out.push(std::mem::take(e.get_mut()));
    }
    let tail = e.finish().expect("writing to a Vec");
    if let Some(last) = out.last_mut() {
        last.extend_from_slice(&tail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_tags() {
        let mut w = ProtoWriter::new();
        w.varint(1, 300).string(2, "hi").varint(17, 1);
        assert_eq!(
            w.buf,
            [0x08, 0xAC, 0x02, 0x12, 2, b'h', b'i', 0x88, 0x01, 0x01]
        );
    }

    #[test]
    fn json_lines_are_valid_single_documents() {
        for s in [
            ObjectSpec::pod("ADDED", "ns", "n", "1"),
            ObjectSpec::status_error(410, "Expired"),
        ] {
            let line = encode_json_line(&s);
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(v["type"], s.event_type.as_str());
        }
    }

    #[test]
    fn frame_length_prefix() {
        let f = encode_protobuf_frame(&ObjectSpec::pod("ADDED", "a", "b", "1"));
        let n = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(n + 4, f.len());
        assert_eq!(f[4], 0x0A);
    }
}

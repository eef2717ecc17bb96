//! Metadata of one JSON watch event (one line of an `application/json`
//! watch body), read with a targeted scanner.
//!
//! The envelope is `{"type":"ADDED","object":{...}}`. Fields may come in any
//! order; we read `type`, and in the object `kind`, `apiVersion`,
//! `metadata.{name,namespace,resourceVersion}`, the
//! `k8s.io/initial-events-end` annotation, and a Status's `code` and
//! `reason`. Everything else is stepped over, never built. Go writes `type`
//! first and `metadata` before `spec`/`status`, so the scan normally stops
//! right after `metadata`.

use super::{
    event::{EventMeta, EventType, MAX_FIELD_BYTES, MetaString},
    json_scan::{Cursor, Invalid, RawStr, Res},
};

/// `metav1.InitialEventsAnnotationKey`.
pub(crate) const INITIAL_EVENTS_END: &[u8] = b"k8s.io/initial-events-end";

/// Reads the metadata of one event. `line` excludes the newline.
/// `Err` if it is not a JSON object or has no string `type`.
pub(crate) fn extract(line: &[u8]) -> Res<EventMeta> {
    let mut m = EventMeta::default();
    let mut c = Cursor::new(line);
    c.eat(b'{')?;
    c.ws();
    if c.peek() == Some(b'}') {
        return Err(Invalid);
    }
    let mut object_done = false;
    loop {
        c.ws();
        let key = c.string()?;
        c.eat(b':')?;
        match key.raw {
            b"type" => {
                let t = c.string_or_skip()?.ok_or(Invalid)?;
                let t = if t.escaped {
                    t.decode()?.into_bytes()
                } else {
                    t.raw.to_vec()
                };
                m.event_type = Some(EventType::from_wire(&t));
            }
            b"object" => {
                object(&mut c, &mut m)?;
                object_done = true;
            }
            _ => c.skip_value()?,
        }
        // Go writes `type` then `object`; with both read there is nothing
        // left we want, and framing (by newline) does not need the rest.
        if object_done && m.event_type.is_some() {
            return Ok(m);
        }
        c.ws();
        match c.peek() {
            Some(b',') => c.i += 1,
            Some(b'}') => break,
            _ => return Err(Invalid),
        }
    }
    if m.event_type.is_none() {
        return Err(Invalid);
    }
    Ok(m)
}

/// Reads the embedded object; a non-object value (`null`) is skipped.
fn object(c: &mut Cursor<'_>, m: &mut EventMeta) -> Res<()> {
    c.ws();
    if c.peek() != Some(b'{') {
        return c.skip_value();
    }
    c.i += 1;
    c.ws();
    if c.peek() == Some(b'}') {
        c.i += 1;
        return Ok(());
    }
    let (mut kind, mut api, mut meta) = (false, false, false);
    loop {
        c.ws();
        let key = c.string()?;
        c.eat(b':')?;
        match key.raw {
            b"kind" => {
                if let Some(v) = keep(c, &mut m.fields_too_long)? {
                    m.kind = v;
                    kind = true;
                }
            }
            b"apiVersion" => {
                if let Some(v) = keep(c, &mut m.fields_too_long)? {
                    m.api_version = v;
                    api = true;
                }
            }
            b"metadata" => {
                metadata(c, m)?;
                meta = true;
            }
            // Only a Status's `code`/`reason` are kept (other kinds, such
            // as core Events, have a `reason` of their own); `into_event`
            // filters once the kind is known.
            b"code" => m.error_code = c.int_or_skip()?.and_then(|v| i32::try_from(v).ok()),
            b"reason" => {
                m.error_reason = keep(c, &mut m.fields_too_long)?.map(MetaString::into_string);
            }
            _ => c.skip_value()?,
        }
        // Stop early once the identity is known, unless this is a Status
        // (whose `code` comes last) or the type is still unknown.
        if kind && api && meta && m.event_type.is_some() && !m.is_status() {
            return Ok(());
        }
        c.ws();
        match c.peek() {
            Some(b',') => c.i += 1,
            Some(b'}') => {
                c.i += 1;
                return Ok(());
            }
            _ => return Err(Invalid),
        }
    }
}

fn metadata(c: &mut Cursor<'_>, m: &mut EventMeta) -> Res<()> {
    each_member(c, |c, key| {
        match key.raw {
            b"name" => {
                if let Some(v) = keep(c, &mut m.fields_too_long)? {
                    m.name = v;
                }
            }
            b"namespace" => {
                if let Some(v) = keep(c, &mut m.fields_too_long)? {
                    m.namespace = v;
                }
            }
            b"resourceVersion" => {
                if let Some(v) = keep(c, &mut m.fields_too_long)? {
                    m.resource_version = v;
                }
            }
            b"annotations" => each_member(c, |c, k| {
                if k.eq(INITIAL_EVENTS_END) {
                    if let Some(v) = c.string_or_skip()? {
                        m.initial_events_end = v.eq(b"true");
                    }
                    Ok(())
                } else {
                    // Annotation values can be large (last-applied
                    // configuration) and are content: skipped.
                    c.skip_value()
                }
            })?,
            _ => c.skip_value()?,
        }
        Ok(())
    })
}

/// Calls `f` for each member of an object (cursor at the value, after the
/// colon); a non-object value is skipped.
fn each_member<'a>(
    c: &mut Cursor<'a>,
    mut f: impl FnMut(&mut Cursor<'a>, RawStr<'a>) -> Res<()>,
) -> Res<()> {
    c.ws();
    if c.peek() != Some(b'{') {
        return c.skip_value();
    }
    c.i += 1;
    c.ws();
    if c.peek() == Some(b'}') {
        c.i += 1;
        return Ok(());
    }
    loop {
        c.ws();
        let key = c.string()?;
        c.eat(b':')?;
        f(c, key)?;
        c.ws();
        match c.peek() {
            Some(b',') => c.i += 1,
            Some(b'}') => {
                c.i += 1;
                return Ok(());
            }
            _ => return Err(Invalid),
        }
    }
}

/// Reads a string value: `None` if the value is not a string, empty (and
/// counted in `too_long`) if it is longer than a metadata string can be.
fn keep(c: &mut Cursor<'_>, too_long: &mut u32) -> Res<Option<MetaString>> {
    let Some(s) = c.string_or_skip()? else {
        return Ok(None);
    };
    if s.raw.len() > MAX_FIELD_BYTES {
        *too_long += 1;
        return Ok(Some(MetaString::default()));
    }
    s.decode_meta().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_concepts_added_event() {
        let m = extract(
            br#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"10596","name":"web-0","namespace":"test","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"conditions":[{"type":"Ready","status":"True"}]}}}"#,
        )
        .unwrap();
        assert_eq!(m.event_type, Some(EventType::Added));
        assert_eq!(m.kind, "Pod");
        assert_eq!(m.api_version, "v1");
        assert_eq!(m.name, "web-0");
        assert_eq!(m.namespace, "test");
        assert_eq!(m.resource_version, "10596");
        assert!(!m.initial_events_end);
    }

    #[test]
    fn fields_in_any_order() {
        let m = extract(
            br#"{"object":{"spec":{"kind":"NotMe","metadata":{"name":"no"}},"metadata":{"annotations":{"a":"{\"x\":1}"},"namespace":"ns","name":"n","resourceVersion":"7"},"apiVersion":"apps/v1","kind":"Deployment"},"type":"MODIFIED"}"#,
        )
        .unwrap();
        assert_eq!(m.event_type, Some(EventType::Modified));
        assert_eq!(m.kind, "Deployment");
        assert_eq!(m.api_version, "apps/v1");
        assert_eq!(m.name, "n");
        assert_eq!(m.namespace, "ns");
        assert_eq!(m.resource_version, "7");
    }

    #[test]
    fn initial_events_end_bookmark() {
        let m = extract(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"12746","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}},"spec":{"containers":null},"status":{}}}"#,
        )
        .unwrap();
        assert_eq!(m.event_type, Some(EventType::Bookmark));
        assert!(m.initial_events_end);
        assert_eq!(m.resource_version, "12746");
        assert_eq!(m.name, "");
        // "false" or another key does not count.
        let m = extract(
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"1","annotations":{"k8s.io/initial-events-end":"false","x":"true"}}}}"#,
        )
        .unwrap();
        assert!(!m.initial_events_end);
    }

    #[test]
    fn error_410_status() {
        let m = extract(
            br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 123 (456)","reason":"Expired","code":410}}"#,
        )
        .unwrap();
        assert_eq!(m.event_type, Some(EventType::Error));
        assert_eq!(m.kind, "Status");
        assert_eq!(m.error_code, Some(410));
        assert_eq!(m.error_reason.as_deref(), Some("Expired"));
        let e = m.into_event(10, 1, 2, false).unwrap();
        assert_eq!(e.error_code, Some(410));
        // The message (free text) is not kept.
        assert!(!format!("{e:?}").contains("too old"));
    }

    #[test]
    fn reason_of_other_kinds_is_not_an_error_reason() {
        let m = extract(
            br#"{"type":"ADDED","object":{"kind":"Event","apiVersion":"v1","reason":"Scheduled","metadata":{"name":"e"}}}"#,
        )
        .unwrap();
        let e = m.into_event(1, 0, 0, false).unwrap();
        assert_eq!(e.error_reason, None);
        assert_eq!(e.name, "e");
    }

    #[test]
    fn escapes_in_metadata() {
        let m = extract(br#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a\u002db"}}}"#)
            .unwrap();
        assert_eq!(m.name, "a-b");
    }

    #[test]
    fn not_a_watch_event() {
        for bad in [
            &b""[..],
            b"{}",
            b"[]",
            br#"{"object":{}}"#,
            br#"{"type":1,"object":{}}"#,
            br#"{"type":"ADDED","object":{"kind":"Pod""#,
            b"\x00\x00\x01\x02",
        ] {
            assert!(extract(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn overlong_names_are_counted_not_kept() {
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        let line = format!(
            r#"{{"type":"ADDED","object":{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{long}"}}}}}}"#
        );
        let m = extract(line.as_bytes()).unwrap();
        assert_eq!(m.name, "");
        assert_eq!(m.fields_too_long, 1);
    }
}

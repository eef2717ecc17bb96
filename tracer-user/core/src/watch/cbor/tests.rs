use ciborium::value::Value;

use super::*;

/// An apiserver-shaped CBOR watch event: tag 55799, byte-string keys,
/// `object` before `type`, and inside the object `data` before `metadata`.
fn apiserver_event(event_type: &str, kind: &str, name: &str, rv: &str, secret: &str) -> Vec<u8> {
    let key = |k: &str| Value::Bytes(k.as_bytes().to_vec());
    let text = |t: &str| Value::Text(t.to_owned());
    let object = Value::Map(vec![
        (
            key("data"),
            Value::Map(vec![(
                key("password"),
                Value::Bytes(secret.as_bytes().to_vec()),
            )]),
        ),
        (
            key("metadata"),
            Value::Map(vec![
                (key("name"), text(name)),
                (key("namespace"), text("ns-0")),
                (key("resourceVersion"), text(rv)),
                (key("uid"), text("0d1b7c2e-0000-4000-8000-000000000001")),
            ]),
        ),
        (key("apiVersion"), text("v1")),
        (key("kind"), text(kind)),
    ]);
    let event = Value::Map(vec![
        (key("object"), object),
        (key("type"), text(event_type)),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Tag(55799, Box::new(event)), &mut out).unwrap();
    out
}

#[test]
fn an_apiserver_shaped_event_gives_its_metadata_and_nothing_of_its_data() {
    let item = apiserver_event("ADDED", "Secret", "db", "4242", "TOPSECRET-hunter2");
    assert_eq!(&item[..3], SELF_DESCRIBED);
    assert_eq!(item_len(&item), Ok(item.len()));
    let meta = event_meta(&item).unwrap();
    assert_eq!(meta.event_type, Some(EventType::Added));
    assert_eq!(
        (
            &*meta.kind,
            &*meta.api_version,
            &*meta.namespace,
            &*meta.name,
            &*meta.resource_version
        ),
        ("Secret", "v1", "ns-0", "db", "4242")
    );
    assert!(!format!("{meta:?}").contains("TOPSECRET"));
}

#[test]
fn text_keys_indefinite_lengths_and_any_order_read_alike() {
    // Hand-written: an indefinite map with text keys, `type` first, an
    // indefinite-length name in two chunks (not read as metadata), and the
    // initial-events-end annotation of a watch-list BOOKMARK.
    let mut item = vec![0xd9, 0xd9, 0xf7, 0xbf];
    let text = |s: &str| {
        let mut v = match s.len() {
            n @ 0..=23 => vec![0x60 | n as u8],
            n => vec![0x78, n as u8],
        };
        v.extend_from_slice(s.as_bytes());
        v
    };
    item.extend(text("type"));
    item.extend(text("BOOKMARK"));
    item.extend(text("object"));
    item.push(0xa3); // a map of 3
    item.extend(text("kind"));
    item.extend(text("ConfigMap"));
    item.extend(text("metadata"));
    item.push(0xa2); // a map of 2
    item.extend(text("resourceVersion"));
    item.extend(text("977"));
    item.extend(text("annotations"));
    item.push(0xa1);
    item.extend(text("k8s.io/initial-events-end"));
    item.extend(text("true"));
    item.extend(text("extra"));
    item.extend([0x7f, 0x62, b'a', b'b', 0x61, b'c', 0xff]); // "abc", chunked
    item.push(0xff); // end of the outer map
    assert_eq!(item_len(&item), Ok(item.len()));
    let meta = event_meta(&item).unwrap();
    assert_eq!(meta.event_type, Some(EventType::Bookmark));
    assert_eq!(&*meta.kind, "ConfigMap");
    assert_eq!(&*meta.resource_version, "977");
    assert!(meta.initial_events_end);
}

#[test]
fn a_status_error_gives_its_code_and_reason() {
    let key = |k: &str| Value::Bytes(k.as_bytes().to_vec());
    let status = Value::Map(vec![
        (key("kind"), Value::Text("Status".into())),
        (key("apiVersion"), Value::Text("v1".into())),
        (key("code"), Value::Integer(410.into())),
        (key("reason"), Value::Text("Expired".into())),
    ]);
    let event = Value::Map(vec![
        (key("type"), Value::Text("ERROR".into())),
        (key("object"), status),
    ]);
    let mut item = Vec::new();
    ciborium::ser::into_writer(&Value::Tag(55799, Box::new(event)), &mut item).unwrap();
    let meta = event_meta(&item).unwrap();
    assert_eq!(meta.event_type, Some(EventType::Error));
    assert_eq!(
        (meta.error_code, meta.error_reason.as_deref()),
        (Some(410), Some("Expired"))
    );
}

/// xorshift64*: the property tests' seeded choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    /// A random CBOR value, `depth` levels at most.
    fn value(&mut self, depth: u32) -> Value {
        let leaf = depth == 0 || self.below(3) == 0;
        match if leaf {
            self.below(6)
        } else {
            6 + self.below(3)
        } {
            0 => Value::Integer((self.below(1 << 40) as i64 - (1 << 39)).into()),
            1 => Value::Bytes((0..self.below(300)).map(|i| i as u8).collect()),
            2 => Value::Text("x".repeat(self.below(70) as usize)),
            3 => Value::Float(self.below(1000) as f64 / 7.0),
            4 => Value::Bool(self.below(2) == 0),
            5 => Value::Null,
            6 => Value::Array((0..self.below(5)).map(|_| self.value(depth - 1)).collect()),
            7 => Value::Map(
                (0..self.below(5))
                    .map(|_| (self.value(0), self.value(depth - 1)))
                    .collect(),
            ),
            _ => Value::Tag(self.below(60_000), Box::new(self.value(depth - 1))),
        }
    }
}

#[test]
fn item_lengths_agree_with_ciborium_and_every_prefix_is_incomplete() {
    let mut rng = Rng(0xc0b0_5eed);
    for _ in 0..500 {
        let value = rng.value(4);
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&value, &mut bytes).unwrap();
        assert_eq!(item_len(&bytes), Ok(bytes.len()), "{value:?}");
        // Followed by the next item: still just this one.
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        assert_eq!(item_len(&two), Ok(bytes.len()));
        for cut in 0..bytes.len() {
            assert_eq!(
                item_len(&bytes[..cut]),
                Err(CborError::Incomplete),
                "cut at {cut}"
            );
        }
    }
}

#[test]
fn malformed_and_absurdly_deep_input_is_an_error_not_a_panic() {
    assert_eq!(item_len(&[0x1c]), Err(CborError::Malformed { at: 0 }));
    assert_eq!(item_len(&[0xff]), Err(CborError::Malformed { at: 0 }));
    // An indefinite text string with a byte-string chunk.
    assert_eq!(
        item_len(&[0x7f, 0x41, b'a', 0xff]),
        Err(CborError::Malformed { at: 1 })
    );
    let deep = vec![0x81; 10_000];
    assert_eq!(item_len(&deep), Err(CborError::TooDeep));
    // A length past what the bytes hold is incomplete; one no buffer can
    // hold is malformed, never an overflow.
    assert_eq!(
        item_len(&[0x5b, 0, 0, 0x10, 0, 0, 0, 0, 0]),
        Err(CborError::Incomplete)
    );
    assert_eq!(
        item_len(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(CborError::Malformed { at: 0 })
    );
}

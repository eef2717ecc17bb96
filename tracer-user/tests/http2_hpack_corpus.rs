//! The community hpack-test-case stories (github.com/http2jp/hpack-test-case),
//! read from `../shared/corpus/hpack-test-case` next to the workspace.
//!
//! Each story is a sequence of header blocks from one encoder, decoded in
//! `seqno` order through one decoder so the dynamic table carries over. A
//! case's `header_table_size` is the `SETTINGS_HEADER_TABLE_SIZE` the
//! decoder allowed (the encoder then announces its size update).
//!
//! Two layers: the HPACK decoder directly, and the same blocks carried in
//! HEADERS/CONTINUATION frames through a whole connection fed in odd-sized
//! chunks.

#[path = "http2_support.rs"]
mod support;

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;
use support::{C2S, S2C, headers_split, preface, settings, settings_ack, text};
use watchtrace::http2::{
    Attach, Http2Config, Http2Connection, Http2Event,
    hpack::{Decoder, HeaderField},
};

/// The implementations whose stories carry `wire` (all of them in the
/// corpus as shipped; `every_wire_directory_is_covered` checks).
const IMPLEMENTATIONS: &[&str] = &[
    "go-hpack",
    "nghttp2",
    "nghttp2-16384-4096",
    "nghttp2-change-table-size",
    "node-http2-hpack",
    "python-hpack",
];

fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/hpack-test-case");
    assert!(
        dir.is_dir(),
        "hpack-test-case corpus not found at {} (expected next to the workspace, \
         at ../shared/corpus/hpack-test-case); this test must not pass without it",
        dir.display()
    );
    dir
}

struct Case {
    seqno: u64,
    table_size: Option<u32>,
    wire: Vec<u8>,
    headers: Vec<(String, String)>,
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn story(path: &Path) -> Vec<Case> {
    let json: Value = serde_json::from_str(&fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cases: Vec<Case> = json["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no cases", path.display()))
        .iter()
        .map(|c| Case {
            seqno: c["seqno"].as_u64().unwrap(),
            table_size: c
                .get("header_table_size")
                .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap()),
            wire: hex(c["wire"].as_str().unwrap()),
            headers: c["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    let (name, value) = h.as_object().unwrap().iter().next().unwrap();
                    (name.clone(), value.as_str().unwrap().to_owned())
                })
                .collect(),
        })
        .collect();
    cases.sort_by_key(|c| c.seqno);
    cases
}

fn stories(implementation: &str) -> Vec<PathBuf> {
    let dir = corpus().join(implementation);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no stories in {}", dir.display());
    paths
}

fn pairs(fields: &[HeaderField]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (text(&f.name), text(&f.value)))
        .collect()
}

/// Decodes every story of an implementation; returns the cases checked.
fn check_decoder(implementation: &str) -> usize {
    let mut checked = 0;
    for path in stories(implementation) {
        let mut decoder = Decoder::new();
        for case in story(&path) {
            if let Some(size) = case.table_size {
                decoder.set_size_limit(Some(size));
            }
            let mut out = Vec::new();
            decoder
                .decode(&case.wire, &mut out)
                .unwrap_or_else(|e| panic!("{} seqno {}: {e}", path.display(), case.seqno));
            assert_eq!(
                pairs(&out),
                case.headers,
                "{} seqno {}",
                path.display(),
                case.seqno
            );
            checked += 1;
        }
    }
    checked
}

/// Carries every story's blocks through a connection: HEADERS on a new
/// stream per case, the block cut into CONTINUATIONs, the bytes fed in
/// chunks of varying size. Table size changes go through SETTINGS from the
/// server and the client's ACK, as on the wire.
fn check_connection(implementation: &str) -> usize {
    let mut checked = 0;
    for (n, path) in stories(implementation).into_iter().enumerate() {
        let mut conn = Http2Connection::new(Http2Config::default(), Attach::FromStart);
        let mut events = Vec::new();
        conn.on_bytes(C2S, 0, &preface(), &mut events);
        let cases = story(&path);
        for (i, case) in cases.iter().enumerate() {
            let ts = i as u64 + 1;
            if let Some(size) = case.table_size {
                conn.on_bytes(S2C, ts, &settings(&[(1, size)]), &mut events);
                conn.on_bytes(C2S, ts, &settings_ack(), &mut events);
            }
            let stream = 2 * u32::try_from(i).unwrap() + 1;
            let cuts = [case.wire.len() / 3, case.wire.len() / 2 + n % 5];
            let bytes = headers_split(stream, &case.wire, true, &cuts);
            let chunk = 1 + (i * 7 + n) % 23;
            for piece in bytes.chunks(chunk) {
                conn.on_bytes(C2S, ts, piece, &mut events);
            }
        }
        let decoded: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Http2Event::Headers { fields, .. } => Some(pairs(fields)),
                Http2Event::ProtocolError { error, .. } => {
                    panic!("{}: {error}", path.display())
                }
                _ => None,
            })
            .collect();
        assert_eq!(decoded.len(), cases.len(), "{}", path.display());
        for (case, got) in cases.iter().zip(decoded) {
            assert_eq!(got, case.headers, "{} seqno {}", path.display(), case.seqno);
            checked += 1;
        }
    }
    checked
}

macro_rules! implementation_tests {
    ($($name:ident => $dir:literal,)+) => {
        $(
            mod $name {
                #[test]
                fn decoder() {
                    assert!(super::check_decoder($dir) > 0);
                }

                #[test]
                fn through_connection() {
                    assert!(super::check_connection($dir) > 0);
                }
            }
        )+
    };
}

implementation_tests! {
    go_hpack => "go-hpack",
    nghttp2 => "nghttp2",
    nghttp2_16384_4096 => "nghttp2-16384-4096",
    nghttp2_change_table_size => "nghttp2-change-table-size",
    node_http2_hpack => "node-http2-hpack",
    python_hpack => "python-hpack",
}

/// Every implementation directory whose stories carry `wire` is in
/// [`IMPLEMENTATIONS`] (so a corpus update cannot silently go untested).
#[test]
fn every_wire_directory_is_covered() {
    let mut with_wire = Vec::new();
    for entry in fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let has_wire = fs::read_dir(&path).unwrap().any(|f| {
            let f = f.unwrap().path();
            f.extension().is_some_and(|x| x == "json")
                && fs::read_to_string(&f).is_ok_and(|s| s.contains("\"wire\""))
        });
        if has_wire {
            with_wire.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    with_wire.sort();
    assert_eq!(with_wire, IMPLEMENTATIONS);
}

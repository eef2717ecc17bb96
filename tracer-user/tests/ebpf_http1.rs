//! Root-only: HTTP/1.1 watches (clients with HTTP/2 disabled). watch-load
//! runs with `-http1` against the testbed (cleartext, so the payload comes
//! from the socket syscalls; and over TLS, from the Go TLS uprobes), every
//! watch on its own TCP connection with a chunked body, after a LIST on the
//! same kept-alive connection. watchtrace records fake-apiserver; the
//! replayed pipeline must report every event the ground truth says was
//! written, in order, with the same type, resourceVersion and framed size,
//! each on the `stream` of its request, and every watch's stream must end.

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{BufRead as _, BufReader},
    path::Path,
    thread,
    time::Duration,
};

use watchtrace::{
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
    recording::Reader,
};

/// An event's type, resourceVersion and framed size.
type Event = (String, String, u64);

/// The ground truth's written events of each HTTP/1.1 watch, by path, each
/// path's streams sorted (two watches can share a path).
fn ground_truth(path: &Path) -> BTreeMap<String, Vec<Vec<Event>>> {
    let mut protos: HashMap<u64, String> = HashMap::new();
    let mut by_stream: BTreeMap<(String, u64), Vec<(u64, Event)>> = BTreeMap::new();
    for line in BufReader::new(File::open(path).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let stream = v["stream"].as_u64().unwrap_or(0);
        match v["kind"].as_str() {
            Some("watch_open") => {
                protos.insert(stream, v["proto"].as_str().unwrap_or("").to_owned());
            }
            Some("write") => {
                let key = (v["path"].as_str().unwrap().to_owned(), stream);
                let event = (
                    v["event_type"].as_str().unwrap().to_owned(),
                    v["rv"].as_str().unwrap_or("").to_owned(),
                    v["bytes"].as_u64().unwrap(),
                );
                by_stream
                    .entry(key)
                    .or_default()
                    .push((v["seq"].as_u64().unwrap(), event));
            }
            _ => {}
        }
    }
    assert!(
        protos.values().all(|p| p == "HTTP/1.1"),
        "every watch spoke HTTP/1.1: {protos:?}"
    );
    let mut out: BTreeMap<String, Vec<Vec<Event>>> = BTreeMap::new();
    for ((path, _), mut writes) in by_stream {
        writes.sort_by_key(|(seq, _)| *seq);
        out.entry(path)
            .or_default()
            .push(writes.into_iter().map(|(_, e)| e).collect());
    }
    out.values_mut().for_each(|l| l.sort());
    out
}

/// What the pipeline made of the recording.
#[derive(Default)]
struct Decoded {
    events: BTreeMap<String, Vec<Vec<Event>>>,
    gap_bytes: u64,
    /// Watch events on a stream with no request line seen.
    unmatched: usize,
    /// Watch requests, and those whose stream ended.
    watches: usize,
    ended: usize,
    /// Requests by their number on the connection (1: the LIST, 2: the
    /// watch, for watch-load's list-then-watch on one connection).
    stream_numbers: BTreeMap<u32, usize>,
}

fn replay(path: &Path) -> Decoded {
    let mut reader = Reader::new(BufReader::new(File::open(path).unwrap())).unwrap();
    let mut pipeline = Pipeline::new(
        PipelineConfig::default(),
        reader.metadata().realtime_offset_ns,
    );
    let mut d = Decoded::default();
    let mut paths: HashMap<(u64, u32), String> = HashMap::new();
    let mut watches: HashMap<(u64, u32), bool> = HashMap::new();
    let mut streams: BTreeMap<(u64, u32), Vec<Event>> = BTreeMap::new();
    while let Some(bytes) = reader.next_record().unwrap() {
        pipeline.on_record(bytes, &mut |event| match event {
            OutputEvent::Request {
                conn,
                stream,
                path,
                watch,
                ..
            } => {
                paths.insert((conn, stream), path);
                watches.insert((conn, stream), watch);
                *d.stream_numbers.entry(stream).or_default() += 1;
            }
            OutputEvent::WatchEvent {
                conn,
                stream,
                event_type,
                resource_version,
                bytes,
                ..
            } => match paths.contains_key(&(conn, stream)) {
                true => streams.entry((conn, stream)).or_default().push((
                    event_type.to_string(),
                    resource_version.to_string(),
                    bytes,
                )),
                false => d.unmatched += 1,
            },
            OutputEvent::StreamEnd { conn, stream, .. }
                if watches.get(&(conn, stream)) == Some(&true) =>
            {
                d.ended += 1;
            }
            OutputEvent::Gap { len, .. } => d.gap_bytes += len,
            _ => {}
        });
    }
    d.watches = watches.values().filter(|w| **w).count();
    for (key, events) in streams {
        d.events
            .entry(paths[&key].clone())
            .or_default()
            .push(events);
    }
    d.events.values_mut().for_each(|l| l.sort());
    d
}

fn http1_watches(h2c: bool) {
    let (_turn, dir) = support::testbed_turn(&format!("watchtrace-http1-{h2c}"));
    let recording = dir.join("http1.wtrec");
    let mut recorder = support::record_fake_apiserver(&recording, 14)
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(1));
    let mut load = vec![
        "--",
        "-http1",
        "-conns",
        "3",
        "-watches-per-conn",
        "2",
        "-write-rate",
        "60",
        "-format",
        "mixed",
        "-drain",
        "1s",
    ];
    if h2c {
        load.push("-h2c");
    }
    // The load starts 3 s after fake-apiserver, once the recorder (which
    // rescans every second) is attached: every connection is seen from its
    // first request line.
    let status = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "5s"])
        .args(&load)
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    assert!(recorder.wait().unwrap().success());

    let truth = ground_truth(&dir.join("bed/state/ground-truth.jsonl"));
    let decoded = replay(&recording);
    assert_eq!(decoded.gap_bytes, 0, "no bytes lost");
    assert_eq!(
        decoded.unmatched, 0,
        "every event belongs to a request seen"
    );
    let watches: usize = truth.values().map(Vec::len).sum();
    assert_eq!(watches, 6, "3 connections x 2 watches");
    assert_eq!(decoded.watches, 6, "every watch request decoded");
    assert_eq!(decoded.ended, 6, "every watch's stream ended");
    // client-go style list-then-watch: the LIST and then the WATCH on one
    // kept-alive connection, numbered 1 and 2.
    assert_eq!(
        decoded.stream_numbers.get(&2),
        Some(&6),
        "{:?}",
        decoded.stream_numbers
    );
    let mut total = 0;
    for (path, expected) in &truth {
        let got = decoded
            .events
            .get(path)
            .unwrap_or_else(|| panic!("no events decoded for {path}"));
        assert_eq!(got, expected, "events of {path}");
        total += expected.iter().map(Vec::len).sum::<usize>();
    }
    assert!(total > 50, "a meaningful number of events ({total})");
    println!("{total} events on {watches} HTTP/1.1 watches matched the ground truth");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn h2c_port_http1_watch_events_match_the_ground_truth() {
    http1_watches(true);
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn tls_http1_watch_events_match_the_ground_truth() {
    http1_watches(false);
}

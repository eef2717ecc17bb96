//! Root-only golden test. The testbed's fake-apiserver (Go net/http
//! HTTP/2 and crypto/tls) streams watches in JSON and protobuf to
//! watch-load; watchtrace records it and the pipeline replays the
//! recording. Every event the ground-truth log says was written must come
//! out decoded, in order, with the same type, resourceVersion and framed
//! size, and with no gap; and `replay --workers 2` writes the same JSON
//! lines as one worker. Once over TLS (plaintext from the Go TLS uprobes)
//! and once over h2c (payload from the socket syscalls).

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
/// The event sequences of the watches of each request path (two watches
/// can share a path), sorted so both sides line up.
type Events = BTreeMap<String, Vec<Vec<Event>>>;

/// Groups streams' sequences by path, each path's list sorted.
fn by_path(streams: impl Iterator<Item = (String, Vec<Event>)>) -> Events {
    let mut out = Events::new();
    for (path, events) in streams {
        out.entry(path).or_default().push(events);
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// The writes of the ground-truth log, by watch path, in order.
fn ground_truth(path: &Path) -> Events {
    let mut by_stream: BTreeMap<(String, u64), Vec<(u64, Event)>> = BTreeMap::new();
    for line in BufReader::new(File::open(path).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["kind"] != "write" {
            continue;
        }
        let key = (
            v["path"].as_str().unwrap().to_owned(),
            v["stream"].as_u64().unwrap(),
        );
        let event = (
            v["event_type"].as_str().unwrap().to_owned(),
            v["rv"].as_str().unwrap().to_owned(),
            v["bytes"].as_u64().unwrap(),
        );
        by_stream
            .entry(key)
            .or_default()
            .push((v["seq"].as_u64().unwrap(), event));
    }
    by_path(by_stream.into_iter().map(|((path, _), mut writes)| {
        writes.sort_by_key(|(seq, _)| *seq);
        (path, writes.into_iter().map(|(_, e)| e).collect())
    }))
}

/// The pipeline's watch events for a recording, by request path; and the
/// number of gap bytes.
fn replay(path: &Path) -> (Events, u64, usize) {
    let mut reader = Reader::new(BufReader::new(File::open(path).unwrap())).unwrap();
    let mut pipeline = Pipeline::new(
        PipelineConfig::default(),
        reader.metadata().realtime_offset_ns,
    );
    let mut paths: HashMap<(u64, u32), String> = HashMap::new();
    let mut streams: BTreeMap<(u64, u32), Vec<Event>> = BTreeMap::new();
    let mut gap_bytes = 0;
    let mut unmatched = 0;
    while let Some(bytes) = reader.next_record().unwrap() {
        pipeline.on_record(bytes, &mut |event| match event {
            OutputEvent::Request {
                conn, stream, path, ..
            } => {
                paths.insert((conn, stream), path);
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
                false => unmatched += 1,
            },
            OutputEvent::Gap { len, .. } => gap_bytes += len,
            _ => {}
        });
    }
    let events = by_path(
        streams
            .into_iter()
            .map(|(key, events)| (paths[&key].clone(), events)),
    );
    (events, gap_bytes, unmatched)
}

/// The JSON lines `watchtrace replay --workers N` writes.
fn replay_lines(path: &Path, workers: usize) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_watchtrace"))
        .arg("replay")
        .arg(path)
        .args(["--workers", &workers.to_string(), "--events", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "replay --workers {workers} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn golden(h2c: bool) {
    let (_turn, dir) = support::testbed_turn(&format!("watchtrace-golden-{h2c}"));
    let recording = dir.join("golden.wtrec");
    let mut recorder = support::record_fake_apiserver(&recording, 14)
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(1));
    // The load starts 3 s after fake-apiserver, so the recorder (rescanning
    // every second) is attached before the first watch: every request is
    // seen from its HEADERS.
    let mut load = vec![
        "--",
        "-conns",
        "3",
        "-watches-per-conn",
        "3",
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
    let status = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "5s"])
        .args(&load)
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    assert!(recorder.wait().unwrap().success());

    let truth = ground_truth(&dir.join("bed/state/ground-truth.jsonl"));
    let (seen, gap_bytes, unmatched) = replay(&recording);
    let one = replay_lines(&recording, 1);
    assert!(
        one == replay_lines(&recording, 2),
        "the same JSON lines with 2 decoding workers as with 1"
    );
    assert_eq!(gap_bytes, 0, "no bytes lost");
    assert_eq!(
        unmatched, 0,
        "every event belongs to a request that was seen"
    );
    let watches: usize = truth.values().map(Vec::len).sum();
    assert_eq!(watches, 9, "3 connections x 3 watches");
    let mut total = 0;
    for (path, expected) in &truth {
        let got = seen
            .get(path)
            .unwrap_or_else(|| panic!("no events decoded for {path}"));
        assert_eq!(got, expected, "events of {path}");
        total += expected.iter().map(Vec::len).sum::<usize>();
    }
    assert!(total > 100, "a meaningful number of events ({total})");
    println!(
        "{} events on {} watches matched the ground truth",
        total, watches
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn tls_watch_events_match_the_ground_truth() {
    golden(false);
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn h2c_watch_events_match_the_ground_truth() {
    golden(true);
}

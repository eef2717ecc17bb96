//! Root-only golden test. The testbed's fake-apiserver (Go net/http
//! HTTP/2 and crypto/tls) streams watches in JSON and protobuf to
//! watch-load; watchtrace records it and the pipeline replays the
//! recording. Every event the ground-truth log says was written must come
//! out decoded, in order, with the same type, resourceVersion and framed
//! size, and with no gap; and `replay --workers 2` writes the same JSON
//! lines as one worker. Over TLS (plaintext from the Go TLS uprobes) and
//! over h2c (payload from the socket syscalls); in JSON and protobuf, and
//! in CBOR (`application/cbor-seq`, as a v1.36 apiserver with
//! `CBORServingAndStorage` sends it).

mod support;

use std::{path::Path, thread, time::Duration};

use support::ground_truth;

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

fn golden(h2c: bool, format: &str) {
    let (_turn, dir) = support::testbed_turn(&format!("watchtrace-golden-{h2c}-{format}"));
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
        format,
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

    let records = ground_truth::records(&dir.join("bed/state/ground-truth.jsonl"));
    if format == "cbor" {
        for open in ground_truth::of_kind(&records, "watch_open") {
            assert_eq!(open["content_type"], "application/cbor-seq", "{open}");
        }
    }
    let truth = ground_truth::writes(&records);
    let output = ground_truth::replayed(&recording);
    let (seen, unmatched) = ground_truth::watch_events(&output);
    let gap_bytes = ground_truth::gap_bytes(&output);
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
    golden(false, "mixed");
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn h2c_watch_events_match_the_ground_truth() {
    golden(true, "mixed");
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn cbor_watch_events_over_tls_match_the_ground_truth() {
    golden(false, "cbor");
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn cbor_watch_events_over_h2c_match_the_ground_truth() {
    golden(true, "cbor");
}

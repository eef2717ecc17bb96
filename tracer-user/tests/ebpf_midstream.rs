//! Root-only: watchtrace attached to a fake-apiserver that is already
//! streaming (every watch and its etcd watch predate the capture), the
//! normal case for a DaemonSet. The replay must decode every watch event
//! and etcd event written after attach, report header fields that refer to
//! HPACK entries from before attach as unknown rather than invent them,
//! and say when each connection's HPACK table has turned over.

mod support;

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use watchtrace::{
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
    recording::Reader,
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");
/// Margin around the capture window: events written this close to its
/// edges may be partly outside it.
const EDGE_NS: u64 = 300_000_000;

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn attaching_to_a_streaming_apiserver_decodes_everything_after_attach() {
    let (_turn, dir) = support::testbed_turn("watchtrace-midstream");
    // Watches time out every second and are reopened on the same connections,
    // so requests keep coming after attach through HPACK tables that were
    // filled before it.
    let mut bed = support::testbed_run(&dir)
        .args([
            "-duration",
            "22s",
            "--",
            "-conns",
            "2",
            "-watches-per-conn",
            "3",
            "-format",
            "mixed",
        ])
        .args(["-write-rate", "60", "-timeout-seconds", "1", "-drain", "1s"])
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(4));
    let recording = dir.join("midstream.wtrec");
    let status = Command::new(WATCHTRACE)
        .args([
            "record",
            "--exe",
            support::fake_apiserver_exe().as_str(),
            "--duration",
            "16",
            "-o",
        ])
        .arg(&recording)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(bed.wait().unwrap().success());

    let mut reader = Reader::new(BufReader::new(File::open(&recording).unwrap())).unwrap();
    let mut pipeline = Pipeline::new(
        PipelineConfig::default(),
        reader.metadata().realtime_offset_ns,
    );
    let mut ours: BTreeMap<(String, String, u64), i64> = BTreeMap::new();
    let mut etcd_revisions = std::collections::BTreeSet::new();
    let mut requests_with_unknowns = 0;
    let mut requests = 0;
    let mut hpack_known = 0;
    let mut first_ts = u64::MAX;
    // When the etcd watch stream was first recognised by its content.
    let mut etcd_first = u64::MAX;
    let mut last_ts = 0;
    while let Some(bytes) = reader.next_record().unwrap() {
        pipeline.on_record(bytes, &mut |event| match event {
            OutputEvent::WatchEvent {
                event_type,
                resource_version,
                bytes,
                t_first_byte,
                t_last_byte,
                ..
            } => {
                first_ts = first_ts.min(t_first_byte);
                last_ts = last_ts.max(t_last_byte);
                *ours
                    .entry((event_type.to_string(), resource_version.to_string(), bytes))
                    .or_default() += 1;
            }
            OutputEvent::EtcdEvent {
                revision,
                t_received,
                ..
            } => {
                etcd_first = etcd_first.min(t_received);
                etcd_revisions.insert(revision);
            }
            OutputEvent::Request {
                unknown_headers, ..
            } => {
                requests += 1;
                if unknown_headers > 0 {
                    requests_with_unknowns += 1;
                }
            }
            OutputEvent::HpackKnown { .. } => hpack_known += 1,
            _ => {}
        });
    }
    assert!(first_ts < last_ts, "events were decoded");
    // Every write the ground truth logged well inside the capture window
    // was decoded (as a multiset of type, resourceVersion and size).
    let gt = dir.join("bed/state/ground-truth.jsonl");
    let mut missing = 0;
    let mut expected = 0;
    let mut etcd_expected = 0;
    let mut etcd_missing = 0;
    for line in BufReader::new(File::open(&gt).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        match v["kind"].as_str() {
            Some("write") => {
                let t = v["t_before"].as_u64().unwrap();
                if t < first_ts + EDGE_NS || t > last_ts - EDGE_NS {
                    continue;
                }
                expected += 1;
                let key = (
                    v["event_type"].as_str().unwrap().to_owned(),
                    v["rv"].as_str().unwrap().to_owned(),
                    v["bytes"].as_u64().unwrap(),
                );
                match ours.get_mut(&key) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => missing += 1,
                }
            }
            Some("etcd_event") => {
                // From the moment the etcd stream was recognised: before
                // that its bytes are reported skipped while the decoder
                // looks for a message boundary (counted, not lost silently).
                let t = v["t"].as_u64().unwrap();
                if t < etcd_first + EDGE_NS || t > last_ts - EDGE_NS {
                    continue;
                }
                etcd_expected += 1;
                if !etcd_revisions.contains(&v["revision"].as_i64().unwrap()) {
                    etcd_missing += 1;
                }
            }
            _ => {}
        }
    }
    println!(
        "etcd watch stream recognised {} ms after the first watch event",
        etcd_first.saturating_sub(first_ts) / 1_000_000
    );
    println!(
        "after attach: {expected} watch events expected, {missing} missing; {etcd_expected} etcd events expected, \
         {etcd_missing} missing; {requests} requests ({requests_with_unknowns} with unknown headers); \
         {hpack_known} HPACK tables became fully known"
    );
    assert!(expected > 100, "a meaningful window ({expected} events)");
    assert_eq!(
        missing, 0,
        "every watch event written after attach was decoded"
    );
    assert!(etcd_expected > 20);
    assert_eq!(
        etcd_missing, 0,
        "every etcd event received after attach was decoded"
    );
    assert!(requests > 0, "re-watches after attach were seen");
    assert!(
        requests_with_unknowns > 0,
        "headers from pre-attach HPACK entries are reported unknown"
    );
    assert!(
        hpack_known > 0,
        "an HPACK table turned over and became fully known"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Root-only: what a current apiserver puts on the wire, traced from the
//! testbed's fake-apiserver and scored against its ground truth.
//!
//! - Watch-list streams (`sendInitialEvents=true`) gzip-compressed, as
//!   since Kubernetes 1.37: every event decoded (inflated) as written, and
//!   each stream's initial sync (request to the initial-events-end
//!   bookmark) within 10 ms of the server's own clock.
//! - gzip LISTs of a relist loop: each `list_response` has the bytes the
//!   server wrote and the size it compressed, and its duration.
//! - A gzip stream joined mid-member (the agent attached after it began)
//!   is reported as `joined_mid_gzip` with its bytes, and nothing of it is
//!   guessed.

mod support;

use std::{collections::BTreeMap, thread, time::Duration};

use serde_json::Value;
use support::ground_truth::{self, of_kind};
use watchtrace::pipeline::{OutputEvent, UndecodableReason};

const MS: i64 = 1_000_000;

/// `list_response` or ground-truth `list` figures: wire and decoded bytes,
/// encoding.
type ListFigures = (u64, Option<u64>, String);

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn gzip_watch_lists_and_gzip_lists_match_the_ground_truth() {
    let (_turn, dir) = support::testbed_turn("watchtrace-modern-wire");
    let recording = dir.join("modern.wtrec");
    let mut recorder = support::KillOnDrop(
        support::record_fake_apiserver(&recording, 14)
            .spawn()
            .unwrap(),
    );
    thread::sleep(Duration::from_secs(1));
    let status = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "5s"])
        // Every LIST is compressed (kube-apiserver: from 128 KiB).
        .arg("-apiserver-arg=-gzip-min-bytes=1")
        .args(["--", "-conns", "2", "-watches-per-conn", "3"])
        .args(["-mode", "watchlist", "-gzip", "-relist-interval", "500ms"])
        .args(["-format", "mixed", "-write-rate", "40", "-drain", "1s"])
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    assert!(recorder.wait().unwrap().success());

    let truth = ground_truth::records(&dir.join("bed/state/ground-truth.jsonl"));
    let output = ground_truth::replayed(&recording);
    assert_eq!(ground_truth::gap_bytes(&output), 0, "no bytes lost");
    let paths = ground_truth::paths(&output);

    // Every event of every (gzip) watch-list stream, as written.
    let opens = of_kind(&truth, "watch_open");
    assert_eq!(opens.len(), 6, "2 connections x 3 watches");
    for open in &opens {
        assert_eq!(open["send_initial_events"], true, "{open}");
        assert_eq!(open["content_encoding"], "gzip", "{open}");
    }
    let (seen, unmatched) = ground_truth::watch_events(&output);
    assert_eq!(unmatched, 0, "every event belongs to a request seen");
    let expected = ground_truth::writes(&truth);
    for (path, streams) in &expected {
        assert_eq!(seen.get(path), Some(streams), "events of {path}");
    }
    let events: usize = expected.values().flatten().map(Vec::len).sum();
    assert!(events > 100, "a meaningful number of events ({events})");

    // Initial syncs: per path, the count of initial events and the time
    // from the request to the bookmark.
    let mut truth_syncs: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    for w in of_kind(&truth, "write") {
        if w["initial_events_end"] == true {
            let stream = w["stream"].as_u64().unwrap();
            let open = opens.iter().find(|o| o["stream"] == stream).unwrap();
            let initial = open["initial_events"].as_u64().unwrap_or(0);
            truth_syncs
                .entry(w["path"].as_str().unwrap().to_owned())
                .or_default()
                .push((initial, w["initial_sync_ns"].as_i64().unwrap()));
        }
    }
    let mut syncs: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    for e in &output {
        if let OutputEvent::WatchListSynced {
            conn,
            stream,
            initial_events,
            duration_ns,
            ..
        } = e
        {
            syncs
                .entry(paths[&(*conn, *stream)].clone())
                .or_default()
                .push((*initial_events, *duration_ns as i64));
        }
    }
    assert_eq!(
        syncs.values().map(Vec::len).sum::<usize>(),
        6,
        "one initial sync per watch: {syncs:?}"
    );
    for (path, mut want) in truth_syncs {
        let mut got = syncs.remove(&path).unwrap_or_default();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got.len(), want.len(), "{path}");
        for ((n, ns), (want_n, want_ns)) in got.iter().zip(&want) {
            assert_eq!(n, want_n, "initial events of {path}");
            assert!(
                (ns - want_ns).abs() <= 10 * MS,
                "initial sync of {path}: {ns} ns traced, {want_ns} ns by the server"
            );
        }
    }

    // LISTs: each compressed, with the server's byte counts; durations
    // close to the server's.
    let lists = of_kind(&truth, "list");
    assert!(lists.len() >= 10, "a relist loop ({} LISTs)", lists.len());
    let mut want: BTreeMap<String, Vec<ListFigures>> = BTreeMap::new();
    let mut want_ns: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for l in &lists {
        assert_eq!(l["content_encoding"], "gzip", "{l}");
        let format = match l["content_type"].as_str().unwrap() {
            "application/json" => "json",
            "application/vnd.kubernetes.protobuf" => "protobuf",
            "application/cbor" => "cbor",
            other => panic!("content type {other}"),
        };
        let path = l["path"].as_str().unwrap().to_owned();
        want.entry(path.clone()).or_default().push((
            l["bytes"].as_u64().unwrap(),
            l["decoded_bytes"].as_u64(),
            format!("{format}+gzip"),
        ));
        let ns = l["t_after"].as_i64().unwrap() - l["t_request"].as_i64().unwrap();
        want_ns.entry(path).or_default().push(ns);
    }
    let mut got: BTreeMap<String, Vec<ListFigures>> = BTreeMap::new();
    let mut got_ns: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in &output {
        if let OutputEvent::ListResponse {
            conn,
            stream,
            wire_bytes,
            decoded_bytes,
            encoding,
            duration_ns,
            complete,
            ..
        } = e
        {
            assert!(complete, "{e:?}");
            let path = paths[&(*conn, *stream)].clone();
            let figures = (*wire_bytes, *decoded_bytes, encoding.as_str().to_owned());
            got.entry(path.clone()).or_default().push(figures);
            got_ns.entry(path).or_default().push(*duration_ns as i64);
        }
    }
    for list in want.values_mut().chain(got.values_mut()) {
        list.sort();
    }
    assert_eq!(got, want, "LIST bytes by path");
    for (path, want) in &mut want_ns {
        let got = got_ns.get_mut(path).unwrap();
        want.sort_unstable();
        got.sort_unstable();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(
                (g - w).abs() <= 10 * MS,
                "LIST {path}: {g} ns traced, {w} ns by the server"
            );
        }
    }
    println!(
        "{events} events, 6 initial syncs and {} gzip LISTs matched the ground truth",
        lists.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn a_gzip_stream_joined_mid_member_is_reported_with_its_bytes() {
    joined_mid_member(false);
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn a_stream_with_a_gzip_member_per_flush_is_decoded_from_its_next_member() {
    joined_mid_member(true);
}

/// Three gzip watch-list streams (one member for the whole stream, or one
/// per flush), the agent attached after they began.
fn joined_mid_member(per_flush: bool) {
    let (_turn, dir) = support::testbed_turn(&format!("watchtrace-mid-gzip-{per_flush}"));
    let recording = dir.join("mid-gzip.wtrec");
    let members = if per_flush { "per-flush" } else { "stream" };
    let mut bed = support::KillOnDrop(
        support::testbed_run(&dir)
            .args(["-duration", "9s"])
            .arg(format!("-apiserver-arg=-watchlist-gzip={members}"))
            .args(["--", "-conns", "1", "-watches-per-conn", "3"])
            .args(["-mode", "watchlist", "-gzip", "-format", "json"])
            .args(["-write-rate", "40", "-drain", "1s"])
            .spawn()
            .unwrap(),
    );
    // Attach once the watches are streaming: every one began before.
    thread::sleep(Duration::from_secs(4));
    let recorded = support::record_fake_apiserver(&recording, 4)
        .status()
        .unwrap();
    assert!(recorded.success());
    assert!(bed.wait().unwrap().success(), "testbed-run failed");

    let truth = ground_truth::records(&dir.join("bed/state/ground-truth.jsonl"));
    let output = ground_truth::replayed(&recording);
    assert_eq!(of_kind(&truth, "watch_open").len(), 3);
    let mut reported: BTreeMap<u32, u64> = BTreeMap::new();
    for e in &output {
        if let OutputEvent::Undecodable {
            stream: Some(stream),
            reason,
            bytes,
            ..
        } = e
        {
            assert_eq!(*reason, UndecodableReason::JoinedMidGzip, "{e:?}");
            *reported.entry(*stream).or_default() += bytes;
        }
    }
    // Written while the agent surely traced: after its first second and
    // before its last.
    let first = output.iter().map(OutputEvent::ts).min().unwrap() as i64;
    let last = output.iter().map(OutputEvent::ts).max().unwrap() as i64;
    let traced: Vec<&Value> = of_kind(&truth, "write")
        .into_iter()
        .filter(|w| {
            let t = w["t_before"].as_i64().unwrap();
            t > first + 1_000 * MS && t < last - 1_000 * MS
        })
        .collect();
    assert!(!traced.is_empty());
    let decoded: Vec<(String, String)> = output
        .iter()
        .filter_map(|e| match e {
            OutputEvent::WatchEvent {
                event_type,
                resource_version,
                ..
            } => Some((event_type.to_string(), resource_version.to_string())),
            _ => None,
        })
        .collect();
    if per_flush {
        // Each stream's partial member at most, then every event.
        assert!(reported.len() <= 3, "{reported:?}");
        for w in &traced {
            let event = (
                w["event_type"].as_str().unwrap().to_owned(),
                w["rv"].as_str().unwrap().to_owned(),
            );
            assert!(decoded.contains(&event), "{event:?} not decoded");
        }
        println!(
            "3 streams joined mid-member, a member per flush: {} events decoded, {} bytes of partial members reported",
            decoded.len(),
            reported.values().sum::<u64>()
        );
    } else {
        assert!(
            decoded.is_empty(),
            "nothing of a stream joined mid-member is guessed"
        );
        assert_eq!(reported.len(), 3, "each stream reported: {reported:?}");
        // The compressed bytes the server wrote while the agent traced: no
        // more than the streams' whole, at least those written while it
        // surely traced.
        let total: u64 = reported.values().sum();
        let at_least: u64 = traced
            .iter()
            .map(|w| w["wire_bytes"].as_u64().unwrap())
            .sum();
        let at_most: u64 = of_kind(&truth, "watch_close")
            .iter()
            .map(|c| c["wire_bytes"].as_u64().unwrap())
            .sum();
        assert!(
            at_least > 0 && at_least <= total && total <= at_most,
            "{at_least} <= {total} <= {at_most}"
        );
        println!("3 streams joined mid-member: {total} compressed bytes reported");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

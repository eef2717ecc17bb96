//! Root-only: the tails of watch-event timelines on the testbed.
//!
//! - An event on an otherwise idle connection has its `t_acked` (the
//!   client's last ack of a quiet connection is seen).
//! - An event whose ack does not come (its client stopped reading but kept
//!   the connection) is written at the ack deadline with `t_acked` missing,
//!   while the stall still lasts: no event waits without bound.
//! - A watch-list stream's initial events are `replayed` and not counted
//!   incomplete; every other event served has a complete timeline.

mod support;

use serde_json::Value;
use support::ground_truth::{self, of_kind};
use watchtrace::{
    model::{Model, ModelConfig},
    pipeline::{OutputEvent, TimelinePart},
};

/// Served watch events (direction `out`) of a replay, as JSON.
fn served(output: &[OutputEvent]) -> Vec<Value> {
    output
        .iter()
        .filter(|e| matches!(e, OutputEvent::WatchEvent { .. }))
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|v| v["direction"] == "out")
        .collect()
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn an_event_on_an_idle_connection_has_its_ack() {
    let (_turn, dir) = support::testbed_turn("watchtrace-idle-ack");
    let recording = dir.join("idle.wtrec");
    let recorder = support::start_recorder(&recording);
    // One watch, a write every 2 s, no bookmarks: each event alone on a
    // quiet TLS connection.
    let status = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "6s", "--"])
        .args(["-conns", "1", "-watches-per-conn", "1", "-bookmarks=false"])
        .args(["-resources", "configmaps", "-namespaces", "ns-0"])
        .args([
            "-write-namespaces",
            "ns-0",
            "-write-rate",
            "0.5",
            "-format",
            "json",
        ])
        .args(["-drain", "1s"])
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    support::stop_recorder(recorder);

    let output = ground_truth::replayed(&recording);
    let events = served(&output);
    let truth = ground_truth::records(&dir.join("bed/state/ground-truth.jsonl"));
    let written = of_kind(&truth, "write")
        .iter()
        .filter(|w| w["initial"] != true)
        .count();
    let live: Vec<&Value> = events.iter().filter(|e| e["replayed"] != true).collect();
    assert_eq!(live.len(), written, "every event written: {events:#?}");
    assert!(written >= 2, "a few isolated events ({written})");
    for e in &live {
        assert!(e["t_acked"].is_u64(), "no ack for {e}");
        assert!(e["wire_client_ns"].is_u64(), "{e}");
        let missing = e["missing"].as_array().unwrap();
        assert!(!missing.contains(&"t_acked".into()), "{e}");
    }
    println!("{written} isolated events, each with its ack");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn an_event_whose_ack_never_comes_is_written_at_the_deadline() {
    let (_turn, dir) = support::testbed_turn("watchtrace-ack-deadline");
    let recording = dir.join("deadline.wtrec");
    let recorder = support::start_recorder(&recording);
    // The only connection stops reading its socket for 6 s and keeps it:
    // large objects fill its buffers, then acks stop.
    let status = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "9s", "--"])
        .args(["-conns", "1", "-watches-per-conn", "2"])
        .args(["-resources", "configmaps", "-namespaces", "ns-0"])
        .args(["-write-namespaces", "ns-0", "-format", "json"])
        .args([
            "-object-size",
            "32768",
            "-write-rate",
            "100",
            "-drain",
            "1s",
        ])
        .args([
            "-stall-conn",
            "0",
            "-stall-conn-after",
            "2s",
            "-stall-conn-for",
            "6s",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    support::stop_recorder(recorder);

    let output = ground_truth::replayed(&recording);
    // Where the stall's report is: written when it ended.
    let stall_end = output
        .iter()
        .position(|e| {
            matches!(e, OutputEvent::SocketStall { duration_ns, .. } if *duration_ns > 3_000_000_000)
        })
        .expect("the 6 s stall is reported");
    let expired: Vec<(usize, &OutputEvent)> = output
        .iter()
        .enumerate()
        .filter(|(_, e)| match e {
            OutputEvent::WatchEvent { timeline, .. } => {
                timeline.t_sent.is_some() && timeline.missing.contains(&TimelinePart::TAcked)
            }
            _ => false,
        })
        .collect();
    assert!(!expired.is_empty(), "sent events whose ack did not come");
    let during: Vec<_> = expired.iter().filter(|(i, _)| *i < stall_end).collect();
    assert!(
        !during.is_empty(),
        "written while the stall lasted, not when it ended ({} expired)",
        expired.len()
    );
    println!(
        "{} events written without their ack at the deadline, {} of them while the stall lasted",
        expired.len(),
        during.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn watch_list_initial_events_are_replayed_and_every_other_event_is_complete() {
    let (_turn, dir) = support::testbed_turn("watchtrace-initial-events");
    let recording = dir.join("initial.wtrec");
    let recorder = support::start_recorder(&recording);
    // Objects written for 1 s before the watch-list streams open: their
    // initial events.
    let status = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "5s"])
        .args(["--", "-conns", "2", "-watches-per-conn", "3"])
        .args(["-mode", "watchlist", "-format", "mixed", "-prefill", "1s"])
        .args(["-write-rate", "40", "-drain", "1s"])
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    support::stop_recorder(recorder);

    let truth = ground_truth::records(&dir.join("bed/state/ground-truth.jsonl"));
    let output = ground_truth::replayed(&recording);
    let events = served(&output);
    let initial_written = of_kind(&truth, "write")
        .iter()
        .filter(|w| w["initial"] == true || w["initial_events_end"] == true)
        .count();
    let replayed: Vec<&Value> = events.iter().filter(|e| e["replayed"] == true).collect();
    assert_eq!(
        replayed.len(),
        initial_written,
        "initial events and their bookmarks"
    );
    assert!(initial_written > 6, "each watch had initial events");
    for e in &events {
        if e["replayed"] != true {
            assert_eq!(e["missing"], serde_json::json!([]), "incomplete: {e}");
            assert!(e["apiserver_time_span_ns"].is_u64(), "{e}");
        } else {
            assert!(e["apiserver_time_span_ns"].is_null(), "{e}");
        }
    }
    let mut model = Model::new(ModelConfig::default());
    for e in &output {
        model.on_event(e);
    }
    let text = watchtrace::metrics::render(&model);
    assert!(
        !text.contains("watchtrace_event_timeline_incomplete_total{"),
        "no incomplete timeline: {text}"
    );
    assert!(
        text.contains("watchtrace_initial_watch_events_total{"),
        "{text}"
    );
    println!(
        "{} served events: {} initial, every other one complete",
        events.len(),
        replayed.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

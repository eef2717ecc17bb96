//! Root-only: the whole flow of one change on the testbed, writes made
//! through the traced fake-apiserver (over TLS, etcd over TLS): every
//! `write` joined to its revision with the server's commit time, every
//! watch event of it to its writer, each revision's fan-out equal to the
//! watchers the server wrote it to, and etcd's commit-to-watch delay equal
//! to the server's; with etcd's watch slowed by 200 ms that delay moves
//! and ApiserverTimeSpan does not.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::ground_truth::{self, of_kind};
use watchtrace::pipeline::OutputEvent;

const MS: i64 = 1_000_000;
/// The most a traced read may precede the server's own time of it (a
/// goroutine hand-off on a busy machine).
const HANDOFF: i64 = 10 * MS;
const WRITER: &str = "watch-load-writer";

/// The testbed run's ground truth and the replayed lines as JSON.
fn run(dir: &std::path::Path, etcd_watch_delay: Option<&str>) -> (Vec<Value>, Vec<Value>) {
    let recording = dir.join("writes.wtrec");
    let recorder = support::start_recorder(&recording);
    let mut bed = support::testbed_run(dir);
    bed.args(["-load-delay", "3s", "-duration", "5s", "-etcd-tls"]);
    if let Some(d) = etcd_watch_delay {
        bed.arg(format!("-apiserver-arg=-etcd-watch-delay={d}"));
    }
    let status = bed
        .args(["--", "-conns", "2", "-watches-per-conn", "3"])
        .args(["-resources", "configmaps,secrets", "-namespaces", "ns-0,*"])
        .args(["-write-via", "apiserver", "-conflict-ratio", "0.1"])
        .args(["-write-rate", "30", "-format", "mixed", "-drain", "1s"])
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    support::stop_recorder(recorder);
    let truth = ground_truth::records(&dir.join("bed/state/ground-truth.jsonl"));
    let lines = ground_truth::replayed(&recording)
        .iter()
        .map(|e: &OutputEvent| serde_json::to_value(e).unwrap())
        .collect();
    (truth, lines)
}

fn of<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn every_write_is_joined_to_its_commit_and_to_every_watcher_of_its_revision() {
    let (_turn, dir) = support::testbed_turn("watchtrace-write-flow");
    let (truth, lines) = run(&dir, None);

    // Writes: each committed one with its revision and commit time; the
    // conflicts (409) counted alike.
    let api_writes = of_kind(&truth, "api_write");
    let writes = of(&lines, "write");
    let by_revision: BTreeMap<i64, &Value> = writes
        .iter()
        .filter_map(|w| Some((w["revision"].as_i64()?, *w)))
        .collect();
    let mut committed = 0;
    let mut commit_errors = Vec::new();
    for t in &api_writes {
        let Some(rev) = t["revision"]
            .as_i64()
            .filter(|_| t["status"].as_u64() < Some(300))
        else {
            continue;
        };
        committed += 1;
        let w = by_revision
            .get(&rev)
            .unwrap_or_else(|| panic!("no write line for revision {rev}: {t}"));
        assert_eq!(w["client"], WRITER, "{w}");
        assert_eq!(w["verb"], t["verb"], "{w}");
        assert_eq!(w["status"], t["status"], "{w}");
        // Traced when the server's TLS read returned; the server's own
        // time is when its handler got the answer, a goroutine hand-off
        // later (over a millisecond on a busy 2-core machine): never
        // before the request went out, never much after the server's.
        let traced = w["t_committed"].as_i64().unwrap();
        let (sent, server) = (
            t["t_etcd_sent"].as_i64().unwrap(),
            t["t_committed"].as_i64().unwrap(),
        );
        assert!(
            sent < traced && traced <= server + MS,
            "commit of {rev}: traced {} ns from the server's, {} ns after its request",
            traced - server,
            traced - sent
        );
        commit_errors.push((traced - server).abs());
    }
    let commit_error = median(commit_errors);
    assert!(
        commit_error <= MS,
        "commits: median {commit_error} ns from the server's"
    );
    assert!(
        committed > 50,
        "a meaningful number of writes ({committed})"
    );
    let conflicts = |v: &[&Value]| v.iter().filter(|w| w["status"] == 409).count();
    assert_eq!(conflicts(&writes), conflicts(&api_writes), "409s");
    assert!(conflicts(&api_writes) > 0, "the conflict ratio made some");

    // Fan-out: the watch events the server wrote of each revision.
    let mut watchers: BTreeMap<i64, u32> = BTreeMap::new();
    for w in of_kind(&truth, "write") {
        if w["initial"] != true
            && let Some(rev) = w["rv"].as_str().and_then(|r| r.parse().ok())
        {
            *watchers.entry(rev).or_default() += 1;
        }
    }
    let read_at: BTreeMap<i64, i64> = of_kind(&truth, "etcd_event")
        .iter()
        .map(|e| {
            (
                e["revision"].as_i64().unwrap(),
                e["t_read"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut delay_errors = Vec::new();
    let fanouts = of(&lines, "write_fanout");
    assert_eq!(fanouts.len(), committed, "one fan-out per committed write");
    for f in &fanouts {
        let rev = f["revision"].as_i64().unwrap();
        assert_eq!(
            f["watchers"].as_u64(),
            Some(u64::from(watchers.get(&rev).copied().unwrap_or(0))),
            "fan-out of {rev}"
        );
        let t = api_writes.iter().find(|t| t["revision"] == rev).unwrap();
        if let Some(delay) = f["etcd_watch_delay_ns"].as_i64() {
            let want = read_at[&rev] - t["t_committed"].as_i64().unwrap();
            // Both ends traced at their reads, both of the server's a
            // hand-off later: each may differ by that, a wrong join by a
            // whole write interval (33 ms).
            assert!(
                (delay - want).abs() <= HANDOFF,
                "etcd delay of {rev}: {delay} vs {want}"
            );
            delay_errors.push((delay - want).abs());
        }
    }
    assert!(!delay_errors.is_empty(), "no fan-out had an etcd delay");
    let delay_error = median(delay_errors);
    assert!(
        delay_error <= MS,
        "etcd delays: median {delay_error} ns from the server's"
    );
    // Every watcher's event of a written revision names its writer.
    for e in of(&lines, "watch_event") {
        if let Some(rev) = e["resource_version"]
            .as_str()
            .and_then(|r| r.parse::<i64>().ok())
            && by_revision.contains_key(&rev)
            && e["replayed"] != true
        {
            assert_eq!(e["writer"], WRITER, "{e}");
            assert!(e["etcd_watch_delay_ns"].is_i64(), "{e}");
        }
    }
    println!(
        "{committed} writes joined to their commits (median {:.3} ms from the server's); {} fan-outs equal to the server's (etcd delay median {:.3} ms from it)",
        commit_error as f64 / 1e6,
        fanouts.len(),
        delay_error as f64 / 1e6,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn a_slow_etcd_watch_moves_the_etcd_delay_and_not_apiserver_time_span() {
    let (_turn, dir) = support::testbed_turn("watchtrace-slow-etcd");
    let (_, lines) = run(&dir, Some("200ms"));
    let delays: Vec<i64> = of(&lines, "write_fanout")
        .iter()
        .filter_map(|f| f["etcd_watch_delay_ns"].as_i64())
        .collect();
    let spans: Vec<i64> = of(&lines, "watch_event")
        .iter()
        .filter_map(|e| e["apiserver_time_span_ns"].as_i64())
        .collect();
    assert!(delays.len() > 20 && spans.len() > 20);
    let (delay, span) = (median(delays), median(spans));
    assert!(
        delay >= 190 * MS,
        "etcd commit to watch read: median {delay} ns"
    );
    assert!(span < 20 * MS, "ApiserverTimeSpan: median {span} ns");
    println!(
        "etcd watch slowed by 200 ms: etcd delay median {:.1} ms, ApiserverTimeSpan median {:.2} ms",
        delay as f64 / 1e6,
        span as f64 / 1e6
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

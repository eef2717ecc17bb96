//! Replays of the committed recordings (tests/fixtures/recordings).
//!
//! A replay is a pure function of the file: the same JSON lines every run,
//! and for any `--workers N` (sockets are decoded on N threads, and
//! everything that joins them, ids, acks, etcd revisions and stalls, runs
//! after, in record order).

use std::{collections::BTreeMap, path::PathBuf, process::Command};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

fn recording(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recordings")
        .join(name)
}

/// The JSON lines of a replay with `workers` decoding threads.
fn replay(path: &PathBuf, workers: usize) -> String {
    let out = Command::new(WATCHTRACE)
        .arg("replay")
        .arg(path)
        .args(["--workers", &workers.to_string(), "--events", "-"])
        .output()
        .expect("running watchtrace replay");
    assert!(
        out.status.success(),
        "replay --workers {workers} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("JSON lines are UTF-8")
}

fn kinds(lines: &str) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for line in lines.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        *kinds
            .entry(event["kind"].as_str().expect("kind").to_owned())
            .or_default() += 1;
    }
    kinds
}

fn same_for_any_workers(name: &str, connections: usize) {
    let path = recording(name);
    let one = replay(&path, 1);
    let kinds = kinds(&one);
    // A recording whose connections and etcd join matter: several sockets
    // to split, and watch events that need another socket's etcd reads.
    assert_eq!(kinds.get("conn_open"), Some(&connections), "{kinds:?}");
    assert!(
        kinds.get("watch_event").is_some_and(|&n| n > 50),
        "{kinds:?}"
    );
    let joined = one
        .lines()
        .filter(|l| l.contains(r#""kind":"watch_event""#) && !l.contains(r#""t_source":null"#))
        .count();
    assert!(
        joined > 50,
        "watch events joined to their etcd read: {joined}"
    );
    for workers in [2, 3, 4] {
        let many = replay(&path, workers);
        assert!(
            many == one,
            "--workers {workers} differs from --workers 1 on {name}, first at line {}",
            one.lines()
                .zip(many.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(one.lines().count().min(many.lines().count()))
                + 1
        );
    }
}

#[test]
fn tls_watches_with_cleartext_etcd_replay_the_same_for_any_number_of_workers() {
    same_for_any_workers("tls-watches-cleartext-etcd.wtrec", 3);
}

#[test]
fn h2c_watches_with_tls_etcd_replay_the_same_for_any_number_of_workers() {
    same_for_any_workers("h2c-watches-tls-etcd.wtrec", 5);
}

#[test]
fn a_recording_joined_mid_way_replays_the_same_for_any_number_of_workers() {
    same_for_any_workers("joined-midway.wtrec", 4);
}

#[test]
fn every_committed_recording_replays_to_the_same_lines_ten_times() {
    for name in [
        "tls-watches-cleartext-etcd.wtrec",
        "h2c-watches-tls-etcd.wtrec",
        "joined-midway.wtrec",
    ] {
        let path = recording(name);
        let first = replay(&path, 1);
        assert!(!first.is_empty());
        for run in 2..=10 {
            assert!(
                replay(&path, 1) == first,
                "{name}: run {run} differs from run 1"
            );
        }
    }
}

/// The resources of the Lease watch events a replay wrote.
fn lease_resources(name: &str) -> BTreeMap<String, usize> {
    let mut resources = BTreeMap::new();
    for line in replay(&recording(name), 1).lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        if event["kind"] == "watch_event" && event["object_kind"] == "Lease" {
            *resources
                .entry(event["resource"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    resources
}

#[test]
fn a_lease_watch_is_labelled_with_its_group_whether_or_not_its_request_was_seen() {
    // From the start: every watch's request was seen.
    let seen = lease_resources("tls-watches-cleartext-etcd.wtrec");
    // Joined mid-way: no request seen; the group comes from the objects'
    // apiVersion.
    let unseen = lease_resources("joined-midway.wtrec");
    for resources in [&seen, &unseen] {
        assert_eq!(
            resources.keys().collect::<Vec<_>>(),
            ["leases.coordination.k8s.io"],
            "{resources:?}"
        );
    }
}

/// Each connection's `conn_open` role and whether it was inferred, and
/// whether it carried etcd events.
fn roles(name: &str) -> BTreeMap<u64, (String, bool, bool)> {
    let lines = replay(&recording(name), 1);
    let events: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let etcd: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "etcd_event")
        .map(|e| e["conn"].as_u64().unwrap())
        .collect();
    events
        .iter()
        .filter(|e| e["kind"] == "conn_open")
        .map(|e| {
            let conn = e["conn"].as_u64().unwrap();
            let role = e["role"].as_str().unwrap().to_owned();
            (
                conn,
                (role, e["role_inferred"] == true, etcd.contains(&conn)),
            )
        })
        .collect()
}

#[test]
fn connections_joined_mid_way_get_their_role_from_the_ports_the_process_listened_on() {
    // The apiserver's connection to etcd is one it dialled: a client, though
    // its first bytes, mid-stream, did not say so. Its watch connections
    // were accepted on its listening port.
    let midway = roles("joined-midway.wtrec");
    let etcd: Vec<_> = midway.values().filter(|(_, _, etcd)| *etcd).collect();
    assert_eq!(etcd, [&("client".to_owned(), true, true)], "{midway:?}");
    let watches: Vec<_> = midway.values().filter(|(_, _, etcd)| !*etcd).collect();
    assert_eq!(watches.len(), 3, "{midway:?}");
    assert!(
        watches
            .iter()
            .all(|(role, inferred, _)| role == "server" && *inferred),
        "{midway:?}"
    );
    // Seen from their start, the watch connections' roles are not inferred.
    let from_start = roles("tls-watches-cleartext-etcd.wtrec");
    let watches: Vec<_> = from_start.values().filter(|(_, _, etcd)| !*etcd).collect();
    assert!(
        !watches.is_empty()
            && watches
                .iter()
                .all(|(role, inferred, _)| role == "server" && !*inferred),
        "{from_start:?}"
    );
}

#[test]
fn a_bad_worker_count_is_refused_with_a_reason() {
    let out = Command::new(WATCHTRACE)
        .arg("replay")
        .arg(recording("tls-watches-cleartext-etcd.wtrec"))
        .args(["--workers", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected auto or a number from 1 to 64"),
        "{stderr}"
    );
}

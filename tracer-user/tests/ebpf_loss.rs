//! Root-only. Loss is explicit and adds up: with a ring buffer far too
//! small for the load, every byte the kernel counted as lost comes out as
//! a `gap` line of its connection (or, for a stream that is no connection,
//! in `lost_outside_connections`), and the summary counts what the lines
//! say.

mod support;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use support::KillOnDrop;

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn with_a_4_kib_ring_the_gap_lines_add_up_to_the_bytes_the_kernel_lost() {
    let (_turn, dir) = support::testbed_turn("watchtrace-loss");
    let events = dir.join("events.jsonl");
    let agent = Command::new(env!("CARGO_BIN_EXE_watchtrace"))
        .args(["run", "--exe", &support::fake_apiserver_exe()])
        .args(["--ringbuf-size", "4096", "--duration", "12"])
        .args(["--metrics-addr", "off", "--events"])
        .arg(&events)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut agent = KillOnDrop(agent);
    thread::sleep(Duration::from_secs(1));
    let status = support::testbed_run(&dir)
        .args(["-load-delay", "2s", "-duration", "6s", "--"])
        .args([
            "-conns",
            "10",
            "-watches-per-conn",
            "5",
            "-write-rate",
            "1500",
        ])
        .args(["-format", "mixed", "-drain", "1s"])
        .status()
        .unwrap();
    assert!(status.success(), "testbed-run failed");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut agent.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(agent.wait().unwrap().success());
    let summary: BTreeMap<&str, u64> = stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let (mut gaps, mut gap_bytes) = (0u64, 0u64);
    for line in std::fs::read_to_string(&events).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "gap" {
            gaps += 1;
            gap_bytes += v["len"].as_u64().unwrap();
        }
    }
    assert!(
        summary["ringbuf_drops"] > 0 && summary["lost_bytes"] > 0,
        "the ring was too small for the load: {stdout}"
    );
    assert_eq!(
        gap_bytes + summary["lost_outside_connections"],
        summary["lost_bytes"],
        "gap lines (and ciphertext lost) against the kernel: {stdout}"
    );
    assert_eq!(
        (gaps, gap_bytes),
        (summary["gaps"], summary["gap_bytes"]),
        "{stdout}"
    );
    println!(
        "{} records dropped, {} bytes lost, all in {gaps} gap lines",
        summary["ringbuf_drops"], summary["lost_bytes"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

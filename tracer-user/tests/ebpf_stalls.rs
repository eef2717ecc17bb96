//! Root-only: the testbed's two fault modes, seen by watchtrace.
//!
//! - A whole client connection stops reading its socket: the server's send
//!   buffer fills, its writes fail with EAGAIN, the client advertises a
//!   zero window. watchtrace must report `send_buffer_full` and
//!   `peer_zero_window` stalls on that connection only, ending when the
//!   ground truth's blocked writes end.
//! - One stream stops reading its body: its HTTP/2 stream window fills.
//!   watchtrace must report a stream-level window stall on that stream, and
//!   no socket stall on the connection (its neighbours keep flowing).
//!
//! And the attribution: the socket stall holds the stalled connection's
//! streams, each charged about what the ground truth says its writes
//! blocked; the stream stall holds its stream only; events elsewhere carry
//! no stall wait.

mod support;

use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead as _, BufReader},
    path::Path,
};

use watchtrace::{
    capture::{Record, decode},
    pipeline::{OutputEvent, Pipeline, PipelineConfig, StallCause, StallScope, StreamDelay},
    recording::Reader,
};

/// How far watchtrace's stall end may be from the ground truth's.
const TOLERANCE_NS: i64 = 10_000_000;
/// How far a socket stall's end and duration may be from the ground
/// truth's longest blocked write: one fault, one stall, ending with the
/// fault (the aftershocks while the backlog drains are flaps on it).
const SOCKET_STALL_TOLERANCE_NS: i64 = 50_000_000;

/// A socket stall's (fd, cause, held, filled_by, conn).
type HeldBy = (i32, StallCause, Vec<StreamDelay>, Option<u32>, Option<u64>);

/// The end (t_after) of the longest blocked write, and how long it blocked.
type Blocked = (u64, u64);

/// Ground truth: for each client address, its longest blocked write; per
/// (client, stream path) likewise.
fn blocked_writes(gt: &Path) -> (HashMap<String, Blocked>, HashMap<(String, String), Blocked>) {
    let mut by_client: HashMap<String, Blocked> = HashMap::new();
    let mut by_path: HashMap<(String, String), Blocked> = HashMap::new();
    for line in BufReader::new(File::open(gt).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        // A write cut short (its watcher terminated) never left the server.
        if v["kind"] != "write" || v.get("error").is_some() {
            continue;
        }
        let (before, after) = (
            v["t_before"].as_u64().unwrap(),
            v["t_after"].as_u64().unwrap(),
        );
        let blocked = after - before;
        let client = v["client"].as_str().unwrap().to_owned();
        let path = v["path"].as_str().unwrap().to_owned();
        for slot in [
            by_client.entry(client.clone()).or_default(),
            by_path.entry((client, path)).or_default(),
        ] {
            if blocked > slot.1 {
                *slot = (after, blocked);
            }
        }
    }
    (by_client, by_path)
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn fault_modes_show_up_as_the_right_stalls_on_the_right_connections() {
    let (_turn, dir) = support::testbed_turn("watchtrace-stalls");
    let recording = dir.join("stalls.wtrec");
    // Connection 1 stops reading its socket at 2 s for 8 s (the demo's
    // fault); stream 0 of connection 2 stops reading its body at 2 s for
    // 5 s (its 4 MiB window runs out within the first half even when the
    // machine is slow). Large objects, so buffers fill fast.
    support::record_load(
        &dir,
        &recording,
        &[
            "-load-delay",
            "3s",
            "-duration",
            "14s",
            "--",
            "-conns",
            "4",
            "-watches-per-conn",
            "3",
            "-resources",
            "configmaps",
            "-namespaces",
            "ns-0",
            "-write-resources",
            "configmaps",
            "-write-namespaces",
            "ns-0",
            "-format",
            "json",
            "-object-size",
            "32768",
            "-write-rate",
            "100",
            "-drain",
            "1s",
            "-stall-conn",
            "1",
            "-stall-conn-after",
            "2s",
            "-stall-conn-for",
            "8s",
            "-stall-stream",
            "6",
            "-stall-stream-after",
            "2s",
            "-stall-stream-for",
            "5s",
        ],
    );

    // Replay; remember each socket's peer port from its TCP samples.
    let mut reader = Reader::new(BufReader::new(File::open(&recording).unwrap())).unwrap();
    let mut pipeline = Pipeline::new(
        PipelineConfig::default(),
        reader.metadata().realtime_offset_ns,
    );
    let mut peer_of_fd: HashMap<i32, u16> = HashMap::new();
    let mut fd_of_sock: HashMap<u64, i32> = HashMap::new();
    let mut stalls = Vec::new();
    let mut window_stalls = Vec::new();
    let mut paths: HashMap<(u64, u32), String> = HashMap::new();
    let mut held_by_stall: Vec<HeldBy> = Vec::new();
    let mut window_held: Vec<(u64, StallScope, Option<u32>, Vec<StreamDelay>)> = Vec::new();
    // Per (conn, stream): the largest socket and flow-control waits of its
    // events.
    let mut waits: HashMap<(u64, u32), (u64, u64)> = HashMap::new();
    while let Some(bytes) = reader.next_record().unwrap() {
        match decode(bytes) {
            Ok(Record::SockSend(s)) if s.fd >= 0 => {
                fd_of_sock.insert(s.sock, s.fd);
            }
            Ok(Record::TcpSample(t)) => {
                if let Some(fd) = fd_of_sock.get(&t.sock) {
                    peer_of_fd.insert(*fd, t.dport);
                }
            }
            _ => {}
        }
        pipeline.on_record(bytes, &mut |event| match event {
            OutputEvent::SocketStall {
                fd,
                cause,
                start,
                duration_ns,
                flaps,
                held,
                filled_by,
                conn,
                ..
            } => {
                stalls.push((fd, cause, start, duration_ns, flaps));
                held_by_stall.push((fd, cause, held, filled_by, conn));
            }
            OutputEvent::WindowStall {
                conn,
                scope,
                stream,
                start,
                duration_ns,
                held,
                ..
            } => {
                window_stalls.push((conn, scope, stream, start, duration_ns));
                window_held.push((conn, scope, stream, held));
            }
            OutputEvent::WatchEvent {
                conn,
                stream,
                timeline,
                ..
            } => {
                let w = waits.entry((conn, stream)).or_default();
                w.0 = w.0.max(timeline.socket_buffer_wait_ns);
                w.1 = w.1.max(timeline.flow_control_wait_ns);
            }
            OutputEvent::Request {
                conn, stream, path, ..
            } => {
                paths.insert((conn, stream), path);
            }
            _ => {}
        });
    }
    let (by_client, by_path) = blocked_writes(&dir.join("bed/state/ground-truth.jsonl"));
    // The stalled connection: the client whose writes blocked longest.
    let (client, &(gt_end, gt_blocked)) = by_client.iter().max_by_key(|(_, (_, b))| *b).unwrap();
    let port: u16 = client.rsplit(':').next().unwrap().parse().unwrap();
    println!(
        "ground truth: {client} blocked {:.1} ms, ending at {gt_end}",
        gt_blocked as f64 / 1e6
    );
    println!(
        "socket stalls (fd, cause, start, duration ms, flaps): {:?}",
        stalls
            .iter()
            .map(|s| (s.0, s.1, s.2, s.3 as f64 / 1e6, s.4))
            .collect::<Vec<_>>()
    );
    println!(
        "window stalls (conn, scope, stream, start, duration ms): {:?}",
        window_stalls
            .iter()
            .map(|s| (s.0, s.1, s.2, s.3, s.4 as f64 / 1e6))
            .collect::<Vec<_>>()
    );
    let on_stalled: Vec<_> = stalls
        .iter()
        .filter(|s| peer_of_fd.get(&s.0) == Some(&port))
        .collect();
    // (The connection whose one stream stopped reading may see its TCP
    // window close for a moment: real, and far shorter.)
    let elsewhere: Vec<_> = stalls
        .iter()
        .filter(|s| peer_of_fd.get(&s.0) != Some(&port) && s.3 > 50_000_000)
        .collect();
    assert!(
        elsewhere.is_empty(),
        "no long socket stall on other connections: {elsewhere:?}"
    );
    // One fault, one stall of each cause: the window's flaps while the
    // client's buffer drained are counted on it, not reported apart.
    for cause in [StallCause::SendBufferFull, StallCause::PeerZeroWindow] {
        let n = on_stalled.iter().filter(|s| s.1 == cause).count();
        assert_eq!(
            n, 1,
            "{cause:?} stalls on the stalled connection: {on_stalled:?}"
        );
    }
    let full = on_stalled
        .iter()
        .filter(|s| s.1 == StallCause::SendBufferFull)
        .max_by_key(|s| s.3)
        .expect("a send_buffer_full stall on the stalled connection");
    let zero = on_stalled
        .iter()
        .filter(|s| s.1 == StallCause::PeerZeroWindow)
        .max_by_key(|s| s.3)
        .expect("a peer_zero_window stall on the stalled connection");
    let full_end = (full.2 + full.3) as i64;
    println!(
        "send_buffer_full: {:.1} ms ending {:+.1} ms from the ground truth; peer_zero_window: {:.1} ms",
        full.3 as f64 / 1e6,
        (full_end - gt_end as i64) as f64 / 1e6,
        zero.3 as f64 / 1e6
    );
    assert!(
        (full_end - gt_end as i64).abs() <= SOCKET_STALL_TOLERANCE_NS,
        "stall end within 50 ms of the ground truth"
    );
    // The zero window lasts until the client has read enough for the
    // server's blocked write to go on: it ends as that write does. (The
    // client's resume, in watch-load's summary, is printed: once its gate
    // opens, the client may take a while to drain its receive buffer.)
    let summary: serde_json::Value =
        serde_json::from_reader(File::open(dir.join("bed/watch-load-summary.json")).unwrap())
            .unwrap();
    let resumed = summary["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c["stalled"]["to"].as_u64())
        .expect("the stalled connection's fault window in the summary");
    let zero_end = (zero.2 + zero.3) as i64;
    println!(
        "peer_zero_window: {:.1} ms with {} flaps, ending {:+.1} ms from the blocked write's end, \
         {:+.1} ms from the client's resume",
        zero.3 as f64 / 1e6,
        zero.4,
        (zero_end - gt_end as i64) as f64 / 1e6,
        (zero_end - resumed as i64) as f64 / 1e6
    );
    assert!(
        (zero_end - gt_end as i64).abs() <= SOCKET_STALL_TOLERANCE_NS,
        "the zero window ends within 50 ms of the server's blocked write"
    );
    assert!(
        (full.3 as i64 - gt_blocked as i64).abs() <= SOCKET_STALL_TOLERANCE_NS,
        "stall duration within 50 ms of the ground truth's blocked write"
    );
    // The stalled stream: a stream-level window stall on its path.
    // The stalled stream: the longest blocked write on any other client.
    let ((_, path), &(stream_end, stream_blocked)) = by_path
        .iter()
        .filter(|((c, _), _)| c != client)
        .max_by_key(|(_, (_, b))| *b)
        .unwrap();
    assert!(
        stream_blocked > 500_000_000,
        "the stream stall blocked its writes ({stream_blocked} ns)"
    );
    // One fault, one stall: the stream's catch-up, exhausting its window
    // again and again while its backlog drains, is flaps on it.
    let on_stream: Vec<_> = window_stalls
        .iter()
        .filter(|s| {
            s.1 == StallScope::Stream && s.2.is_some_and(|id| paths.get(&(s.0, id)) == Some(path))
        })
        .collect();
    assert_eq!(
        on_stream.len(),
        1,
        "one stream window stall on {path}: {window_stalls:?}"
    );
    let stream_stall = on_stream[0];
    let stall_end = (stream_stall.3 + stream_stall.4) as i64;
    assert!(
        (stall_end - stream_end as i64).abs() <= TOLERANCE_NS,
        "stream stall end within 10 ms of the ground truth"
    );
    println!(
        "stream window stall: {:.1} ms ending {:+.1} ms from the ground truth (writes blocked {:.1} ms)",
        stream_stall.4 as f64 / 1e6,
        (stall_end - stream_end as i64) as f64 / 1e6,
        stream_blocked as f64 / 1e6
    );

    // Attribution, TCP case: the longest send_buffer_full stall holds the
    // stalled connection's streams, each charged about what its writes
    // blocked in the ground truth.
    let (_, _, held, filled_by, stalled_conn) = held_by_stall
        .iter()
        .filter(|s| s.1 == StallCause::SendBufferFull && peer_of_fd.get(&s.0) == Some(&port))
        .max_by_key(|s| s.2.iter().map(|d| d.delay_ns).max())
        .expect("the stalled connection's stall");
    let stalled_conn = stalled_conn.expect("the stall is on a traced connection");
    println!(
        "send_buffer_full on conn {stalled_conn} held {:?}, filled by stream {filled_by:?}",
        held.iter()
            .map(|d| (d.stream, d.delay_ns as f64 / 1e6))
            .collect::<Vec<_>>()
    );
    // The watches the ground truth saw blocked on the stalled client, by
    // path; each must be held, charged within 50 ms of its blocked write.
    let blocked_paths: Vec<(&String, u64)> = by_path
        .iter()
        .filter(|((c, _), (_, b))| c == client && *b > 1_000_000_000)
        .map(|((_, p), (_, b))| (p, *b))
        .collect();
    assert!(
        !blocked_paths.is_empty() && blocked_paths.len() <= 3,
        "the stalled client's watches blocked: {blocked_paths:?}"
    );
    let stalled_streams: Vec<u32> = paths
        .iter()
        .filter(|((c, _), _)| *c == stalled_conn)
        .map(|((_, s), _)| *s)
        .collect();
    for (path, gt) in &blocked_paths {
        let d = held
            .iter()
            .find(|d| paths.get(&(stalled_conn, d.stream)) == Some(*path))
            .unwrap_or_else(|| panic!("a stream of {path} held by the stall: {held:?}"));
        println!(
            "  stream {} ({path}): delay {:.1} ms, ground truth blocked {:.1} ms",
            d.stream,
            d.delay_ns as f64 / 1e6,
            *gt as f64 / 1e6
        );
        assert!(
            (d.delay_ns as i64 - *gt as i64).abs() <= 50_000_000,
            "stream {}'s delay within 50 ms of its blocked write",
            d.stream
        );
        assert_eq!(d.resource.as_deref(), Some("configmaps"));
    }
    assert!(
        filled_by.is_some_and(|s| stalled_streams.contains(&s)),
        "the buffer was filled by one of the connection's own streams"
    );
    // Stream case: each stream stall holds its own stream only; the
    // stalled stream's holds it.
    let (stream_conn, stream_id) = (stream_stall.0, stream_stall.2.unwrap());
    for (_, _, stream, held) in window_held
        .iter()
        .filter(|(c, scope, ..)| *c == stream_conn && *scope == StallScope::Stream)
    {
        assert!(
            held.iter().all(|d| Some(d.stream) == *stream),
            "a stream stall holds its own stream only: {stream:?} held {held:?}"
        );
    }
    assert!(
        window_held
            .iter()
            .any(|(c, _, stream, held)| *c == stream_conn
                && *stream == Some(stream_id)
                && !held.is_empty()),
        "the stalled stream's stall held it"
    );
    // Neighbours: no socket wait on any other connection, and no
    // flow-control wait on other connections' streams (the stalled
    // connection's catch-up after its stall does meet its stream windows).
    for (&(conn, stream), &(socket_wait, flow_wait)) in &waits {
        // Other clients' sockets may flap to a zero window for well under a
        // millisecond as they catch up; nothing like the fault's seconds.
        if conn != stalled_conn {
            assert!(
                socket_wait < 50_000_000,
                "conn {conn} stream {stream} waited {socket_wait} ns on a socket stall"
            );
        }
        if conn != stalled_conn && conn != stream_conn {
            assert!(
                flow_wait == 0,
                "conn {conn} stream {stream} waited {flow_wait} ns on flow control"
            );
        }
        // The stalled stream's siblings: its catch-up (seconds of events
        // at once) keeps the client's one frame reader busy, so their own
        // WINDOW_UPDATEs may come a few ms late; nothing like the fault.
        if conn == stream_conn && stream != stream_id {
            assert!(
                flow_wait < 50_000_000,
                "conn {conn} stream {stream} waited {flow_wait} ns on flow control"
            );
        }
    }
    let (_, stalled_flow) = waits[&(stream_conn, stream_id)];
    println!(
        "stalled stream's events waited up to {:.1} ms on flow control",
        stalled_flow as f64 / 1e6
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A busy client that keeps reading is never stalled: over a minute of
/// steady load, not one stall of any cause (no flap of a healthy window
/// becomes a stall row or a `watchtrace_stalls_total` increment).
#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn a_minute_of_busy_healthy_clients_has_no_stall() {
    let (_turn, dir) = support::testbed_turn("watchtrace-healthy");
    let recording = dir.join("healthy.wtrec");
    support::record_load(
        &dir,
        &recording,
        &[
            "-load-delay",
            "2s",
            "-duration",
            "60s",
            "--",
            "-conns",
            "4",
            "-watches-per-conn",
            "3",
            "-resources",
            "configmaps",
            "-namespaces",
            "ns-0",
            "-write-resources",
            "configmaps",
            "-write-namespaces",
            "ns-0",
            "-format",
            "json",
            "-object-size",
            "8192",
            "-write-rate",
            "200",
            "-drain",
            "1s",
        ],
    );
    let (mut events, mut stalls, mut first, mut last) = (0u64, Vec::new(), u64::MAX, 0u64);
    for event in support::ground_truth::replayed(&recording) {
        match event {
            OutputEvent::WatchEvent { ts, .. } => {
                events += 1;
                first = first.min(ts);
                last = last.max(ts);
            }
            e @ (OutputEvent::SocketStall { .. }
            | OutputEvent::WindowStall { .. }
            | OutputEvent::StallStart { .. }) => stalls.push(format!("{e:?}")),
            _ => {}
        }
    }
    let span_s = last.saturating_sub(first) as f64 / 1e9;
    println!(
        "{events} watch events over {span_s:.1} s; stalls: {}",
        stalls.len()
    );
    assert!(
        events > 10_000 && span_s > 55.0,
        "a minute of busy load was traced ({events} events over {span_s:.1} s)"
    );
    assert!(
        stalls.is_empty(),
        "no stall on healthy clients: {stalls:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `watchtrace top` in a real terminal: tmux runs the binary on a recording
//! synthesised here (three HTTP/2 connections with watch streams, the way
//! an apiserver's would look), keys are sent, and the screen is read back.
//! No root needed: `top --replay` only reads the file.

#[path = "http2_support.rs"]
mod h2;
#[path = "tmux_support.rs"]
mod tmux;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use h2::{Enc, data, headers, preface, settings, settings_ack, window_update};
use tmux::{Tmux, exit_status};
use tracer_common::record::{
    CHUNK_FLAG_STREAM_START, ChunkHeader, ChunkSource, Direction, ProcessInfo, RecordHeader,
    RecordKind, SockAnchor, SockClose, Tick,
};
use watchtrace::{
    capture::{encode, encode_chunk, fixed},
    model::{Model, ModelConfig},
    pipeline::{Pipeline, PipelineConfig},
    recording::{Metadata, Reader, Writer},
    watch::fixture::{ObjectSpec, encode_json_line},
};

const PID: u32 = 4242;
/// CLOCK_MONOTONIC of the recording's first record.
const T0: u64 = 1_000_000_000_000;
/// Unix time of T0: 2026-11-28 09:30:00 UTC.
const UNIX_T0: i128 = 1_795_858_200_000_000_000;

/// One client connection of the synthetic apiserver.
struct Client {
    fd: i32,
    peer: [u8; 4],
    port: u16,
    user_agent: &'static str,
    /// The client raises every stream's receive window to 16 MiB; without
    /// that, streams start with HTTP/2's 65,535 bytes and a stream that
    /// sends more waits for the client's WINDOW_UPDATE (a window stall).
    big_windows: bool,
    /// It opens an exhausted window again (else its stall lasts to the
    /// end of the recording).
    reopens: bool,
    /// (stream, resource path, namespace, events in the recording, bytes
    /// of payload in each object)
    watches: &'static [(u32, &'static str, &'static str, u32, usize)],
}

/// How long the client takes to open a stream's exhausted window.
const WINDOW_STALL_NS: u64 = 350_000_000;

const CLIENTS: &[Client] = &[
    Client {
        fd: 20,
        peer: [10, 0, 1, 11],
        port: 51514,
        user_agent: "kubelet/v1.31.0 (linux/amd64) kubernetes/9ef0e5b",
        big_windows: true,
        reopens: true,
        watches: &[
            (1, "/api/v1/pods", "", 40, 10),
            (
                3,
                "/api/v1/namespaces/kube-system/configmaps",
                "kube-system",
                6,
                10,
            ),
        ],
    },
    Client {
        fd: 21,
        peer: [10, 0, 0, 5],
        port: 40312,
        user_agent: "kube-controller-manager/v1.31.0 (linux/amd64) kubernetes/9ef0e5b/shared-informers",
        big_windows: true,
        reopens: true,
        watches: &[
            (1, "/apis/apps/v1/deployments", "", 30, 10),
            (3, "/apis/apps/v1/replicasets", "", 60, 10),
            (5, "/api/v1/pods", "", 90, 10),
        ],
    },
    Client {
        fd: 22,
        peer: [10, 0, 0, 6],
        port: 38820,
        user_agent: "kube-scheduler/v1.31.0 (linux/amd64) kubernetes/9ef0e5b/scheduler",
        big_windows: false,
        reopens: true,
        // Node objects are large: the second one exhausts the stream's
        // window.
        watches: &[
            (1, "/api/v1/nodes", "", 4, 40_000),
            (3, "/api/v1/pods", "", 8, 10),
        ],
    },
];

/// A fourth client, in [`Tail::stalled`]: its endpointslices stream
/// exhausts its window and the client never opens it again.
const STUCK: Client = Client {
    fd: 23,
    peer: [10, 0, 2, 7],
    port: 33100,
    user_agent: "kube-proxy/v1.31.0 (linux/amd64) kubernetes/9ef0e5b",
    big_windows: false,
    reopens: false,
    watches: &[(1, "/apis/discovery.k8s.io/v1/endpointslices", "", 3, 40_000)],
};

/// What the synthetic recording has beyond the three clients.
#[derive(Clone, Copy, Default)]
struct Tail {
    /// [`STUCK`]'s stall, still going on at the end.
    stalled: bool,
    /// Every connection closes at the end (as when the traced server or
    /// its clients stop before the recording does).
    closes: bool,
}

/// When [`Tail::closes`] closes the connections.
const CLOSE_AT: u64 = T0 + 2_500_000_000;

/// Records as the kernel writes them: in time order, each chunk at its
/// stream's offset then. Chunks are made in the order of the traffic's
/// logic (a stalled stream's rest right after its stall) and placed in
/// time order at the end, with a tick every 100 ms as an idle ring gives.
#[derive(Default)]
struct Recording {
    /// `(ts, record)`, a chunk's offset still to be set.
    records: Vec<(u64, Pending)>,
    /// Each stream's length so far.
    offsets: HashMap<(i32, Direction), u64>,
}

enum Pending {
    Record(Vec<u8>),
    Chunk {
        fd: i32,
        direction: Direction,
        bytes: Vec<u8>,
    },
}

fn header(kind: RecordKind, ts_ns: u64) -> RecordHeader {
    RecordHeader {
        ts_ns,
        kind: kind as u16,
        _pad0: 0,
        tgid: PID,
        tid: PID,
        _pad1: 0,
    }
}

impl Recording {
    fn push(&mut self, ts_ns: u64, record: Vec<u8>) {
        self.records.push((ts_ns, Pending::Record(record)));
    }

    fn chunk(&mut self, ts_ns: u64, fd: i32, direction: Direction, bytes: &[u8]) {
        *self.offsets.entry((fd, direction)).or_insert(0) += bytes.len() as u64;
        self.records.push((
            ts_ns,
            Pending::Chunk {
                fd,
                direction,
                bytes: bytes.to_vec(),
            },
        ));
    }

    /// The records in time order (stable: what the traffic's logic made
    /// first at one time stays first), ticks every 100 ms up to `end`.
    fn finish(mut self, end: u64) -> Vec<Vec<u8>> {
        let mut t = T0;
        while t <= end {
            self.push(
                t,
                encode(&Tick {
                    header: header(RecordKind::Tick, t),
                }),
            );
            t += 100_000_000;
        }
        self.records.sort_by_key(|(ts, _)| *ts);
        let mut offsets: HashMap<(i32, Direction), u64> = HashMap::new();
        self.records
            .into_iter()
            .map(|(ts, r)| match r {
                Pending::Record(r) => r,
                Pending::Chunk {
                    fd,
                    direction,
                    bytes,
                } => {
                    let offset = offsets.entry((fd, direction)).or_insert(0);
                    let r = chunk_record(ts, fd, direction, *offset, &bytes);
                    *offset += bytes.len() as u64;
                    r
                }
            })
            .collect()
    }
}

fn chunk_record(ts_ns: u64, fd: i32, direction: Direction, offset: u64, bytes: &[u8]) -> Vec<u8> {
    let chunk = ChunkHeader {
        header: header(RecordKind::Chunk, ts_ns),
        fd,
        direction: direction as u8,
        source: ChunkSource::Syscall as u8,
        flags: if offset == 0 {
            CHUNK_FLAG_STREAM_START
        } else {
            0
        },
        offset,
        tls_conn: 0,
        // A syscall stream is its socket's: one per fd here.
        sock: 0xffff_8880_0000_0000 | fd as u64,
        len: 0,
        write_seq: 0,
    };
    encode_chunk(&chunk, bytes)
}

/// DATA frames of at most HTTP/2's default 16 KiB carrying `bytes`.
fn data_frames(stream: u32, bytes: &[u8]) -> Vec<u8> {
    bytes
        .chunks(16_384)
        .flat_map(|piece| data(stream, piece, false))
        .collect()
}

fn request(path: &str, user_agent: &str) -> Vec<u8> {
    Enc::default()
        .indexed(2) // :method GET
        .indexed(6) // :scheme http
        .literal_idx_name(
            4,
            &format!("{path}?allowWatchBookmarks=true&resourceVersion=1000&watch=true"),
        )
        .literal_idx_name(1, "10.0.0.1:6443") // :authority
        .literal_idx_name(58, user_agent)
        .literal_idx_name(19, "application/json") // accept
        .build()
}

fn response() -> Vec<u8> {
    Enc::default()
        .indexed(8) // :status 200
        .literal_idx_name(31, "application/json") // content-type
        .build()
}

/// The synthetic capture (with `tail`'s extras): the apiserver's process and sockets, each
/// client's preface and watch requests, then watch events spread over two
/// seconds, busiest on the controller-manager's connection.
fn synthesise_with(tail: Tail) -> Vec<Vec<u8>> {
    let clients: Vec<&Client> = CLIENTS
        .iter()
        .chain(tail.stalled.then_some(&STUCK))
        .collect();
    let mut rec = Recording::default();
    rec.push(
        T0,
        encode(&ProcessInfo {
            header: header(RecordKind::ProcessInfo, T0),
            comm: fixed("kube-apiserver"),
            go_version: fixed("go1.23.4"),
            exe: fixed("/usr/local/bin/kube-apiserver"),
        }),
    );
    for (i, c) in clients.iter().enumerate() {
        let mut daddr = [0u8; 16];
        daddr[..4].copy_from_slice(&c.peer);
        let mut saddr = [0u8; 16];
        saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        rec.push(
            T0,
            encode(&SockAnchor {
                header: header(RecordKind::SockAnchor, T0),
                fd: c.fd,
                family: libc::AF_INET as u16,
                state: 1,
                _pad0: 0,
                sport: 6443,
                dport: c.port,
                inode: 70_000 + i as u32,
                saddr,
                daddr,
                bytes_sent: 0,
                bytes_acked: 0,
                bytes_received: 0,
                send_queue: 0,
                rtt_us: 0,
            }),
        );
    }
    let mut events: Vec<(u64, usize, u32, Vec<u8>)> = Vec::new();
    let mut rv = 1000u64;
    for (ci, c) in clients.iter().enumerate() {
        let ts = T0 + 1_000_000 * (ci as u64 + 1);
        // The client: preface, a big receive window, its watch requests.
        let mut hello = preface();
        if c.big_windows {
            hello.extend(settings(&[(4, 16 << 20)]));
        } else {
            hello.extend(settings(&[]));
        }
        hello.extend(window_update(0, (16 << 20) - 65_535));
        for (stream, path, ..) in c.watches {
            hello.extend(headers(*stream, &request(path, c.user_agent), true));
        }
        rec.chunk(ts, c.fd, Direction::Ingress, &hello);
        // The server: its SETTINGS, the ack, each watch's response headers.
        let mut answer = settings(&[(3, 250)]);
        answer.extend(settings_ack());
        for (stream, ..) in c.watches {
            answer.extend(headers(*stream, &response(), false));
        }
        rec.chunk(ts + 100_000, c.fd, Direction::Egress, &answer);
        rec.chunk(ts + 200_000, c.fd, Direction::Ingress, &settings_ack());
        for (stream, path, namespace, count, payload) in c.watches {
            for n in 0..*count {
                rv += 1;
                let at = T0 + 100_000_000 + u64::from(n) * 1_900_000_000 / u64::from(*count);
                let name = format!("{}-{n}", path.rsplit('/').next().unwrap_or("x"));
                let mut object = ObjectSpec::pod("MODIFIED", namespace, &name, &rv.to_string());
                object.payload = vec![b'x'; *payload];
                events.push((at, ci, *stream, encode_json_line(&object)));
            }
        }
    }
    events.sort_by_key(|e| (e.0, e.1, e.2));
    // Each stream's send window, for clients that keep the default.
    let mut windows: HashMap<(usize, u32), usize> = HashMap::new();
    for (at, ci, stream, line) in events {
        let c = clients[ci];
        let window =
            windows
                .entry((ci, stream))
                .or_insert(if c.big_windows { usize::MAX } else { 65_535 });
        if line.len() <= *window {
            *window -= line.len();
            rec.chunk(at, c.fd, Direction::Egress, &data_frames(stream, &line));
            continue;
        }
        // What the window allows now, then the rest once the client has
        // opened it again.
        let (now, later) = line.split_at(*window);
        rec.chunk(at, c.fd, Direction::Egress, &data_frames(stream, now));
        if !c.reopens {
            *window = 0;
            continue;
        }
        let update = at + WINDOW_STALL_NS;
        rec.chunk(
            update,
            c.fd,
            Direction::Ingress,
            &window_update(stream, 1 << 20),
        );
        rec.chunk(
            update + 100_000,
            c.fd,
            Direction::Egress,
            &data_frames(stream, later),
        );
        *window = (1 << 20) - later.len();
    }
    if tail.closes {
        for c in &clients {
            let end = |d| rec.offsets.get(&(c.fd, d)).copied().unwrap_or(0);
            let close = encode(&SockClose {
                header: header(RecordKind::SockClose, CLOSE_AT),
                fd: c.fd,
                _pad0: 0,
                tls_conn: 0,
                sock: 0xffff_8880_0000_0000 | c.fd as u64,
                end_offsets: [
                    u64::MAX,
                    u64::MAX,
                    end(Direction::Egress),
                    end(Direction::Ingress),
                ],
            });
            rec.push(CLOSE_AT, close);
        }
    }
    rec.finish(CLOSE_AT)
}

fn write_recording(path: &Path) {
    write_recording_with(path, Tail::default());
}

fn write_recording_with(path: &Path, tail: Tail) {
    let meta = Metadata {
        realtime_offset_ns: UNIX_T0 - i128::from(T0),
        hostname: "testbed".into(),
        kernel: "synthetic".into(),
        watchtrace_version: env!("CARGO_PKG_VERSION").into(),
        ringbuf_bytes: 1 << 24,
        targets: Vec::new(),
    };
    let file = std::fs::File::create(path).unwrap();
    let mut writer = Writer::new(std::io::BufWriter::new(file), &meta).unwrap();
    for record in synthesise_with(tail) {
        writer.record(&record).unwrap();
    }
    writer.finish().unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("top_tty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The recording itself, through the pipeline and the model as `top
/// --replay` runs it: if this fails, the PTY test below cannot pass.
#[test]
fn the_synthetic_recording_replays_into_three_connections_and_seven_watches() {
    let path = scratch("model.wtrec");
    write_recording(&path);
    let mut reader = Reader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut pipeline = Pipeline::new(
        PipelineConfig::default(),
        reader.metadata().realtime_offset_ns,
    );
    let mut model = Model::new(ModelConfig::default());
    while let Some(record) = reader.next_record().unwrap() {
        pipeline.on_record(record, &mut |e| model.on_event(&e));
    }
    assert_eq!(pipeline.stats().undecodable_records, 0);
    let snap = model.snapshot();
    assert_eq!(snap.totals.connections, 3, "{snap:#?}");
    assert_eq!(snap.totals.watches, 7, "{snap:#?}");
    let mut clients: Vec<(String, Option<String>)> = snap
        .connections
        .iter()
        .map(|c| (c.client.clone().unwrap_or_default(), c.peer.clone()))
        .collect();
    clients.sort();
    assert_eq!(
        clients,
        [
            (
                "kube-controller-manager".to_owned(),
                Some("10.0.0.5:40312".to_owned())
            ),
            (
                "kube-scheduler".to_owned(),
                Some("10.0.0.6:38820".to_owned())
            ),
            ("kubelet".to_owned(), Some("10.0.1.11:51514".to_owned())),
        ]
    );
    // The busiest watch (the controller-manager's pods) has the most events
    // in the last second, the scheduler's nodes the fewest.
    let rate = |client: &str, resource: &str| {
        snap.watches
            .iter()
            .find(|w| w.client.as_deref() == Some(client) && w.resource == resource)
            .unwrap_or_else(|| panic!("{client} {resource}: {snap:#?}"))
            .events_per_s
    };
    assert!(rate("kube-controller-manager", "pods") > rate("kubelet", "pods"));
    assert!(rate("kubelet", "pods") > rate("kube-scheduler", "nodes"));
    // The scheduler's nodes stream waited once for its window.
    assert_eq!(snap.stalls.len(), 1, "{:#?}", snap.stalls);
    let stall = &snap.stalls[0];
    assert_eq!(stall.cause, "stream_window");
    assert_eq!(stall.duration_ns, WINDOW_STALL_NS);
    assert_eq!(stall.client.as_deref(), Some("kube-scheduler"));
    std::fs::remove_file(&path).unwrap();
}

/// The clients of the connection rows, top to bottom.
fn client_order(screen: &str) -> Vec<&'static str> {
    let names = ["kube-controller-manager", "kube-scheduler", "kubelet"];
    screen
        .lines()
        .filter(|l| l.starts_with('│') && l.contains("10.0."))
        .filter_map(|l| names.iter().copied().find(|n| l.contains(n)))
        .collect()
}

/// The watch rows' `resource client` pairs, top to bottom.
fn watch_order(screen: &str) -> Vec<String> {
    let names = ["kube-controller-manager", "kube-scheduler", "kubelet"];
    screen
        .lines()
        .filter(|l| l.starts_with('│') && (l.contains("(all)") || l.contains("kube-system")))
        .filter_map(|l| {
            let client = names.iter().copied().find(|n| l.contains(n))?;
            // `│`, CONN:STREAM, CLIENT, P99 DELAY, RESOURCE.
            let resource = l.split_whitespace().nth(4)?;
            Some(format!("{resource} {client}"))
        })
        .collect()
}

#[test]
fn top_replays_a_recording_sorts_filters_drills_and_restores_the_terminal() {
    let recording = scratch("top.wtrec");
    write_recording(&recording);
    let log = scratch("top.log");
    let tmux = Tmux::start(160, 45);
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    let command = format!(
        "'{}' top --replay '{}' --speed 0 --log-file '{}'; echo EXIT=$?",
        env!("CARGO_BIN_EXE_watchtrace"),
        recording.display(),
        log.display()
    );
    tmux.send(&[&command, "Enter"]);
    // Rows from the capture.
    let screen = tmux.wait_for("the final screen of the replay", |s| {
        s.contains("end of recording") && client_order(s).len() == 3
    });
    println!("{screen}");
    assert!(tmux.alternate_on(), "the view runs on the alternate screen");
    assert!(screen.contains("conns 3  watches 7"), "{screen}");

    // The watches tab, then sorted by events/s (busiest first): the
    // eighth column.
    tmux.send(&["2"]);
    tmux.wait_for("the watches tab", |s| watch_order(s).len() == 7);
    tmux.send(&["s", "s", "s", "s", "s", "s", "s"]);
    let screen = tmux.wait_for("the watches by events/s", |s| {
        s.contains("EV/s▼") && watch_order(s).len() == 7
    });
    println!("{screen}");
    let busiest_first = watch_order(&screen);
    assert_eq!(busiest_first[0], "pods kube-controller-manager", "{screen}");
    assert_eq!(busiest_first[6], "nodes kube-scheduler", "{screen}");
    // A sort key reverses the order.
    tmux.send(&["S"]);
    let screen = tmux.wait_for("the reversed order", |s| s.contains("EV/s▲"));
    let mut reversed = watch_order(&screen);
    assert_eq!(reversed.len(), 7, "{screen}");
    reversed.reverse();
    assert_eq!(reversed[0], busiest_first[0], "{screen}");
    assert_eq!(reversed[6], busiest_first[6], "{screen}");

    // The stall log: the scheduler's nodes stream waited for its window.
    tmux.send(&["3"]);
    let screen = tmux.wait_for("the stall log", |s| s.contains("stream_window"));
    println!("{screen}");
    let line = screen
        .lines()
        .find(|l| l.contains("stream_window"))
        .unwrap();
    for cell in ["350ms", "10.0.0.6:38820", "kube-scheduler"] {
        assert!(line.contains(cell), "{cell} missing: {line}");
    }
    // Enter on the stall shows its connection's watches; Esc goes back to
    // the stall log it came from.
    tmux.send(&["Enter"]);
    let screen = tmux.wait_for("the stall's drill-down", |s| {
        s.contains("Watches of conn") && s.contains("(kube-scheduler)")
    });
    assert!(screen.contains("nodes"), "{screen}");
    assert!(!screen.contains("deployments"), "{screen}");
    tmux.send(&["Escape"]);
    tmux.wait_for("the stall log again", |s| {
        s.contains("┌ Stall log") && s.contains("stream_window")
    });

    // Back to the connections, filtered to one client; Enter shows its
    // watches; Esc comes back.
    tmux.send(&["1", "/", "controller", "Enter"]);
    tmux.wait_for("the filtered connections", |s| {
        client_order(s) == ["kube-controller-manager"]
    });
    tmux.send(&["Enter"]);
    let screen = tmux.wait_for("the drill-down", |s| s.contains("Watches of conn"));
    println!("{screen}");
    assert!(
        screen.contains("from 10.0.0.5:40312 (kube-controller-manager)"),
        "{screen}"
    );
    assert!(screen.contains("deployments"), "{screen}");
    assert!(screen.contains("replicasets"), "{screen}");
    assert!(!screen.contains("configmaps"), "{screen}");
    assert!(!screen.contains("nodes"), "{screen}");
    tmux.send(&["Escape"]);
    tmux.wait_for("the filtered connections again", |s| {
        s.contains("1 Connections (1)") && !s.contains("Watches of conn")
    });
    tmux.send(&["Escape"]);
    tmux.wait_for("all connections again", |s| client_order(s).len() == 3);

    // q leaves: the shell is back on the normal screen, exit status 0.
    // (Wait for the echo's own line: the command line shows `EXIT=$?` as
    // soon as the normal screen is back, before the process has exited.)
    tmux.send(&["q"]);
    let screen = tmux.wait_for("the shell after q", |s| exit_status(s).is_some());
    assert_eq!(exit_status(&screen), Some(0), "{screen}");
    assert!(!tmux.alternate_on(), "the alternate screen was left");
    assert!(
        !screen.contains("watchtrace top"),
        "the view's screen is gone:\n{screen}"
    );
    // Logs went to the file, not the screen.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("replay stopped"), "{logged}");
    std::fs::remove_file(&recording).unwrap();
}

#[test]
fn top_without_a_terminal_says_to_use_run() {
    let recording = scratch("no-tty.wtrec");
    write_recording(&recording);
    let out = Command::new(env!("CARGO_BIN_EXE_watchtrace"))
        .args(["top", "--replay"])
        .arg(&recording)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("watchtrace run"),
        "{err}"
    );
    std::fs::remove_file(&recording).unwrap();
}

/// `top --replay` of `recording` in a fresh `width`-column tmux, with
/// `args`; returns the tmux once the view is up.
fn replay_in_tmux(recording: &Path, width: u16, args: &str) -> Tmux {
    let log = scratch("steer.log");
    let tmux = Tmux::start(width, 40);
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    let command = format!(
        "'{}' top --replay '{}' {args} --log-file '{}'; echo EXIT=$?",
        env!("CARGO_BIN_EXE_watchtrace"),
        recording.display(),
        log.display()
    );
    tmux.send(&[&command, "Enter"]);
    tmux.wait_for("the view", |s| s.contains("watchtrace top"));
    tmux
}

/// The header's time of day, `HH:MM:SS.mmm`, in ms since 09:30:00.
fn clock_ms(screen: &str) -> Option<u64> {
    let at = screen.find(" UTC")?;
    let clock = screen.get(at - 12..at)?;
    let (h, m, s, ms) = (&clock[0..2], &clock[3..5], &clock[6..8], &clock[9..12]);
    let ms: u64 = h.parse::<u64>().ok()? * 3_600_000
        + m.parse::<u64>().ok()? * 60_000
        + s.parse::<u64>().ok()? * 1_000
        + ms.parse::<u64>().ok()?;
    ms.checked_sub(9 * 3_600_000 + 30 * 60_000)
}

#[test]
fn the_end_of_a_replay_holds_the_last_state_with_the_worst_first_and_a_stall_banner() {
    let recording = scratch("tail.wtrec");
    write_recording_with(
        &recording,
        Tail {
            stalled: true,
            closes: true,
        },
    );
    let tmux = replay_in_tmux(&recording, 160, "--speed 0");
    let screen = tmux.wait_for("the end of the recording", |s| {
        s.contains("end of recording") && s.contains("kube-proxy")
    });
    println!("{screen}");
    // Every connection closed at the end: the view says so and shows the
    // state before, not four empty tables.
    assert!(
        screen.contains("every connection closed from 09:30:02.500 UTC: showing the state before"),
        "{screen}"
    );
    assert!(screen.contains("conns 4  watches 8"), "{screen}");
    // The stuck client first, marked, and named in the banner with its
    // cause and how long so far.
    let rows: Vec<&str> = screen
        .lines()
        .filter(|l| l.starts_with('│') && l.contains("10.0."))
        .collect();
    assert!(
        rows[0].contains("kube-proxy") && rows[0].contains("!!"),
        "{screen}"
    );
    let banner = screen
        .lines()
        .find(|l| l.contains("STALL ONGOING"))
        .unwrap_or_else(|| panic!("a banner: {screen}"));
    assert!(
        banner.contains("stream_window") && banner.contains("client kube-proxy"),
        "{banner}"
    );
    // Delivery needs acks, which this recording has none of: said, not
    // guessed.
    assert!(
        screen.contains("no acknowledged event in the last minute"),
        "{screen}"
    );
    tmux.send(&["q"]);
    tmux.wait_for("the shell after q", |s| exit_status(s) == Some(0));
    std::fs::remove_file(&recording).unwrap();
}

#[test]
fn at_80_columns_columns_drop_from_the_right_and_nothing_is_cut_mid_word() {
    let recording = scratch("narrow.wtrec");
    write_recording_with(
        &recording,
        Tail {
            stalled: true,
            closes: false,
        },
    );
    for width in [120u16, 80] {
        let tmux = replay_in_tmux(&recording, width, "--speed 0");
        let screen = tmux.wait_for("the end of the recording", |s| {
            client_order(s).len() == 3 && s.contains("kube-proxy")
        });
        println!("{screen}");
        let header = screen
            .lines()
            .find(|l| l.contains("CLIENT"))
            .unwrap_or_else(|| panic!("{screen}"));
        for word in header.split(|c: char| c == '│' || c.is_whitespace()) {
            let word = word.trim_end_matches(['▼', '▲']);
            assert!(
                word.is_empty()
                    || [
                        "!", "CONN", "CLIENT", "STALL", "s/min", "P99", "DELAY", "PEER", "TX",
                        "B/s", "SENDQ", "RX", "STREAMS"
                    ]
                    .contains(&word),
                "{width} cols: {word:?} in {header}"
            );
        }
        // Peers whole (they fit), or cut with `…`, never silently.
        assert!(screen.contains("10.0.0.6:38820"), "{screen}");
        for line in screen.lines() {
            assert!(line.chars().count() <= usize::from(width), "{line}");
        }
        if width == 80 {
            assert!(!header.contains("TX B/s"), "{header}");
            assert!(
                screen.lines().any(|l| l.trim_end().ends_with('…')),
                "what is cut ends in …: {screen}"
            );
        }
        tmux.send(&["q"]);
        tmux.wait_for("the shell after q", |s| exit_status(s) == Some(0));
    }
    std::fs::remove_file(&recording).unwrap();
}

#[test]
fn a_replay_pauses_steps_a_second_and_jumps_to_the_next_stall() {
    let recording = scratch("steer.wtrec");
    write_recording_with(
        &recording,
        Tail {
            stalled: true,
            closes: false,
        },
    );
    // Played at a tenth of its pace so the keys land early in it.
    let tmux = replay_in_tmux(&recording, 160, "--speed 0.1");
    tmux.send(&["p"]);
    let screen = tmux.wait_for("the pause", |s| s.contains("PAUSED"));
    let paused_at = clock_ms(&screen).unwrap_or(0);
    assert!(paused_at < 500, "paused before any stall: {screen}");
    // Paused: the recording's clock holds.
    std::thread::sleep(Duration::from_millis(1_500));
    let screen = tmux.screen();
    assert_eq!(clock_ms(&screen).unwrap_or(0), paused_at, "{screen}");
    assert!(!screen.contains("STALL ONGOING"), "{screen}");
    // `n` plays on to the next stall and pauses there: the scheduler's
    // nodes stream, whose window runs out 575 ms in, announced once it has
    // lasted 10 ms (at the next record: a tick at 600 ms at the latest).
    tmux.send(&["n"]);
    let screen = tmux.wait_for("the next stall", |s| {
        s.contains("STALL ONGOING") && s.contains("PAUSED")
    });
    println!("{screen}");
    assert!(screen.contains("client kube-scheduler"), "{screen}");
    let stalled_at = clock_ms(&screen).unwrap_or(0);
    assert!((585..=600).contains(&stalled_at), "{screen}");
    // `.` steps one second of the recording and stays paused.
    tmux.send(&["."]);
    let screen = tmux.wait_for("a step", |s| {
        clock_ms(s).is_some_and(|ms| ms >= stalled_at + 900) && s.contains("PAUSED")
    });
    println!("{screen}");
    // `p` plays on to the end.
    tmux.send(&["p"]);
    tmux.wait_for("the end", |s| {
        s.contains("end of recording") && !s.contains("PAUSED")
    });
    tmux.send(&["q"]);
    tmux.wait_for("the shell after q", |s| exit_status(s) == Some(0));
    std::fs::remove_file(&recording).unwrap();
}

#[test]
fn since_and_until_bound_a_replay_by_offset_or_rfc3339_time() {
    let recording = scratch("bounds.wtrec");
    write_recording(&recording);
    // Until one second in: it ends there, with the state of then.
    let tmux = replay_in_tmux(&recording, 160, "--speed 0 --until 1s");
    let screen = tmux.wait_for("the bound", |s| s.contains("--until 09:30:01.000 reached"));
    println!("{screen}");
    assert!(clock_ms(&screen).is_some_and(|ms| ms <= 1_000), "{screen}");
    tmux.send(&["q"]);
    tmux.wait_for("the shell after q", |s| exit_status(s) == Some(0));
    drop(tmux);
    // Since an RFC 3339 time 1.5 s in: what came before is read at once,
    // then it plays (slowly) from there.
    let tmux = replay_in_tmux(
        &recording,
        160,
        "--speed 0.1 --since 2026-11-28T09:30:01.500Z",
    );
    tmux.send(&["p"]);
    let screen = tmux.wait_for("the pause", |s| s.contains("PAUSED"));
    println!("{screen}");
    let at = clock_ms(&screen).unwrap_or(0);
    assert!((1_500..1_900).contains(&at), "starts at 1.5 s: {screen}");
    assert!(screen.contains("conns 3  watches 7"), "{screen}");
    tmux.send(&["q"]);
    tmux.wait_for("the shell after q", |s| exit_status(s) == Some(0));
    // A bad bound is refused before the view starts.
    let out = Command::new(env!("CARGO_BIN_EXE_watchtrace"))
        .args(["top", "--replay"])
        .arg(&recording)
        .args(["--since", "yesterday"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RFC 3339"), "{err}");
    std::fs::remove_file(&recording).unwrap();
}

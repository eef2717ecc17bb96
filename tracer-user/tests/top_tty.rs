//! `watchtrace top` in a real terminal: tmux runs the binary on a recording
//! synthesised here (three HTTP/2 connections with watch streams, the way
//! an apiserver's would look), keys are sent, and the screen is read back.
//! No root needed: `top --replay` only reads the file.

#[path = "http2_support.rs"]
mod h2;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use h2::{Enc, data, headers, preface, settings, settings_ack, window_update};
use tracer_common::record::{
    CHUNK_FLAG_STREAM_START, ChunkHeader, ChunkSource, Direction, ProcessInfo, RecordHeader,
    RecordKind, SockAnchor,
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
        // Node objects are large: the second one exhausts the stream's
        // window.
        watches: &[
            (1, "/api/v1/nodes", "", 4, 40_000),
            (3, "/api/v1/pods", "", 8, 10),
        ],
    },
];

/// Builds the recording's records: stream offsets per (fd, direction).
#[derive(Default)]
struct Recording {
    records: Vec<Vec<u8>>,
    offsets: HashMap<(i32, Direction), u64>,
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
    fn chunk(&mut self, ts_ns: u64, fd: i32, direction: Direction, bytes: &[u8]) {
        let offset = self.offsets.entry((fd, direction)).or_insert(0);
        let chunk = ChunkHeader {
            header: header(RecordKind::Chunk, ts_ns),
            fd,
            direction: direction as u8,
            source: ChunkSource::Syscall as u8,
            flags: if *offset == 0 {
                CHUNK_FLAG_STREAM_START
            } else {
                0
            },
            offset: *offset,
            tls_conn: 0,
            // A syscall stream is its socket's: one per fd here.
            sock: 0xffff_8880_0000_0000 | fd as u64,
            len: 0,
            write_seq: 0,
        };
        *offset += bytes.len() as u64;
        self.records.push(encode_chunk(&chunk, bytes));
    }
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

/// The synthetic capture: the apiserver's process and sockets, each
/// client's preface and watch requests, then watch events spread over two
/// seconds, busiest on the controller-manager's connection.
fn synthesise() -> Vec<Vec<u8>> {
    let mut rec = Recording::default();
    rec.records.push(encode(&ProcessInfo {
        header: header(RecordKind::ProcessInfo, T0),
        comm: fixed("kube-apiserver"),
        go_version: fixed("go1.23.4"),
        exe: fixed("/usr/local/bin/kube-apiserver"),
    }));
    for (i, c) in CLIENTS.iter().enumerate() {
        let mut daddr = [0u8; 16];
        daddr[..4].copy_from_slice(&c.peer);
        let mut saddr = [0u8; 16];
        saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        rec.records.push(encode(&SockAnchor {
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
        }));
    }
    let mut events: Vec<(u64, usize, u32, Vec<u8>)> = Vec::new();
    let mut rv = 1000u64;
    for (ci, c) in CLIENTS.iter().enumerate() {
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
        let c = &CLIENTS[ci];
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
    rec.records
}

fn write_recording(path: &Path) {
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
    for record in synthesise() {
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

/// A private tmux server (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Self {
        let tmux = Self {
            socket: format!("watchtrace-top-test-{}", std::process::id()),
        };
        let status = Command::new("tmux")
            .args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args([
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                "-s",
                "t",
            ])
            .arg("env PS1='$ ' sh")
            .status()
            .expect("tmux is needed for this test (cargo xtask setup installs it)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    fn alternate_on(&self) -> bool {
        self.tmux(&["display", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    /// Waits until the screen satisfies `ok`; panics with the last screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The status `echo EXIT=$?` printed, once it has: a line of its own.
fn exit_status(screen: &str) -> Option<i32> {
    screen
        .lines()
        .find_map(|line| line.trim_end().strip_prefix("EXIT=")?.parse().ok())
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
            let resource = l.split_whitespace().nth(2)?;
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

    // The watches tab, busiest first (events/s, descending).
    tmux.send(&["2"]);
    let screen = tmux.wait_for("the watches tab", |s| watch_order(s).len() == 7);
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

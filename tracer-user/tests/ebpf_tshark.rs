//! Root-only: our HTTP/2 framing checked frame by frame against Wireshark's.
//!
//! The testbed's fake-apiserver serves h2c watches to watch-load while
//! `watchtrace record --exe` traces it and tshark captures the same port on
//! loopback. The recording's server-side byte streams are decoded by
//! `http2::Http2Connection` with `frame_events` on, exactly as the pipeline
//! feeds it (per connection, in capture order, through `capture::Streams`);
//! tshark decodes the pcap with its own HTTP/2 dissector. Per connection
//! (matched by the client's port, our `conn_open` peer) and per direction,
//! the two frame sequences must be identical: type, stream id, flags and
//! length of every frame, and the decoded `:path` of each request HEADERS
//! and `:status` of each response HEADERS.

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    fs::File,
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use serde_json::Value;
use support::testbed_bin;
use tracer_common::record::Direction as Wire;
use watchtrace::{
    capture::{Record, StreamEvent, Streams, decode},
    http2::{Attach, FieldText, Flow, Http2Config, Http2Connection, Http2Event},
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
    recording::Reader,
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

/// HTTP/2 frame type names (RFC 9113), by type code.
const TYPE_NAMES: [&str; 10] = [
    "DATA",
    "HEADERS",
    "PRIORITY",
    "RST_STREAM",
    "SETTINGS",
    "PUSH_PROMISE",
    "PING",
    "GOAWAY",
    "WINDOW_UPDATE",
    "CONTINUATION",
];

/// One frame as either decoder saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Frame {
    frame_type: u8,
    stream: u32,
    flags: u8,
    len: u32,
    /// For HEADERS: the decoded `:path` (requests) or `:status`
    /// (responses); empty when the block has neither.
    pseudo: String,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stream {} flags {:#04x} len {}",
            type_name(self.frame_type),
            self.stream,
            self.flags,
            self.len
        )?;
        if !self.pseudo.is_empty() {
            write!(f, " {}", self.pseudo)?;
        }
        Ok(())
    }
}

fn type_name(t: u8) -> String {
    TYPE_NAMES
        .get(usize::from(t))
        .map_or_else(|| format!("type {t:#04x}"), |n| (*n).to_owned())
}

/// Frames per (client port, direction), and the client ports whose client
/// preface was seen.
#[derive(Default)]
struct Frames {
    by_conn: BTreeMap<(u16, &'static str), Vec<Frame>>,
    prefaces: Vec<u16>,
}

fn dir_name(d: Flow) -> &'static str {
    match d {
        Flow::ClientToServer => "client->server",
        Flow::ServerToClient => "server->client",
    }
}

/// The pseudo-header a HEADERS frame is compared by.
fn pseudo_of<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        if name == ":path" || name == ":status" {
            out = format!("{name}={value}");
        }
    }
    out
}

/// Frames of one direction of a connection, keyed by direction name.
type ConnFrames = BTreeMap<&'static str, Vec<Frame>>;

/// One traced connection being decoded.
struct Conn {
    tgid: u32,
    fd: i32,
    /// (local port, peer port), once known.
    ports: Option<(u16, u16)>,
    /// Whether the ports came from the connection's `conn_open`.
    ports_from_conn_open: bool,
    /// Whether the capture saw the first byte of each direction seen.
    from_start: bool,
    /// Directions seen, by our decoder's index (client->server first).
    started: [bool; 2],
    http: Http2Connection,
    seen: Seen,
}

/// What our decoder reported on one connection.
#[derive(Default)]
struct Seen {
    frames: ConnFrames,
    prefaces: usize,
    /// Protocol errors and resyncs.
    trouble: Vec<String>,
}

/// Our frames: the recording replayed through the pipeline (for the
/// connections' addresses: its `conn_open` events, or its socket table
/// when a `conn_open` came before the socket's address was known) and, in
/// lockstep, each connection's byte streams through our HTTP/2 decoder.
/// Returns the frames of connections to `server_port` and how many took
/// their address from `conn_open`.
fn ours(recording: &Path, server_port: u16) -> (Frames, usize) {
    let mut reader = Reader::new(BufReader::new(File::open(recording).unwrap())).unwrap();
    let mut pipeline = Pipeline::new(
        PipelineConfig::default(),
        reader.metadata().realtime_offset_ns,
    );
    let mut streams = Streams::new(4096);
    // (local port, peer port) of the latest conn_open of each (pid, fd),
    // or of its conn_address when the conn_open came without one.
    let mut opened: HashMap<(u32, i32), (u16, u16)> = HashMap::new();
    let mut fd_of_conn: HashMap<u64, (u32, i32)> = HashMap::new();
    // Open ones, as the pipeline keys them.
    let mut conns: HashMap<ConnKey, Conn> = HashMap::new();
    let mut ended = Vec::new();
    while let Some(bytes) = reader.next_record().unwrap() {
        pipeline.on_record(bytes, &mut |event| {
            let port = |a: Option<String>| a?.rsplit(':').next()?.parse::<u16>().ok();
            match event {
                OutputEvent::ConnOpen {
                    conn,
                    pid,
                    fd: Some(fd),
                    local,
                    peer,
                    ..
                } => {
                    fd_of_conn.insert(conn, (pid, fd));
                    match (port(local), port(peer)) {
                        (Some(l), Some(p)) => opened.insert((pid, fd), (l, p)),
                        _ => opened.remove(&(pid, fd)),
                    };
                }
                OutputEvent::ConnAddress {
                    conn, local, peer, ..
                } => {
                    if let (Some(&key), Some(l), Some(p)) =
                        (fd_of_conn.get(&conn), port(Some(local)), port(Some(peer)))
                    {
                        opened.insert(key, (l, p));
                    }
                }
                OutputEvent::ConnClose { conn, .. } => {
                    if let Some(key) = fd_of_conn.remove(&conn) {
                        opened.remove(&key);
                    }
                }
                _ => {}
            }
        });
        let mut events = Vec::new();
        match decode(bytes) {
            Ok(Record::Chunk(header, data)) => {
                streams.on_chunk(&header, data, &mut events);
                decode_events(events, &pipeline, &opened, &mut conns, &mut ended);
            }
            Ok(Record::SockClose(close)) => {
                let mut events = Vec::new();
                streams.on_close(&close, &mut events);
                decode_events(events, &pipeline, &opened, &mut conns, &mut ended);
            }
            _ => {}
        }
        for conn in conns.values_mut() {
            conn.learn_ports(&pipeline, &opened);
        }
    }
    let mut frames = Frames::default();
    let mut from_conn_open = 0;
    for conn in ended.into_iter().chain(conns.into_values()) {
        let (local, peer) = conn
            .ports
            .unwrap_or_else(|| panic!("no address for fd {} of {}", conn.fd, conn.tgid));
        if local != server_port {
            continue; // fake-apiserver's own etcd client
        }
        // tshark sees every connection from its SYN: so must we.
        assert!(
            conn.from_start,
            "connection from port {peer} seen from its start"
        );
        assert_eq!(conn.seen.trouble, Vec::<String>::new(), "port {peer}");
        from_conn_open += usize::from(conn.ports_from_conn_open);
        frames
            .prefaces
            .extend(std::iter::repeat_n(peer, conn.seen.prefaces));
        for (dir, list) in conn.seen.frames {
            frames.by_conn.insert((peer, dir), list);
        }
    }
    (frames, from_conn_open)
}

/// A connection's identity, as the pipeline keys it.
type ConnKey = watchtrace::capture::ConnId;

impl Conn {
    /// When the connection's `conn_open` had no address: its
    /// `conn_address`, or else the pipeline's socket table if exactly one
    /// socket there has this fd and an address (a stale entry of an
    /// earlier connection on the same fd may linger without one).
    fn learn_ports(&mut self, pipeline: &Pipeline, opened: &HashMap<(u32, i32), (u16, u16)>) {
        if self.ports.is_some() {
            return;
        }
        if let Some(&ports) = opened.get(&(self.tgid, self.fd)) {
            self.ports = Some(ports);
            return;
        }
        let mut known = pipeline
            .sockets()
            .iter()
            .filter(|s| s.tgid == self.tgid && s.fd == self.fd)
            .filter_map(|s| Some((s.local?.1, s.peer?.1)));
        if let (Some(ports), None) = (known.next(), known.next()) {
            self.ports = Some(ports);
        }
    }
}

fn decode_events(
    events: Vec<StreamEvent<'_>>,
    pipeline: &Pipeline,
    opened: &HashMap<(u32, i32), (u16, u16)>,
    conns: &mut HashMap<ConnKey, Conn>,
    ended: &mut Vec<Conn>,
) {
    let config = Http2Config {
        frame_events: true,
        ..Http2Config::default()
    };
    for event in events {
        match event {
            StreamEvent::Data {
                id,
                offset,
                ts_ns,
                bytes,
                place,
                ..
            } => {
                let key = id.conn;
                let conn = conns.entry(key).or_insert_with(|| {
                    let ports = opened.get(&(id.conn.tgid, place.fd)).copied();
                    Conn {
                        tgid: id.conn.tgid,
                        fd: place.fd,
                        ports,
                        ports_from_conn_open: ports.is_some(),
                        from_start: true,
                        started: [false; 2],
                        http: Http2Connection::new(
                            config,
                            if offset == 0 {
                                Attach::FromStart
                            } else {
                                Attach::MidStream
                            },
                        ),
                        seen: Seen::default(),
                    }
                });
                // fake-apiserver is the server: what it writes goes to the
                // client. (Its etcd connection, where it is the client, is
                // decoded the wrong way round and dropped.)
                let egress = id.direction() == Some(Wire::Egress);
                let dir = if egress {
                    Flow::ServerToClient
                } else {
                    Flow::ClientToServer
                };
                let first = !std::mem::replace(&mut conn.started[usize::from(egress)], true);
                conn.from_start &= !first || offset == 0;
                let Conn { http, seen, .. } = conn;
                http.on_bytes(dir, ts_ns, bytes, &mut |e: Http2Event<'_>| {
                    on_event(seen, e)
                });
            }
            StreamEvent::Gap { id, len, .. } => {
                panic!("{len} bytes lost on {:?}", id.conn);
            }
            // Either direction's end is the connection's (the kernel ends
            // both streams of an fd together).
            StreamEvent::End { id, .. } => {
                if let Some(mut conn) = conns.remove(&id.conn) {
                    conn.learn_ports(pipeline, opened);
                    ended.push(conn);
                }
            }
            StreamEvent::Start { .. } => {}
        }
    }
}

fn on_event(seen: &mut Seen, event: Http2Event<'_>) {
    let frames = &mut seen.frames;
    match event {
        Http2Event::Preface { .. } => seen.prefaces += 1,
        Http2Event::Frame {
            dir,
            stream,
            frame_type,
            flags,
            len,
            ..
        } => frames.entry(dir_name(dir)).or_default().push(Frame {
            frame_type,
            stream,
            flags,
            len,
            pseudo: String::new(),
        }),
        Http2Event::Headers {
            dir,
            stream,
            fields,
            ..
        } => {
            let text = |t: &FieldText| match t {
                FieldText::Known(b) => String::from_utf8_lossy(b).into_owned(),
                FieldText::Unknown => "<unknown>".to_owned(),
            };
            let fields: Vec<(String, String)> = fields
                .iter()
                .map(|f| (text(&f.name), text(&f.value)))
                .collect();
            let pseudo = pseudo_of(fields.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            // The block's HEADERS frame is the latest one on its stream
            // (CONTINUATIONs may follow it).
            let frame = frames
                .entry(dir_name(dir))
                .or_default()
                .iter_mut()
                .rev()
                .find(|f| f.frame_type == 1 && f.stream == stream)
                .expect("a header block's HEADERS frame was reported");
            frame.pseudo = pseudo;
        }
        Http2Event::ProtocolError { dir, error, .. } => {
            seen.trouble.push(format!("{}: {error:?}", dir_name(dir)))
        }
        Http2Event::Resynced { dir, skipped, .. } => seen
            .trouble
            .push(format!("{}: resynced after {skipped} bytes", dir_name(dir))),
        _ => {}
    }
}

/// A JSON value tshark writes once or, when it repeats, as an array.
fn one_or_many(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(v) => vec![v],
    }
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("tshark frame without {name}: {v}"))
}

fn number(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|_| panic!("not a number: {s}"))
}

/// tshark's frames, from its JSON decode of the pcap.
fn tsharks(json: &[u8], server_port: u16) -> Frames {
    let packets: Vec<Value> = serde_json::from_slice(json).expect("tshark JSON");
    let mut frames = Frames::default();
    for packet in &packets {
        let layers = &packet["_source"]["layers"];
        let src = number(field(&layers["tcp"], "tcp.srcport")) as u16;
        let dst = number(field(&layers["tcp"], "tcp.dstport")) as u16;
        let (port, dir) = if src == server_port {
            (dst, Flow::ServerToClient)
        } else {
            (src, Flow::ClientToServer)
        };
        for layer in one_or_many(layers.get("http2")) {
            for f in one_or_many(layer.get("http2.stream")) {
                if f.get("http2.magic").is_some() {
                    frames.prefaces.push(port);
                    continue;
                }
                let pseudo = pseudo_of(one_or_many(f.get("http2.header")).into_iter().map(|h| {
                    (
                        field(h, "http2.header.name"),
                        field(h, "http2.header.value"),
                    )
                }));
                frames
                    .by_conn
                    .entry((port, dir_name(dir)))
                    .or_default()
                    .push(Frame {
                        frame_type: number(field(f, "http2.type")) as u8,
                        stream: number(field(f, "http2.streamid")) as u32,
                        flags: number(field(f, "http2.flags")) as u8,
                        len: number(field(f, "http2.length")) as u32,
                        pseudo,
                    });
            }
        }
    }
    frames
}

/// The first place two frame sequences differ, with some context.
fn first_difference(ours: &[Frame], theirs: &[Frame]) -> Option<String> {
    let at = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i))?;
    let show = |list: &[Frame]| {
        (at.saturating_sub(2)..(at + 3).min(list.len()))
            .map(|i| format!("    #{i}: {}", list[i]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some(format!(
        "frame #{at}: ours {}, tshark's {}\n  ours:\n{}\n  tshark:\n{}",
        ours.get(at).map_or("(none)".to_owned(), Frame::to_string),
        theirs.get(at).map_or("(none)".to_owned(), Frame::to_string),
        show(ours),
        show(theirs),
    ))
}

fn interrupt(child: &Child) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's,
    // not yet waited for.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0, "SIGINT to {}", child.id());
}

/// Reads `child`'s stderr until a line containing `marker`, returns that
/// line, and drains the rest in the background.
fn wait_for_line(child: &mut Child, marker: &str) -> String {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no line with {marker:?} on stderr"
        );
        if line.contains(marker) {
            break;
        }
    }
    thread::spawn(move || for _ in err.lines() {});
    line
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn h2c_frames_match_tshark_frame_by_frame() {
    let (_turn, dir) = support::testbed_turn("watchtrace-tshark");
    let recording = dir.join("h2c.wtrec");
    let pcap = dir.join("h2c.pcapng");
    // By executable, not by name: other testbeds may run on this machine.
    let exe = std::fs::canonicalize(testbed_bin("fake-apiserver")).unwrap();
    let recorder_log = File::create(dir.join("record.log")).unwrap();
    let mut recorder = support::KillOnDrop(
        Command::new(WATCHTRACE)
            .args(["record", "--exe"])
            .arg(&exe)
            .args(["--wait", "-o"])
            .arg(&recording)
            .stderr(recorder_log)
            .spawn()
            .unwrap(),
    );
    thread::sleep(Duration::from_secs(1));
    // The load starts 4 s after fake-apiserver: time for tshark to start
    // capturing and for the recorder (rescanning every second) to attach,
    // so both see every connection from its first byte.
    let mut bed = support::testbed_run(&dir)
        .args(["-load-delay", "4s", "-duration", "4s", "--"])
        .args(["-h2c", "-conns", "2", "-watches-per-conn", "3"])
        .args(["-write-rate", "100", "-object-size", "20000"])
        .args(["-format", "mixed", "-drain", "1s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_line(&mut bed, "testbed-run: fake-apiserver ");
    let port: u16 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("h2c="))
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no h2c port in {line:?}"));
    let mut tshark = Command::new("/usr/bin/tshark")
        .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&mut tshark, "Capturing on");
    assert!(bed.wait().unwrap().success(), "testbed-run failed");
    // Let the last segments reach the capture and the ring buffer.
    thread::sleep(Duration::from_millis(500));
    interrupt(&tshark);
    assert!(tshark.wait().unwrap().success(), "tshark capture");
    interrupt(&recorder);
    let status = recorder.wait().unwrap();
    let mut log = String::new();
    File::open(dir.join("record.log"))
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "watchtrace record: {log}");

    let decoded = Command::new("/usr/bin/tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", &format!("tcp.port=={port},http2")])
        .args(["-T", "json", "--no-duplicate-keys", "-J", "tcp http2"])
        .output()
        .unwrap();
    assert!(
        decoded.status.success(),
        "tshark -r: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let theirs = tsharks(&decoded.stdout, port);
    let (ours, from_conn_open) = ours(&recording, port);

    let conns = |f: &Frames| {
        let mut ports: Vec<u16> = f.by_conn.keys().map(|(p, _)| *p).collect();
        ports.dedup();
        ports
    };
    assert_eq!(conns(&ours), conns(&theirs), "connections (client ports)");
    assert_eq!(conns(&theirs).len(), 2, "watch-load's 2 connections");
    let mut prefaces = (ours.prefaces.clone(), theirs.prefaces.clone());
    prefaces.0.sort_unstable();
    prefaces.1.sort_unstable();
    assert_eq!(prefaces.0, prefaces.1, "client prefaces");
    let mut per_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut compared, mut matched) = (0, 0);
    let mut headers_compared = 0;
    for (key, theirs) in &theirs.by_conn {
        let ours = ours.by_conn.get(key).map_or(&[][..], Vec::as_slice);
        for (i, f) in theirs.iter().enumerate() {
            let slot = per_type.entry(type_name(f.frame_type)).or_default();
            slot.0 += 1;
            compared += 1;
            if ours.get(i) == Some(f) {
                slot.1 += 1;
                matched += 1;
                headers_compared += usize::from(!f.pseudo.is_empty());
            }
        }
        println!(
            "port {} {}: tshark {} frames, ours {}",
            key.0,
            key.1,
            theirs.len(),
            ours.len()
        );
        if let Some(diff) = first_difference(ours, theirs) {
            panic!("port {} {}: {diff}", key.0, key.1);
        }
    }
    println!("frames compared {compared}, matched {matched}");
    for (name, (n, m)) in &per_type {
        println!("  {name}: {m} of {n}");
    }
    println!("HEADERS whose :path or :status matched: {headers_compared}");
    println!("connections addressed by their conn_open: {from_conn_open} of 2");
    assert_eq!(
        ours.by_conn.keys().collect::<Vec<_>>(),
        theirs.by_conn.keys().collect::<Vec<_>>(),
        "directions"
    );
    for name in ["DATA", "HEADERS", "SETTINGS", "WINDOW_UPDATE"] {
        assert!(per_type.contains_key(name), "{name} frames were compared");
    }
    assert!(compared > 300, "a meaningful number of frames ({compared})");
    // Every request and response: 2 connections x 3 watches, each a LIST
    // then a WATCH.
    assert!(
        headers_compared >= 24,
        "{headers_compared} HEADERS compared"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

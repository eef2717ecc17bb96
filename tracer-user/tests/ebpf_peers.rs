//! Root-only: Go TLS plaintext captured from real peers on both ends of the
//! same TCP connections, compared byte for byte:
//!
//! - Debian's etcd (stripped, Go 1.19) serving client TLS, against the
//!   testbed's fake-apiserver (Go 1.27) reading its watch responses;
//! - the machine's kubectl (stripped, a newer Go) watching fake-apiserver.
//!
//! Two Go versions, stripped and unstripped binaries, server and client
//! side: what one end wrote must be exactly what the other end read.

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{BufRead as _, BufReader},
    net::IpAddr,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use support::testbed_bin;
use tracer_common::record::{ChunkSource, Direction};
use watchtrace::{
    capture::{Record, StreamEvent, Streams, decode, unfixed},
    recording::Reader,
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

type Endpoint = (IpAddr, u16);

/// What the recording says about one socket of one process.
#[derive(Default, Debug)]
struct Socket {
    egress: Vec<u8>,
    ingress: Vec<u8>,
    gaps: u64,
    /// The fd the process used it through, once seen.
    fd: Option<i32>,
    local: Option<Endpoint>,
    peer: Option<Endpoint>,
}

fn address(family: u16, raw: &[u8; 16]) -> IpAddr {
    if family == 2 {
        IpAddr::from([raw[0], raw[1], raw[2], raw[3]])
    } else {
        IpAddr::from(*raw)
    }
}

/// Sockets by (tgid, kernel address, generation: a closed socket's
/// address is reused), and (comm, Go version) by tgid.
type Capture = (
    BTreeMap<(u32, u64, u32), Socket>,
    HashMap<u32, (String, Option<String>)>,
);

/// Go TLS plaintext, fds and 4-tuples per socket, from a recording. Both
/// directions of a Go TLS connection are keyed by its socket; its full TCP
/// samples give its addresses, and for sockets that existed before attach
/// (whose first segments were not seen) the sock_diag anchors do, by fd.
fn read_recording(path: &std::path::Path) -> Capture {
    let mut reader = Reader::new(BufReader::new(File::open(path).unwrap())).unwrap();
    let mut processes = HashMap::new();
    let mut streams = Streams::new(4096);
    let mut sockets: BTreeMap<(u32, u64, u32), Socket> = BTreeMap::new();
    let mut anchors: HashMap<(u32, i32), (Endpoint, Endpoint)> = HashMap::new();
    let mut generations: HashMap<(u32, u64), u32> = HashMap::new();
    while let Some(bytes) = reader.next_record().unwrap() {
        let Ok(record) = decode(bytes) else { continue };
        let key = |tgid: u32, sock: u64| {
            (
                tgid,
                sock,
                generations.get(&(tgid, sock)).copied().unwrap_or(0),
            )
        };
        match record {
            Record::Chunk(header, data) => {
                let mut events = Vec::new();
                streams.on_chunk(&header, data, &mut events);
                for event in events {
                    match event {
                        StreamEvent::Data {
                            id, bytes, place, ..
                        } if id.source() == Some(ChunkSource::GoTls) => {
                            let socket = sockets.entry(key(id.conn.tgid, id.conn.key)).or_default();
                            if place.fd >= 0 {
                                socket.fd = Some(place.fd);
                            }
                            match id.direction() {
                                Some(Direction::Egress) => socket.egress.extend_from_slice(bytes),
                                _ => socket.ingress.extend_from_slice(bytes),
                            }
                        }
                        StreamEvent::Gap { id, len, .. } => {
                            sockets
                                .entry(key(id.conn.tgid, id.conn.key))
                                .or_default()
                                .gaps += len
                        }
                        _ => {}
                    }
                }
            }
            Record::TlsBind(b) if b.fd >= 0 => {
                sockets.entry(key(b.header.tgid, b.sock)).or_default().fd = Some(b.fd);
            }
            Record::SockClose(c) => {
                // Its last bytes, then a new generation for the address.
                let mut events = Vec::new();
                streams.on_close(&c, &mut events);
                for event in events {
                    if let StreamEvent::Gap { id, len, .. } = event {
                        sockets
                            .entry(key(id.conn.tgid, id.conn.key))
                            .or_default()
                            .gaps += len;
                    }
                }
                *generations.entry((c.header.tgid, c.sock)).or_default() += 1;
            }
            Record::TcpSample(t) => {
                let socket = sockets.entry(key(t.header.tgid, t.sock)).or_default();
                socket.local = Some((address(t.family, &t.saddr), t.sport));
                socket.peer = Some((address(t.family, &t.daddr), t.dport));
            }
            Record::ProcessInfo(p) => {
                let version = unfixed(&p.go_version);
                processes.insert(
                    p.header.tgid,
                    (unfixed(&p.comm), (!version.is_empty()).then_some(version)),
                );
            }
            Record::SockAnchor(a) => {
                anchors.insert(
                    (a.header.tgid, a.fd),
                    (
                        (address(a.family, &a.saddr), a.sport),
                        (address(a.family, &a.daddr), a.dport),
                    ),
                );
            }
            _ => {}
        }
    }
    for (&(tgid, ..), socket) in sockets.iter_mut() {
        if socket.local.is_none()
            && let Some((local, peer)) = socket.fd.and_then(|fd| anchors.get(&(tgid, fd)))
        {
            socket.local = Some(*local);
            socket.peer = Some(*peer);
        }
    }
    (sockets, processes)
}

/// Compares what one end wrote with what the other read. Each side's
/// capture starts when that process was attached, so the later one is found
/// inside the earlier one first. Returns the number of bytes compared.
fn overlap_matches(written: &[u8], read: &[u8]) -> Result<usize, String> {
    let (long, short) = if written.len() >= read.len() {
        (written, read)
    } else {
        (read, written)
    };
    // At least one HTTP/2 frame header.
    if short.len() < 9 {
        return Err(format!(
            "too little to compare: {} and {} bytes",
            written.len(),
            read.len()
        ));
    }
    // Try the shorter stream at each position where its start appears in
    // the longer one, and at the longer one's start inside the shorter.
    let k = short.len().min(64);
    let probe = &short[..k];
    for start in (0..=long.len() - k).filter(|&p| long[p..p + k] == *probe) {
        let n = (long.len() - start).min(short.len());
        if long[start..start + n] == short[..n] {
            return Ok(n);
        }
    }
    let probe = &long[..k];
    for start in (0..=short.len() - k).filter(|&p| short[p..p + k] == *probe) {
        let n = (short.len() - start).min(long.len());
        if short[start..start + n] == long[..n] {
            return Ok(n);
        }
    }
    Err(format!(
        "no alignment where {} and {} bytes agree",
        written.len(),
        read.len()
    ))
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn etcd_and_kubectl_plaintext_matches_on_both_ends() {
    let dir = std::env::temp_dir().join(format!("watchtrace-peers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("peers.wtrec");
    let mut recorder = Command::new(WATCHTRACE)
        .args([
            "record",
            "--comm",
            "etcd",
            "--comm",
            "fake-apiserver",
            "--comm",
            "kubectl",
            "--wait",
        ])
        .args(["--duration", "16", "-o"])
        .arg(&output)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(2));
    let mut bed = Command::new(testbed_bin("testbed-run"))
        .args([
            "-etcd-tls",
            "-duration",
            "8s",
            "--",
            "-conns",
            "2",
            "-watches-per-conn",
            "2",
            "-write-rate",
            "40",
            "-drain",
            "1s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut bed_err = BufReader::new(bed.stderr.take().unwrap());
    let mut kubeconfig = None;
    let mut line = String::new();
    while kubeconfig.is_none() && bed_err.read_line(&mut line).unwrap() > 0 {
        kubeconfig = line
            .trim()
            .strip_prefix("testbed-run: kubeconfig ")
            .map(str::to_owned);
        line.clear();
    }
    let kubeconfig = kubeconfig.expect("testbed-run printed its kubeconfig");
    // Let the recorder attach to fake-apiserver's etcd connection's peers.
    thread::sleep(Duration::from_secs(2));
    let kubectl = Command::new("/usr/bin/kubectl")
        .args([
            "--kubeconfig",
            &kubeconfig,
            "get",
            "--raw",
            "/api/v1/namespaces/ns-0/configmaps?watch=1&timeoutSeconds=4",
        ])
        .output()
        .unwrap();
    assert!(
        kubectl.status.success(),
        "{}",
        String::from_utf8_lossy(&kubectl.stderr)
    );
    let watch_lines = String::from_utf8_lossy(&kubectl.stdout).lines().count();
    assert!(watch_lines > 0, "kubectl printed watch events");
    thread::spawn(move || for _ in bed_err.lines() {});
    assert!(bed.wait().unwrap().success());
    let status = recorder.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut recorder.stderr.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{log}");

    let (sockets, processes) = read_recording(&output);
    let comm_of = |tgid: u32| processes.get(&tgid).map_or("?", |(c, _)| c.as_str());
    let version_of = |comm: &str| {
        processes
            .values()
            .find(|(c, _)| c == comm)
            .and_then(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(version_of("etcd").starts_with("go1.19"), "{processes:?}");
    assert!(version_of("kubectl").starts_with("go1.2"), "{processes:?}");
    let mut checked: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (&(tgid_a, ..), a) in &sockets {
        let (Some(a_local), Some(a_peer)) = (a.local, a.peer) else {
            continue;
        };
        let fd_a = a.fd.unwrap_or(-1);
        for (&(tgid_b, ..), b) in &sockets {
            let fd_b = b.fd.unwrap_or(-1);
            if tgid_a == tgid_b || b.local != Some(a_peer) || b.peer != Some(a_local) {
                continue;
            }
            let pair = (comm_of(tgid_a), comm_of(tgid_b));
            assert_eq!((a.gaps, b.gaps), (0, 0), "{pair:?}: no bytes lost");
            // One end may have been attached only after the other wrote
            // (kubectl lives a few seconds): nothing to compare then.
            if a.egress.len() < 9 || b.ingress.len() < 9 {
                continue;
            }
            let n = overlap_matches(&a.egress, &b.ingress).unwrap_or_else(|e| {
                panic!(
                    "{pair:?} fd {fd_a} -> fd {fd_b}: {e}\n wrote {:02x?}\n read {:02x?}",
                    &a.egress[..a.egress.len().min(64)],
                    &b.ingress[..b.ingress.len().min(64)]
                )
            });
            *checked.entry(pair).or_default() += n;
        }
    }
    println!("bytes compared per (writer, reader): {checked:?}");
    for (&(tgid, ..), s) in &sockets {
        println!(
            "  {} fd {:?}: {:?} -> {:?} egress {} ingress {} gaps {}",
            comm_of(tgid),
            s.fd,
            s.local,
            s.peer,
            s.egress.len(),
            s.ingress.len(),
            s.gaps
        );
    }
    for pair in [
        ("etcd", "fake-apiserver"),
        ("fake-apiserver", "etcd"),
        ("fake-apiserver", "kubectl"),
        ("kubectl", "fake-apiserver"),
    ] {
        assert!(
            checked.get(&pair).copied().unwrap_or(0) >= 9,
            "{pair:?} compared: {checked:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

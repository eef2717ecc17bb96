//! Root-only: Go TLS plaintext capture, byte for byte, and explicit loss.

mod support;

use std::{collections::BTreeMap, io::Write as _};

use support::{TlsWriter, drain, load, testbed_bin};
use tracer_common::{
    counters::Counter,
    record::{ChunkSource, Direction},
};
use watchtrace::{
    capture::{Record, StreamEvent, StreamId, Streams, decode, encode},
    clock,
    loader::{LoadOptions, Tracer},
    tracepoints,
};

const WRITES: u64 = 300;
const BASE: u64 = 100;
const STEP: u64 = 37;

/// The plaintext tls-writer sends: message i has BASE + i*STEP bytes,
/// byte j of it is 'a' + (i + j) % 26.
fn expected_plaintext() -> Vec<u8> {
    (0..WRITES)
        .flat_map(|i| (0..BASE + i * STEP).map(move |j| b'a' + ((i + j) % 26) as u8))
        .collect()
}

/// Runs tls-writer as a target with the Go TLS probes (and the socket
/// tracepoints, which bind its conns and end its streams) attached; returns
/// the records, as the kernel wrote them, once it has exited.
fn run_tls_writer(tracer: &mut Tracer, drain_while_running: bool) -> Vec<Vec<u8>> {
    run_tls_writer_with(tracer, drain_while_running, &[])
}

/// [`run_tls_writer`] with more tls-writer flags.
fn run_tls_writer_with(
    tracer: &mut Tracer,
    drain_while_running: bool,
    flags: &[&str],
) -> Vec<Vec<u8>> {
    let binary = testbed_bin("tls-writer");
    let attached = tracer.attach_go_tls(&binary).unwrap();
    assert_eq!(attached.go_version.as_deref(), Some("go1.27.3"));
    assert!(attached.record_sites >= 1);
    for tp in tracepoints::used() {
        tracer.attach_tracepoint(tp).unwrap();
    }
    let mut events = tracer.take_events().unwrap();
    let (n, base, step) = (WRITES.to_string(), BASE.to_string(), STEP.to_string());
    let mut args = vec!["-n", &n, "-base", &base, "-step", &step];
    args.extend_from_slice(flags);
    let mut writer = TlsWriter::start(&args);
    tracer.add_target(writer.pid).unwrap();
    assert!(tracer.watch_go_tls(writer.pid, &attached.code).unwrap());
    writer.go();
    let mut records = Vec::new();
    if drain_while_running {
        records.extend(drain(&mut events));
    }
    writer.finish();
    records.extend(drain(&mut events));
    // Streams whose close the full ring could not carry, and the exited
    // process's leftovers, come from the kernel's table.
    let closes = tracer
        .sweep_streams(
            |tgid| std::path::Path::new(&format!("/proc/{tgid}")).exists(),
            clock::monotonic_ns(),
        )
        .unwrap();
    records.extend(closes.iter().map(encode));
    records
}

/// Streams rebuilt from the records: bytes at their offsets, gap bytes, and
/// the end offset the close record reported.
#[derive(Default, Debug)]
struct Rebuilt {
    bytes: BTreeMap<u64, Vec<u8>>,
    gap_bytes: u64,
    end: Option<u64>,
    /// The fd its chunks named, once known.
    fd: Option<i32>,
}

fn rebuild(records: &[Vec<u8>]) -> BTreeMap<StreamId, Rebuilt> {
    let mut streams = Streams::new(64);
    let mut out = BTreeMap::<StreamId, Rebuilt>::new();
    let mut events = Vec::new();
    for record in records {
        events.clear();
        match decode(record).expect("decodable record") {
            Record::Chunk(header, data) => streams.on_chunk(&header, data, &mut events),
            Record::SockClose(close) => {
                let mut owned = Vec::new();
                streams.on_close(&close, &mut owned);
                events.extend(owned);
            }
            _ => {}
        }
        for event in &events {
            match event {
                StreamEvent::Start { id, .. } => {
                    out.entry(*id).or_default();
                }
                StreamEvent::Data {
                    id,
                    offset,
                    bytes,
                    place,
                    ..
                } => {
                    let rebuilt = out.entry(*id).or_default();
                    rebuilt.bytes.insert(*offset, bytes.to_vec());
                    if place.fd >= 0 {
                        rebuilt.fd = Some(place.fd);
                    }
                }
                StreamEvent::Gap { id, len, .. } => out.entry(*id).or_default().gap_bytes += len,
                StreamEvent::End { id, end_offset, .. } => {
                    out.entry(*id).or_default().end = Some(*end_offset);
                }
            }
        }
    }
    out
}

fn stream(streams: &BTreeMap<StreamId, Rebuilt>, direction: Direction) -> &Rebuilt {
    let matching: Vec<_> = streams
        .iter()
        .filter(|(id, _)| {
            id.direction() == Some(direction) && id.source() == Some(ChunkSource::GoTls)
        })
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one {direction:?} TLS stream: {:?}",
        streams.keys()
    );
    matching[0].1
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn go_tls_plaintext_is_captured_byte_for_byte_in_both_directions() {
    let mut tracer = load(LoadOptions::default());
    let records = run_tls_writer(&mut tracer, true);
    let streams = rebuild(&records);
    let expected = expected_plaintext();
    // The client's writes (egress) and the server's reads (ingress, at the
    // decrypted-record probe) are the same plaintext.
    for direction in [Direction::Egress, Direction::Ingress] {
        let s = stream(&streams, direction);
        let captured: Vec<u8> = s.bytes.values().flatten().copied().collect();
        assert_eq!(s.gap_bytes, 0, "{direction:?}");
        assert_eq!(captured.len(), expected.len(), "{direction:?}");
        assert!(captured == expected, "{direction:?}: plaintext differs");
        assert_eq!(
            s.end,
            Some(expected.len() as u64),
            "{direction:?}: close offset"
        );
    }
    assert_eq!(tracer.counter(Counter::LostBytes).unwrap(), 0);
    assert_eq!(tracer.counter(Counter::RingbufDrops).unwrap(), 0);
    assert_eq!(
        tracer.counter(Counter::ChunkBytes).unwrap(),
        2 * expected.len() as u64
    );
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn records_a_handshake_read_and_another_goroutine_decrypted_are_captured() {
    // tls-writer -handoff: the server's handshake reads the client's
    // Finished together with its first records, and another goroutine
    // decrypts those (as Go's http2 server reads a client's preface). The
    // conn is joined to its socket by the receive under readRecordOrCCS,
    // not by the goroutine, so nothing is left unbound.
    let mut tracer = load(LoadOptions::default());
    let records = run_tls_writer_with(&mut tracer, true, &["-handoff"]);
    let streams = rebuild(&records);
    let expected = expected_plaintext();
    let s = stream(&streams, Direction::Ingress);
    let captured: Vec<u8> = s.bytes.values().flatten().copied().collect();
    assert_eq!(s.gap_bytes, 0);
    assert_eq!(tracer.counter(Counter::TlsUnboundBytes).unwrap(), 0);
    assert_eq!(captured.len(), expected.len());
    assert!(captured == expected, "plaintext differs");
    assert_eq!(s.bytes.keys().next(), Some(&0), "from the first byte");
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn an_undersized_ring_reports_exact_gaps_and_the_totals_add_up() {
    // 32 KiB holds little; not draining until the writer exits forces loss.
    let mut tracer = load(LoadOptions {
        ringbuf_bytes: 32 * 1024,
        ..LoadOptions::default()
    });
    let records = run_tls_writer(&mut tracer, false);
    let streams = rebuild(&records);
    let expected = expected_plaintext();
    let mut total_gap = 0;
    for direction in [Direction::Egress, Direction::Ingress] {
        let s = stream(&streams, direction);
        let captured: u64 = s.bytes.values().map(|b| b.len() as u64).sum();
        assert!(
            s.gap_bytes > 0,
            "{direction:?}: the ring was too small to lose nothing"
        );
        assert_eq!(s.end, Some(expected.len() as u64));
        assert_eq!(
            captured + s.gap_bytes,
            expected.len() as u64,
            "{direction:?}: captured + lost = written"
        );
        // What was captured sits at the right offsets.
        for (offset, bytes) in &s.bytes {
            let at = *offset as usize;
            assert!(
                expected[at..at + bytes.len()] == bytes[..],
                "{direction:?}: bytes at {offset}"
            );
        }
        total_gap += s.gap_bytes;
    }
    assert_eq!(
        tracer.counter(Counter::LostBytes).unwrap(),
        total_gap,
        "kernel and userspace agree on the loss"
    );
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn cleartext_socket_payload_is_captured_from_syscalls_both_ways() {
    use std::{
        io::Read as _,
        net::{TcpListener, TcpStream},
        os::fd::AsRawFd as _,
        thread,
    };
    let mut tracer = load(LoadOptions::default());
    tracer.add_target(std::process::id()).unwrap();
    for tp in tracepoints::used() {
        tracer.attach_tracepoint(tp).unwrap();
    }
    let mut events = tracer.take_events().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Half the messages through send(2) (std's Write), half through write(2).
    let messages: Vec<Vec<u8>> = (0..400u32)
        .map(|i| {
            (0..(1 + i * 53) % 9000)
                .map(|j| (i * 7 + j) as u8)
                .collect()
        })
        .collect();
    let expected: Vec<u8> = messages.concat();
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        got
    });
    let mut conn = TcpStream::connect(addr).unwrap();
    for (i, message) in messages.iter().enumerate() {
        if i % 2 == 0 {
            conn.write_all(message).unwrap();
        } else {
            let mut rest = &message[..];
            while !rest.is_empty() {
                // SAFETY: the pointer and length describe `rest`, a live slice.
                let n = unsafe { libc::write(conn.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
                assert!(n > 0);
                rest = &rest[n as usize..];
            }
        }
    }
    let client_fd = conn.as_raw_fd();
    drop(conn);
    assert!(reader.join().unwrap() == expected);
    // The client's socket closes (TIME_WAIT, then TCP_CLOSE) once the
    // reader has closed its end: the close record ends its streams.
    thread::sleep(std::time::Duration::from_millis(200));
    let records = drain(&mut events);
    let streams = rebuild(&records);
    let syscall_streams: Vec<_> = streams
        .iter()
        .filter(|(id, _)| id.source() == Some(ChunkSource::Syscall))
        .collect();
    let egress: Vec<_> = syscall_streams
        .iter()
        .filter(|(id, s)| id.direction() == Some(Direction::Egress) && s.fd == Some(client_fd))
        .collect();
    assert_eq!(egress.len(), 1, "{:?}", streams.keys());
    let sent: Vec<u8> = egress[0].1.bytes.values().flatten().copied().collect();
    assert!(
        sent == expected,
        "egress payload differs ({} vs {} bytes)",
        sent.len(),
        expected.len()
    );
    assert_eq!(egress[0].1.gap_bytes, 0);
    assert_eq!(
        egress[0].1.end,
        Some(expected.len() as u64),
        "close record ends the stream"
    );
    let ingress: Vec<_> = syscall_streams
        .iter()
        .filter(|(id, _)| id.direction() == Some(Direction::Ingress))
        .collect();
    assert_eq!(ingress.len(), 1, "{:?}", streams.keys());
    let received: Vec<u8> = ingress[0].1.bytes.values().flatten().copied().collect();
    assert_eq!(ingress[0].1.gap_bytes, 0);
    assert_eq!(received.len(), expected.len());
    assert!(received == expected, "ingress payload differs");
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn full_send_buffer_zero_window_and_acks_are_seen() {
    use std::{
        io::{ErrorKind, Read as _},
        net::{TcpListener, TcpStream},
        thread,
        time::{Duration, Instant},
    };
    use tracer_common::record::SockSend;

    let mut tracer = load(LoadOptions::default());
    tracer.add_target(std::process::id()).unwrap();
    for tp in tracepoints::used() {
        tracer.attach_tracepoint(tp).unwrap();
    }
    let mut events = tracer.take_events().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    // Write until the kernel refuses: the client is not reading, so its
    // receive window and then our send buffer fill up.
    let block = vec![0x5a_u8; 64 * 1024];
    let mut written = 0u64;
    let mut server_w = &server;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match server_w.write(&block) {
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "send buffer never filled");
    }
    // Let the peer's zero-window ACKs arrive, then drain and finish.
    thread::sleep(Duration::from_millis(300));
    server.set_nonblocking(false).unwrap();
    let reader = thread::spawn(move || {
        let mut client = client;
        let mut sink = Vec::new();
        client.read_to_end(&mut sink).unwrap();
        sink.len() as u64
    });
    server_w.write_all(&block).unwrap();
    written += block.len() as u64;
    // tcp_probe sees ACKs only while ESTABLISHED: let them all arrive before
    // the FIN (a watch stream stays established; this test must end).
    thread::sleep(Duration::from_millis(300));
    server.shutdown(std::net::Shutdown::Write).unwrap();

    assert_eq!(reader.join().unwrap(), written);
    thread::sleep(Duration::from_millis(100));

    let raw = drain(&mut events);
    let records: Vec<Record> = raw.iter().map(|r| decode(r).unwrap()).collect();
    let sends: Vec<SockSend> = records
        .iter()
        .filter_map(|r| match r {
            Record::SockSend(s) if s.fd == std::os::fd::AsRawFd::as_raw_fd(&server) => Some(*s),
            _ => None,
        })
        .collect();
    assert!(
        sends.iter().any(|s| s.ret == -11),
        "an EAGAIN send (socket buffer full)"
    );
    let sock = sends[0].sock;
    let ok_bytes: u64 = sends
        .iter()
        .filter(|s| s.ret > 0)
        .map(|s| s.ret as u64)
        .sum();
    assert_eq!(
        ok_bytes, written,
        "successful sends add up to what was written"
    );
    // (ack, window) of each segment the probe reported, full or compact.
    let acks: Vec<(u32, u16)> = records
        .iter()
        .filter_map(|r| match r {
            Record::TcpSample(t) if t.sock == sock => Some((t.ack_seq, t.window)),
            Record::TcpAck(t) if t.sock == sock => Some((t.ack_seq, t.window)),
            _ => None,
        })
        .collect();
    assert!(
        acks.iter().any(|&(_, window)| window == 0),
        "the peer advertised a zero window"
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::TcpSample(t) if t.sock == sock)),
        "the socket's first segment came in full"
    );
    // The last send's write_seq is where the stream ends; the final ACK
    // covers it (plus one for our FIN).
    let end_seq = sends.iter().rev().find(|s| s.ret > 0).unwrap().write_seq;
    let last_ack = acks.last().unwrap().0;
    assert!(
        last_ack.wrapping_sub(end_seq) <= 1,
        "final ACK {last_ack} covers the last byte at {end_seq}"
    );
    // write_seq advances by exactly each send's size.
    for pair in sends
        .iter()
        .filter(|s| s.ret > 0)
        .collect::<Vec<_>>()
        .windows(2)
    {
        assert_eq!(
            pair[1].write_seq.wrapping_sub(pair[0].write_seq),
            pair[1].ret as u32
        );
    }
    assert!(tracer.counter(Counter::SendBufferFull).unwrap() >= 1);
}

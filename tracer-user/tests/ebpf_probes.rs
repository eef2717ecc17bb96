//! Root-only: loads the real eBPF object, attaches the first probes, drives
//! real traffic and asserts exact counts. Run with `cargo xtask test`.

mod support;

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    thread,
};

use support::{TlsWriter, decoded, drain, gettid, load, testbed_bin};
use tracer_common::{
    counters::Counter,
    record::{
        CHUNK_FLAG_CALL_START, CHUNK_FLAG_SENT, ChunkHeader, ChunkSource, Direction, TlsSent,
    },
};
use watchtrace::{
    capture::Record,
    loader::{LoadOptions, Tracer},
    tracepoints::{self, SOCK_SEND_LENGTH},
};

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn tracepoint_sees_every_tcp_send_with_its_exact_size() {
    let mut tracer = load(LoadOptions::default());
    tracer.add_target(std::process::id()).unwrap();
    tracer.attach_tracepoint(&SOCK_SEND_LENGTH).unwrap();
    let mut events = tracer.take_events().unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut sink = Vec::new();
        conn.read_to_end(&mut sink).unwrap();
        sink.len()
    });
    // Sizes chosen to be distinct, so order and exactness both show.
    let sizes: Vec<usize> = (0..200).map(|i| 1 + i * 37).collect();
    let expected_total: usize = sizes.iter().sum();
    let writer_sizes = sizes.clone();
    let writer = thread::spawn(move || {
        let mut conn = TcpStream::connect(addr).unwrap();
        for (i, size) in writer_sizes.iter().enumerate() {
            conn.write_all(&vec![i as u8; *size]).unwrap();
        }
        conn.shutdown(Shutdown::Write).unwrap();
        gettid()
    });
    let writer_tid = writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), expected_total);

    let raw = drain(&mut events);
    let sends: Vec<i32> = decoded(&raw)
        .into_iter()
        .filter_map(|r| match r {
            Record::SockSend(s) if s.header.tid == writer_tid => Some(s.ret),
            _ => None,
        })
        .collect();
    let sent: Vec<usize> = sends.iter().map(|&r| usize::try_from(r).unwrap()).collect();
    assert_eq!(sent.len(), sizes.len(), "one record per write");
    assert_eq!(
        sent, sizes,
        "each record carries its write's exact size, in order"
    );
    assert_eq!(sent.iter().sum::<usize>(), expected_total);
    assert!(tracer.counter(Counter::SockSends).unwrap() >= sizes.len() as u64);
    assert_eq!(tracer.counter(Counter::RingbufDrops).unwrap(), 0);
}

/// tls-writer's Writes, captured at their sends (the send tracepoint walks
/// up to each Write's frame), with every probe attached as `run` attaches
/// them; the drained records.
fn traced_tls_writes(writes: usize, base: u64, step: u64) -> (Vec<Vec<u8>>, Tracer, u32) {
    let mut tracer = load(LoadOptions::default());
    for tp in tracepoints::used() {
        tracer.attach_tracepoint(tp).unwrap();
    }
    let binary = testbed_bin("tls-writer");
    let attached = tracer.attach_go_tls(&binary).unwrap();
    let mut writer = TlsWriter::start(&[
        "-n",
        &writes.to_string(),
        "-base",
        &base.to_string(),
        "-step",
        &step.to_string(),
    ]);
    let pid = writer.pid;
    tracer.add_target(pid).unwrap();
    assert!(tracer.watch_go_tls(pid, &attached.code).unwrap());
    let mut events = tracer.take_events().unwrap();
    writer.go();
    let expected: u64 = (0..writes as u64).map(|i| base + i * step).sum();
    assert_eq!(writer.finish(), expected);
    (drain(&mut events), tracer, pid)
}

/// The egress Go TLS chunks of `records`.
fn tls_writes(records: &[Record]) -> Vec<ChunkHeader> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Chunk(c, _)
                if c.direction == Direction::Egress as u8
                    && c.source == ChunkSource::GoTls as u8 =>
            {
                Some(*c)
            }
            _ => None,
        })
        .collect()
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn every_go_tls_write_is_captured_once_from_its_sends_and_reported_sent() {
    const WRITES: usize = 150;
    let (raw, tracer, pid) = traced_tls_writes(WRITES, 100, 7);
    let records = decoded(&raw);
    assert!(
        records.iter().all(|r| r.header().tgid == pid),
        "only the target is traced"
    );
    // One chunk per Write (each is under the 16 KiB chunk size), in order,
    // all on one socket, with its fd.
    let writes = tls_writes(&records);
    let expected: Vec<u64> = (0..WRITES as u64).map(|i| 100 + i * 7).collect();
    assert_eq!(
        writes.iter().map(|w| u64::from(w.len)).collect::<Vec<_>>(),
        expected
    );
    let sock = writes[0].sock;
    assert!(sock != 0 && writes.iter().all(|w| w.sock == sock));
    assert!(writes.iter().all(|w| w.fd > 2), "a real socket fd");
    assert!(writes.iter().all(|w| w.flags & CHUNK_FLAG_CALL_START != 0));
    // Each Write is one record sent whole by the send that captured it, so
    // its chunk says it was sent; write_seq grows by a record per Write.
    assert!(
        writes.iter().all(|w| w.flags & CHUNK_FLAG_SENT != 0),
        "every Write reported sent on its chunk"
    );
    for pair in writes.windows(2) {
        assert_eq!(
            pair[1].write_seq.wrapping_sub(pair[0].write_seq),
            pair[1].len + 22,
            "a TLS 1.3 record per Write"
        );
    }
    assert_eq!(tracer.counter(Counter::TlsWrites).unwrap(), WRITES as u64);
    assert_eq!(
        tracer.counter(Counter::TlsWriteBytes).unwrap(),
        expected.iter().sum::<u64>()
    );
    assert_eq!(tracer.counter(Counter::TlsWriteDesyncs).unwrap(), 0);
    assert_eq!(tracer.counter(Counter::RingbufDrops).unwrap(), 0);
    // The server's reads named the conn and its socket.
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::TlsBind(b) if b.sock != 0 && b.fd > 2)),
        "a conn bound to its socket by its reads"
    );
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn equal_writes_from_one_buffer_are_each_captured_and_large_ones_sent_at_their_last_record() {
    // Equal sizes: each Write's buffer, length and frame are the same as
    // the last one's; only the record count tells them apart. 40 KiB: three
    // records, the last one's send ends the Write.
    const WRITES: usize = 60;
    const SIZE: u64 = 40 * 1024;
    let (raw, tracer, _) = traced_tls_writes(WRITES, SIZE, 0);
    let records = decoded(&raw);
    let starts: Vec<ChunkHeader> = tls_writes(&records)
        .into_iter()
        .filter(|c| c.flags & CHUNK_FLAG_CALL_START != 0)
        .collect();
    assert_eq!(starts.len(), WRITES, "each Write captured once");
    let captured: u64 = tls_writes(&records).iter().map(|c| u64::from(c.len)).sum();
    assert_eq!(captured, WRITES as u64 * SIZE);
    // Not sent by the capturing send: a TlsSent each, at its third record.
    let sent: Vec<TlsSent> = records
        .iter()
        .filter_map(|r| match r {
            Record::TlsSent(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), WRITES, "each Write reported sent once");
    for pair in sent.windows(2) {
        // The Write's plaintext and 22 bytes per record: at least three
        // (16384 + 16384 + 8192), more while Go still sizes records to
        // the first packets of the connection.
        let on_wire = pair[1].write_seq.wrapping_sub(pair[0].write_seq);
        let overhead = on_wire - SIZE as u32;
        assert!(
            overhead >= 3 * 22 && overhead.is_multiple_of(22),
            "{on_wire} bytes on the wire for {SIZE} of plaintext"
        );
    }
    assert_eq!(tracer.counter(Counter::TlsWriteDesyncs).unwrap(), 0);
}

// A goroutine that parks inside a TLS Write before the Write's first
// syscall (here on the conn's write lock, held by a blocked Write) leaves
// its thread to other goroutines. A socket write one of them makes on that
// thread must not be taken for the parked Write's: that would bind the TLS
// conn to a cleartext socket and stop that socket's capture.
#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn a_write_parked_before_its_syscall_does_not_claim_another_goroutines_socket() {
    const WRITES: usize = 200;
    let mut tracer = load(LoadOptions::default());
    for tp in tracepoints::used() {
        tracer.attach_tracepoint(tp).unwrap();
    }
    let mut writer = TlsWriter::start(&[
        "-park",
        "-n",
        &WRITES.to_string(),
        "-base",
        "100",
        "-step",
        "7",
    ]);
    tracer.add_target(writer.pid).unwrap();
    let probes = tracer.attach_go_tls(&testbed_bin("tls-writer")).unwrap();
    assert!(tracer.watch_go_tls(writer.pid, &probes.code).unwrap());
    let mut events = tracer.take_events().unwrap();

    writer.go();
    let line = writer.line();
    let cleartext_fd: i32 = line
        .trim()
        .strip_prefix("cleartext ")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let written: u64 = (0..WRITES as u64).map(|i| 100 + i * 7).sum();
    assert_eq!(writer.finish(), written);

    let raw = drain(&mut events);
    let records = decoded(&raw);
    assert_eq!(tracer.counter(Counter::RingbufDrops).unwrap(), 0);
    let wrong: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::TlsBind(b) if b.fd == cleartext_fd => Some(b.tls_conn),
            _ => None,
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "TLS conns bound to the cleartext socket: {wrong:x?}"
    );
    let captured: u64 = records
        .iter()
        .filter_map(|r| match r {
            Record::Chunk(c, _)
                if c.fd == cleartext_fd
                    && c.source == ChunkSource::Syscall as u8
                    && c.direction == Direction::Egress as u8 =>
            {
                Some(u64::from(c.len))
            }
            _ => None,
        })
        .sum();
    assert_eq!(
        captured, written,
        "the cleartext socket's bytes, all captured"
    );
    // The parked Write itself was seen.
    assert!(records.iter().any(|r| matches!(
        r,
        Record::Chunk(c, _) if c.source == ChunkSource::GoTls as u8 && c.len == 6
    )));
}

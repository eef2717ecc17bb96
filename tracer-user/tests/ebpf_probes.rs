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
    record::{ChunkSource, Direction},
};
use watchtrace::{
    capture::Record,
    loader::LoadOptions,
    symbols,
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

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn go_tls_uprobe_sees_every_plaintext_write_and_its_socket() {
    const WRITES: usize = 150;
    let mut tracer = load(LoadOptions::default());
    // The tracepoints too: the socket syscalls bind the TLS conn to its fd,
    // and they show the in-kernel filter (this test process is not a
    // target, so only the Go child's records may appear).
    for tp in tracepoints::used() {
        tracer.attach_tracepoint(tp).unwrap();
    }
    let binary = testbed_bin("tls-writer");
    let location = symbols::resolve_go(&binary, symbols::GO_TLS_WRITE).unwrap();
    assert!(
        location.body_file_offset > location.entry_file_offset,
        "Write has a stack check"
    );

    let mut writer = TlsWriter::start(&["-n", &WRITES.to_string(), "-base", "100", "-step", "7"]);
    let pid = writer.pid;
    tracer.add_target(pid).unwrap();
    tracer
        .attach_go_tls_write(&binary, location.body_file_offset)
        .unwrap();
    let mut events = tracer.take_events().unwrap();

    writer.go();
    let expected: Vec<u64> = (0..WRITES as u64).map(|i| 100 + i * 7).collect();
    assert_eq!(writer.finish(), expected.iter().sum::<u64>());

    let raw = drain(&mut events);
    let records = decoded(&raw);
    assert!(
        records.iter().all(|r| r.header().tgid == pid),
        "only the target is traced"
    );
    // One chunk per Write (each is under the 16 KiB chunk size), in order,
    // all on one *tls.Conn.
    let writes: Vec<_> = records
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
        .collect();
    assert_eq!(
        writes.iter().map(|w| u64::from(w.len)).collect::<Vec<_>>(),
        expected
    );
    let conn = writes[0].conn;
    assert!(conn != 0 && writes.iter().all(|w| w.conn == conn));
    // The first Write's syscall bound the conn to its socket; every later
    // chunk carries that fd.
    let binds: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::TlsBind(b) if b.conn == conn => Some(b.fd),
            _ => None,
        })
        .collect();
    assert_eq!(binds.len(), 1, "bound once: {binds:?}");
    let fd = binds[0];
    assert!(fd > 2, "a real socket fd, got {fd}");
    // Every chunk recorded after the bind carries that fd. (Which Write
    // binds depends on the handshake: a receive inside the first Write
    // consumes its mark without binding, so the second may be the one.)
    let bind_at = records
        .iter()
        .position(|r| matches!(r, Record::TlsBind(b) if b.conn == conn))
        .expect("bound");
    let after: Vec<i32> = records[bind_at..]
        .iter()
        .filter_map(|r| match r {
            Record::Chunk(c, _)
                if c.direction == Direction::Egress as u8
                    && c.source == ChunkSource::GoTls as u8 =>
            {
                Some(c.fd)
            }
            _ => None,
        })
        .collect();
    assert!(
        after.len() >= WRITES - 2 && after.iter().all(|&f| f == fd),
        "chunks after the bind carry the bound fd: {} of them, fds {:?}",
        after.len(),
        after.iter().collect::<std::collections::BTreeSet<_>>()
    );
    assert_eq!(tracer.counter(Counter::TlsWrites).unwrap(), WRITES as u64);
    assert_eq!(
        tracer.counter(Counter::TlsWriteBytes).unwrap(),
        expected.iter().sum::<u64>()
    );
    // TLS adds record headers and tags, so the socket saw more than the
    // plaintext; every send came from the child.
    let on_wire: i64 = records
        .iter()
        .filter_map(|r| match r {
            Record::SockSend(s) => Some(i64::from(s.ret)),
            _ => None,
        })
        .sum();
    assert!(on_wire > expected.iter().sum::<u64>() as i64);
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
    let _probes = tracer.attach_go_tls(&testbed_bin("tls-writer")).unwrap();
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
            Record::TlsBind(b) if b.fd == cleartext_fd => Some(b.conn),
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

//! The pipeline's attribution of records to connections, from records
//! built here: which socket and source a connection is, when a socket's
//! TLS becomes known, and addresses learnt after attach.

use tracer_common::record::{
    CHUNK_FLAG_CALL_START, CHUNK_FLAG_STREAM_START, ChunkHeader, ChunkSource, Direction,
    RecordHeader, RecordKind, SockAnchor, SockClose, SockSend, TcpAck, TcpSample, Tick, TlsBind,
};

use super::{OutputEvent, Pipeline, PipelineConfig};
use crate::capture::{encode, encode_chunk};

const TGID: u32 = 77;
const SOCK: u64 = 0xffff_8880_0000_1000;
const S: u64 = 1_000_000_000;

fn header(kind: RecordKind, ts: u64) -> RecordHeader {
    RecordHeader {
        ts_ns: ts,
        kind: kind as u16,
        _pad0: 0,
        tgid: TGID,
        tid: TGID,
        _pad1: 0,
    }
}

/// One call's bytes on `SOCK`, as one chunk record.
fn chunk(
    ts: u64,
    source: ChunkSource,
    direction: Direction,
    offset: u64,
    fd: i32,
    bytes: &[u8],
) -> Vec<u8> {
    chunk_on(SOCK, ts, source, direction, offset, fd, bytes)
}

/// One call's bytes on `sock`, as one chunk record.
fn chunk_on(
    sock: u64,
    ts: u64,
    source: ChunkSource,
    direction: Direction,
    offset: u64,
    fd: i32,
    bytes: &[u8],
) -> Vec<u8> {
    let flags = if offset == 0 {
        CHUNK_FLAG_STREAM_START | CHUNK_FLAG_CALL_START
    } else {
        CHUNK_FLAG_CALL_START
    };
    encode_chunk(
        &ChunkHeader {
            header: header(RecordKind::Chunk, ts),
            fd,
            direction: direction as u8,
            source: source as u8,
            flags,
            offset,
            tls_conn: 0,
            sock,
            len: 0,
            write_seq: 0,
        },
        bytes,
    )
}

fn sample(ts: u64) -> Vec<u8> {
    let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
    saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
    encode(&TcpSample {
        header: header(RecordKind::TcpSample, ts),
        sock: SOCK,
        sock_cookie: 0,
        fd: 9,
        ack_seq: 1,
        window: 512,
        family: 2,
        sport: 6443,
        dport: 40_000,
        snd_una: 1,
        snd_nxt: 1,
        snd_wnd: 1 << 16,
        snd_cwnd: 10,
        srtt_us: 100,
        rcv_wnd: 1 << 16,
        data_len: 0,
        _pad0: 0,
        saddr,
        daddr,
    })
}

/// The client's opening of an HTTP/2 connection.
const CLIENT_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The pipeline's output, the same with decoding on worker threads.
fn run(records: &[Vec<u8>]) -> Vec<OutputEvent> {
    let with = |workers: usize| {
        let config = PipelineConfig {
            workers,
            ..PipelineConfig::default()
        };
        let mut pipeline = Pipeline::new(config, 0);
        let mut out = Vec::new();
        for r in records {
            pipeline.on_record(r, &mut |e| out.push(e));
        }
        pipeline.flush(&mut |e| out.push(e));
        assert_eq!(pipeline.stats().undecodable_records, 0);
        out
    };
    let inline = with(1);
    assert_eq!(with(3), inline, "three decoding workers, the same output");
    inline
}

/// A socket that existed before attach, as `sock_diag` reports it.
fn anchor(ts: u64, fd: i32, inode: u32) -> Vec<u8> {
    let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
    saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    daddr[..4].copy_from_slice(&[10, 9, 9, 9]);
    encode(&SockAnchor {
        header: header(RecordKind::SockAnchor, ts),
        fd,
        family: 2,
        state: 1,
        _pad0: 0,
        sport: 6443,
        dport: 50_000,
        inode,
        saddr,
        daddr,
        bytes_sent: 0,
        bytes_acked: 0,
        bytes_received: 0,
        send_queue: 0,
        rtt_us: 0,
    })
}

/// `sock` closed on `fd`, its syscall streams ending at these offsets.
fn close(ts: u64, sock: u64, fd: i32, egress_end: u64, ingress_end: u64) -> Vec<u8> {
    encode(&SockClose {
        header: header(RecordKind::SockClose, ts),
        fd,
        _pad0: 0,
        tls_conn: 0,
        sock,
        end_offsets: [u64::MAX, u64::MAX, egress_end, ingress_end],
    })
}

fn opens(events: &[OutputEvent]) -> Vec<(u64, bool, Option<i32>, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::ConnOpen {
                conn,
                tls,
                fd,
                peer,
                ..
            } => Some((*conn, *tls, *fd, peer.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ciphertext_seen_before_the_socket_was_known_to_be_tls_is_no_connection_of_its_own() {
    // The socket's handshake, read before the kernel knew it carried TLS,
    // then the plaintext of its Go TLS conn.
    let events = run(&[
        chunk(
            S,
            ChunkSource::Syscall,
            Direction::Ingress,
            0,
            9,
            &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5],
        ),
        chunk(
            2 * S,
            ChunkSource::GoTls,
            Direction::Ingress,
            0,
            9,
            CLIENT_PREFACE,
        ),
    ]);
    let opens: Vec<_> = opens(&events)
        .into_iter()
        .map(|(_, tls, fd, peer)| (tls, fd, peer))
        .collect();
    assert_eq!(
        opens,
        [(true, Some(9), None)],
        "one connection: the TLS one"
    );
}

#[test]
fn a_connection_joined_mid_way_as_cleartext_closes_when_its_socket_turns_out_to_be_tls() {
    // Attached mid-stream: the socket's ciphertext (not at a record
    // boundary) looked like a cleartext connection until its Go TLS conn
    // was bound to it; then that ghost ends, and the TLS one carries on.
    let ghost = chunk(
        S,
        ChunkSource::Syscall,
        Direction::Egress,
        4096,
        9,
        &[0x8a; 200],
    );
    let bind = encode(&TlsBind {
        header: header(RecordKind::TlsBind, 2 * S),
        tls_conn: 0xc000_1234,
        sock: SOCK,
        fd: 9,
        _pad0: 0,
    });
    let tls = chunk(
        3 * S,
        ChunkSource::GoTls,
        Direction::Ingress,
        0,
        9,
        CLIENT_PREFACE,
    );
    let events = run(&[ghost, bind, tls]);
    assert_eq!(
        opens(&events),
        [(1, false, Some(9), None), (2, true, Some(9), None)]
    );
    let closes: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::ConnClose { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(closes, [1], "the ghost ends when the bind arrives");
}

#[test]
fn addresses_learnt_after_the_first_bytes_are_written_once() {
    // Accepted after attach: the first bytes come before any TCP sample,
    // so conn_open cannot name the peer; the first sample does, once.
    let events = run(&[
        chunk(
            S,
            ChunkSource::Syscall,
            Direction::Ingress,
            0,
            9,
            CLIENT_PREFACE,
        ),
        sample(2 * S),
        sample(4 * S),
    ]);
    assert_eq!(opens(&events), [(1, false, Some(9), None)]);
    let addresses: Vec<(u64, &str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::ConnAddress {
                conn, local, peer, ..
            } => Some((*conn, local.as_str(), peer.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(addresses, [(1, "10.0.0.1:6443", "10.1.2.3:40000")]);
}

#[test]
fn a_socket_from_before_attach_names_its_first_connection_but_not_the_next_on_its_fd() {
    // sock_diag reported a socket on fd 9 at attach; the probes first see
    // it when it is read. It closes, and fd 9 is reused at once by a new
    // socket, accepted after attach: that one's peer is not known yet.
    let second = SOCK + 0x1000;
    let n = CLIENT_PREFACE.len() as u64;
    let events = run(&[
        anchor(S, 9, 4242),
        chunk(
            2 * S,
            ChunkSource::Syscall,
            Direction::Ingress,
            0,
            9,
            CLIENT_PREFACE,
        ),
        close(3 * S, SOCK, 9, u64::MAX, n),
        chunk_on(
            second,
            4 * S,
            ChunkSource::Syscall,
            Direction::Ingress,
            0,
            9,
            CLIENT_PREFACE,
        ),
    ]);
    assert_eq!(
        opens(&events),
        [
            (1, false, Some(9), Some("10.9.9.9:50000".to_owned())),
            (2, false, Some(9), None)
        ]
    );
}

#[test]
fn a_connection_whose_client_stopped_reading_reports_its_send_queue_while_it_is_stalled() {
    // The server wrote 5000 bytes; the client acked 1000 and advertised a
    // zero window, then sent nothing more: no TCP sample comes.
    let mut records = vec![
        chunk(
            S,
            ChunkSource::Syscall,
            Direction::Ingress,
            0,
            9,
            CLIENT_PREFACE,
        ),
        encode(&SockSend {
            header: header(RecordKind::SockSend, S + 100_000_000),
            sock: SOCK,
            ret: 5000,
            family: 2,
            protocol: 6,
            fd: 9,
            write_seq: 5000,
            requested: 5000,
            _pad0: 0,
        }),
        encode(&TcpAck {
            header: header(RecordKind::TcpAck, S + 200_000_000),
            sock: SOCK,
            ack_seq: 1000,
            window: 0,
            _pad0: 0,
        }),
    ];
    // Time passes: an idle ring's ticks.
    for i in 3..=35 {
        records.push(encode(&Tick {
            header: header(RecordKind::Tick, S + i * 100_000_000),
        }));
    }
    let events = run(&records);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, OutputEvent::StallStart { conn: Some(_), .. })),
        "{events:#?}"
    );
    let queues: Vec<Option<u32>> = events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::ConnSample { unacked_bytes, .. } => Some(*unacked_bytes),
            _ => None,
        })
        .collect();
    // Once a second over the 3.3 s of the stall: from its announcement
    // (the tick at 1.3 s), at 2.3, 3.3 and 4.3 s.
    assert_eq!(queues, [Some(4000); 4], "{events:#?}");
}

//! Ring-buffer records built in tests, as the kernel writes them: one
//! send's or receive's bytes on a socket of process 7, fd 9, from its
//! socket syscalls (cleartext: h2c).
#![allow(dead_code, reason = "shared by several test crates; each uses part")]

use tracer_common::record::{
    CHUNK_FLAG_CALL_START, CHUNK_FLAG_STREAM_START, ChunkHeader, ChunkSource, Direction,
    RecordHeader, RecordKind, SockAnchor, TcpSample,
};
use watchtrace::{
    capture::{encode, encode_chunk},
    pipeline::{OutputEvent, Pipeline, PipelineConfig, PipelineStats},
};

/// `bytes` the traced process wrote (`egress`) or read on `sock` at
/// stream `offset`, at `ts` (ns).
pub(crate) fn syscall_chunk(
    sock: u64,
    ts: u64,
    egress: bool,
    offset: u64,
    bytes: &[u8],
) -> Vec<u8> {
    syscall_chunk_on_fd(sock, 9, ts, egress, offset, bytes)
}

/// [`syscall_chunk`] on `fd`: for tests with several sockets at once.
pub(crate) fn syscall_chunk_on_fd(
    sock: u64,
    fd: i32,
    ts: u64,
    egress: bool,
    offset: u64,
    bytes: &[u8],
) -> Vec<u8> {
    let flags = CHUNK_FLAG_CALL_START
        | if offset == 0 {
            CHUNK_FLAG_STREAM_START
        } else {
            0
        };
    encode_chunk(
        &ChunkHeader {
            header: RecordHeader {
                ts_ns: ts,
                kind: RecordKind::Chunk as u16,
                _pad0: 0,
                tgid: 7,
                tid: 7,
                _pad1: 0,
            },
            fd,
            direction: if egress {
                Direction::Egress
            } else {
                Direction::Ingress
            } as u8,
            source: ChunkSource::Syscall as u8,
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

/// `sock` (on `fd`) closed, its syscall streams ending at these offsets.
pub(crate) fn sock_close(
    ts: u64,
    sock: u64,
    fd: i32,
    egress_end: u64,
    ingress_end: u64,
) -> Vec<u8> {
    encode(&tracer_common::record::SockClose {
        header: RecordHeader {
            ts_ns: ts,
            kind: RecordKind::SockClose as u16,
            _pad0: 0,
            tgid: 7,
            tid: 7,
            _pad1: 0,
        },
        fd,
        _pad0: 0,
        tls_conn: 0,
        sock,
        end_offsets: [u64::MAX, u64::MAX, egress_end, ingress_end],
    })
}

/// What a pipeline (default settings, Unix offset 0) makes of `records`,
/// flushed.
pub(crate) fn run_pipeline(records: &[Vec<u8>]) -> Vec<OutputEvent> {
    let mut pipeline = Pipeline::new(PipelineConfig::default(), 0);
    let mut events = Vec::new();
    for r in records {
        pipeline.on_record(r, &mut |e| events.push(e));
    }
    pipeline.flush(&mut |e| events.push(e));
    events
}

/// A socket of process 7 that existed before attach and listened on
/// `port` (so a connection on another local port was dialled).
pub(crate) fn listening(ts: u64, port: u16) -> Vec<u8> {
    encode(&SockAnchor {
        header: RecordHeader {
            ts_ns: ts,
            kind: RecordKind::SockAnchor as u16,
            _pad0: 0,
            tgid: 7,
            tid: 7,
            _pad1: 0,
        },
        fd: 3,
        family: 2,
        state: 10,
        _pad0: 0,
        sport: port,
        dport: 0,
        inode: 1,
        saddr: [0; 16],
        daddr: [0; 16],
        bytes_sent: 0,
        bytes_acked: 0,
        bytes_received: 0,
        send_queue: 0,
        rtt_us: 0,
    })
}

/// The TCP state of `sock` (on `fd`, local port `sport`) at `ts`.
pub(crate) fn tcp_sample(ts: u64, (sock, fd): (u64, i32), sport: u16, dport: u16) -> Vec<u8> {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    encode(&TcpSample {
        header: RecordHeader {
            ts_ns: ts,
            kind: RecordKind::TcpSample as u16,
            _pad0: 0,
            tgid: 7,
            tid: 0,
            _pad1: 0,
        },
        sock,
        sock_cookie: 0,
        fd,
        ack_seq: 1,
        window: 512,
        family: 2,
        sport,
        dport,
        snd_una: 1,
        snd_nxt: 1,
        snd_wnd: 1 << 16,
        snd_cwnd: 10,
        srtt_us: 100,
        rcv_wnd: 1 << 16,
        data_len: 0,
        _pad0: 0,
        saddr: addr,
        daddr: addr,
    })
}

/// What a pipeline with `workers` decoding threads makes of `records` to
/// the end of the input (`finish`: the writes' fan-outs too), and its
/// counters.
pub(crate) fn run_to_the_end(
    records: &[Vec<u8>],
    workers: usize,
) -> (Vec<OutputEvent>, PipelineStats) {
    let config = PipelineConfig {
        workers,
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(config, 0);
    let mut events = Vec::new();
    for r in records {
        pipeline.on_record(r, &mut |e| events.push(e));
    }
    pipeline.finish(&mut |e| events.push(e));
    (events, pipeline.stats())
}

/// The one line of `kind` (`list_response`, `etcd_request`) among
/// `events`, as JSON.
pub(crate) fn the_line(events: &[OutputEvent], kind: &str) -> serde_json::Value {
    let lines: Vec<_> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect();
    assert_eq!(lines.len(), 1, "{kind}: {events:#?}");
    lines.into_iter().next().unwrap()
}

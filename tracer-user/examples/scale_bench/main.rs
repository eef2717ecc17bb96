//! The agent at control-plane scale: a generated (seeded, deterministic)
//! record stream shaped like a large apiserver's, fed through what
//! `watchtrace run` does with each record (the pipeline, the live model a
//! batch at a time, the model advanced every second, `/metrics` rendered
//! every 15 s of recorded time), timing only that consumer: CPU time of
//! its thread, or with `--workers N` of the process (the drain thread and
//! the decoding threads). Run it through `cargo xtask bench scale`, or directly:
//! `cargo run --release -p tracer-user --example scale_bench -- --seconds 5`.
//!
//! The traffic, per second of recorded time by default: 2,000 HTTP/2
//! connections (h2c, as the syscall probes see them), 10,000 watch streams
//! (5 per connection, JSON and protobuf alternating), 50,000 watch events
//! with objects of 300 B to 20 KB (log-uniform), each written as its own
//! DATA frames in one send reported sent (as the send tracepoint reports a
//! Go TLS Write), each connection's previous send acknowledged by a TCP ack
//! before its next, and a full TCP sample per connection per second.
//!
//! Records are generated a batch (20 ms of recorded time) at a time and
//! dropped once consumed, so the peak RSS is the agent's state plus one
//! batch.

#[path = "../../tests/http2_support.rs"]
mod support;

#[path = "../support/agent_path.rs"]
mod agent_path;
#[path = "../support/cpu.rs"]
mod cpu;

use std::time::{Duration, Instant};

use agent_path::AgentPath;
use support::{Enc, data, headers, preface, settings, settings_ack, window_update};
use tracer_common::record::{
    CHUNK_DATA_MAX, CHUNK_FLAG_CALL_START, CHUNK_FLAG_SENT, CHUNK_FLAG_STREAM_START, ChunkHeader,
    ChunkSource, Direction, RecordHeader, RecordKind, TcpAck, TcpSample,
};
use watchtrace::{
    capture::{encode, encode_chunk},
    watch::fixture::{ObjectSpec, encode_json_line, encode_protobuf_frame},
};

/// The agent drains the ring at least this often (agent/session.rs).
const BATCH_NS: u64 = 20_000_000;
/// A TCP sample per connection this often.
const SAMPLE_NS: u64 = 1_000_000_000;
/// Recorded time starts here (monotonic ns, as the kernel stamps)...
const T0: u64 = 1_000_000_000_000;
/// ...which is this Unix time (ns).
const UNIX_AT_T0: i128 = 1_800_000_000_000_000_000;
const TGID: u32 = 4242;

struct Args {
    seconds: u64,
    conns: usize,
    streams: usize,
    rate: u64,
    seed: u64,
    /// Decoding threads (`run --workers`).
    workers: usize,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        seconds: 5,
        conns: 2000,
        streams: 10_000,
        rate: 50_000,
        seed: 1,
        workers: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| anyhow::anyhow!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--seconds" => a.seconds = n,
            "--conns" => a.conns = n as usize,
            "--streams" => a.streams = n as usize,
            "--rate" => a.rate = n,
            "--seed" => a.seed = n,
            "--workers" => a.workers = n as usize,
            other => anyhow::bail!(
                "unknown argument {other} (--seconds --conns --streams --rate --seed --workers)"
            ),
        }
    }
    anyhow::ensure!(
        a.conns > 0 && a.streams >= a.conns && a.seconds > 0 && a.rate > 0 && a.workers > 0,
        "need conns > 0, streams >= conns, seconds > 0, rate > 0, workers > 0"
    );
    Ok(a)
}

/// splitmix64: a small seeded generator, so every run sees the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Log-uniform in [lo, hi).
    fn log_uniform(&mut self, lo: f64, hi: f64) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo * (hi / lo).powf(u)) as usize
    }
}

const RESOURCES: [(&str, &str); 4] = [
    ("configmaps", "ConfigMap"),
    ("pods", "Pod"),
    ("leases", "Lease"),
    ("secrets", "Secret"),
];

/// One generated connection's send state.
struct Conn {
    sock: u64,
    fd: i32,
    /// Next plaintext offset of each direction.
    out_offset: u64,
    in_offset: u64,
    /// TCP sequence numbers: what was sent, and what is acked.
    seq: u32,
    acked: u32,
    /// First stream index of this connection's streams.
    first_stream: usize,
    streams: usize,
}

impl Conn {
    /// The peer's ack of everything sent, if anything is not yet acked.
    fn ack(&mut self, ts: u64, out: &mut Vec<Vec<u8>>) {
        if self.acked != self.seq {
            out.push(encode(&TcpAck {
                header: header(RecordKind::TcpAck, ts),
                sock: self.sock,
                ack_seq: self.seq,
                window: 512,
                _pad0: 0,
            }));
            self.acked = self.seq;
        }
    }
}

struct Generator {
    rng: Rng,
    conns: Vec<Conn>,
    rv: u64,
}

impl Generator {
    fn new(args: &Args) -> Self {
        let per = args.streams / args.conns;
        let extra = args.streams % args.conns;
        let mut first = 0;
        let conns = (0..args.conns)
            .map(|i| {
                let streams = per + usize::from(i < extra);
                let c = Conn {
                    sock: 0xffff_8880_0000_0000 + (i as u64) * 4096,
                    fd: 100 + i as i32,
                    out_offset: 0,
                    in_offset: 0,
                    seq: 1_000_000,
                    acked: 1_000_000,
                    first_stream: first,
                    streams,
                };
                first += streams;
                c
            })
            .collect();
        Self {
            rng: Rng(args.seed),
            conns,
            rv: 1000,
        }
    }

    /// The openings of every connection: the client's preface, SETTINGS
    /// and watch requests read, the server's SETTINGS and response
    /// HEADERS written.
    fn openings(&mut self, out: &mut Vec<Vec<u8>>) {
        for i in 0..self.conns.len() {
            let (first, streams) = (self.conns[i].first_stream, self.conns[i].streams);
            let mut client = preface();
            client.extend(settings(&[(2, 0), (4, (1 << 31) - 1)]));
            client.extend(window_update(0, (1 << 31) - 1 - 65_535));
            let mut server = settings(&[(5, 256 << 10), (3, 100), (4, (1 << 31) - 1)]);
            server.extend(settings_ack());
            for s in 0..streams {
                let stream = 1 + 2 * s as u32;
                let index = first + s;
                let (resource, _) = RESOURCES[index % RESOURCES.len()];
                let accept = content_type(index);
                let path = format!(
                    "/api/v1/namespaces/ns-{}/{resource}?allowWatchBookmarks=true&resourceVersion=1000&timeoutSeconds=452&watch=true",
                    index % 50
                );
                let block = Enc::default()
                    .indexed(2)
                    .indexed(6)
                    .literal(":authority", "10.0.0.1:6443")
                    .literal(":path", &path)
                    .literal("accept", accept)
                    .literal("user-agent", "kubelet/v1.36.0 (linux/amd64)")
                    .build();
                client.extend(headers(stream, &block, true));
                let block = Enc::default()
                    .indexed(8)
                    .literal("content-type", accept)
                    .build();
                server.extend(headers(stream, &block, false));
            }
            self.chunks(i, false, T0, &client, false, out);
            self.chunks(i, true, T0, &server, false, out);
        }
    }

    /// One watch event at `ts` on a random stream: its DATA frames in one
    /// send (reported sent), after an ack of the connection's last send.
    fn event(&mut self, ts: u64, out: &mut Vec<Vec<u8>>) -> usize {
        let i = self.rng.below(self.conns.len() as u64) as usize;
        let s = self.rng.below(self.conns[i].streams as u64) as usize;
        let index = self.conns[i].first_stream + s;
        self.conns[i].ack(ts, out);
        self.rv += 1;
        let (_, kind) = RESOURCES[index % RESOURCES.len()];
        let event_type = match self.rng.below(10) {
            0 => "ADDED",
            1 => "DELETED",
            _ => "MODIFIED",
        };
        let name = format!("{}-{:05}", kind.to_lowercase(), self.rng.below(50_000));
        let mut spec = ObjectSpec::pod(
            event_type,
            &format!("ns-{}", index % 50),
            &name,
            &self.rv.to_string(),
        );
        spec.kind = kind.to_owned();
        // The encoders write the payload twice (managed fields and spec).
        let size = self.rng.log_uniform(300.0, 20_000.0);
        let seed = self.rng.next();
        spec.payload = (0..size / 2)
            .map(|j| b'a' + ((j as u64 * 7 + seed) % 26) as u8)
            .collect();
        let body = if index.is_multiple_of(2) {
            encode_json_line(&spec)
        } else {
            encode_protobuf_frame(&spec)
        };
        let stream = 1 + 2 * s as u32;
        let mut frames = Vec::with_capacity(body.len() + 64);
        for piece in body.chunks(16 * 1024) {
            frames.extend(data(stream, piece, false));
        }
        self.chunks(i, true, ts, &frames, true, out);
        body.len()
    }

    /// Acks of every connection's last send, as the recorded time ends.
    fn ack_all(&mut self, ts: u64, out: &mut Vec<Vec<u8>>) {
        for c in &mut self.conns {
            c.ack(ts, out);
        }
    }

    /// A full TCP sample of every connection.
    fn samples(&self, ts: u64, out: &mut Vec<Vec<u8>>) {
        for (i, c) in self.conns.iter().enumerate() {
            let mut saddr = [0u8; 16];
            let mut daddr = [0u8; 16];
            saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
            daddr[..4].copy_from_slice(&[10, 1, (i >> 8) as u8, i as u8]);
            out.push(encode(&TcpSample {
                header: header(RecordKind::TcpSample, ts),
                sock: c.sock,
                sock_cookie: 0,
                fd: c.fd,
                ack_seq: c.acked,
                window: 512,
                family: 2,
                sport: 6443,
                dport: 40_000 + (i % 20_000) as u16,
                snd_una: c.acked,
                snd_nxt: c.seq,
                snd_wnd: 1 << 20,
                snd_cwnd: 10,
                srtt_us: 200,
                rcv_wnd: 1 << 20,
                data_len: 0,
                _pad0: 0,
                saddr,
                daddr,
            }));
        }
    }

    /// `bytes` as one call's chunk records on connection `i`; a send
    /// reports itself sent on its last chunk.
    fn chunks(
        &mut self,
        i: usize,
        egress: bool,
        ts: u64,
        bytes: &[u8],
        sent: bool,
        out: &mut Vec<Vec<u8>>,
    ) {
        let c = &mut self.conns[i];
        if egress {
            c.seq = c.seq.wrapping_add(bytes.len() as u32);
        }
        let pieces = bytes.len().div_ceil(CHUNK_DATA_MAX);
        for (n, piece) in bytes.chunks(CHUNK_DATA_MAX).enumerate() {
            let offset = if egress { c.out_offset } else { c.in_offset };
            let mut flags = if n == 0 { CHUNK_FLAG_CALL_START } else { 0 };
            if offset == 0 {
                flags |= CHUNK_FLAG_STREAM_START;
            }
            let last = n + 1 == pieces;
            if sent && last {
                flags |= CHUNK_FLAG_SENT;
            }
            let chunk = ChunkHeader {
                header: header(RecordKind::Chunk, ts),
                fd: c.fd,
                direction: if egress {
                    Direction::Egress
                } else {
                    Direction::Ingress
                } as u8,
                source: ChunkSource::Syscall as u8,
                flags,
                offset,
                tls_conn: 0,
                sock: c.sock,
                len: 0,
                write_seq: if sent && last { c.seq } else { 0 },
            };
            out.push(encode_chunk(&chunk, piece));
            if egress {
                c.out_offset += piece.len() as u64;
            } else {
                c.in_offset += piece.len() as u64;
            }
        }
    }
}

fn header(kind: RecordKind, ts: u64) -> RecordHeader {
    RecordHeader {
        ts_ns: ts,
        kind: kind as u16,
        _pad0: 0,
        tgid: TGID,
        tid: TGID + 1,
        _pad1: 0,
    }
}

fn content_type(index: usize) -> &'static str {
    if index.is_multiple_of(2) {
        "application/json"
    } else {
        "application/vnd.kubernetes.protobuf;stream=watch"
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let mut generator = Generator::new(&args);
    let mut agent = AgentPath::with_workers(UNIX_AT_T0 - T0 as i128, args.workers);
    let mut records = Vec::new();
    let mut spent = Spent::default();
    let (mut generated, mut record_count, mut bytes) = (0u64, 0u64, 0u64);
    generator.openings(&mut records);
    let total = args.rate * args.seconds;
    let batches = args.seconds * 1_000_000_000 / BATCH_NS;
    let mut next_sample = T0;
    for b in 0..batches {
        let start = T0 + b * BATCH_NS;
        if start >= next_sample {
            generator.samples(start, &mut records);
            next_sample += SAMPLE_NS;
        }
        let until = total * (b + 1) / batches;
        while generated < until {
            let ts = start + (generated * BATCH_NS * batches / total) % BATCH_NS;
            bytes += generator.event(ts, &mut records) as u64;
            generated += 1;
        }
        record_count += records.len() as u64;
        spent += feed(&mut agent, &mut records, start + BATCH_NS);
    }
    let end = T0 + batches * BATCH_NS;
    generator.ack_all(end, &mut records);
    record_count += records.len() as u64;
    spent += feed(&mut agent, &mut records, end);
    let stats = agent.pipeline().stats();
    anyhow::ensure!(
        stats.undecodable_records == 0,
        "{} undecodable records",
        stats.undecodable_records
    );
    anyhow::ensure!(
        agent.sent == generated,
        "the pipeline reported {} watch events of {generated} generated",
        agent.sent
    );
    let rss_mb = peak_rss_kb()? as f64 / 1024.0;
    let recorded = args.seconds as f64;
    // The consumer's CPU: the drain thread's, plus the decoding threads'
    // (idle outside `feed`: every feed ends with a flush).
    let cpu = if args.workers > 1 {
        spent.process
    } else {
        spent.drain
    };
    println!(
        "scale replay: {} connections, {} watch streams (JSON and protobuf), {generated} watch \
         events of 300 B-20 KB ({:.0} MB of events) over {recorded:.0} s recorded, {record_count} \
         records; consumer {:.3} CPU s in {:.3} s",
        args.conns,
        args.streams,
        bytes as f64 / 1e6,
        cpu.as_secs_f64(),
        spent.wall.as_secs_f64(),
    );
    if args.workers > 1 {
        let mut line = format!(
            "scale threads: drain+join cpu_cores={:.3}",
            spent.drain.as_secs_f64() / recorded
        );
        for (name, used) in cpu::threads_cpu("wt-decode-")? {
            line += &format!(" {name} cpu_cores={:.3}", used.as_secs_f64() / recorded);
        }
        println!("{line}");
    }
    // How fast the consumer drains: recorded seconds per second of its
    // wall time (what `bench scale --workers` compares).
    println!(
        "scale drain: wall_s={:.3} realtime_x={:.2}",
        spent.wall.as_secs_f64(),
        recorded / spent.wall.as_secs_f64()
    );
    println!(
        "scale: events_per_s={} cpu_cores={:.3} us_per_event={:.2} rss_mb={rss_mb:.0} workers={}",
        args.rate,
        cpu.as_secs_f64() / recorded,
        cpu.as_secs_f64() * 1e6 / generated as f64,
        args.workers,
    );
    Ok(())
}

/// What feeding the consumer took.
#[derive(Clone, Copy, Debug, Default)]
struct Spent {
    /// CPU of the drain thread (this one).
    drain: Duration,
    /// CPU of the whole process.
    process: Duration,
    wall: Duration,
}

impl std::ops::AddAssign for Spent {
    fn add_assign(&mut self, other: Self) {
        self.drain += other.drain;
        self.process += other.process;
        self.wall += other.wall;
    }
}

/// One drain of `records` (then emptied), ending at `now`: its CPU time.
fn feed(agent: &mut AgentPath, records: &mut Vec<Vec<u8>>, now: u64) -> Spent {
    let (drain, process, wall) = (cpu::thread_cpu(), cpu::process_cpu(), Instant::now());
    for record in records.iter() {
        agent.record(record);
    }
    agent.batch_done(now);
    let spent = Spent {
        drain: cpu::thread_cpu() - drain,
        process: cpu::process_cpu() - process,
        wall: wall.elapsed(),
    };
    records.clear();
    spent
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kb() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))
}

//! Throughput of the HTTP/2 layer on watch-like traffic: a server sending
//! DATA frames (4 KiB, Go's handler buffer size, and 16 KiB) on a few
//! streams, with WINDOW_UPDATEs coming back, fed in 64 KiB chunks to a sink
//! that only counts bytes. Ignored by default; run with
//! `cargo test --release -p tracer-user --test http2_throughput -- --ignored --nocapture`.

#[path = "http2_support.rs"]
mod support;

use std::{hint::black_box, time::Instant};

use support::{C2S, S2C, data, headers, preface, settings, settings_ack, window_update};
use watchtrace::http2::{Attach, Http2Config, Http2Connection, Http2Event};

fn server_stream(frame: usize, total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + total / frame * 9);
    let payload: Vec<u8> = (0..frame).map(|i| (i * 31 + 7) as u8).collect();
    let mut i = 0u32;
    while out.len() < total {
        out.extend(data(1 + 2 * (i % 8), &payload, false));
        i += 1;
    }
    out
}

fn measure(frame: usize) -> f64 {
    let total = 256 << 20;
    let s2c = server_stream(frame, total);
    let mut conn = Http2Connection::new(Http2Config::default(), Attach::FromStart);
    let mut ignore = |_: Http2Event<'_>| {};
    let mut client = preface();
    // Large windows, as client-go grants (so the run is not one long stall).
    client.extend(settings(&[(4, (1 << 31) - 1)]));
    client.extend(window_update(0, (1 << 31) - 1 - 65_535));
    for id in (1..16).step_by(2) {
        client.extend(headers(id, &[0x82, 0x87, 0x84], true));
    }
    conn.on_bytes(C2S, 0, &client, &mut ignore);
    conn.on_bytes(S2C, 0, &settings_ack(), &mut ignore);
    let mut bytes = 0u64;
    let mut sink = |e: Http2Event<'_>| {
        if let Http2Event::Data { bytes: b, .. } = e {
            bytes += b.len() as u64;
        }
    };
    let start = Instant::now();
    for chunk in s2c.chunks(64 * 1024) {
        conn.on_bytes(S2C, 1, chunk, &mut sink);
    }
    let secs = start.elapsed().as_secs_f64();
    let frames = s2c.len() / (frame + 9);
    assert_eq!(black_box(bytes), (frames * frame) as u64);
    let stats = conn.stats();
    assert_eq!((stats.protocol_errors, stats.resyncs), (0, 0));
    s2c.len() as f64 / secs / 1e9
}

#[test]
#[ignore = "benchmark; run in release"]
fn data_throughput() {
    for frame in [4096, 16_384] {
        let gbps = measure(frame);
        println!("{frame}-byte DATA frames: {gbps:.2} GB/s");
    }
}

//! Fuzzes `Http2Connection` with arbitrary bytes in both directions, split
//! at arbitrary points, with gaps, under normal and tiny bounds.
//!
//! Input: one options byte, then operations `[op, n, n bytes...]`: op bit 0
//! picks the direction, bit 1 makes it a gap of `n * (op >> 2 + 1)` bytes
//! instead of a chunk.
//!
//! Besides "no panic", it checks a differential property when it can: fed
//! from the start without gaps and without any resync, the same bytes fed
//! with each direction's consecutive chunks merged give the same events
//! (DATA pieces merged per frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchtrace::http2::{
    Attach, Flow, Http2Config, Http2Connection, Http2Event, WindowScope, frame::PREFACE,
};

fn config(tiny: bool) -> Http2Config {
    if tiny {
        Http2Config {
            max_streams: 3,
            closed_memory: 2,
            max_header_block: 200,
            max_control_payload: 24,
            resync_window: 64,
            hpack_retain_bytes: 300,
            assumed_header_table_size: Some(256),
            max_pending_settings: 2,
            frame_events: true,
        }
    } else {
        Http2Config::default()
    }
}

enum Op<'a> {
    Bytes(Flow, &'a [u8]),
    Gap(Flow, u64),
}

fn ops(mut rest: &[u8]) -> Vec<Op<'_>> {
    let mut out = Vec::new();
    while let [op, n, tail @ ..] = rest {
        let dir = if op & 1 == 0 {
            Flow::ClientToServer
        } else {
            Flow::ServerToClient
        };
        let n = usize::from(*n);
        if op & 2 != 0 {
            out.push(Op::Gap(dir, (n * (usize::from(op >> 2) + 1)) as u64));
            rest = tail;
        } else {
            let n = n.min(tail.len());
            out.push(Op::Bytes(dir, &tail[..n]));
            rest = &tail[n..];
        }
    }
    out
}

/// Events with each DATA frame's pieces merged (all chunks carry time 0).
fn canonical(events: &[Http2Event<'static>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut piece: Vec<u8> = Vec::new();
    for e in events {
        match e {
            Http2Event::Data {
                bytes, frame_end, ..
            } => {
                piece.extend_from_slice(bytes);
                if *frame_end {
                    out.push(format!("data {:?}", std::mem::take(&mut piece)));
                }
            }
            other => out.push(format!("{other:?}")),
        }
    }
    out
}

fn run(attach: Attach, tiny: bool, ops: &[Op<'_>]) -> (Vec<Http2Event<'static>>, Http2Connection) {
    let mut conn = Http2Connection::new(config(tiny), attach);
    let mut events = Vec::new();
    for (ts, op) in ops.iter().enumerate() {
        match *op {
            Op::Bytes(dir, b) => conn.on_bytes(dir, 0, b, &mut events),
            Op::Gap(dir, n) => conn.on_gap(dir, ts as u64, n, &mut events),
        }
        // Exercise the queries between calls.
        for dir in [Flow::ClientToServer, Flow::ServerToClient] {
            let _ = conn.can_send(dir, 1);
            let _ = conn.window(dir, WindowScope::Connection);
            let _ = conn.settings(dir);
        }
    }
    (events, conn)
}

fuzz_target!(|data: &[u8]| {
    let Some((&opts, rest)) = data.split_first() else {
        return;
    };
    let attach = if opts & 1 == 0 {
        Attach::FromStart
    } else {
        Attach::MidStream
    };
    let tiny = opts & 2 != 0;
    let mut ops = ops(rest);
    if attach == Attach::FromStart && opts & 4 == 0 {
        // Mostly start with a valid preface, so frames get decoded.
        ops.insert(0, Op::Bytes(Flow::ClientToServer, PREFACE));
    }
    let (events, mut conn) = run(attach, tiny, &ops);
    let stats = conn.stats();
    let fed: usize = ops
        .iter()
        .map(|o| match o {
            Op::Bytes(_, b) => b.len(),
            Op::Gap(..) => 0,
        })
        .sum();
    assert!(stats.data_bytes as usize <= fed);
    assert!(conn.stream_ids().len() <= config(tiny).max_streams);
    let mut sink = Vec::new();
    conn.close(u64::MAX, &mut sink);
    assert!(conn.stream_ids().is_empty());

    // Differential: merge consecutive chunks of a direction.
    let gaps = ops.iter().any(|o| matches!(o, Op::Gap(..)));
    let resynced = |ev: &[Http2Event<'static>]| {
        ev.iter().any(|e| {
            matches!(
                e,
                Http2Event::Resynced { .. } | Http2Event::ProtocolError { .. }
            )
        })
    };
    if attach == Attach::FromStart && !gaps && !resynced(&events) {
        let mut merged: Vec<(Flow, Vec<u8>)> = Vec::new();
        for op in &ops {
            if let Op::Bytes(dir, b) = op {
                match merged.last_mut() {
                    Some((d, m)) if d == dir => m.extend_from_slice(b),
                    _ => merged.push((*dir, b.to_vec())),
                }
            }
        }
        let merged_ops: Vec<Op<'_>> = merged.iter().map(|(d, b)| Op::Bytes(*d, b)).collect();
        let (whole, _) = run(attach, tiny, &merged_ops);
        if !resynced(&whole) {
            assert_eq!(canonical(&events), canonical(&whole));
        }
    }
});

//! Decode throughput of watchtrace on HTTP/2 watch traffic, side by side
//! with the `h2` crate reading the same bytes. Run it through
//! `cargo xtask bench decode`, or directly:
//! `cargo run --release -p tracer-user --example decode_bench -- [--mib N] [--streams N] [--reps N]`.
//!
//! For a JSON and a protobuf capture (see `capture.rs`) it prints rates in
//! bytes per second of the server-to-client HTTP/2 stream, each the median
//! of `--reps` runs timed in CPU time of one thread (so: per core):
//!
//! * h2 (framing only: it does no watch decoding) over an in-memory pipe,
//!   and the pipe alone;
//! * watchtrace's HTTP/2 framing only;
//! * watchtrace's framing plus watch-event decoding;
//! * watchtrace's whole pipeline from ring-buffer records to output events.
//!
//! Every pass is checked: all DATA bytes read, every event decoded with its
//! framed size.

#[path = "../../tests/http2_support.rs"]
mod support;

mod capture;
mod h2_side;
mod ours;

use std::time::Duration;

use watchtrace::watch::WireFormat;

struct Options {
    mib: usize,
    streams: usize,
    reps: usize,
    /// Run only this measurement and format (for profiling), e.g.
    /// `events-protobuf`.
    only: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        mib: 64,
        streams: 8,
        reps: 5,
        only: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = || -> usize {
            pair.get(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", pair[0]))
        };
        match pair[0].as_str() {
            "--mib" => o.mib = value(),
            "--streams" => o.streams = value().max(1),
            "--reps" => o.reps = value().max(1),
            "--only" => o.only = pair.get(1).cloned(),
            other => panic!("unknown option {other} (--mib, --streams, --reps, --only)"),
        }
    }
    o
}

/// The median duration of `reps` runs of `f`, which checks its own result.
fn median(reps: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..reps).map(|_| f()).collect();
    times.sort();
    times[times.len() / 2]
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = CpuTime::now();
    f();
    start.elapsed()
}

/// CPU time of the calling thread. The figures are per core and the
/// machines running this are shared, so wall time would also count other
/// processes' turns on the CPU.
#[derive(Clone, Copy)]
pub(crate) struct CpuTime(Duration);

impl CpuTime {
    pub(crate) fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        Self(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    pub(crate) fn elapsed(self) -> Duration {
        Self::now().0.saturating_sub(self.0)
    }

    pub(crate) fn since(self, start: Self) -> Duration {
        self.0.saturating_sub(start.0)
    }
}

fn rate(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64()
}

fn main() {
    let o = options();
    println!(
        "decode bench: one HTTP/2 connection, {} watch streams, server-to-client bytes shaped like Go net/http2's \
         (examples/decode_bench/capture.rs); median of {} runs in CPU time of one thread; rates in bytes/s of that stream (1 GB = 1e9 B)",
        o.streams, o.reps
    );
    let encodings = [
        (WireFormat::Protobuf, false),
        (WireFormat::Json, false),
        (WireFormat::Cbor, false),
        (WireFormat::Json, true),
        (WireFormat::Cbor, true),
    ];
    for (format, gzip) in encodings {
        let format_name = if gzip {
            format!("{format}+gzip")
        } else {
            format.to_string()
        };
        let wanted = |name: &str| {
            o.only
                .as_ref()
                .is_none_or(|only| *only == format!("{name}-{format_name}"))
        };
        if !["h2", "pipe", "framing", "events", "pipeline"]
            .iter()
            .any(|n| wanted(n))
        {
            continue;
        }
        let capture = capture::generate(format, gzip, o.streams, o.mib << 20);
        let server = capture.server();
        println!(
            "{format_name} capture: {} bytes, {} events (mean {} bytes), {} DATA frames",
            server.len(),
            capture.events,
            capture.event_bytes / capture.events.max(1),
            count_data_frames(&capture.server_body)
        );
        let (client_records, server_records) = ours::records(&capture, &server);
        let body = capture.server_body.len();
        let mut h2_rate = None;
        let mut report =
            |name: &str, label: &str, bytes: usize, run: &mut dyn FnMut() -> Duration| {
                if !wanted(name) {
                    return;
                }
                let r = rate(bytes, median(o.reps, run));
                let vs_h2 = match (name, h2_rate) {
                    ("h2", _) => {
                        h2_rate = Some(r);
                        String::new()
                    }
                    ("pipe", _) => " (what the h2 figure spends in the pipe)".to_owned(),
                    // h2's rate is per wire byte: no comparison with an
                    // inflated one.
                    (_, Some(h2)) if !gzip || name == "framing" => format!(" ({:.1}x h2)", r / h2),
                    _ => String::new(),
                };
                println!("  {label:<48} {:>7.2} GB/s{vs_h2}", r / 1e9);
            };
        report(
            "h2",
            "h2 0.4, framing only (over a tokio duplex pipe)",
            body,
            &mut || {
                let (d, bytes) = h2_side::framing(&capture);
                assert_eq!(bytes, capture.data_bytes, "h2 read every DATA byte");
                d
            },
        );
        report("pipe", "the duplex pipe alone", body, &mut || {
            h2_side::transport_only(&capture)
        });
        report(
            "framing",
            "watchtrace, framing only",
            server.len(),
            &mut || {
                timed(|| {
                    let found = ours::framing(&capture, &server);
                    assert_eq!(found.data_bytes, capture.data_bytes);
                })
            },
        );
        // Gzip rows count the bytes inflated, so that they compare with
        // the plain rows (the generated objects compress far better than
        // real ones, so per wire byte they would mean little).
        let (decoded, per) = if gzip {
            (capture.event_bytes as usize, " (per inflated byte)")
        } else {
            (server.len(), "")
        };
        report(
            "events",
            &format!("watchtrace, framing + watch events{per}"),
            decoded,
            &mut || {
                timed(|| {
                    let found = ours::events(&capture, &server);
                    assert_eq!(
                        (found.events, found.event_bytes),
                        (capture.events, capture.event_bytes),
                        "every event decoded"
                    );
                })
            },
        );
        report(
            "pipeline",
            &format!("watchtrace, pipeline (records to output events){per}"),
            decoded,
            &mut || {
                timed(|| {
                    let found = ours::pipeline(&client_records, &server_records);
                    assert_eq!(
                        (found.events, found.event_bytes),
                        (capture.events, capture.event_bytes),
                        "every event output"
                    );
                })
            },
        );
    }
}

/// DATA frames in a run of whole frames.
fn count_data_frames(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        n += usize::from(bytes[3] == 0);
        bytes = &bytes[9 + len..];
    }
    n
}

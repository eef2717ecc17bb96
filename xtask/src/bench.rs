//! `cargo xtask bench capture`: what capture costs the traced server.
//!
//! The traced server is a Go crypto/tls peer (testbed's tls-writer: one TLS
//! connection over loopback, a server that reads everything, a client that
//! makes N Writes of a fixed size), run once bare and once with watchtrace
//! attached (every probe, the ring buffer drained), in the same invocation.
//! It prints both throughputs, their ratio, what watchtrace captured and
//! lost, and each probe's mean run time from the kernel's BPF stats.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::{bench_agent, bench_decode, bench_overhead, process, setup, testbed, workspace_root};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// Watch traffic of the testbed's fake-apiserver (TLS, protobuf, large
    /// objects) traced by `watchtrace run`: throughput per second from the
    /// ground truth, loss counters, and every event checked against the
    /// ground truth.
    Watch {
        /// Writes per second to etcd (each reaches every watcher).
        #[arg(long, default_value_t = 300)]
        write_rate: u32,
        /// Object size in bytes.
        #[arg(long, default_value_t = 65536)]
        object_size: u32,
        /// Load duration in seconds.
        #[arg(long, default_value_t = 8)]
        seconds: u32,
        /// Client connections.
        #[arg(long, default_value_t = 4)]
        conns: u32,
        /// Watches per connection (each sees every write).
        #[arg(long, default_value_t = 5)]
        per_conn: u32,
    },
    /// Decode throughput on JSON and protobuf watch connections, beside
    /// the h2 crate reading the same HTTP/2 bytes.
    Decode(bench_decode::DecodeArgs),
    /// What tracing costs a watch-serving apiserver: its CPU per watch
    /// event and its throughput, untraced and traced windows alternating,
    /// the agent's CPU and the probes' cost per watch event.
    Overhead(bench_overhead::OverheadArgs),
    /// The agent's CPU per watch event: the overhead load recorded, then
    /// replayed through what `watchtrace run` does with each record.
    Agent(bench_agent::AgentArgs),
    /// The agent at control-plane scale: a generated record stream of
    /// 2,000 connections, 10,000 watch streams and 50,000 watch events a
    /// second, through what `watchtrace run` does with each record: CPU
    /// cores and peak RSS per second of recorded traffic.
    Scale {
        /// Seconds of recorded traffic.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// HTTP/2 connections.
        #[arg(long, default_value_t = 2000)]
        conns: u64,
        /// Watch streams, spread over the connections.
        #[arg(long, default_value_t = 10_000)]
        streams: u64,
        /// Watch events per second of recorded traffic.
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Decoding threads (`run --workers`). Above 1, the same traffic
        /// is also run with 1 and the speed-up printed.
        #[arg(long, default_value_t = 1)]
        workers: u64,
    },
    /// Throughput of a Go TLS server with and without watchtrace attached.
    Capture {
        /// Number of Write calls.
        #[arg(long, default_value_t = 40_000)]
        writes: u64,
        /// Bytes per Write (16 KiB: a full TLS record, as an apiserver
        /// streaming large events writes).
        #[arg(long, default_value_t = 16 * 1024)]
        size: u64,
    },
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if let Which::Decode(decode) = &args.which {
        return bench_decode::run(decode);
    }
    if let Which::Scale {
        seconds,
        conns,
        streams,
        rate,
        seed,
        workers,
    } = args.which
    {
        // No root, no testbed: the traffic is generated.
        let scale = |workers: u64| {
            let mut cmd = Command::new("cargo");
            cmd.args(["run", "--release", "--quiet", "--package", "tracer-user"])
                .args(["--example", "scale_bench", "--"])
                .args(["--seconds", &seconds.to_string()])
                .args(["--conns", &conns.to_string()])
                .args(["--streams", &streams.to_string()])
                .args(["--rate", &rate.to_string()])
                .args(["--seed", &seed.to_string()])
                .args(["--workers", &workers.to_string()]);
            cmd
        };
        if workers <= 1 {
            return process::run(&mut scale(1));
        }
        return scale_speed_up(workers, scale);
    }
    setup::run()?;
    testbed::build()?;
    process::run(Command::new("cargo").args(["build", "--release", "--package", "tracer-user"]))?;
    match args.which {
        Which::Capture { writes, size } => capture(writes, size),
        Which::Watch {
            write_rate,
            object_size,
            seconds,
            conns,
            per_conn,
        } => watch(write_rate, object_size, seconds, conns, per_conn),
        Which::Overhead(ref overhead) => bench_overhead::run(overhead),
        Which::Agent(ref agent) => bench_agent::run(agent),
        Which::Decode(_) | Which::Scale { .. } => unreachable!("handled above"),
    }
}

/// A started tls-writer, waiting for "go".
struct Writer {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    pid: u32,
}

fn start_writer(writes: u64, size: u64) -> anyhow::Result<Writer> {
    let mut child = Command::new(testbed::bin_dir().join("tls-writer"))
        .args([
            "-n",
            &writes.to_string(),
            "-base",
            &size.to_string(),
            "-step",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting tls-writer")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let pid = line
        .trim()
        .strip_prefix("ready ")
        .context("tls-writer did not say ready")?
        .parse()?;
    Ok(Writer { child, stdout, pid })
}

/// Sends "go", waits for "done n bytes ns"; returns (bytes, seconds).
fn finish_writer(mut writer: Writer) -> anyhow::Result<(u64, f64)> {
    writer
        .child
        .stdin
        .take()
        .context("stdin")?
        .write_all(b"go\n")?;
    let mut line = String::new();
    writer.stdout.read_line(&mut line)?;
    if !writer.child.wait()?.success() {
        bail!("tls-writer failed: {line}");
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [_, _, bytes, ns] = fields[..] else {
        bail!("unexpected tls-writer output: {line}")
    };
    Ok((bytes.parse()?, ns.parse::<f64>()? / 1e9))
}

fn capture(writes: u64, size: u64) -> anyhow::Result<()> {
    let watchtrace = workspace_root().join("target/release/watchtrace");
    let bare = finish_writer(start_writer(writes, size)?)?;

    let writer = start_writer(writes, size)?;
    let mut tracer = Command::new(&watchtrace)
        .args(["count", "--pid", &writer.pid.to_string(), "--log", "info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting watchtrace count")?;
    // Attached once it says it is tracing the pid.
    let stderr = BufReader::new(tracer.stderr.take().context("stderr")?);
    let (attached_tx, attached_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("tracing") {
                let _ = attached_tx.send(());
            }
        }
    });
    attached_rx
        .recv_timeout(Duration::from_secs(30))
        .context("watchtrace did not attach")?;
    let traced = finish_writer(writer)?;
    // Let it drain, then stop it (SIGINT) to read its report.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let output = tracer.wait_with_output()?;
    if started.elapsed() > Duration::from_secs(10) || !output.status.success() {
        bail!("watchtrace count did not stop cleanly: {}", output.status);
    }
    let report = String::from_utf8_lossy(&output.stdout);

    let mbps = |(bytes, secs): (u64, f64)| bytes as f64 / secs / 1e6;
    println!(
        "capture bench: {writes} Writes of {size} bytes through Go crypto/tls over loopback (tls-writer)"
    );
    println!("  without watchtrace: {:8.1} MB/s of plaintext", mbps(bare));
    println!(
        "  with watchtrace:    {:8.1} MB/s of plaintext",
        mbps(traced)
    );
    println!("  ratio (with / without): {:.3}", mbps(traced) / mbps(bare));
    for line in report.lines() {
        if let Some(counters) = line.strip_prefix("records=") {
            let wanted = [
                "chunk_bytes",
                "lost_bytes",
                "ringbuf_drops",
                "tls_write_bytes",
            ];
            let picked: Vec<&str> = counters
                .split_whitespace()
                .filter(|kv| wanted.iter().any(|w| kv.starts_with(&format!("{w}="))))
                .collect();
            println!("  kernel counters: {}", picked.join(" "));
        } else if let Some(program) = line.strip_prefix("program ") {
            println!("  probe {program}");
        }
    }
    Ok(())
}

/// An event's type, resourceVersion and framed size.
type Event = (String, String, u64);
/// The event sequences of the watches of each request path. Two watches
/// can share a path (same query, same random timeout), so a path holds a
/// list of streams, sorted so that both sides line up.
type Events = std::collections::BTreeMap<String, Vec<Vec<Event>>>;

/// Groups streams' event sequences by path, each path's list sorted.
fn by_path(streams: impl Iterator<Item = (String, Vec<Event>)>) -> Events {
    let mut out = Events::new();
    for (path, events) in streams {
        out.entry(path).or_default().push(events);
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

fn watch(
    write_rate: u32,
    object_size: u32,
    seconds: u32,
    conns: u32,
    per_conn: u32,
) -> anyhow::Result<()> {
    use std::collections::{BTreeMap, HashMap};

    let dir = std::env::temp_dir().join(format!("watchtrace-bench-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let events_path = dir.join("events.jsonl");
    let watchtrace = workspace_root().join("target/release/watchtrace");
    // Watchers of one resource and namespace: every write reaches all.
    let tracer = Command::new(&watchtrace)
        .args([
            "run",
            "--comm",
            "fake-apiserver",
            "--ringbuf-size",
            &(64u32 << 20).to_string(),
            "--events",
        ])
        .arg(&events_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting watchtrace run")?;
    let status = Command::new(testbed::bin_dir().join("testbed-run"))
        .arg("-dir")
        .arg(dir.join("bed"))
        .args([
            "-verify=false",
            "-load-delay",
            "3s",
            "-duration",
            &format!("{seconds}s"),
            "--",
        ])
        .args([
            "-conns",
            &conns.to_string(),
            "-watches-per-conn",
            &per_conn.to_string(),
            "-resources",
            "configmaps",
            "-namespaces",
            "ns-0",
        ])
        .args([
            "-write-resources",
            "configmaps",
            "-write-namespaces",
            "ns-0",
            "-format",
            "protobuf",
        ])
        .args([
            "-object-size",
            &object_size.to_string(),
            "-write-rate",
            &write_rate.to_string(),
            "-drain",
            "1s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running the testbed")?;
    // At this load the cache terminates watchers that fall behind and
    // watch-load reports that as a failure; the ground truth still holds
    // every write, which is what watchtrace is checked against.
    if !status.success() {
        eprintln!("  (testbed-run exited with {status}: watchers were terminated under load)");
    }
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let output = tracer.wait_with_output()?;
    let counters = String::from_utf8_lossy(&output.stdout).trim().to_owned();

    // Ground truth: writes by path in order, and bytes per second.
    let mut truth: BTreeMap<(String, u64), Vec<(u64, Event)>> = BTreeMap::new();
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    let mut first_ns = u64::MAX;
    let gt = std::fs::read_to_string(dir.join("bed/state/ground-truth.jsonl"))?;
    let writes: Vec<serde_json::Value> = gt
        .lines()
        .filter(|l| l.contains("\"kind\":\"write\""))
        // A write cut short when the cache terminated its watcher carries an
        // error: the event never fully left the server, so no decoder can
        // (or should) report it.
        .filter(|l| !l.contains("\"error\":"))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    for w in &writes {
        first_ns = first_ns.min(w["t_before"].as_u64().unwrap_or(u64::MAX));
    }
    for w in &writes {
        let bytes = w["bytes"].as_u64().unwrap_or(0);
        *per_second
            .entry((w["t_before"].as_u64().unwrap_or(0) - first_ns) / 1_000_000_000)
            .or_default() += bytes;
        let key = (
            w["path"].as_str().unwrap_or("").to_owned(),
            w["stream"].as_u64().unwrap_or(0),
        );
        let event = (
            w["event_type"].as_str().unwrap_or("").to_owned(),
            w["rv"].as_str().unwrap_or("").to_owned(),
            bytes,
        );
        truth
            .entry(key)
            .or_default()
            .push((w["seq"].as_u64().unwrap_or(0), event));
    }
    let truth = by_path(truth.into_iter().map(|((path, _), mut v)| {
        v.sort_by_key(|(seq, _)| *seq);
        (path, v.into_iter().map(|(_, e)| e).collect())
    }));
    // watchtrace's events per (connection, stream), with the request path.
    let mut paths: HashMap<(u64, u64), String> = HashMap::new();
    let mut streams: BTreeMap<(u64, u64), Vec<Event>> = BTreeMap::new();
    for line in std::fs::read_to_string(&events_path)?.lines() {
        let e: serde_json::Value = serde_json::from_str(line)?;
        let key = (
            e["conn"].as_u64().unwrap_or(0),
            e["stream"].as_u64().unwrap_or(0),
        );
        match e["kind"].as_str() {
            Some("request") => {
                paths.insert(key, e["path"].as_str().unwrap_or("").to_owned());
            }
            Some("watch_event") => streams.entry(key).or_default().push((
                e["event_type"].as_str().unwrap_or("").to_owned(),
                e["resource_version"].as_str().unwrap_or("").to_owned(),
                e["bytes"].as_u64().unwrap_or(0),
            )),
            _ => {}
        }
    }
    let seen = by_path(
        streams
            .into_iter()
            .filter_map(|(key, events)| Some((paths.get(&key)?.clone(), events))),
    );
    let expected: usize = truth.values().flatten().map(Vec::len).sum();
    let mut matched = 0;
    for (path, written) in &truth {
        let decoded = seen.get(path).map_or(&[][..], Vec::as_slice);
        for (i, events) in written.iter().enumerate() {
            let got = decoded.get(i).map_or(&[][..], Vec::as_slice);
            let same = events.iter().zip(got).take_while(|(a, b)| a == b).count();
            matched += same;
            if same != events.len() {
                eprintln!(
                    "  mismatch on {path}: {} written, {} decoded, first difference at #{same}: {:?} vs {:?}",
                    events.len(),
                    got.len(),
                    events.get(same),
                    got.get(same)
                );
            }
        }
    }
    let total_mb = writes
        .iter()
        .map(|w| w["bytes"].as_u64().unwrap_or(0))
        .sum::<u64>() as f64
        / 1e6;
    let rates: Vec<String> = per_second
        .values()
        .map(|b| format!("{:.0}", *b as f64 / 1e6))
        .collect();
    let peak = per_second.values().max().copied().unwrap_or(0) as f64 / 1e6;
    let busy: Vec<u64> = per_second
        .values()
        .copied()
        .filter(|b| *b as f64 / 1e6 >= 200.0)
        .collect();
    println!(
        "watch bench: fake-apiserver over TLS, {conns} connections x {per_conn} protobuf watches, {object_size}-byte objects, {write_rate} writes/s for {seconds} s, traced by watchtrace run"
    );
    println!(
        "  watch traffic written (ground truth): {total_mb:.0} MB; per second, MB: [{}]",
        rates.join(", ")
    );
    println!(
        "  peak {peak:.0} MB/s; {} seconds at or above 200 MB/s",
        busy.len()
    );
    println!(
        "  events: {expected} written, {matched} decoded identically (type, resourceVersion, size, order) on {} watches ({} distinct request paths)",
        truth.values().map(Vec::len).sum::<usize>(),
        truth.len()
    );
    println!("  watchtrace: {counters}");
    std::fs::remove_dir_all(&dir)?;
    if matched != expected {
        bail!(
            "{} events did not match the ground truth",
            expected - matched
        );
    }
    Ok(())
}

/// `bench scale --workers N`: the same traffic with 1 worker, then N; the
/// speed-up is how much faster N drain it (wall time), the summary line of
/// the N run last.
fn scale_speed_up(workers: u64, scale: impl Fn(u64) -> Command) -> anyhow::Result<()> {
    let wall = |out: &str| -> anyhow::Result<f64> {
        out.lines()
            .find_map(|l| l.strip_prefix("scale drain: wall_s="))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .context("no `scale drain: wall_s=` line")
    };
    let mut runs = Vec::new();
    for n in [1, workers] {
        let mut cmd = scale(n);
        eprintln!("xtask: $ {}", format!("{cmd:?}").replace('"', ""));
        let out = process::output(&mut cmd)
            .with_context(|| format!("scale_bench --workers {n} failed"))?;
        let (summary, rest): (Vec<&str>, Vec<&str>) =
            out.lines().partition(|l| l.starts_with("scale: "));
        for line in rest {
            println!("{line}");
        }
        runs.push((wall(&out)?, summary.join("\n")));
    }
    let (one, many) = (&runs[0], &runs[1]);
    println!("{}", one.1);
    println!(
        "scale speed-up: workers={workers} wall_s={:.3} against workers=1 wall_s={:.3}: {:.2}x",
        many.0,
        one.0,
        one.0 / many.0
    );
    println!("{}", many.1);
    Ok(())
}

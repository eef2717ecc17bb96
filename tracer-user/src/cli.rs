//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::time_format::TimeFormat;

/// watchtrace: where Kubernetes API-server WATCH traffic loses time.
///
/// eBPF (tracepoints and uprobes only) on the apiserver's sockets and Go
/// crypto/tls, reassembled in userspace. Needs root, or the capabilities
/// `watchtrace check` names; run it first on a new host. Reference:
/// docs/cli.md.
#[derive(Debug, Parser)]
#[command(name = "watchtrace", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `watchtrace=debug`.
    #[arg(long, global = true, default_value = "info", env = "WATCHTRACE_LOG")]
    pub log: String,
    /// Log line format on stderr: `text` for people, `json` (one object a
    /// line) for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "WATCHTRACE_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON object per line: timestamp, level, target, message, fields.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what this host supports and what watchtrace needs; exits
    /// non-zero with a one-line reason when something required is missing.
    Check,
    /// Attach to the target processes, drain the capture without keeping
    /// it, and print what the kernel counted and what the probes cost.
    Count(CountArgs),
    /// Capture the targets' traffic to a file that `replay` reads without
    /// root. The file holds connection PLAINTEXT (Secrets included): it is
    /// created with mode 0600; treat it as sensitive.
    Record(RecordArgs),
    /// Run a recording through the userspace pipeline (no root needed).
    Replay(ReplayArgs),
    /// The headless agent: trace the targets (waiting for them to appear,
    /// following restarts) and write events as JSON lines.
    Run(RunArgs),
    /// A full-screen live view for on-call engineers: connections, watches
    /// and the stall log, refreshed every second, with the reference SLO.
    /// `--replay FILE` shows a recording instead (no root needed). Press
    /// `?` for the keys, `q` to quit.
    Top(TopArgs),
}

/// Arguments of `watchtrace top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Show a recording made by `watchtrace record` instead of tracing
    /// (no root needed).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pids", "comms", "exes"])]
    pub replay: Option<PathBuf>,
    /// Replay speed: 1 is the recording's own pace, 10 ten times faster, 0
    /// as fast as possible (then the final screen stays until `q`).
    #[arg(long, default_value_t = 1.0, requires = "replay")]
    pub speed: f64,
    /// Start the replay here: an offset from the recording's first record
    /// (`90s`, `+2m30s`, `1h`, `500ms`) or an RFC 3339 time
    /// (`2026-12-06T13:05:45Z`). What comes before is read at once, so
    /// the view starts with the state it had then.
    #[arg(long, value_name = "WHEN", value_parser = replay_bound, requires = "replay")]
    pub since: Option<ReplayBound>,
    /// End the replay here (as `--since`): the screen then holds.
    #[arg(long, value_name = "WHEN", value_parser = replay_bound, requires = "replay")]
    pub until: Option<ReplayBound>,
    /// Ring buffer size in bytes (a power of two).
    #[arg(long, default_value_t = tracer_common::maps::DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Where logs go while the view owns the terminal (appended; default
    /// $XDG_STATE_HOME/watchtrace/top.log, else
    /// ~/.local/state/watchtrace/top.log).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// Arguments of `watchtrace run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Write events as JSON lines to this file (appended; `-` for stdout).
    /// Only metadata: no object contents.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// How the JSON lines spell Unix-epoch timestamps (`ts`, `start`,
    /// `t_*`): integers of ns, the same as strings, or RFC 3339 with ns.
    /// Integers above 2^53 are rounded by jq and JavaScript; the other two
    /// are not. Durations are integer ns in every format.
    #[arg(long, value_enum, default_value_t = TimeFormat::Ns)]
    pub time_format: TimeFormat,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Ring buffer size in bytes (a power of two).
    #[arg(long, default_value_t = tracer_common::maps::DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Serve Prometheus metrics on `/metrics` and probes on `/livez` and
    /// `/readyz` at this address: `ip:port`, `[v6]:port`, `:port` (every
    /// IPv4 interface), `host:port`, an IPv6 address and port unbracketed
    /// (what `$(POD_IP):9464` gives on an IPv6 node); port 0 picks one; or
    /// `off`.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_addr: MetricsAddr,
    /// Threads that decode connections (the sockets split among them), or
    /// `auto`: 1 (decoding inline, on the drain thread) on hosts with
    /// fewer than 16 CPUs, else 2. Any number gives the same events.
    #[arg(long, default_value = "auto")]
    pub workers: Workers,
    /// Seconds after a watch event was sent that it waits for the client's
    /// TCP ack; then it is written without `t_acked` (and counted in
    /// `watchtrace_event_timeline_incomplete_total{missing="t_acked"}`).
    #[arg(long, default_value_t = 1.0, value_parser = positive_seconds)]
    pub ack_deadline: f64,
    /// Log from the kernel programs (aya-log) at this level and above
    /// (`debug` when given without one: their read errors; `trace`: every
    /// traced send too), as info lines of target `ebpf`. For debugging a
    /// probe on one kernel; off, the programs carry no logging code.
    #[arg(
        long,
        value_enum,
        value_name = "LEVEL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "debug"
    )]
    pub ebpf_log: Option<EbpfLogLevel>,
}

/// The lowest level of kernel log records shown (`run --ebpf-log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EbpfLogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<EbpfLogLevel> for aya_log::Level {
    fn from(level: EbpfLogLevel) -> Self {
        match level {
            EbpfLogLevel::Error => Self::Error,
            EbpfLogLevel::Warn => Self::Warn,
            EbpfLogLevel::Info => Self::Info,
            EbpfLogLevel::Debug => Self::Debug,
            EbpfLogLevel::Trace => Self::Trace,
        }
    }
}

/// How many decoding threads to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Auto,
    Exactly(usize),
}

impl Workers {
    /// CPUs from which `auto` takes a second decoding thread. One decodes
    /// about 150,000 watch events a second (`cargo xtask bench scale`),
    /// more than a large control plane's apiserver sends; a second helps
    /// only when the drain thread has a core of its own to spare.
    pub const AUTO_SECOND_FROM_CPUS: usize = 16;

    /// The number for this host.
    #[must_use]
    pub fn count(self) -> usize {
        match self {
            Self::Exactly(n) => n,
            Self::Auto => {
                let cpus = std::thread::available_parallelism().map_or(1, usize::from);
                if cpus >= Self::AUTO_SECOND_FROM_CPUS {
                    2
                } else {
                    1
                }
            }
        }
    }
}

impl std::str::FromStr for Workers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            s => match s.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => Ok(Self::Exactly(n)),
                _ => Err(format!("{s:?}: expected auto or a number from 1 to 64")),
            },
        }
    }
}

/// Where `run` serves its metrics, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    At(std::net::SocketAddr),
}

impl std::str::FromStr for MetricsAddr {
    type Err = String;

    /// `off`; `IP:PORT` (`[v6]:PORT` too); `:PORT` (every IPv4 interface);
    /// `HOST:PORT` (resolved now); and an IPv6 address with its port
    /// unbracketed, `fd00::1:9464`, which is what `$(POD_IP):9464` becomes
    /// on an IPv6 node (the last group is the port: a port is required).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
        let s = s.trim();
        if matches!(s, "off" | "none" | "") {
            return Ok(Self::Off);
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self::At(addr));
        }
        let bad = |why: &str| {
            format!("{s:?}: {why} (expected ip:port, [v6]:port, :port, host:port or off)")
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        if host.is_empty() {
            return Ok(Self::At(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            )));
        }
        if let Ok(v6) = host.parse::<Ipv6Addr>() {
            return Ok(Self::At(SocketAddr::new(IpAddr::V6(v6), port)));
        }
        (host, port)
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
            .next()
            .map(Self::At)
            .ok_or_else(|| bad(&format!("{host} has no address")))
    }
}

/// Arguments of `watchtrace record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Output file, created 0600. An existing path (file or link) is
    /// refused unless --force.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Replace an existing output path when the recording is complete
    /// (through a new file renamed over it: a link there is replaced, never
    /// followed).
    #[arg(long)]
    pub force: bool,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Ring buffer size in bytes (a power of two). Too small a buffer loses
    /// data, which is counted and marked as gaps, never silent.
    #[arg(long, default_value_t = tracer_common::maps::DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Keep waiting for a target to appear instead of failing.
    #[arg(long)]
    pub wait: bool,
}

/// Arguments of `watchtrace replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A file written by `watchtrace record`.
    pub input: PathBuf,
    /// Write the events as JSON lines to this file (`-` for stdout).
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// As `run --time-format`.
    #[arg(long, value_enum, default_value_t = TimeFormat::Ns)]
    pub time_format: TimeFormat,
    /// Threads that decode connections; the events are the same for any
    /// number (see `run --workers`).
    #[arg(long, default_value = "1")]
    pub workers: Workers,
    /// As `run --ack-deadline` (the recording's own clock decides).
    #[arg(long, default_value_t = 1.0, value_parser = positive_seconds)]
    pub ack_deadline: f64,
}

/// A point in a recording: `top --since/--until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayBound {
    /// Nanoseconds after its first record.
    Offset(u64),
    /// Unix epoch nanoseconds.
    Unix(u64),
}

/// An offset (`90s`, `+2m30s`, `1h`, `500ms`, `90`: seconds) or an RFC
/// 3339 time.
fn replay_bound(s: &str) -> Result<ReplayBound, String> {
    let text = s.trim();
    let offset = text.strip_prefix('+').unwrap_or(text);
    if offset.starts_with(|c: char| c.is_ascii_digit()) && !offset.contains('-') {
        return duration_text(offset)
            .map(ReplayBound::Offset)
            .ok_or_else(|| {
                format!(
                    "{s:?}: expected an offset like 90s, 2m30s, 1h or 500ms, or an RFC 3339 time"
                )
            });
    }
    crate::rfc3339::parse(text)
        .map(ReplayBound::Unix)
        .map_err(|e| e.to_string())
}

/// `2m30s`, `500ms`, `1h`, `90` (seconds) in nanoseconds.
fn duration_text(text: &str) -> Option<u64> {
    if let Ok(secs) = text.parse::<u64>() {
        return secs.checked_mul(1_000_000_000);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A number of seconds above 0 and at most an hour.
fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if v > 0.0 && v <= 3600.0 {
        Ok(v)
    } else {
        Err(format!("{s}: must be above 0 and at most 3600 seconds"))
    }
}

/// Seconds as nanoseconds.
#[must_use]
pub fn seconds_ns(seconds: f64) -> u64 {
    (seconds * 1e9).round() as u64
}

/// Which processes to trace. Several selectors may be combined.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Trace this process id (repeatable).
    #[arg(long = "pid")]
    pub pids: Vec<u32>,
    /// Trace processes whose command name (/proc/PID/comm) is this (repeatable).
    #[arg(long = "comm")]
    pub comms: Vec<String>,
    /// Trace processes running this executable (repeatable).
    #[arg(long = "exe")]
    pub exes: Vec<PathBuf>,
}

/// Arguments of `watchtrace count`.
#[derive(Debug, Args)]
pub struct CountArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Ring buffer size in bytes (a power of two).
    #[arg(long, default_value_t = tracer_common::maps::DEFAULT_RINGBUF_BYTES)]
    pub ringbuf_size: u32,
    /// Keep waiting for a target to appear instead of failing.
    #[arg(long)]
    pub wait: bool,
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::{MetricsAddr, ReplayBound, replay_bound};

    #[test]
    fn replay_bounds_are_offsets_or_rfc3339_times() {
        const S: u64 = 1_000_000_000;
        assert_eq!(replay_bound("90"), Ok(ReplayBound::Offset(90 * S)));
        assert_eq!(replay_bound("+2m30s"), Ok(ReplayBound::Offset(150 * S)));
        assert_eq!(replay_bound("1h"), Ok(ReplayBound::Offset(3600 * S)));
        assert_eq!(
            replay_bound("1s500ms"),
            Ok(ReplayBound::Offset(1_500_000_000))
        );
        assert_eq!(
            replay_bound("2024-01-02T03:04:05.678Z"),
            Ok(ReplayBound::Unix(1_704_164_645_678_000_000))
        );
        for bad in ["", "2x", "+", "s", "-5s", "2024-01-02", "1.5s"] {
            let e = replay_bound(bad).expect_err(bad);
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    fn at(s: &str) -> SocketAddr {
        match s.parse::<MetricsAddr>() {
            Ok(MetricsAddr::At(a)) => a,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn metrics_addresses_take_every_form_a_deployment_writes() {
        assert_eq!(at("127.0.0.1:9464").to_string(), "127.0.0.1:9464");
        assert_eq!(at(":9464").to_string(), "0.0.0.0:9464");
        assert_eq!(at("[fd00::1]:9464").to_string(), "[fd00::1]:9464");
        // $(POD_IP):9464 on an IPv6 node.
        assert_eq!(at("fd00::1:9464").to_string(), "[fd00::1]:9464");
        assert_eq!(at("localhost:9464").port(), 9464);
        assert_eq!("off".parse::<MetricsAddr>(), Ok(MetricsAddr::Off));
        for bad in [
            "9464",
            "127.0.0.1",
            "127.0.0.1:99999",
            "host-that-does-not-exist.invalid:1",
        ] {
            let err = bad.parse::<MetricsAddr>().unwrap_err();
            assert!(err.contains("expected ip:port"), "{bad}: {err}");
        }
    }
}

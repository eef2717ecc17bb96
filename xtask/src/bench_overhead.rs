//! `cargo xtask bench overhead`: what tracing costs the traced server, as
//! an operator pays it.
//!
//! The testbed's fake-apiserver serves many watchers of small objects over
//! TLS (etcd over TLS too, as on a kubeadm control plane) at a steady etcd
//! write rate. The load runs throughout; windows alternate untraced (A) and
//! traced by `watchtrace run` as the DaemonSet runs it (B), A B A B … A, so
//! each traced window has an untraced one on either side and slow drift of
//! the machine cancels. Per window: watch events written (the server's
//! ground truth), the server's CPU (`/proc/PID/stat` utime+stime), and for
//! B the agent's CPU and the records it read. The figures are medians over
//! the B windows, each B compared with the mean of its two neighbours.
//!
//! The kernel's BPF run-time statistics cost every program run two clock
//! reads, so the agent only samples them; the per-program figures come from
//! one more traced window with them on throughout (`kernel.bpf_stats_enabled`),
//! whose server CPU is shown but not in the ratios.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::{testbed, workspace_root};

#[derive(Clone, Debug, Args)]
pub(crate) struct OverheadArgs {
    /// Traced windows (each between two untraced ones).
    #[arg(long, default_value_t = 3)]
    pairs: u32,
    /// Seconds per window.
    #[arg(long, default_value_t = 10)]
    window: u64,
    #[command(flatten)]
    workload: Workload,
    /// Extra flags for `watchtrace run` (repeatable), e.g. `--agent-arg=--events=/dev/null`.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    agent_args: Vec<String>,
}

/// The watch load both `bench overhead` and `bench agent` run.
#[derive(Clone, Debug, Args)]
pub(crate) struct Workload {
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 8)]
    warmup: u64,
    /// Client connections (client-go shares one per apiserver for all of a
    /// process's watches).
    #[arg(long, default_value_t = 10)]
    conns: u32,
    /// Watches per connection; every write reaches every watch.
    #[arg(long, default_value_t = 10)]
    per_conn: u32,
    /// Writes per second to etcd.
    #[arg(long, default_value_t = 150)]
    write_rate: u32,
    /// Object size in bytes (ConfigMaps and Leases are hundreds of bytes
    /// to a few KB).
    #[arg(long, default_value_t = 1000)]
    object_size: u32,
}

impl Workload {
    pub(crate) fn describe(&self) -> String {
        format!(
            "fake-apiserver over TLS (etcd over TLS), {} connections x {} watches of configmaps \
             (JSON and protobuf), {}-byte objects, {} writes/s",
            self.conns, self.per_conn, self.object_size, self.write_rate
        )
    }
}

/// The load running: the testbed, its server's pid, and where its ground
/// truth is.
pub(crate) struct Running {
    bed: Testbed,
    pub(crate) server: u32,
    pub(crate) ground_truth: PathBuf,
}

impl Running {
    /// Starts the testbed under `dir` and waits for the load to run and
    /// warm up.
    pub(crate) fn start(dir: &Path, w: &Workload) -> anyhow::Result<Self> {
        let bed = Testbed(
            Command::new(testbed::bin_dir().join("testbed-run"))
                .arg("-dir")
                .arg(dir.join("bed"))
                .args(["-etcd-tls", "-keep-running", "-verify=false", "--"])
                .args(["-conns", &w.conns.to_string()])
                .args(["-watches-per-conn", &w.per_conn.to_string()])
                .args(["-resources", "configmaps", "-namespaces", "ns-0"])
                .args([
                    "-write-resources",
                    "configmaps",
                    "-write-namespaces",
                    "ns-0",
                ])
                .args(["-format", "mixed"])
                .args(["-object-size", &w.object_size.to_string()])
                .args(["-write-rate", &w.write_rate.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting testbed-run")?,
        );
        let state_dir = dir.join("bed/state");
        let server = wait_for_server(&state_dir)?;
        let ground_truth = state_dir.join("ground-truth.jsonl");
        wait_for_writes(&ground_truth)?;
        std::thread::sleep(Duration::from_secs(w.warmup));
        Ok(Self {
            bed,
            server,
            ground_truth,
        })
    }

    /// Stops the load (its ground truth stays).
    pub(crate) fn stop(self) {
        drop(self.bed);
    }
}

/// CPU seconds of a process so far (all threads, user + system).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces; fields resume after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page, utime 14, stime 15.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((utime + stime) as f64 / hz)
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Run count and run time of each of the agent's programs (BPF stats).
type ProbeStats = BTreeMap<String, (u64, u64)>;

/// The kernel's statistics of the programs loaded since `since` (Unix
/// seconds): the agent's, the only ones loaded during a traced window
/// (Debian's bpftool does not list programs' owners).
fn probe_stats(since: u64) -> anyhow::Result<ProbeStats> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("running bpftool prog show")?;
    if !out.status.success() {
        bail!("bpftool prog show failed: {}", out.status);
    }
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut stats = ProbeStats::new();
    for p in progs.as_array().into_iter().flatten() {
        if p["loaded_at"].as_u64().is_none_or(|t| t < since) {
            continue;
        }
        let name = p["name"].as_str().unwrap_or("?").to_owned();
        let entry = stats.entry(name).or_default();
        entry.0 += p["run_cnt"].as_u64().unwrap_or(0);
        entry.1 += p["run_time_ns"].as_u64().unwrap_or(0);
    }
    Ok(stats)
}

/// Turns the kernel's BPF run-time statistics on for the bench, restoring
/// the previous setting on drop.
struct BpfStatsOn(String);

const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStatsOn {
    fn enable() -> anyhow::Result<Self> {
        let before = std::fs::read_to_string(BPF_STATS_SYSCTL)
            .context("reading kernel.bpf_stats_enabled")?;
        std::fs::write(BPF_STATS_SYSCTL, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(Self(before.trim().to_owned()))
    }
}

impl Drop for BpfStatsOn {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS_SYSCTL, &self.0);
    }
}

/// One measured window.
#[derive(Clone, Debug, Default)]
struct Window {
    traced: bool,
    start_ns: u64,
    end_ns: u64,
    server_cpu: f64,
    agent_cpu: f64,
    probes: ProbeStats,
    records: u64,
    /// The agent's end-of-run report (`key=value` counters).
    counters: BTreeMap<String, u64>,
    /// Watch events written in the window (ground truth), filled at the end.
    events: u64,
}

impl Window {
    fn seconds(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e9
    }
    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds()
    }
    fn server_us_per_event(&self) -> f64 {
        self.server_cpu * 1e6 / self.events.max(1) as f64
    }
}

/// Kills a child process group on drop (testbed-run stops what it started
/// on SIGINT).
struct Testbed(Child);

impl Drop for Testbed {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on a child we own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(args: &OverheadArgs) -> anyhow::Result<()> {
    if args.pairs < 3 {
        bail!("--pairs must be at least 3: medians of fewer do not survive machine noise");
    }
    let dir = PathBuf::from(format!(
        "/dev/shm/watchtrace-bench-overhead-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let watchtrace = workspace_root().join("target/release/watchtrace");

    let load = Running::start(&dir, &args.workload)?;
    let server = load.server;
    let gt_path = load.ground_truth.clone();

    let mut windows = Vec::new();
    for i in 0..=2 * args.pairs {
        let traced = i % 2 == 1;
        let w = if traced {
            traced_window(&watchtrace, server, args)?
        } else {
            untraced_window(server, args.window)?
        };
        eprintln!(
            "  window {:>2} {}: {:.1} s, server {:.2} CPU s{}",
            i + 1,
            if traced { "traced  " } else { "untraced" },
            w.seconds(),
            w.server_cpu,
            if traced {
                format!(", agent {:.2} CPU s, {} records", w.agent_cpu, w.records)
            } else {
                String::new()
            }
        );
        windows.push(w);
    }
    let stats_window = {
        let _on = BpfStatsOn::enable()?;
        traced_window(&watchtrace, server, args)?
    };
    eprintln!(
        "  window {:>2} traced with BPF statistics on: {:.1} s, server {:.2} CPU s",
        windows.len() + 1,
        stats_window.seconds(),
        stats_window.server_cpu
    );
    windows.push(stats_window);
    load.stop();
    count_events(&gt_path, &mut windows)?;
    let stats_window = windows.pop().expect("pushed above");
    report(args, &windows, &stats_window)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn wait_for_server(state_dir: &Path) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(state_dir.join("state.json"))
            && let Ok(state) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(pid) = state["pid"].as_u64()
        {
            return Ok(pid as u32);
        }
        if Instant::now() > deadline {
            bail!(
                "fake-apiserver did not start (no {}/state.json)",
                state_dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the server logs watch event writes: the load is running.
fn wait_for_writes(gt: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::read_to_string(gt).is_ok_and(|t| t.contains("\"kind\":\"write\"")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no watch events written within 60 s ({})", gt.display());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn untraced_window(server: u32, seconds: u64) -> anyhow::Result<Window> {
    let start_ns = unix_ns();
    let cpu0 = cpu_seconds(server)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu1 = cpu_seconds(server)?;
    Ok(Window {
        traced: false,
        start_ns,
        end_ns: unix_ns(),
        server_cpu: cpu1 - cpu0,
        ..Window::default()
    })
}

fn traced_window(watchtrace: &Path, server: u32, args: &OverheadArgs) -> anyhow::Result<Window> {
    let spawned = unix_ns() / 1_000_000_000;
    let mut agent = Command::new(watchtrace)
        .args(["run", "--pid", &server.to_string()])
        .args(["--metrics-addr", "127.0.0.1:0", "--log", "info"])
        .args(&args.agent_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting watchtrace run")?;
    let stderr = BufReader::new(agent.stderr.take().context("stderr")?);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("tracing") {
                let _ = tx.send(());
            }
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("  agent: {line}");
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .context("watchtrace run did not attach within 60 s")?;
    let pid = agent.id();
    let start_ns = unix_ns();
    let (cpu0, agent0, probes0) = (
        cpu_seconds(server)?,
        cpu_seconds(pid)?,
        probe_stats(spawned)?,
    );
    std::thread::sleep(Duration::from_secs(args.window));
    let (cpu1, agent1, probes1) = (
        cpu_seconds(server)?,
        cpu_seconds(pid)?,
        probe_stats(spawned)?,
    );
    let end_ns = unix_ns();
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let output = agent.wait_with_output()?;
    if !output.status.success() {
        bail!("watchtrace run failed: {}", output.status);
    }
    let report = String::from_utf8_lossy(&output.stdout);
    let counters: BTreeMap<String, u64> = report
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect();
    let records = *counters
        .get("records")
        .context("no records= in watchtrace run's report")?;
    let probes = probes1
        .iter()
        .map(|(name, &(runs, ns))| {
            let (runs0, ns0) = probes0.get(name).copied().unwrap_or_default();
            (name.clone(), (runs - runs0, ns - ns0))
        })
        .collect();
    // Let the uprobes go and the machine settle before the next window.
    std::thread::sleep(Duration::from_secs(2));
    Ok(Window {
        traced: true,
        start_ns,
        end_ns,
        server_cpu: cpu1 - cpu0,
        agent_cpu: agent1 - agent0,
        probes,
        records,
        counters,
        events: 0,
    })
}

/// Counts the ground truth's watch event writes into the windows (by the
/// time the write began). Writes cut short (an `error`) are not events.
fn count_events(gt: &Path, windows: &mut [Window]) -> anyhow::Result<()> {
    let file = std::fs::File::open(gt).with_context(|| format!("opening {}", gt.display()))?;
    for line in BufReader::with_capacity(1 << 20, file).lines() {
        let line = line?;
        if !line.contains("\"kind\":\"write\"") || line.contains("\"error\":") {
            continue;
        }
        let Some(t) = line
            .split_once("\"t_before\":")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        if let Some(w) = windows
            .iter_mut()
            .find(|w| (w.start_ns..w.end_ns).contains(&t))
        {
            w.events += 1;
        }
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn report(args: &OverheadArgs, windows: &[Window], stats: &Window) -> anyhow::Result<()> {
    if let Some(w) = windows.iter().chain([stats]).find(|w| w.events == 0) {
        bail!(
            "a window saw no watch events (from {} ns): the load stopped",
            w.start_ns
        );
    }
    println!(
        "overhead bench: {}; {} traced windows of {} s, \
         each between untraced ones; traced by `watchtrace run --pid` (metrics on, no --events{})",
        args.workload.describe(),
        args.pairs,
        args.window,
        if args.agent_args.is_empty() {
            String::new()
        } else {
            format!("; also {}", args.agent_args.join(" "))
        }
    );
    println!(
        "  {:>2} {:>8} {:>10} {:>9} {:>12} {:>11} {:>11}",
        "#", "traced", "events", "events/s", "server µs/ev", "agent µs/ev", "records/ev"
    );
    for (i, w) in windows.iter().enumerate() {
        let per = |x: f64| x * 1e6 / w.events as f64;
        println!(
            "  {:>2} {:>8} {:>10} {:>9.0} {:>12.2} {:>11} {:>11}",
            i + 1,
            if w.traced { "yes" } else { "no" },
            w.events,
            w.events_per_s(),
            w.server_us_per_event(),
            if w.traced {
                format!("{:.2}", per(w.agent_cpu))
            } else {
                "-".into()
            },
            if w.traced {
                format!("{:.2}", w.records as f64 / w.events as f64)
            } else {
                "-".into()
            },
        );
    }
    let mut cpu_ratios = Vec::new();
    let mut rate_ratios = Vec::new();
    let mut agent_us = Vec::new();
    let mut records = Vec::new();
    for (i, w) in windows.iter().enumerate().filter(|(_, w)| w.traced) {
        let (before, after) = (&windows[i - 1], &windows[i + 1]);
        let bare_cpu = (before.server_us_per_event() + after.server_us_per_event()) / 2.0;
        let bare_rate = (before.events_per_s() + after.events_per_s()) / 2.0;
        cpu_ratios.push(w.server_us_per_event() / bare_cpu);
        rate_ratios.push(w.events_per_s() / bare_rate);
        let events = w.events as f64;
        agent_us.push(w.agent_cpu * 1e6 / events);
        records.push(w.records as f64 / events);
    }
    let stats_events = stats.events as f64;
    println!(
        "  per watch event, by program (a traced window with BPF statistics on throughout: \
         {} events, server {:.2} µs/event):",
        stats.events,
        stats.server_us_per_event()
    );
    println!(
        "    {:<24} {:>10} {:>10} {:>9}",
        "program", "runs/ev", "ns/ev", "mean ns"
    );
    for (name, &(runs, ns)) in &stats.probes {
        if runs == 0 {
            continue;
        }
        println!(
            "    {name:<24} {:>10.3} {:>10.1} {:>9.0}",
            runs as f64 / stats_events,
            ns as f64 / stats_events,
            ns as f64 / runs as f64
        );
    }
    let probe_ns = stats.probes.values().map(|&(_, ns)| ns as f64).sum::<f64>() / stats_events;
    let traced: Vec<&Window> = windows.iter().filter(|w| w.traced).collect();
    let per_event = |key: &str| {
        median(
            traced
                .iter()
                .map(|w| w.counters.get(key).copied().unwrap_or(0) as f64 / w.events as f64)
                .collect(),
        )
    };
    println!(
        "  kernel counts per watch event (medians): tls_writes={:.3} sock_sends={:.3} \
         sock_recvs={:.3} tcp_samples={:.3} chunks={:.3}",
        per_event("tls_writes"),
        per_event("sock_sends"),
        per_event("sock_recvs"),
        per_event("tcp_samples"),
        per_event("chunks"),
    );
    let total = |key: &str| {
        traced
            .iter()
            .map(|w| w.counters.get(key).copied().unwrap_or(0))
            .sum::<u64>()
    };
    println!(
        "  loss over the traced windows: gaps={} gap_bytes={} lost_bytes={} ringbuf_drops={}",
        total("gaps"),
        total("gap_bytes"),
        total("lost_bytes"),
        total("ringbuf_drops"),
    );
    println!(
        "overhead: server_cpu_ratio={:.3} throughput_ratio={:.3} agent_us_per_event={:.2} probe_ns_per_event={:.0} records_per_event={:.2}",
        median(cpu_ratios),
        median(rate_ratios),
        median(agent_us),
        probe_ns,
        median(records)
    );
    Ok(())
}

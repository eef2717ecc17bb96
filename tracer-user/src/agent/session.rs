//! A tracing session: the loaded programs, the target set kept in step with
//! /proc, and the loop that drains the ring buffer.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tracer_common::{
    counters::Counter,
    record::{ProcessInfo, RecordHeader, RecordKind, SockAnchor, Tick},
};

use super::probe_stats::{ProbeEstimate, ProbeStatsSampler};
use crate::{
    capture::{encode, fixed},
    check::REQUIRED_CAPABILITIES,
    cli::TargetArgs,
    clock,
    host::{self, Privileges, Support},
    loader::{GoTlsCode, LoadOptions, Tracer},
    recording::TargetInfo,
    sockdiag, targets, tracepoints,
};

/// How a session is set up.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub targets: TargetArgs,
    pub load: LoadOptions,
    /// How often /proc is rescanned for new or exited targets. Restarts are
    /// followed within this period (plus attach time).
    pub rescan: Duration,
}

impl SessionOptions {
    /// The options every subcommand uses: targets, ring size, a rescan each
    /// second (so restarts are followed within about 2 s).
    pub fn new(targets: TargetArgs, ringbuf_bytes: u32) -> Self {
        Self {
            targets,
            load: LoadOptions {
                ringbuf_bytes,
                ..LoadOptions::default()
            },
            rescan: Duration::from_secs(1),
        }
    }
}

/// Resolves after `seconds` (if given), or at Ctrl-C or SIGTERM, whichever
/// comes first (SIGTERM is how Kubernetes and systemd stop the agent: the
/// last events and the counters still get written).
pub async fn until_stopped(seconds: Option<f64>) {
    let timer = async {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
            None => std::future::pending().await,
        }
    };
    // Ctrl-C and SIGTERM stop cleanly whether or not a duration was given.
    let signals = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                }
            }
            Err(e) => {
                tracing::warn!("cannot handle SIGTERM, only Ctrl-C stops cleanly: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::select! {
        () = timer => {}
        () = signals => {}
    }
}

/// What a binary's Go TLS probes need per process.
#[derive(Clone, Debug)]
struct GoTls {
    go_version: Option<String>,
    code: GoTlsCode,
}

/// How long without any target before `run` says how to find one.
const NO_TARGET_HINT_AFTER: Duration = Duration::from_secs(30);

/// How often the ring buffer is drained. Records are submitted without a
/// wakeup (a wakeup costs the traced process far more than the record), so
/// this bounds how late a record reaches userspace; a ring filling past a
/// quarter of its size wakes the consumer sooner.
pub const DRAIN_PERIOD: Duration = Duration::from_millis(20);

/// How long after untargeting every process the ring is drained a last
/// time: probes that had passed their target check are done by then.
const STOP_SETTLE: Duration = Duration::from_millis(10);

/// What the drain loop feeds.
pub trait Consumer {
    /// One record: the raw bytes the kernel wrote, borrowed from the ring.
    fn record(&mut self, bytes: &[u8]);
    /// Everything pending in the ring was drained (a batch ended).
    fn batch_done(&mut self) {}
    /// Called after each rescan (every rescan period): where the kernel's
    /// counters are read while the loop runs.
    fn tick(&mut self, _session: &Session) {}
}

impl<F: FnMut(&[u8])> Consumer for F {
    fn record(&mut self, bytes: &[u8]) {
        self(bytes)
    }
}

/// Loaded programs plus the processes being traced.
pub struct Session {
    tracer: Tracer,
    options: SessionOptions,
    /// Traced processes by pid.
    traced: BTreeMap<u32, TargetInfo>,
    /// Binaries with Go TLS probes attached (by path): their Go version and
    /// Write's code as file offsets; `None` when they have no Go TLS.
    binaries: BTreeMap<PathBuf, Option<GoTls>>,
    /// Since when no process has matched, until the hint is logged once.
    idle_since: Option<Instant>,
    /// The probes' cost, sampled (see `probe_stats`); off unless asked for.
    probe_stats: Option<ProbeStatsSampler>,
    /// What the session cannot do for lack of a privilege, by reason.
    degraded: BTreeMap<Degraded, String>,
}

/// Something a session does without, for lack of a privilege: it still
/// runs, says so once in the log, and `run` reports it (a `warning` line,
/// `watchtrace_degraded`, an unhealthy `/healthz`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Degraded {
    /// A target's executable could not be read (CAP_SYS_PTRACE): no Go TLS
    /// probes, so its TLS connections are not decoded.
    NoTlsProbes,
    /// Processes' executables could not be read (CAP_SYS_PTRACE): `--exe`
    /// cannot match them.
    ExeUnreadable,
    /// A target's fds could not be listed (CAP_DAC_READ_SEARCH): its
    /// connections opened before attach get no addresses until used.
    NoAnchors,
}

impl Degraded {
    /// The `reason` label and line field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoTlsProbes => "no_tls_probes",
            Self::ExeUnreadable => "exe_unreadable",
            Self::NoAnchors => "no_anchors",
        }
    }
}

impl Session {
    /// Loads the programs and attaches the tracepoints; targets come with
    /// the first [`Session::rescan`].
    pub fn start(options: SessionOptions) -> anyhow::Result<Self> {
        // Say what is missing before the kernel answers with a bare EPERM.
        if let Ok(privileges) = Privileges::current()
            && let Support::Unavailable(why) = privileges.sufficient()
        {
            anyhow::bail!(
                "missing privileges: {why}. `watchtrace check` lists every requirement \
                 (capabilities needed without root: {})",
                REQUIRED_CAPABILITIES.join(", ")
            );
        }
        let mut tracer = Tracer::load(options.load)
            .context("loading eBPF programs (run `watchtrace check` for what is missing)")?;
        for tp in tracepoints::used() {
            tracer
                .attach_tracepoint(tp)
                .with_context(|| format!("attaching tracepoint {}:{}", tp.category, tp.name))?;
        }
        Ok(Self {
            tracer,
            options,
            traced: BTreeMap::new(),
            binaries: BTreeMap::new(),
            idle_since: Some(Instant::now()),
            probe_stats: None,
            degraded: BTreeMap::new(),
        })
    }

    /// What the session does without, and why (the first occurrence).
    pub fn degraded(&self) -> &BTreeMap<Degraded, String> {
        &self.degraded
    }

    /// Notes (and logs, the first time) something done without.
    fn degrade(&mut self, what: Degraded, why: String) {
        if let std::collections::btree_map::Entry::Vacant(entry) = self.degraded.entry(what) {
            tracing::warn!(reason = what.as_str(), "{why}");
            entry.insert(why);
        }
    }

    /// Samples the kernel's BPF run-time statistics while [`Session::run`]
    /// runs (see `probe_stats`): what the probes cost, for the metrics.
    pub fn sample_probe_stats(&mut self) {
        self.probe_stats = Some(ProbeStatsSampler::default());
    }

    /// The probes' estimated runs and run time by program, when sampled.
    pub fn probe_estimates(&self) -> Option<&BTreeMap<String, ProbeEstimate>> {
        self.probe_stats.as_ref().map(ProbeStatsSampler::estimates)
    }

    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// The processes traced now.
    pub fn targets(&self) -> Vec<TargetInfo> {
        self.traced.values().cloned().collect()
    }

    /// Brings the target set in line with /proc: new matching processes are
    /// added (and their binaries probed), exited ones removed. Returns the
    /// records to feed downstream for streams the exits ended.
    pub fn rescan(&mut self) -> anyhow::Result<Vec<Vec<u8>>> {
        let scan = targets::scan(&self.options.targets);
        // Some processes stay unreadable to any privilege (not dumpable):
        // `--exe` is blind only when no other user's executable can be read.
        if !self.options.targets.exes.is_empty()
            && scan.exe_denied > 0
            && let Support::Unavailable(why) = host::proc_readable(
                "exe",
                "CAP_SYS_PTRACE",
                "--exe cannot match other users' processes",
            )
        {
            self.degrade(Degraded::ExeUnreadable, why);
        }
        let found = scan.targets;
        self.hint_when_idle(found.is_empty());
        let live: BTreeSet<u32> = found.iter().map(|t| t.pid).collect();
        for gone in self
            .traced
            .keys()
            .copied()
            .filter(|p| !live.contains(p))
            .collect::<Vec<_>>()
        {
            self.tracer.remove_target(gone)?;
            self.traced.remove(&gone);
            tracing::info!(pid = gone, "target exited");
        }
        let mut records = Vec::new();
        let mut new_pids = Vec::new();
        for target in found {
            if self.traced.contains_key(&target.pid) {
                continue;
            }
            self.tracer.add_target(target.pid)?;
            let go_tls = match &target.exe {
                Some(exe) => self.probe_binary(target.pid, exe),
                None => {
                    if target.exe_denied {
                        self.degrade(
                            Degraded::NoTlsProbes,
                            format!(
                                "cannot read /proc/{}/exe (needs CAP_SYS_PTRACE): tracing it without \
                                 Go TLS probes, so its TLS connections are not decoded",
                                target.pid
                            ),
                        );
                    }
                    None
                }
            };
            if let Some(tls) = &go_tls {
                // Where Write and readRecordOrCCS are in this process, for
                // the frame walks of its sends and receives.
                if !self.tracer.watch_go_tls(target.pid, &tls.code)? {
                    tracing::warn!(
                        pid = target.pid,
                        "crypto/tls is not mapped in the process: what it writes and \
                         reads over TLS is not captured"
                    );
                }
            }
            let go_version = go_tls.and_then(|tls| tls.go_version);
            tracing::info!(pid = target.pid, comm = %target.comm, "tracing");
            new_pids.push(target.pid);
            records.push(encode(&ProcessInfo {
                header: RecordHeader {
                    ts_ns: clock::monotonic_ns(),
                    kind: RecordKind::ProcessInfo as u16,
                    _pad0: 0,
                    tgid: target.pid,
                    tid: 0,
                    _pad1: 0,
                },
                comm: fixed(&target.comm),
                go_version: fixed(go_version.as_deref().unwrap_or_default()),
                exe: fixed(
                    &target
                        .exe
                        .as_ref()
                        .map(|e| e.display().to_string())
                        .unwrap_or_default(),
                ),
            }));
            self.traced.insert(
                target.pid,
                TargetInfo {
                    pid: target.pid,
                    comm: target.comm,
                    exe: target.exe.map(|e| e.display().to_string()),
                    go_version,
                },
            );
        }
        if !new_pids.is_empty() {
            let (found, denied) = anchors(&new_pids);
            if let Some(pid) = denied {
                self.degrade(
                    Degraded::NoAnchors,
                    format!(
                        "cannot list /proc/{pid}/fd (needs CAP_DAC_READ_SEARCH): connections \
                         opened before attach get their addresses only once used"
                    ),
                );
            }
            records.extend(found.iter().map(encode));
        }
        let closes = self.tracer.sweep_streams(
            |tgid| self.traced.contains_key(&tgid),
            clock::monotonic_ns(),
        )?;
        records.extend(closes.iter().map(encode));
        Ok(records)
    }

    /// Logs once, after [`NO_TARGET_HINT_AFTER`] with no matching process,
    /// how to make one match; again after a target came and went.
    fn hint_when_idle(&mut self, idle: bool) {
        if !idle {
            self.idle_since = Some(Instant::now());
            return;
        }
        let Some(since) = self.idle_since else { return };
        if since.elapsed() < NO_TARGET_HINT_AFTER {
            return;
        }
        self.idle_since = None;
        tracing::warn!(
            selectors = %self.options.targets.describe(),
            "no target process found for {}s; still waiting. Pass --pid, --comm (the name in \
             /proc/PID/comm, at most 15 characters) or --exe; in a container the agent needs \
             hostPID to see the host's processes",
            NO_TARGET_HINT_AFTER.as_secs()
        );
    }

    /// Attaches the Go TLS probes to a target's binary once per binary.
    fn probe_binary(&mut self, pid: u32, exe: &Path) -> Option<GoTls> {
        if let Some(known) = self.binaries.get(exe) {
            return known.clone();
        }
        // The binary as the process sees it (its mount namespace), which
        // also works when it was replaced on disk since.
        let path = PathBuf::from(format!("/proc/{pid}/root{}", exe.display()));
        let path = if path.exists() {
            path
        } else {
            exe.to_path_buf()
        };
        // Symbol resolution reads the whole binary (kube-apiserver is over
        // 100 MB, stripped ones need a pclntab walk): say so, and how long.
        let size_mb = std::fs::metadata(&path).map_or(0, |m| m.len() >> 20);
        tracing::info!(binary = %exe.display(), size_mb, "resolving crypto/tls in the binary");
        let started = Instant::now();
        let tls = match self.tracer.attach_go_tls(&path) {
            Ok(attached) => {
                tracing::info!(
                    binary = %exe.display(),
                    go = attached.go_version.as_deref().unwrap_or("unknown"),
                    record_sites = attached.record_sites,
                    elapsed_ms = elapsed_ms(started),
                    "attached Go TLS probes"
                );
                Some(GoTls {
                    go_version: attached.go_version,
                    code: attached.code,
                })
            }
            Err(e) => {
                let denied = std::iter::successors(
                    Some(&e as &(dyn std::error::Error + 'static)),
                    |cause| cause.source(),
                )
                .any(|cause| {
                    cause
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
                });
                if denied {
                    self.degrade(
                        Degraded::NoTlsProbes,
                        format!(
                            "attaching the Go TLS probes to {} was refused (uprobes need \
                             CAP_SYS_ADMIN): {e}; its TLS connections are not decoded",
                            exe.display()
                        ),
                    );
                } else {
                    tracing::warn!(
                        binary = %exe.display(),
                        elapsed_ms = elapsed_ms(started),
                        "no TLS plaintext from this binary: {e}. Only plaintext connections \
                         (h2c, HTTP/1.1) are decoded, from socket syscalls; TLS connections get \
                         socket-level figures only (bytes, stalls, no events)"
                    );
                }
                None
            }
        };
        self.binaries.insert(exe.to_path_buf(), tls.clone());
        tls
    }

    /// Drains the ring buffer into `consumer` until `stop` resolves: every
    /// [`DRAIN_PERIOD`], and when the ring fills past its wakeup mark.
    /// Targets are rescanned every rescan period. Each record is handed
    /// over as the raw bytes the kernel wrote; nothing is copied.
    pub async fn run(
        &mut self,
        consumer: &mut impl Consumer,
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        for record in self.rescan()? {
            consumer.record(&record);
        }
        consumer.batch_done();
        let ring: RingBuf<MapData> = self.tracer.take_events()?;
        // SAFETY: the RingBuf owns its map fd, keeps it open and unchanged
        // until dropped, and the AsyncFd owns the RingBuf.
        let mut ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| e.into_parts().1)
            .context("polling the ring buffer")?;

        let mut ticker = tokio::time::interval(self.options.rescan);
        let mut last_tick = Instant::now();
        let mut drain = tokio::time::interval(DRAIN_PERIOD);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let mut guard = guard.context("ring buffer readiness")?;
                    drain_into(guard.get_inner_mut(), consumer);
                    guard.clear_ready();
                }
                _ = drain.tick() => {
                    drain_into(ring.get_mut(), consumer);
                    // The clock, as a record: deadlines pass on a quiet
                    // capture too, the same live and replayed.
                    if last_tick.elapsed() >= TICK_PERIOD {
                        last_tick = Instant::now();
                        consumer.record(&encode(&tick(clock::monotonic_ns())));
                        consumer.batch_done();
                    }
                }
                _ = ticker.tick() => {
                    for record in self.rescan()? {
                        consumer.record(&record);
                    }
                    consumer.batch_done();
                    if let Some(sampler) = &mut self.probe_stats {
                        sampler.tick(&self.tracer, Instant::now());
                    }
                    consumer.tick(self);
                }
                () = &mut stop => break,
            }
        }
        // Stop tracing first, so nothing is written after the last drain:
        // what the sweep then finds beyond the drained offsets was lost,
        // not merely still in the ring. A probe already past its target
        // check finishes within microseconds.
        for &pid in self.traced.keys() {
            // Failing that, its last records still come out; only what it
            // writes meanwhile may show as a gap.
            if let Err(e) = self.tracer.remove_target(pid) {
                tracing::warn!(pid, "untargeting at stop: {e}");
            }
        }
        tokio::time::sleep(STOP_SETTLE).await;
        // Whatever is still in the ring, then every stream's end.
        drain_into(ring.get_mut(), consumer);
        let closes = self
            .tracer
            .sweep_streams(|_| false, clock::monotonic_ns())?;
        for close in &closes {
            consumer.record(&encode(close));
        }
        consumer.batch_done();
        Ok(())
    }

    /// The kernel's counters, for the end-of-run report.
    pub fn counters(&self) -> anyhow::Result<Vec<(Counter, u64)>> {
        Ok(self.tracer.counters()?)
    }
}

/// Hands every record waiting in `ring` to `consumer`, then ends the batch.
/// How often a [`Tick`] record is made.
const TICK_PERIOD: Duration = Duration::from_millis(100);

/// A tick at `ts_ns` (the records' clock).
fn tick(ts_ns: u64) -> Tick {
    Tick {
        header: RecordHeader {
            ts_ns,
            kind: RecordKind::Tick as u16,
            _pad0: 0,
            tgid: 0,
            tid: 0,
            _pad1: 0,
        },
    }
}

fn drain_into(ring: &mut RingBuf<MapData>, consumer: &mut impl Consumer) {
    while let Some(item) = ring.next() {
        consumer.record(&item);
    }
    consumer.batch_done();
}

/// Milliseconds since `started`, as a number in JSON logs (u128 is not).
fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Anchors for the TCP sockets the processes `pids` hold now, and a pid
/// whose fds could not be listed for lack of privilege.
fn anchors(pids: &[u32]) -> (Vec<SockAnchor>, Option<u32>) {
    let sockets = match sockdiag::dump_tcp() {
        Ok(sockets) => sockets,
        Err(e) => {
            tracing::warn!(
                "sock_diag dump failed, pre-existing connections are learnt as they are used: {e}"
            );
            return (Vec::new(), None);
        }
    };
    let mut denied = None;
    let by_inode: BTreeMap<u32, &sockdiag::DiagSocket> =
        sockets.iter().map(|s| (s.inode, s)).collect();
    let now = clock::monotonic_ns();
    let mut out = Vec::new();
    for &pid in pids {
        let fds = match sockdiag::socket_fds(pid) {
            Ok(fds) => fds,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    denied = Some(pid);
                }
                continue;
            }
        };
        for (inode, fd) in fds {
            let Some(socket) = by_inode.get(&inode) else {
                continue;
            };
            let info = socket.info.unwrap_or_default();
            out.push(SockAnchor {
                header: RecordHeader {
                    ts_ns: now,
                    kind: RecordKind::SockAnchor as u16,
                    _pad0: 0,
                    tgid: pid,
                    tid: 0,
                    _pad1: 0,
                },
                fd,
                family: u16::from(socket.family),
                state: socket.state,
                _pad0: 0,
                sport: socket.local.1,
                dport: socket.peer.1,
                inode,
                saddr: ip_bytes(socket.local.0),
                daddr: ip_bytes(socket.peer.0),
                bytes_sent: info.bytes_sent,
                bytes_acked: info.bytes_acked,
                bytes_received: info.bytes_received,
                send_queue: socket.send_queue,
                rtt_us: info.rtt_us,
            });
        }
    }
    (out, denied)
}

/// An address in a record's 16-byte form (IPv4 in the first four bytes).
fn ip_bytes(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&v4.octets());
            out
        }
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

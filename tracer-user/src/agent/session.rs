//! A tracing session: the loaded programs, the target set kept in step with
//! /proc, and the loop that drains the ring buffer.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tracer_common::counters::Counter;

use crate::{
    capture::encode_fd_close,
    cli::TargetArgs,
    clock,
    loader::{LoadOptions, Tracer},
    recording::TargetInfo,
    targets, tracefs,
    tracepoints::{self, Layouts},
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

/// Loaded programs plus the processes being traced.
pub struct Session {
    tracer: Tracer,
    options: SessionOptions,
    /// Traced processes by pid.
    traced: BTreeMap<u32, TargetInfo>,
    /// Binaries with Go TLS probes attached (by path), or why not.
    binaries: BTreeMap<PathBuf, Option<String>>,
}

impl Session {
    /// Loads the programs and attaches the tracepoints; targets come with
    /// the first [`Session::rescan`].
    pub fn start(options: SessionOptions) -> anyhow::Result<Self> {
        let root = tracefs::ensure_mounted().context("tracefs")?;
        let layouts = Layouts::read(&root).context("reading tracepoint layouts")?;
        let mut tracer = Tracer::load(options.load, &layouts)
            .context("loading eBPF programs (try `watchtrace check`)")?;
        for tp in tracepoints::used() {
            tracer
                .attach_tracepoint(tp)
                .with_context(|| format!("attaching {}:{}", tp.category, tp.name))?;
        }
        Ok(Self {
            tracer,
            options,
            traced: BTreeMap::new(),
            binaries: BTreeMap::new(),
        })
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
        let found = targets::scan(&self.options.targets);
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
        for target in found {
            if self.traced.contains_key(&target.pid) {
                continue;
            }
            self.tracer.add_target(target.pid)?;
            let go_version = match &target.exe {
                Some(exe) => self.probe_binary(target.pid, exe),
                None => None,
            };
            tracing::info!(pid = target.pid, comm = %target.comm, "tracing");
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
        let closes = self.tracer.sweep_streams(
            |tgid| self.traced.contains_key(&tgid),
            clock::monotonic_ns(),
        )?;
        Ok(closes.iter().map(encode_fd_close).collect())
    }

    /// Attaches the Go TLS probes to a target's binary once per binary.
    fn probe_binary(&mut self, pid: u32, exe: &Path) -> Option<String> {
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
        tracing::info!(binary = %exe.display(), "resolving crypto/tls in the binary");
        let version = match self.tracer.attach_go_tls(&path) {
            Ok(attached) => {
                tracing::info!(binary = %exe.display(), go = ?attached.go_version, read_returns = attached.read_returns, "attached Go TLS probes");
                attached.go_version
            }
            Err(e) => {
                tracing::warn!(binary = %exe.display(), "no TLS plaintext from this binary: {e}");
                None
            }
        };
        self.binaries.insert(exe.to_path_buf(), version.clone());
        version
    }

    /// Drains the ring buffer into `sink` until `stop` resolves, rescanning
    /// targets every `rescan` period. Each record is handed over as the raw
    /// bytes the kernel wrote; nothing is parsed inside the read guard.
    pub async fn run(
        &mut self,
        mut sink: impl FnMut(&[u8]),
        stop: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        for record in self.rescan()? {
            sink(&record);
        }
        let ring: RingBuf<MapData> = self.tracer.take_events()?;
        // SAFETY: the RingBuf owns its map fd, keeps it open and unchanged
        // until dropped, and the AsyncFd owns the RingBuf.
        let mut ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| e.into_parts().1)
            .context("polling the ring buffer")?;

        let mut ticker = tokio::time::interval(self.options.rescan);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let mut guard = guard.context("ring buffer readiness")?;
                    let ring = guard.get_inner_mut();
                    while let Some(item) = ring.next() {
                        sink(&item);
                    }
                    guard.clear_ready();
                }
                _ = ticker.tick() => {
                    for record in self.rescan()? {
                        sink(&record);
                    }
                }
                () = &mut stop => break,
            }
        }
        // Whatever is still in the ring, then every stream's end.
        let ring = ring.get_mut();
        while let Some(item) = ring.next() {
            sink(&item);
        }
        let closes = self
            .tracer
            .sweep_streams(|_| false, clock::monotonic_ns())?;
        for close in &closes {
            sink(&encode_fd_close(close));
        }
        Ok(())
    }

    /// The kernel's counters, for the end-of-run report.
    pub fn counters(&self) -> anyhow::Result<Vec<(Counter, u64)>> {
        Ok(self.tracer.counters()?)
    }
}

//! What the probes cost, from the kernel's BPF run-time statistics, sampled.
//!
//! While the statistics are on, every program run reads the clock twice;
//! on a busy apiserver that is a large share of what tracing costs it (on a
//! Firecracker guest ~0.1 µs per run, at five to six runs per watch event).
//! So they are on for [`SAMPLE`] in every [`PERIOD`], and the totals are
//! estimated from the samples: each sample's runs and run time, scaled to
//! the time between samples.

use std::{
    collections::BTreeMap,
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

use crate::loader::{self, ProgramStats, Tracer};

/// How long the statistics stay on per sample.
pub const SAMPLE: Duration = Duration::from_secs(1);
/// How often a sample starts.
pub const PERIOD: Duration = Duration::from_secs(30);

/// Estimated run count and run time of one program since the agent began.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeEstimate {
    pub runs: f64,
    pub run_ns: f64,
}

/// The sampler: call [`ProbeStatsSampler::tick`] about once a second.
#[derive(Debug, Default)]
pub struct ProbeStatsSampler {
    /// Held while a sample is on (dropping it turns the statistics off).
    on: Option<(OwnedFd, Instant, Vec<ProgramStats>)>,
    /// When the last sample started.
    last_start: Option<Instant>,
    totals: BTreeMap<String, ProbeEstimate>,
    /// The statistics could not be turned on (said once).
    failed: bool,
}

impl ProbeStatsSampler {
    /// Starts or ends a sample when due; `now` is the caller's clock.
    pub fn tick(&mut self, tracer: &Tracer, now: Instant) {
        if let Some((_, started, _)) = &self.on {
            if now.duration_since(*started) >= SAMPLE {
                let (fd, started, before) = self.on.take().expect("checked above");
                let after = tracer.program_stats();
                drop(fd);
                let sampled = now.duration_since(started).as_secs_f64();
                // Each sample stands for the time until the next one.
                let scale = PERIOD.as_secs_f64() / sampled.max(f64::EPSILON);
                self.add(&before, &after, scale);
            }
            return;
        }
        let due = self
            .last_start
            .is_none_or(|last| now.duration_since(last) >= PERIOD);
        if !due || self.failed {
            return;
        }
        match loader::enable_bpf_stats() {
            Ok(fd) => {
                self.last_start = Some(now);
                self.on = Some((fd, now, tracer.program_stats()));
            }
            Err(e) => {
                self.failed = true;
                tracing::warn!("no probe run-time statistics: {e}");
            }
        }
    }

    fn add(&mut self, before: &[ProgramStats], after: &[ProgramStats], scale: f64) {
        for program in after {
            let base = before.iter().find(|p| p.name == program.name);
            let runs = program
                .run_count
                .saturating_sub(base.map_or(0, |p| p.run_count));
            let ns = program
                .run_time_ns
                .saturating_sub(base.map_or(0, |p| p.run_time_ns));
            let total = self.totals.entry(program.name.clone()).or_default();
            total.runs += runs as f64 * scale;
            total.run_ns += ns as f64 * scale;
        }
    }

    /// The estimated totals, by program.
    pub fn estimates(&self) -> &BTreeMap<String, ProbeEstimate> {
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, runs: u64, ns: u64) -> ProgramStats {
        ProgramStats {
            name: name.into(),
            run_count: runs,
            run_time_ns: ns,
        }
    }

    #[test]
    fn a_sample_stands_for_the_whole_period() {
        let mut sampler = ProbeStatsSampler::default();
        // One second of a 30 s period: 100 runs of 5 µs.
        sampler.add(
            &[stats("go_tls_write", 1000, 50_000)],
            &[stats("go_tls_write", 1100, 550_000)],
            30.0,
        );
        let estimate = &sampler.estimates()["go_tls_write"];
        assert_eq!(estimate.runs, 3000.0);
        assert_eq!(estimate.run_ns, 15_000_000.0);
    }

    #[test]
    fn a_program_new_in_the_sample_counts_from_zero() {
        let mut sampler = ProbeStatsSampler::default();
        sampler.add(&[], &[stats("tcp_probe", 10, 1000)], 2.0);
        assert_eq!(sampler.estimates()["tcp_probe"].runs, 20.0);
    }
}

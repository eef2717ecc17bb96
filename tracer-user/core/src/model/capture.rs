//! Capture-side figures that are not events: read from the kernel's
//! counters and BPF statistics by `run` and handed to the model.

/// What the capture reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureFigures {
    /// Failed ring-buffer reservations (records lost), since load.
    pub ringbuf_drops: u64,
    /// Per eBPF program: runs and total run time (kernel BPF stats).
    pub programs: Vec<ProbeFigures>,
    /// Processes traced now.
    pub targets: usize,
    /// What the agent does without for lack of a privilege, by reason
    /// (`watchtrace_degraded`).
    pub degraded: Vec<&'static str>,
}

/// One eBPF program's cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeFigures {
    pub program: String,
    pub runs: u64,
    pub run_ns: u64,
}

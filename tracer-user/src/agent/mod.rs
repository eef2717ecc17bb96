//! The live agent's I/O edge: target discovery and attachment, and the
//! ring-buffer consumer. Everything after the raw record bytes is the pure
//! pipeline, fed identically from here or from a recording.

mod probe_stats;
mod session;

pub use probe_stats::{
    PERIOD as PROBE_STATS_PERIOD, ProbeEstimate, ProbeStatsSampler, SAMPLE as PROBE_STATS_SAMPLE,
};
pub use session::{Consumer, DRAIN_PERIOD, Degraded, Session, SessionOptions, until_stopped};

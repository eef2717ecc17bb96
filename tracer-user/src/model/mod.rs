//! The live model: aggregates the pipeline's [`OutputEvent`]s into what
//! `top` shows ([`Snapshot`]) and what `/metrics` exports. Pure: fed events,
//! asked for views; no clocks, no I/O.
//!
//! [`OutputEvent`]: crate::pipeline::OutputEvent

mod snapshot;

pub use snapshot::{ConnRow, Snapshot, StallRow, Totals, WatchRow};

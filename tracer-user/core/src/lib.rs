//! watchtrace's core: everything after the ring buffer, as a pure and
//! deterministic function of the record stream. Records in ([`capture`],
//! [`recording`]); connections ([`conn`]), HTTP/2 ([`http2`]), watch streams
//! ([`watch`]) and etcd ([`etcd`]) decoded; joined into events by the
//! [`pipeline`]; aggregated by the [`model`]; rendered as Prometheus text by
//! [`metrics`]. A recording's [`replay`] is a function of its bytes alone.
//!
//! No I/O, no clocks: this crate depends on no aya, tokio, libc, ratatui or
//! crossterm (`tracer-user/tests/core_purity.rs` checks the tree), so a
//! recording replays here exactly as it ran live. Its only threads decode
//! connections in parallel (`PipelineConfig::workers`), with the same
//! output as none.

pub mod capture;
pub mod conn;
pub mod etcd;
pub mod http2;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod recording;
pub mod replay;
pub mod rfc3339;
pub mod watch;

//! watchtrace's core: everything after the ring buffer, as a pure and
//! deterministic function of the record stream. Records in ([`capture`],
//! [`recording`]); connections ([`conn`]), HTTP/2 ([`http2`]), watch streams
//! ([`watch`]) and etcd ([`etcd`]) decoded; joined into events by the
//! [`pipeline`]; aggregated by the [`model`]; rendered as Prometheus text by
//! [`metrics`].
//!
//! No I/O, no clocks, no threads: this crate depends on no aya, tokio,
//! libc, ratatui or crossterm (`tracer-user/tests/core_purity.rs` checks
//! the tree), so a recording replays here exactly as it ran live.

pub mod capture;
pub mod conn;
pub mod etcd;
pub mod http2;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod recording;
pub mod watch;

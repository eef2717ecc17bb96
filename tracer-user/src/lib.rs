//! watchtrace: where Kubernetes API-server WATCH traffic loses time.
//!
//! Pure modules (no aya, no tokio, no clocks): [`capture`] (record decoding),
//! [`btf`] and [`tracepoints`] (kernel facts from BTF), [`model`] (the live
//! aggregate of events), [`metrics`] (its Prometheus text). I/O edges:
//! [`loader`] (aya), [`host`] and [`check`] (probing this machine),
//! [`symbols`] (reading binaries), [`http`] (`/metrics`), [`cli`].

pub mod agent;
pub mod btf;
pub mod capture;
pub mod check;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod conn;
pub mod etcd;
pub mod host;
pub mod http;
pub mod http2;
pub mod loader;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod recording;
pub mod sockdiag;
pub mod symbols;
pub mod targets;
pub mod tracepoints;
pub mod tui;
pub mod watch;

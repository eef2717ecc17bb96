//! watchtrace: where Kubernetes API-server WATCH traffic loses time.
//!
//! The pure core (record decoding, connections, HTTP/2, watch and etcd
//! decoding, the pipeline, the model and the metrics text) is the
//! `watchtrace-core` crate, re-exported here under the same paths; its
//! purity is the compiler's to check. Here: [`btf`] and [`tracepoints`]
//! (kernel facts from BTF), and the I/O edges: [`loader`] (aya), [`host`]
//! and [`check`] (probing this machine), [`symbols`] (reading binaries),
//! [`metrics_server`] (`/metrics`, `/healthz`) and [`exposition`] (their
//! encoding), [`cli`], [`agent`], [`commands`],
//! [`tui`].

pub use watchtrace_core::{
    capture, conn, etcd, http2, metrics, model, pipeline, recording, replay, rfc3339, watch,
};

pub mod agent;
pub mod btf;
pub mod check;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod events_out;
pub mod exposition;
pub mod host;
pub mod loader;
pub mod metrics_server;
pub mod private_file;
pub mod sockdiag;
pub mod symbols;
pub mod targets;
pub mod time_format;
pub mod tracepoints;
pub mod tui;

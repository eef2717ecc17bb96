//! Types shared by the kernel programs (`tracer-ebpf`) and the userspace agent
//! (`tracer-user`).
//!
//! Everything here is `#[repr(C)]` with explicit padding and a size assertion,
//! so both sides agree on the bytes without BTF-driven codegen. One module per
//! concept; the `user` feature adds `aya::Pod` for userspace.
#![no_std]

pub mod counters;
pub mod layout;
pub mod maps;
pub mod record;

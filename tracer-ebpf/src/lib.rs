//! Empty on purpose: this library target exists so that tracer-user can name
//! tracer-ebpf as a build-dependency, and cargo rebuilds the object when the
//! kernel programs change. The programs live in the `tracer` binary.
#![no_std]

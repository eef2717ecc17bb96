//! The kernel's clock, read from userspace. Records are stamped with
//! `bpf_ktime_get_ns()` (CLOCK_MONOTONIC); synthetic records made in
//! userspace must use the same clock, and output converts to Unix time once.

/// CLOCK_MONOTONIC in nanoseconds, the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// Unix time minus monotonic time, sampled now: add it to a record's
/// timestamp to get Unix nanoseconds.
pub fn realtime_offset_ns() -> i128 {
    // Bracket the realtime read with two monotonic reads and use their
    // midpoint, which halves the error from being descheduled between reads.
    let before = monotonic_ns();
    let real = realtime_ns();
    let after = monotonic_ns();
    i128::from(real) - i128::from(before + (after - before) / 2)
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; both clocks always exist.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

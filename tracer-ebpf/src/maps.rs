//! Maps and helpers shared by every program. Sizes are 0 here where the
//! loader sets them (`EbpfLoader::map_max_entries`).

use aya_ebpf::{
    Global,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, pt_regs},
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    counters::{COUNTER_SLOTS, Counter},
    record::{RecordHeader, RecordKind},
};

#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(0, 0);

#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map]
pub(crate) static TARGET_TGIDS: HashMap<u32, u32> = HashMap::with_max_entries(0, 0);

/// Pending bytes in [`EVENTS`] past which a record wakes the consumer, set
/// by the loader. A wakeup (an irq_work and a task wakeup, in the traced
/// process's context) costs far more than the submit itself, so records
/// are submitted without one and the consumer drains on its own timer;
/// only a filling ring wakes it early.
#[unsafe(no_mangle)]
static RING_WAKEUP_BYTES: Global<u64> = Global::new(u64::MAX);

/// Adds `by` to a per-CPU counter. Per-CPU slots need no atomics.
#[inline(always)]
pub(crate) fn count(counter: Counter, by: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer comes from a successful lookup in a per-CPU
        // array, so it is valid and only this CPU touches it; programs do not
        // preempt each other on one CPU.
        unsafe { *slot += by };
    }
}

/// The calling process's tgid if it is a target, else `None`.
#[inline(always)]
pub(crate) fn target_tgid() -> Option<(u32, u32)> {
    let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: the value is only tested for presence, never read through.
    let hit = unsafe { TARGET_TGIDS.get(&tgid) }.is_some();
    hit.then_some((tgid, pid_tgid as u32))
}

/// Header for a record produced now by the calling thread.
#[inline(always)]
pub(crate) fn header(kind: RecordKind, tgid: u32, tid: u32) -> RecordHeader {
    RecordHeader {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        kind: kind as u16,
        _pad0: 0,
        tgid,
        tid,
        _pad1: 0,
    }
}

/// Submit flags for a record: no wakeup, unless the ring is filling up.
#[inline(always)]
pub(crate) fn submit_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA.into()) >= RING_WAKEUP_BYTES.load() {
        count(Counter::RingWakeups, 1);
        BPF_RB_FORCE_WAKEUP.into()
    } else {
        BPF_RB_NO_WAKEUP.into()
    }
}

/// Writes `record` to the ring buffer, counting a drop when it is full.
/// Returns whether it was delivered.
#[inline(always)]
pub(crate) fn emit<T: 'static>(record: T) -> bool {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(record);
            entry.submit(submit_flags());
            true
        }
        None => {
            count(Counter::RingbufDrops, 1);
            false
        }
    }
}

/// The user registers the kernel saved when the current task entered the
/// kernel: inside a syscall, its number (`orig_ax`), arguments (`di`,
/// `si`, `dx`) and the caller's frame pointer (`bp`). `None` if
/// unreadable.
#[inline(always)]
pub(crate) fn user_regs() -> Option<pt_regs> {
    // SAFETY: both helpers take and return kernel pointers the verifier
    // tracks (the current task and its saved user registers); the read is a
    // checked probe read of the whole struct.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const pt_regs;
        if regs.is_null() {
            return None;
        }
        bpf_probe_read_kernel(regs).ok()
    }
}

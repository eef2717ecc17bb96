//! Maps and helpers shared by every program. Sizes are 0 here where the
//! loader sets them (`EbpfLoader::map_max_entries`).

use aya_ebpf::{
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

/// Writes `record` to the ring buffer, counting a drop when it is full.
/// Returns whether it was delivered.
#[inline(always)]
pub(crate) fn emit<T: 'static>(record: T) -> bool {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(record);
            entry.submit(0);
            true
        }
        None => {
            count(Counter::RingbufDrops, 1);
            false
        }
    }
}

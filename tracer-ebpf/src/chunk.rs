//! Emitting byte-stream chunks with exact offsets. Every byte a probe sees
//! advances its stream's offset whether or not it reaches userspace, so a
//! lost byte always shows up as a hole between two chunk offsets.

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_probe_read_user},
    macros::map,
    maps::{LruHashMap, PerCpuArray},
};
use tracer_common::{
    counters::Counter,
    record::{
        CHUNK_DATA_MAX, CHUNK_FLAG_STREAM_START, CHUNKS_PER_CALL_MAX, ChunkHeader, ChunkRecord,
        RecordKind, StreamKey, StreamState,
    },
};

use crate::maps::{EVENTS, count, header};

#[map]
pub(crate) static STREAM_OFFSETS: LruHashMap<StreamKey, StreamState> =
    LruHashMap::with_max_entries(0, 0);

#[map]
static CHUNK_SCRATCH: PerCpuArray<ChunkRecord> = PerCpuArray::with_max_entries(1, 0);

const HEADER_LEN: usize = size_of::<ChunkHeader>();

/// The stream key for one direction of an fd seen through one source.
#[inline(always)]
pub(crate) fn stream_key(tgid: u32, fd: i32, conn: u64, direction: u8, source: u8) -> StreamKey {
    StreamKey {
        tgid,
        fd,
        conn,
        direction,
        source,
        _pad0: [0; 6],
    }
}

/// Copies `len` bytes at user address `buf` into chunk records for the
/// stream `key`, advancing its offset by `len` in every case.
#[inline(always)]
pub(crate) fn emit_chunks(key: &StreamKey, tid: u32, fd: i32, buf: u64, len: u64) {
    if len == 0 {
        return;
    }
    let state = match STREAM_OFFSETS.get_ptr_mut(key) {
        Some(state) => state,
        None => {
            count(Counter::StreamStarts, 1);
            let fresh = StreamState {
                next_offset: 0,
                start_pending: 1,
                closed: 0,
            };
            if STREAM_OFFSETS.insert(key, &fresh, 0).is_err() {
                count(Counter::LostBytes, len);
                return;
            }
            match STREAM_OFFSETS.get_ptr_mut(key) {
                Some(state) => state,
                None => {
                    count(Counter::LostBytes, len);
                    return;
                }
            }
        }
    };
    // SAFETY: the pointer comes from a successful map lookup.
    unsafe {
        if (*state).closed != 0 {
            // The fd was closed (its close record lost) and reused: a new
            // stream. Userspace never learns the old one's end offset; the
            // close's failed delivery was counted as a ring-buffer drop.
            *state = StreamState {
                next_offset: 0,
                start_pending: 1,
                closed: 0,
            };
            count(Counter::StreamStarts, 1);
        }
    }
    // SAFETY: the pointer comes from a successful map lookup.
    let (start, flags) = unsafe {
        let start = (*state).next_offset;
        // Publish the new end first: a concurrent call on the same stream
        // (Go serialises Write and Read per conn, so this is rare) then gets
        // a disjoint range instead of an overlapping one.
        (*state).next_offset = start + len;
        let flags = if (*state).start_pending != 0 {
            CHUNK_FLAG_STREAM_START
        } else {
            0
        };
        (start, flags)
    };

    let chunks = len.div_ceil(CHUNK_DATA_MAX as u64);
    let mut step = ChunkLoop {
        fd,
        key: *key,
        tid,
        buf,
        len,
        start,
        flags,
        state,
        done: 0,
    };
    let calls = if chunks > CHUNKS_PER_CALL_MAX as u64 {
        CHUNKS_PER_CALL_MAX as u64
    } else {
        chunks
    };
    // bpf_loop (Linux 5.17+) runs the body as a callback the verifier checks
    // once, so a call may span many chunks; an unrolled loop of that length
    // exceeds the verifier's budget.
    // SAFETY: chunk_step has the callback signature bpf_loop expects, and
    // `step` outlives the call.
    unsafe {
        bpf_loop(
            calls as u32,
            chunk_step as *mut core::ffi::c_void,
            core::ptr::addr_of_mut!(step).cast(),
            0,
        );
    }
    if step.done < len {
        // Longer than CHUNKS_PER_CALL_MAX chunks: the tail is a gap.
        count(Counter::LostBytes, len - step.done);
    }
}

/// State shared by the iterations of one call's chunk loop.
#[repr(C)]
struct ChunkLoop {
    /// The fd to report (the stream's, or a Go TLS conn's bound fd, or -1).
    fd: i32,
    key: StreamKey,
    tid: u32,
    buf: u64,
    len: u64,
    start: u64,
    flags: u16,
    state: *mut StreamState,
    done: u64,
}

/// One chunk of a call: copies up to CHUNK_DATA_MAX bytes to the ring.
/// Returns 1 to stop the loop.
#[inline(never)]
extern "C" fn chunk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer emit_chunks gave it.
    let step = unsafe { &mut *ctx.cast::<ChunkLoop>() };
    if step.done >= step.len {
        return 1;
    }
    let remaining = step.len - step.done;
    let n = if remaining > CHUNK_DATA_MAX as u64 {
        CHUNK_DATA_MAX as u64
    } else {
        remaining
    };
    let Some(scratch) = CHUNK_SCRATCH.get_ptr_mut(0) else {
        count(Counter::LostBytes, n);
        step.done += n;
        return 0;
    };
    // SAFETY: scratch is this CPU's slot of a per-CPU array; n is at most
    // CHUNK_DATA_MAX, the size of `data`; bpf_probe_read_user checks the
    // user address.
    let copied = unsafe {
        (*scratch).header = ChunkHeader {
            header: header(RecordKind::Chunk, step.key.tgid, step.tid),
            fd: step.fd,
            direction: step.key.direction,
            source: step.key.source,
            flags: step.flags,
            offset: step.start + step.done,
            conn: step.key.conn,
            len: n as u32,
            _pad0: 0,
        };
        let dst = core::ptr::addr_of_mut!((*scratch).data).cast::<core::ffi::c_void>();
        bpf_probe_read_user(dst, n as u32, (step.buf + step.done) as *const _)
    };
    let sent = copied == 0 && {
        let total = HEADER_LEN + n as usize;
        if total > size_of::<ChunkRecord>() {
            false
        } else {
            // SAFETY: `total` bytes of the scratch record are initialised:
            // the header and `n` copied payload bytes.
            let bytes = unsafe { core::slice::from_raw_parts(scratch.cast::<u8>(), total) };
            EVENTS.output::<[u8]>(bytes, 0).is_ok()
        }
    };
    if sent {
        count(Counter::Chunks, 1);
        count(Counter::ChunkBytes, n);
        if step.flags != 0 {
            // SAFETY: the pointer came from a successful map lookup in this
            // program run; map values stay valid for its duration.
            unsafe { (*step.state).start_pending = 0 };
            step.flags = 0;
        }
    } else {
        count(Counter::LostBytes, n);
        if copied != 0 {
            count(Counter::ReadErrors, 1);
        }
    }
    step.done += n;
    0
}

/// Advances the stream `key` by `len` bytes without capturing them: they
/// reach userspace as a gap of exactly that size.
#[inline(always)]
pub(crate) fn skip_bytes(key: &StreamKey, len: u64) {
    count(Counter::LostBytes, len);
    match STREAM_OFFSETS.get_ptr_mut(key) {
        // SAFETY: the pointer comes from a successful map lookup.
        Some(state) => unsafe { (*state).next_offset += len },
        None => {
            count(Counter::StreamStarts, 1);
            let fresh = StreamState {
                next_offset: len,
                start_pending: 1,
                closed: 0,
            };
            let _ = STREAM_OFFSETS.insert(key, &fresh, 0);
        }
    }
}

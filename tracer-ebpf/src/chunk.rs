//! Emitting byte-stream chunks with exact offsets. Every byte a probe sees
//! advances its stream's offset whether or not it reaches userspace, so a
//! lost byte always shows up as a hole between two chunk offsets.
//!
//! A chunk is built in a per-CPU scratch record and copied to the ring at
//! its exact size. (Reserving in the ring at one of a few constant sizes and
//! reading the payload straight into it saves that copy, but multiplies the
//! verifier's paths past its limit in the socket programs.)

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_probe_read_user},
    macros::map,
    maps::{LruHashMap, PerCpuArray},
};
use tracer_common::{
    counters::Counter,
    record::{
        CHUNK_DATA_MAX, CHUNK_FLAG_CALL_START, CHUNK_FLAG_SENT, CHUNK_FLAG_STREAM_START,
        CHUNKS_PER_CALL_MAX, ChunkHeader, ChunkRecord, RecordKind, StreamCursor, StreamKey,
    },
};

use crate::maps::{EVENTS, count, header, submit_flags};

#[map]
pub(crate) static STREAM_OFFSETS: LruHashMap<StreamKey, StreamCursor> =
    LruHashMap::with_max_entries(0, 0);

#[map]
static CHUNK_SCRATCH: PerCpuArray<ChunkRecord<CHUNK_DATA_MAX>> =
    PerCpuArray::with_max_entries(1, 0);

const HEADER_LEN: usize = size_of::<ChunkHeader>();

/// The stream key for one direction of a socket's payload, as seen through
/// one source (Go TLS plaintext or the syscalls').
#[inline(always)]
pub(crate) fn stream_key(tgid: u32, sock: u64, direction: u8, source: u8) -> StreamKey {
    StreamKey {
        tgid,
        _pad0: 0,
        id: sock,
        direction,
        source,
        _pad1: [0; 6],
    }
}

/// A fresh stream's state.
#[inline(always)]
pub(crate) fn fresh_state(fd: i32) -> StreamCursor {
    StreamCursor {
        next_offset: 0,
        start_pending: 1,
        closed: 0,
        fd,
        _pad0: 0,
    }
}

/// The state of stream `key`, created (with `fresh`) if it has none; `None`
/// if the table refuses it.
#[inline(always)]
pub(crate) fn stream_state(key: &StreamKey, fresh: &StreamCursor) -> Option<*mut StreamCursor> {
    if let Some(state) = STREAM_OFFSETS.get_ptr_mut(key) {
        return Some(state);
    }
    count(Counter::StreamStarts, 1);
    STREAM_OFFSETS.insert(key, fresh, 0).ok()?;
    STREAM_OFFSETS.get_ptr_mut(key)
}

/// Copies `len` bytes at user address `buf` into chunk records for the
/// stream whose state is `state`, advancing its offset by `len` in every
/// case. `conn` is the Go TLS conn to name (or 0); `sent`, when set, marks
/// the call's bytes as all in the kernel with the socket's `write_seq`
/// then (on the last chunk).
#[inline(always)]
pub(crate) fn emit_chunks(
    key: &StreamKey,
    state: *mut StreamCursor,
    tid: u32,
    conn: u64,
    buf: u64,
    len: u64,
    sent: u64,
) {
    if len == 0 {
        return;
    }
    // SAFETY: the pointer comes from a successful map lookup in this
    // program run; map values stay valid for its duration.
    let (start, flags, fd) = unsafe {
        if (*state).closed != 0 {
            // The socket was closed (its close record lost) and its key
            // reused: a new stream. Userspace sweeps the old one's end.
            (*state).next_offset = 0;
            (*state).start_pending = 1;
            (*state).closed = 0;
            count(Counter::StreamStarts, 1);
        }
        let start = (*state).next_offset;
        // Publish the new end first: a concurrent call on the same stream
        // (Go serialises Write and Read per conn, so this is rare) then gets
        // a disjoint range instead of an overlapping one.
        (*state).next_offset = start + len;
        let flags = if (*state).start_pending != 0 {
            CHUNK_FLAG_STREAM_START | CHUNK_FLAG_CALL_START
        } else {
            CHUNK_FLAG_CALL_START
        };
        (start, flags, (*state).fd)
    };
    let mut step = ChunkLoop {
        key: *key,
        fd,
        tid,
        conn,
        sent,
        buf,
        len,
        start,
        flags,
        state,
        done: 0,
    };
    let chunks = len.div_ceil(CHUNK_DATA_MAX as u64);
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
    key: StreamKey,
    /// What the chunks say of their connection.
    fd: i32,
    tid: u32,
    conn: u64,
    /// Non-zero: the call's bytes are all sent; the low 32 bits are the
    /// socket's `write_seq` then.
    sent: u64,
    buf: u64,
    len: u64,
    start: u64,
    flags: u16,
    state: *mut StreamCursor,
    done: u64,
}

/// One chunk of a call: copies up to CHUNK_DATA_MAX bytes to the ring.
/// Returns 1 to stop the loop.
#[inline(never)]
extern "C" fn chunk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop (or emit_chunks) passes the pointer to its ChunkLoop.
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
    let sent = chunk_out(step, n);
    // Only the call's first chunk starts the call.
    step.flags &= !CHUNK_FLAG_CALL_START;
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
    }
    step.done += n;
    0
}

/// Builds one chunk of `n <= CHUNK_DATA_MAX` payload bytes in this CPU's
/// scratch record and copies it to the ring. Returns whether it was
/// delivered.
#[inline(always)]
fn chunk_out(step: &ChunkLoop, n: u64) -> bool {
    let Some(scratch) = CHUNK_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let last = step.done + n >= step.len;
    let (sent_flag, write_seq) = if last && step.sent != 0 {
        (CHUNK_FLAG_SENT, step.sent as u32)
    } else {
        (0, 0)
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
            flags: step.flags | sent_flag,
            offset: step.start + step.done,
            tls_conn: step.conn,
            sock: step.key.id,
            len: n as u32,
            write_seq,
        };
        let dst = core::ptr::addr_of_mut!((*scratch).data).cast::<core::ffi::c_void>();
        bpf_probe_read_user(dst, n as u32, (step.buf + step.done) as *const _)
    };
    if copied != 0 {
        count(Counter::ReadErrors, 1);
        return false;
    }
    let total = HEADER_LEN + n as usize;
    if total > size_of::<ChunkRecord<CHUNK_DATA_MAX>>() {
        return false;
    }
    // SAFETY: `total` bytes of the scratch record are initialised: the
    // header and `n` copied payload bytes.
    let bytes = unsafe { core::slice::from_raw_parts(scratch.cast::<u8>(), total) };
    if EVENTS.output::<[u8]>(bytes, submit_flags()).is_ok() {
        true
    } else {
        count(Counter::RingbufDrops, 1);
        false
    }
}

/// Advances the stream `key` by `len` bytes without capturing them: they
/// reach userspace as a gap of exactly that size.
#[inline(always)]
pub(crate) fn skip_bytes(key: &StreamKey, fresh: &StreamCursor, len: u64) {
    count(Counter::LostBytes, len);
    if let Some(state) = stream_state(key, fresh) {
        // SAFETY: the pointer comes from a successful map lookup.
        unsafe { (*state).next_offset += len };
    }
}

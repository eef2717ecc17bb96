//! Syscall tracepoints: fd lifetime (close) ends captured streams.

use aya_ebpf::{Global, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    layout::{SYSCALL_FD_LAYOUT_PLACEHOLDER, SyscallFdLayout},
    record::{ChunkSource, Direction, FdClose, RecordKind},
};

use crate::{
    chunk::{STREAM_OFFSETS, stream_key},
    io::unbind_fd,
    maps::{emit, header, target_tgid},
};

/// Field offsets of `syscalls:sys_enter_close`, set by the loader.
#[unsafe(no_mangle)]
static CLOSE_LAYOUT: Global<SyscallFdLayout> = Global::new(SYSCALL_FD_LAYOUT_PLACEHOLDER);

#[tracepoint]
fn sys_enter_close(ctx: TracePointContext) -> u32 {
    match try_sys_enter_close(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_sys_enter_close(ctx: &TracePointContext) -> Result<(), i32> {
    let Some((tgid, tid)) = target_tgid() else {
        return Ok(());
    };
    // SAFETY: the offset comes from the tracepoint's format file; read_at
    // fails cleanly on a bad offset.
    let fd = unsafe { ctx.read_at::<u64>(CLOSE_LAYOUT.load().fd as usize)? } as i32;
    let conn = unbind_fd(tgid, fd);
    // Go TLS streams are the conn's; syscall streams are the fd's.
    let keys = [
        stream_key(
            tgid,
            -1,
            conn,
            Direction::Egress as u8,
            ChunkSource::GoTls as u8,
        ),
        stream_key(
            tgid,
            -1,
            conn,
            Direction::Ingress as u8,
            ChunkSource::GoTls as u8,
        ),
        stream_key(
            tgid,
            fd,
            0,
            Direction::Egress as u8,
            ChunkSource::Syscall as u8,
        ),
        stream_key(
            tgid,
            fd,
            0,
            Direction::Ingress as u8,
            ChunkSource::Syscall as u8,
        ),
    ];
    let mut end_offsets = [u64::MAX; 4];
    let mut any = false;
    // Zipped, not indexed: an index the compiler cannot prove in bounds
    // leaves a panic path, which the verifier rejects.
    for (key, end) in keys.iter().zip(end_offsets.iter_mut()) {
        if key.source == ChunkSource::GoTls as u8 && conn == 0 {
            continue;
        }
        // SAFETY: the value is copied out.
        if let Some(state) = unsafe { STREAM_OFFSETS.get(key) }.copied() {
            *end = state.next_offset;
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    let delivered = emit(FdClose {
        header: header(RecordKind::FdClose, tgid, tid),
        fd,
        _pad0: 0,
        conn,
        end_offsets,
    });
    for (key, end) in keys.iter().zip(end_offsets.iter()) {
        if *end == u64::MAX {
            continue;
        }
        if delivered {
            let _ = STREAM_OFFSETS.remove(key);
        } else if let Some(state) = STREAM_OFFSETS.get_ptr_mut(key) {
            // SAFETY: the pointer comes from a successful map lookup.
            unsafe { (*state).closed = 1 };
        }
    }
    Ok(())
}

//! Syscall tracepoints: fd lifetime (close) ends captured streams.

use aya_ebpf::{Global, macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    layout::{SYSCALL_FD_LAYOUT_PLACEHOLDER, SyscallFdLayout},
    record::{ChunkSource, Direction, FdClose, RecordKind},
};

use crate::{
    chunk::{STREAM_OFFSETS, stream_key},
    io::{TLS_FDS, fd_key},
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
    let streams = [
        (Direction::Egress, ChunkSource::GoTls),
        (Direction::Ingress, ChunkSource::GoTls),
        (Direction::Egress, ChunkSource::Syscall),
        (Direction::Ingress, ChunkSource::Syscall),
    ];
    let mut end_offsets = [u64::MAX; 4];
    let mut any = false;
    for (i, (direction, source)) in streams.iter().enumerate() {
        let key = stream_key(tgid, fd, *direction as u8, *source as u8);
        // SAFETY: the value is copied out.
        if let Some(state) = unsafe { STREAM_OFFSETS.get(&key) }.copied() {
            end_offsets[i] = state.next_offset;
            any = true;
        }
    }
    let _ = TLS_FDS.remove(&fd_key(tgid, fd));
    if !any {
        return Ok(());
    }
    let delivered = emit(FdClose {
        header: header(RecordKind::FdClose, tgid, tid),
        fd,
        _pad0: 0,
        end_offsets,
    });
    for (direction, source) in streams.iter() {
        let key = stream_key(tgid, fd, *direction as u8, *source as u8);
        if delivered {
            let _ = STREAM_OFFSETS.remove(&key);
        } else if let Some(state) = STREAM_OFFSETS.get_ptr_mut(&key) {
            // SAFETY: the pointer comes from a successful map lookup.
            unsafe { (*state).closed = 1 };
        }
    }
    Ok(())
}

//! watchtrace's kernel side: tracepoints and uprobes only (no kprobes, no
//! fentry), each program a thin wrapper around a `try_` function.
#![no_std]
#![no_main]

mod chunk;
mod go_tls;
mod maps;
mod sock;
mod tcp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic ("last insn is not an exit or
    // jmp"), so this is never reached in a loaded program.
    loop {}
}

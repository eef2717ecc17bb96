//! Where a Go function's body starts, after its stack-check prologue.
//!
//! A Go function (unless NOSPLIT) opens with
//! `cmp rsp, [r14+0x10]` (or `lea r12, [rsp-N]; cmp r12, [r14+0x10]`)
//! and `jbe` to a block at its end that calls `runtime.morestack`, grows the
//! goroutine's stack and jumps back to the entry. A uprobe at the entry
//! therefore fires twice for a call that grows the stack: a Write captured
//! there would be captured twice. At the instruction after the `jbe` it
//! fires exactly once per executed call, and the register arguments are
//! still untouched (the prologue only compares).

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};

/// How far into a function the stack check may be found.
const PROLOGUE_INSTRUCTIONS: usize = 6;

/// Byte offset (from the function's start) of the first instruction after
/// the stack-check branch, or `None` when the function has no stack check
/// (NOSPLIT) and its entry is already its body.
pub fn body_offset(code: &[u8], address: u64) -> Option<usize> {
    let end = address + code.len() as u64;
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    for _ in 0..PROLOGUE_INSTRUCTIONS {
        if !decoder.can_decode() {
            return None;
        }
        decoder.decode_out(&mut instruction);
        if instruction.is_invalid() {
            return None;
        }
        match instruction.flow_control() {
            FlowControl::ConditionalBranch => {
                // The morestack block is forward, inside the function.
                let target = instruction.near_branch_target();
                let after = instruction.next_ip();
                return (target > after && target < end).then(|| (after - address) as usize);
            }
            FlowControl::Next => {}
            // A call, jump or return first: no stack check.
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_the_small_frame_stack_check() {
        // cmp rsp,[r14+0x10]; jbe +0x20; push rbp; ... (padding to 0x40)
        let mut code = vec![0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55];
        code.resize(0x40, 0xcc);
        assert_eq!(body_offset(&code, 0x1000), Some(6));
    }

    #[test]
    fn skips_the_large_frame_stack_check() {
        // lea r12,[rsp-0x100]; cmp r12,[r14+0x10]; jbe +0x30
        let mut code = vec![
            0x4c, 0x8d, 0xa4, 0x24, 0x00, 0xff, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x76, 0x30,
        ];
        code.resize(0x60, 0xcc);
        assert_eq!(body_offset(&code, 0x4000), Some(14));
    }

    #[test]
    fn a_nosplit_function_has_no_prologue_to_skip() {
        // mov rax, rbx; ret
        let code = [0x48, 0x89, 0xd8, 0xc3];
        assert_eq!(body_offset(&code, 0x1000), None);
    }
}

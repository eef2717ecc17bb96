//! The RET instructions of an x86-64 function, where uprobes stand in for a
//! uretprobe (which would corrupt Go's movable stacks).
//!
//! The function's bytes are decoded linearly from its entry to its end. Go
//! emits no data inside amd64 text, so a linear sweep sees every instruction;
//! the sweep is checked to stay in sync: every byte must decode, the last
//! instruction must end exactly at the function's end, and every direct
//! branch into the function must land on an instruction start.

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction, Mnemonic, OpKind};
use thiserror::Error;

/// The function's bytes do not decode as consistent x86-64 code.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RetSiteError {
    /// Bytes at `address` are not a valid instruction.
    #[error("invalid instruction at {address:#x}")]
    Invalid {
        /// Virtual address of the offending bytes.
        address: u64,
    },
    /// The last instruction runs past the end of the function.
    #[error("instruction at {address:#x} runs past the function's end")]
    Truncated {
        /// Virtual address of the instruction.
        address: u64,
    },
    /// A branch targets the middle of an instruction: the sweep lost sync
    /// (or the bytes are not code).
    #[error("branch at {from:#x} targets {target:#x}, inside an instruction")]
    OutOfSync {
        /// Address of the branch.
        from: u64,
        /// Its target.
        target: u64,
    },
}

/// File offsets of every near RET (`C3`, `C2 iw`, with any prefixes) in the
/// function whose bytes are `code`, loaded at `address`, `code[0]` being at
/// `file_offset` in the file. `code` must end at the function's end
/// (trailing INT3 padding is harmless: it decodes as instructions).
pub fn find_ret_sites(
    code: &[u8],
    address: u64,
    file_offset: u64,
) -> Result<Vec<u64>, RetSiteError> {
    sweep(code, address, file_offset).map(|sweep| sweep.rets)
}

/// What a linear sweep of a function found.
#[derive(Debug)]
pub(crate) struct Sweep {
    /// File offsets of the RETs.
    pub(crate) rets: Vec<u64>,
    /// Targets of the direct CALL/JMP/Jcc instructions, anywhere.
    pub(crate) branch_targets: Vec<u64>,
}

/// Decodes the function linearly, checking that the sweep stays in sync.
pub(crate) fn sweep(code: &[u8], address: u64, file_offset: u64) -> Result<Sweep, RetSiteError> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut instruction = Instruction::default();
    let mut starts = vec![false; code.len()];
    let mut branches = Vec::new();
    let mut rets = Vec::new();
    while decoder.can_decode() {
        let position = decoder.position();
        decoder.decode_out(&mut instruction);
        let here = instruction.ip();
        if instruction.is_invalid() {
            return Err(match decoder.last_error() {
                DecoderError::NoMoreBytes => RetSiteError::Truncated { address: here },
                _ => RetSiteError::Invalid { address: here },
            });
        }
        starts[position] = true;
        if instruction.mnemonic() == Mnemonic::Ret {
            rets.push(file_offset.wrapping_add(position as u64));
        }
        if matches!(
            instruction.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        ) {
            branches.push((here, instruction.near_branch_target()));
        }
    }
    for &(from, target) in &branches {
        let inside = target
            .checked_sub(address)
            .and_then(|delta| usize::try_from(delta).ok())
            .filter(|&delta| delta < code.len());
        if let Some(delta) = inside
            && !starts[delta]
        {
            return Err(RetSiteError::OutOfSync { from, target });
        }
    }
    Ok(Sweep {
        rets,
        branch_targets: branches.into_iter().map(|(_, target)| target).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plain_and_immediate_rets() {
        // push rbp; mov rbp,rsp; pop rbp; ret; nop; ret 8
        let code = [0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3, 0x90, 0xc2, 0x08, 0x00];
        assert_eq!(
            find_ret_sites(&code, 0x40_1000, 0x1000),
            Ok(vec![0x1005, 0x1007])
        );
    }

    #[test]
    fn c3_inside_an_immediate_is_not_a_ret() {
        // mov eax,0xc3c3c3c3; ret
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3];
        assert_eq!(find_ret_sites(&code, 0x1000, 0x500), Ok(vec![0x505]));
    }

    #[test]
    fn go_prologue_with_early_return_and_morestack_tail() {
        // A Go 1.17+ shape:
        //   0: cmp rsp,[r14+0x10]      49 3b 66 10
        //   4: jbe 0x11                76 0b
        //   6: sub rsp,0x18            48 83 ec 18
        //   a: add rsp,0x18            48 83 c4 18
        //   e: ret                     c3
        //   f: int3; int3              cc cc   (not reached by the jbe)
        //  11: call rel32 (morestack)  e8 00 00 00 00
        //  16: jmp 0x0                 eb e8
        let code = [
            0x49, 0x3b, 0x66, 0x10, 0x76, 0x0b, 0x48, 0x83, 0xec, 0x18, 0x48, 0x83, 0xc4, 0x18,
            0xc3, 0xcc, 0xcc, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xeb, 0xe8,
        ];
        assert_eq!(find_ret_sites(&code, 0x40_0000, 0x0), Ok(vec![0x0e]));
    }

    #[test]
    fn rep_ret_is_a_ret() {
        // rep ret (f3 c3), as some assemblers emit.
        assert_eq!(find_ret_sites(&[0xf3, 0xc3], 0x10, 0x10), Ok(vec![0x10]));
    }

    #[test]
    fn trailing_int3_padding_is_harmless() {
        assert_eq!(find_ret_sites(&[0xc3, 0xcc, 0xcc, 0xcc], 0, 0), Ok(vec![0]));
    }

    #[test]
    fn far_ret_is_not_reported() {
        // retf (cb): not something a uprobe on a Go function should expect.
        assert_eq!(find_ret_sites(&[0xcb, 0xc3], 0, 0), Ok(vec![1]));
    }

    #[test]
    fn truncated_instruction_is_an_error() {
        // mov eax, imm32 with only two immediate bytes.
        assert_eq!(
            find_ret_sites(&[0xc3, 0xb8, 0x01, 0x02], 0x100, 0),
            Err(RetSiteError::Truncated { address: 0x101 })
        );
    }

    #[test]
    fn invalid_instruction_is_an_error() {
        // 0x06 (push es) is invalid in 64-bit mode.
        assert_eq!(
            find_ret_sites(&[0x90, 0x06, 0xc3], 0x100, 0),
            Err(RetSiteError::Invalid { address: 0x101 })
        );
    }

    #[test]
    fn branch_into_an_instruction_means_lost_sync() {
        //   0: jmp 0x3   eb 01
        //   2: mov eax, imm32 (b8 c3 00 00 00): 0x3 is inside it
        //   7: ret
        let code = [0xeb, 0x01, 0xb8, 0xc3, 0x00, 0x00, 0x00, 0xc3];
        assert_eq!(
            find_ret_sites(&code, 0x1000, 0),
            Err(RetSiteError::OutOfSync {
                from: 0x1000,
                target: 0x1003
            })
        );
    }

    #[test]
    fn branches_outside_the_function_are_not_checked() {
        // call far away; jmp backwards out of the function; ret
        let code = [0xe8, 0x00, 0x10, 0x00, 0x00, 0xeb, 0x80, 0xc3];
        assert_eq!(find_ret_sites(&code, 0x10_0000, 0x40), Ok(vec![0x47]));
    }

    #[test]
    fn sweep_reports_direct_branch_targets() {
        // call rel32 to 0x2000; jmp rcx (indirect: no target); ret
        let code = [0xe8, 0xfb, 0x0f, 0x00, 0x00, 0xff, 0xe1, 0xc3];
        let sweep = sweep(&code, 0x1000, 0).unwrap();
        assert_eq!(sweep.branch_targets, vec![0x2000]);
        assert_eq!(sweep.rets, vec![7]);
    }

    #[test]
    fn empty_code_has_no_rets() {
        assert_eq!(find_ret_sites(&[], 0, 0), Ok(vec![]));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in 0..200 {
            let code: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = find_ret_sites(&code, u64::MAX - 100, u64::MAX - 100);
        }
    }
}

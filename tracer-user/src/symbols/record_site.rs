//! Where a Go TLS conn's decrypted records can be read with one cheap
//! uprobe, whether a probe site is cheap at all, and whether Write keeps
//! its buffer where its sends can find it.
//!
//! A uprobe is a trap. x86-64 kernels emulate a few instructions at the
//! probe (`push` of a register, `jmp`/`jcc`/`call` with a relative target,
//! the standard `nop`s) and single-step any other out of line, which takes a
//! second trap: on a Firecracker guest ~0.5 µs per hit emulated against
//! ~6 µs single-stepped (`cargo xtask bench overhead`'s history). A `ret` is
//! never emulated, so a return probe is the dear kind.
//!
//! The plaintext a conn reads is therefore taken in
//! `crypto/tls.(*Conn).readRecordOrCCS` where
//! `(*halfConn).decrypt(record []byte) ([]byte, recordType, error)` has
//! just returned: at the first emulated instruction after the call, when
//! nothing in between writes the results (RAX `data.ptr`, RBX `data.len`,
//! DIL `typ`, RSI `err`'s type word; Go's register ABI) or branches away. The
//! conn is the method's receiver, found in its ABI spill slot at RBP+16:
//! the function must set up RBP as its frame pointer, spill RAX (the
//! receiver) to that slot, and never write the slot otherwise. One probe per
//! record, where `Read` would take two (entry and return) per call, and
//! callers call `Read` at least once per record.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};
use thiserror::Error;

/// Go's name of the function that reads and decrypts one record.
pub const GO_TLS_READ_RECORD: &str = "crypto/tls.(*Conn).readRecordOrCCS";
/// Go's name of the record decryption it calls.
pub const GO_TLS_DECRYPT: &str = "crypto/tls.(*halfConn).decrypt";

/// Why no cheap probe site was found; the caller falls back to nothing
/// rather than to a dear probe.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RecordSiteError {
    /// The bytes do not decode as code.
    #[error("invalid instruction at {address:#x}")]
    Invalid { address: u64 },
    /// No `call` to the decrypt function.
    #[error("no call to {GO_TLS_DECRYPT}")]
    NoDecryptCall,
    /// After the call, something other than plain instructions comes before
    /// an emulated one.
    #[error("no emulated instruction after the decrypt call at {call:#x} before {blocker:#x}")]
    NoEmulatedSite { call: u64, blocker: u64 },
    /// An instruction between the call and the site writes a result
    /// register or the receiver's slot.
    #[error("instruction at {address:#x} overwrites {what} before the probe site")]
    Clobbered { address: u64, what: &'static str },
    /// The function does not keep its receiver where the probe reads it.
    #[error("the receiver is not kept at [rbp+16]: {why}")]
    Receiver { why: &'static str },
}

/// Whether the kernel emulates `instruction` (whose bytes are `bytes`) at
/// a uprobe instead of single-stepping it: see `branch_setup_xol_ops` and
/// `push_setup_xol_ops` in arch/x86/kernel/uprobes.c.
pub fn is_emulated(instruction: &Instruction, bytes: &[u8]) -> bool {
    const NOPS: [&[u8]; 8] = [
        &[0x90],
        &[0x66, 0x90],
        &[0x0f, 0x1f, 0x00],
        &[0x0f, 0x1f, 0x40, 0x00],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    if NOPS.contains(&bytes) {
        return true;
    }
    // A 16-bit operand-size prefix is refused on branches.
    if bytes.first() == Some(&0x66) {
        return false;
    }
    let relative = matches!(
        instruction.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    );
    match instruction.mnemonic() {
        Mnemonic::Jmp | Mnemonic::Call => relative,
        _ if instruction.flow_control() == FlowControl::ConditionalBranch => {
            relative && !matches!(instruction.mnemonic(), Mnemonic::Jrcxz | Mnemonic::Loop)
        }
        // push r64: 50+r, or 41 50+r for r8-r15.
        Mnemonic::Push => match bytes {
            [op] => (0x50..=0x57).contains(op),
            [0x41, op] => (0x50..=0x57).contains(op),
            _ => false,
        },
        _ => false,
    }
}

/// Addresses of the probe sites in `readRecordOrCCS` (its bytes `code` at
/// `address`), given the entry of `decrypt`.
pub fn find_record_sites(
    code: &[u8],
    address: u64,
    decrypt: u64,
) -> Result<Vec<u64>, RecordSiteError> {
    let instructions = decode_all(code, address)?;
    check_receiver(&instructions)?;
    let mut sites = Vec::new();
    for (i, call) in instructions.iter().enumerate() {
        if call.mnemonic() == Mnemonic::Call
            && call.op0_kind() == OpKind::NearBranch64
            && call.near_branch_target() == decrypt
        {
            sites.push(site_after(
                code,
                address,
                &instructions[i + 1..],
                call.ip(),
            )?);
        }
    }
    if sites.is_empty() {
        return Err(RecordSiteError::NoDecryptCall);
    }
    Ok(sites)
}

fn decode_all(code: &[u8], address: u64) -> Result<Vec<Instruction>, RecordSiteError> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            return Err(RecordSiteError::Invalid {
                address: instruction.ip(),
            });
        }
        out.push(instruction);
    }
    Ok(out)
}

fn bytes_of<'a>(code: &'a [u8], address: u64, instruction: &Instruction) -> &'a [u8] {
    let start = (instruction.ip() - address) as usize;
    &code[start..start + instruction.len()]
}

/// The registers that hold what the probe reads, by full register.
const RESULTS: [(Register, &str); 5] = [
    (Register::RAX, "rax (data.ptr)"),
    (Register::RBX, "rbx (data.len)"),
    (Register::RDI, "rdi (the record type)"),
    (Register::RSI, "rsi (the error)"),
    (Register::RBP, "rbp (the frame pointer)"),
];

/// The first emulated instruction in `after` (what follows the call at
/// `call`), checking that the ones before it run straight through and
/// leave the results alone.
fn site_after(
    code: &[u8],
    address: u64,
    after: &[Instruction],
    call: u64,
) -> Result<u64, RecordSiteError> {
    first_emulated(code, address, after, &RESULTS).map_err(|blocked| match blocked {
        Blocked::Branch(blocker) => RecordSiteError::NoEmulatedSite { call, blocker },
        Blocked::Clobbered { address, what } => RecordSiteError::Clobbered { address, what },
    })
}

/// Why [`first_emulated`] found no site.
enum Blocked {
    /// A branch (or the end of the code) at this address came first.
    Branch(u64),
    /// An instruction wrote a register that had to be kept.
    Clobbered { address: u64, what: &'static str },
}

/// The address of the first instruction of `instructions` (decoded from
/// `code` at `address`) that the kernel emulates, reached straight through
/// without writing any of `keep`.
fn first_emulated(
    code: &[u8],
    address: u64,
    instructions: &[Instruction],
    keep: &[(Register, &'static str)],
) -> Result<u64, Blocked> {
    let mut info = InstructionInfoFactory::new();
    for instruction in instructions {
        if is_emulated(instruction, bytes_of(code, address, instruction)) {
            return Ok(instruction.ip());
        }
        if instruction.flow_control() != FlowControl::Next {
            return Err(Blocked::Branch(instruction.ip()));
        }
        for used in info.info(instruction).used_registers() {
            if !matches!(used.access(), OpAccess::Read | OpAccess::CondRead) {
                let full = used.register().full_register();
                if let Some((_, what)) = keep.iter().find(|(r, _)| *r == full) {
                    return Err(Blocked::Clobbered {
                        address: instruction.ip(),
                        what,
                    });
                }
            }
        }
    }
    Err(Blocked::Branch(address + code.len() as u64))
}

/// Where the function's ABI spill slot of its first argument is, as an
/// offset from RSP after the prologue, and checks that RBP is the frame
/// pointer with that slot at [rbp+16]. Go sets up its frame one of two
/// ways: `push rbp; mov rbp, rsp; sub rsp, F` (Go 1.21 on: the slot is at
/// [rsp+F+16]), or `sub rsp, F; mov [rsp+F-8], rbp; lea rbp, [rsp+F-8]`
/// (before: at [rsp+F+8]).
fn frame_slot(prologue: &[Instruction]) -> Result<i64, RecordSiteError> {
    let is_rbp_rsp = |i: &Instruction| {
        i.mnemonic() == Mnemonic::Mov
            && i.op0_register() == Register::RBP
            && i.op1_register() == Register::RSP
    };
    let sub_rsp = |i: &Instruction| {
        (i.mnemonic() == Mnemonic::Sub
            && i.op0_register() == Register::RSP
            && matches!(
                i.op1_kind(),
                OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate32
            ))
        .then(|| i.immediate(1) as i64)
    };
    if let Some(push) = prologue
        .iter()
        .position(|i| i.code() == Code::Push_r64 && i.op0_register() == Register::RBP)
    {
        let frame_pointer = prologue.get(push + 1).is_some_and(is_rbp_rsp);
        let frame = prologue.get(push + 2).and_then(sub_rsp);
        return match (frame_pointer, frame) {
            (true, Some(frame)) => Ok(frame + 16),
            (false, _) => Err(RecordSiteError::Receiver {
                why: "rbp is not set up as the frame pointer",
            }),
            (true, None) => Err(RecordSiteError::Receiver {
                why: "no sub rsp after the frame pointer",
            }),
        };
    }
    let sub =
        prologue
            .iter()
            .position(|i| sub_rsp(i).is_some())
            .ok_or(RecordSiteError::Receiver {
                why: "no frame set up in the prologue",
            })?;
    let frame = sub_rsp(&prologue[sub]).expect("found above");
    let saved = prologue.get(sub + 1).is_some_and(|i| {
        i.mnemonic() == Mnemonic::Mov
            && i.op0_kind() == OpKind::Memory
            && i.memory_base() == Register::RSP
            && i.memory_displacement64() as i64 == frame - 8
            && i.op1_register() == Register::RBP
    });
    let pointed = prologue.get(sub + 2).is_some_and(|i| {
        i.mnemonic() == Mnemonic::Lea
            && i.op0_register() == Register::RBP
            && i.memory_base() == Register::RSP
            && i.memory_displacement64() as i64 == frame - 8
    });
    if saved && pointed {
        Ok(frame + 8)
    } else {
        Err(RecordSiteError::Receiver {
            why: "rbp is not set up as the frame pointer",
        })
    }
}

/// Checks that the receiver stays at [rbp+16]: RBP is the frame pointer,
/// RAX (the receiver) is stored to its ABI spill slot, and nothing else
/// writes that slot.
fn check_receiver(instructions: &[Instruction]) -> Result<(), RecordSiteError> {
    check_spills(instructions, &[(Register::RAX, 0)])
}

/// Checks that each argument register in `spills` (with its slot's offset
/// from the first argument's) is stored to its ABI spill slot, `[rbp+16]`
/// plus that offset, and that nothing else writes those slots.
fn check_spills(
    instructions: &[Instruction],
    spills: &[(Register, i64)],
) -> Result<(), RecordSiteError> {
    let first_slot = frame_slot(&instructions[..instructions.len().min(8)])?;
    let mut info = InstructionInfoFactory::new();
    let mut spilled = vec![false; spills.len()];
    for instruction in instructions {
        for memory in info.info(instruction).used_memory() {
            if matches!(
                memory.access(),
                OpAccess::Read | OpAccess::CondRead | OpAccess::NoMemAccess
            ) {
                continue;
            }
            if memory.index() != Register::None {
                continue;
            }
            let displacement = memory.displacement() as i64;
            let offset = match memory.base() {
                Register::RSP => displacement - first_slot,
                Register::RBP => displacement - 16,
                _ => continue,
            };
            let Some(i) = spills.iter().position(|&(_, o)| o == offset) else {
                continue;
            };
            let spill = instruction.mnemonic() == Mnemonic::Mov
                && instruction.op1_kind() == OpKind::Register
                && instruction.op1_register() == spills[i].0;
            if !spill {
                return Err(RecordSiteError::Clobbered {
                    address: instruction.ip(),
                    what: "an argument's spill slot",
                });
            }
            spilled[i] = true;
        }
    }
    if spilled.iter().all(|&s| s) {
        Ok(())
    } else {
        Err(RecordSiteError::Receiver {
            why: "an argument is never spilled to its ABI slot",
        })
    }
}

/// Checks that `crypto/tls.(*Conn).Write(b []byte)` (its bytes `code` at
/// `address`) keeps `b` in its ABI spill slots, `b.ptr` (RBX) at [rbp+24]
/// and `b.len` (RCX) at [rbp+32], where the send tracepoint reads them
/// from its frame.
pub fn check_write_frame(code: &[u8], address: u64) -> Result<(), RecordSiteError> {
    let instructions = decode_all(code, address)?;
    check_spills(&instructions, &[(Register::RBX, 8), (Register::RCX, 16)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A readRecordOrCCS in Go 1.27's shape: prologue, spill, a call to
    /// decrypt at 0x2000, `test rsi, rsi; jne` after it.
    fn function(after_call: &[u8]) -> Vec<u8> {
        let mut code = vec![
            0x49, 0x3b, 0x66, 0x10, // cmp rsp, [r14+0x10]
            0x76, 0x40, // jbe (morestack)
            0x55, // push rbp
            0x48, 0x89, 0xe5, // mov rbp, rsp
            0x48, 0x83, 0xec, 0x20, // sub rsp, 0x20
            0x48, 0x89, 0x44, 0x24, 0x30, // mov [rsp+0x30], rax (0x20 + 16)
        ];
        // call rel32 to 0x2000, from 0x1000 + len.
        let call_at = 0x1000 + code.len() as u64;
        let rel = (0x2000i64 - (call_at as i64 + 5)) as i32;
        code.push(0xe8);
        code.extend_from_slice(&rel.to_le_bytes());
        code.extend_from_slice(after_call);
        code.resize(code.len() + 0x50, 0xcc);
        code
    }

    #[test]
    fn the_site_is_the_first_emulated_instruction_after_decrypt() {
        // test rsi, rsi (48 85 f6); jne +0x10 (75 10)
        let code = function(&[0x48, 0x85, 0xf6, 0x75, 0x10]);
        let sites = find_record_sites(&code, 0x1000, 0x2000).unwrap();
        assert_eq!(sites, vec![0x1000 + 19 + 5 + 3]);
    }

    #[test]
    fn a_result_register_written_first_is_refused() {
        // mov rbx, rcx (48 89 cb); jne
        let code = function(&[0x48, 0x89, 0xcb, 0x75, 0x10]);
        assert!(matches!(
            find_record_sites(&code, 0x1000, 0x2000),
            Err(RecordSiteError::Clobbered { .. })
        ));
    }

    #[test]
    fn a_ret_before_any_emulated_instruction_is_refused() {
        // mov rcx, rdx; ret
        let code = function(&[0x48, 0x89, 0xd1, 0xc3]);
        assert!(matches!(
            find_record_sites(&code, 0x1000, 0x2000),
            Err(RecordSiteError::NoEmulatedSite { .. })
        ));
    }

    #[test]
    fn a_receiver_never_spilled_is_refused() {
        let mut code = function(&[0x75, 0x10]);
        // Turn the spill into mov [rsp+0x30], rcx (48 89 4c 24 30).
        code[16] = 0x4c;
        assert!(matches!(
            find_record_sites(&code, 0x1000, 0x2000),
            Err(RecordSiteError::Clobbered { .. })
        ));
    }

    #[test]
    fn restoring_the_frame_pointer_first_is_refused() {
        // add rsp, 0x20; pop rbp; ret
        let code = function(&[0x48, 0x83, 0xc4, 0x20, 0x5d, 0xc3]);
        assert!(matches!(
            find_record_sites(&code, 0x1000, 0x2000),
            Err(RecordSiteError::Clobbered { what, .. }) if what.starts_with("rbp")
        ));
    }

    #[test]
    fn no_call_to_decrypt_is_an_error() {
        let code = function(&[0x75, 0x10]);
        assert_eq!(
            find_record_sites(&code, 0x1000, 0x3000),
            Err(RecordSiteError::NoDecryptCall)
        );
    }

    #[test]
    fn writes_b_must_stay_in_its_spill_slots() {
        // push rbp; mov rbp, rsp; sub rsp, 0x20; mov [rsp+0x38], rbx;
        // mov [rsp+0x40], rcx (slots 0x30 + 8, + 16).
        let good = [
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20, 0x48, 0x89, 0x5c, 0x24, 0x38, 0x48,
            0x89, 0x4c, 0x24, 0x40,
        ];
        assert_eq!(check_write_frame(&good, 0x1000), Ok(()));
        // b.len's slot overwritten from rdx later.
        let mut bad = good.to_vec();
        bad.extend_from_slice(&[0x48, 0x89, 0x54, 0x24, 0x40]);
        assert!(matches!(
            check_write_frame(&bad, 0x1000),
            Err(RecordSiteError::Clobbered { .. })
        ));
        // b.ptr never spilled.
        assert!(matches!(
            check_write_frame(&good[..13], 0x1000),
            Err(RecordSiteError::Receiver { .. })
        ));
    }

    #[test]
    fn the_receiver_slot_is_found_in_both_frame_layouts() {
        // Older Go: sub rsp, 0x20; mov [rsp+0x18], rbp; lea rbp, [rsp+0x18];
        // mov [rsp+0x28], rax (the slot, rbp+16); call decrypt; jne.
        let mut code = vec![
            0x48, 0x83, 0xec, 0x20, 0x48, 0x89, 0x6c, 0x24, 0x18, 0x48, 0x8d, 0x6c, 0x24, 0x18,
            0x48, 0x89, 0x44, 0x24, 0x28,
        ];
        let call_at = 0x1000 + code.len() as u64;
        let rel = (0x2000i64 - (call_at as i64 + 5)) as i32;
        code.push(0xe8);
        code.extend_from_slice(&rel.to_le_bytes());
        code.extend_from_slice(&[0x75, 0x10]);
        assert_eq!(
            find_record_sites(&code, 0x1000, 0x2000),
            Ok(vec![call_at + 5])
        );
    }

    #[test]
    fn emulated_instructions_are_those_the_kernel_emulates() {
        let check = |bytes: &[u8]| {
            let mut decoder = Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE);
            let instruction = decoder.decode();
            !instruction.is_invalid() && is_emulated(&instruction, bytes)
        };
        assert!(check(&[0x55]), "push rbp");
        assert!(check(&[0x41, 0x56]), "push r14");
        assert!(check(&[0x90]), "nop");
        assert!(check(&[0x0f, 0x1f, 0x40, 0x00]), "nopl 0(rax)");
        assert!(check(&[0x75, 0x10]), "jne rel8");
        assert!(check(&[0x0f, 0x85, 0, 0, 0, 0]), "jne rel32");
        assert!(check(&[0xe8, 0, 0, 0, 0]), "call rel32");
        assert!(check(&[0xeb, 0x10]), "jmp rel8");
        assert!(!check(&[0xc3]), "ret");
        assert!(!check(&[0xff, 0xd0]), "call rax");
        assert!(!check(&[0x48, 0x89, 0xe5]), "mov rbp, rsp");
        assert!(!check(&[0x5d]), "pop rbp");
        assert!(!check(&[0x66, 0xe8, 0, 0]), "callw");
    }
}

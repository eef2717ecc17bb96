//! Go's function table (`pclntab`), which even stripped Go binaries keep:
//! the runtime needs it for stack traces and garbage collection.
//!
//! The layout follows `debug/gosym/pclntab.go` and `runtime/symtab.go` of the
//! pinned toolchain. A header starts with a 4-byte magic, two zero bytes, the
//! pc quantum and the pointer size:
//!
//! | magic        | Go          | header words after the 8 bytes                                 |
//! |--------------|-------------|----------------------------------------------------------------|
//! | `0xfffffffb` | 1.2 – 1.15  | nfunc, then the functab itself                                 |
//! | `0xfffffffa` | 1.16 – 1.17 | nfunc, nfiles, funcname, cu, file, pc, func offsets            |
//! | `0xfffffff0` | 1.18 – 1.19 | nfunc, nfiles, textStart, funcname, cu, file, pc, func offsets |
//! | `0xfffffff1` | 1.20 –      | as 1.18                                                        |
//!
//! The functab is `nfunc` pairs (entry, offset of the function's `_func`)
//! plus one final entry: the end of the last function. Before 1.18 both are
//! pointer-sized and entries are absolute; from 1.18 both are `u32` and
//! entries are offsets from `runtime.text`. This module finds that address,
//! in order, from the `runtime.text` symbol; the header's textStart word
//! (filled by Go 1.18 to at least 1.23, written as 0, "unused", by 1.27);
//! `runtime.firstmoduledata.text` (found by scanning data for the
//! moduledata that points at this pclntab); or the `.text` section, which is
//! what Go's own tools assume but is wrong for externally linked binaries
//! such as Debian's etcd, whose `.text` starts with C code.
//!
//! A function's end is exact: the pc-delta sum of its stack-pointer table
//! (`pcsp`), which the compiler writes for the function's whole size. The
//! next function's entry (which includes the INT3 alignment padding) is the
//! fallback when that table is absent or does not fit.
//!
//! Names are not unique: an ABI wrapper carries the name of the function it
//! wraps, and generic instantiations can share a name; [`Pclntab::find`]
//! returns the first, [`Pclntab::find_all`] all of them with their flags.
//!
//! Every read is bounds-checked: malformed input yields an error, never a
//! panic.

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use thiserror::Error;

use super::image;

/// The pclntab is unusable.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum PclntabError {
    /// The file is not a readable ELF binary.
    #[error("not a readable ELF binary: {0}")]
    Elf(object::Error),
    /// No `.gopclntab` section, `runtime.pclntab` symbol or pclntab header.
    #[error("no Go function table (pclntab) found: not a Go binary?")]
    Missing,
    /// The header's magic number is not one this parser knows.
    #[error("unknown pclntab magic {0:#010x}")]
    UnknownMagic(u32),
    /// A field of the table points outside it or is implausible.
    #[error("malformed pclntab: {0}")]
    Malformed(&'static str),
    /// Go 1.18+ tables store entries relative to `runtime.text`, which could
    /// not be located.
    #[error("cannot locate runtime.text (the base of the function entries)")]
    NoTextStart,
}

/// The format generation of a pclntab (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PclntabVersion {
    /// Go 1.2 to 1.15.
    Go12,
    /// Go 1.16 and 1.17.
    Go116,
    /// Go 1.18 and 1.19.
    Go118,
    /// Go 1.20 and later.
    Go120,
}

impl PclntabVersion {
    /// The version with magic `magic`, read in the table's byte order.
    pub fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            0xffff_fffb => Some(Self::Go12),
            0xffff_fffa => Some(Self::Go116),
            0xffff_fff0 => Some(Self::Go118),
            0xffff_fff1 => Some(Self::Go120),
            _ => None,
        }
    }

    /// Whether function entries are `u32` offsets from `runtime.text`.
    fn relative_entries(self) -> bool {
        self >= Self::Go118
    }
}

/// A Go function's code range, as virtual addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoFunction {
    /// First instruction.
    pub entry: u64,
    /// One past the last instruction (alignment padding excluded when the
    /// table allows).
    pub end: u64,
}

/// A parsed pclntab header with the sub-tables it points to.
#[derive(Clone, Debug)]
pub struct Pclntab<'data> {
    version: PclntabVersion,
    big_endian: bool,
    quantum: u8,
    ptr_size: u8,
    nfunc: usize,
    text_start: u64,
    funcnametab: &'data [u8],
    pctab: &'data [u8],
    funcdata: &'data [u8],
    functab: &'data [u8],
}

/// Reads header word `index` (after the first 8 bytes).
fn header_word(data: &[u8], index: usize, ptr_size: usize, big_endian: bool) -> Option<u64> {
    image::read_uint(data, 8 + index * ptr_size, ptr_size, big_endian)
}

/// Magic, byte order, quantum and pointer size, if `data` starts like a
/// pclntab header.
fn header_prefix(data: &[u8]) -> Result<(PclntabVersion, bool, u8, u8), PclntabError> {
    let prefix = data
        .get(..8)
        .ok_or(PclntabError::Malformed("shorter than its header"))?;
    let le = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let be = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let (version, big_endian) = match (
        PclntabVersion::from_magic(le),
        PclntabVersion::from_magic(be),
    ) {
        (Some(v), _) => (v, false),
        (None, Some(v)) => (v, true),
        (None, None) => return Err(PclntabError::UnknownMagic(le)),
    };
    let (quantum, ptr_size) = (prefix[6], prefix[7]);
    if prefix[4] != 0 || prefix[5] != 0 {
        return Err(PclntabError::Malformed("header padding is not zero"));
    }
    if !matches!(quantum, 1 | 2 | 4) {
        return Err(PclntabError::Malformed("pc quantum is not 1, 2 or 4"));
    }
    if !matches!(ptr_size, 4 | 8) {
        return Err(PclntabError::Malformed("pointer size is not 4 or 8"));
    }
    Ok((version, big_endian, quantum, ptr_size))
}

impl<'data> Pclntab<'data> {
    /// Parses the table at the start of `data`. `text_start` is the address
    /// of `runtime.text`; it is only used by Go 1.18+ tables.
    pub fn parse(data: &'data [u8], text_start: u64) -> Result<Self, PclntabError> {
        let (version, big_endian, quantum, ptr_size) = header_prefix(data)?;
        let ps = usize::from(ptr_size);
        let word = |index: usize| {
            header_word(data, index, ps, big_endian)
                .ok_or(PclntabError::Malformed("header is truncated"))
        };
        let from = |index: usize| -> Result<&'data [u8], PclntabError> {
            let offset = usize::try_from(word(index)?)
                .map_err(|_| PclntabError::Malformed("sub-table offset is too large"))?;
            data.get(offset..).ok_or(PclntabError::Malformed(
                "sub-table offset is outside the table",
            ))
        };
        let nfunc = usize::try_from(word(0)?)
            .map_err(|_| PclntabError::Malformed("function count is too large"))?;
        let (funcnametab, pctab, funcdata, functab) = match version {
            PclntabVersion::Go118 | PclntabVersion::Go120 => {
                (from(3)?, from(6)?, from(7)?, from(7)?)
            }
            PclntabVersion::Go116 => (from(2)?, from(5)?, from(6)?, from(6)?),
            PclntabVersion::Go12 => {
                let functab = data
                    .get(8 + ps..)
                    .ok_or(PclntabError::Malformed("header is truncated"))?;
                (data, data, data, functab)
            }
        };
        let field = if version.relative_entries() { 4 } else { ps };
        let functab_len = nfunc
            .checked_mul(2)
            .and_then(|n| n.checked_add(1))
            .and_then(|n| n.checked_mul(field))
            .ok_or(PclntabError::Malformed("function count is too large"))?;
        let functab = functab
            .get(..functab_len)
            .ok_or(PclntabError::Malformed("function table is truncated"))?;
        Ok(Self {
            version,
            big_endian,
            quantum,
            ptr_size,
            nfunc,
            text_start,
            funcnametab,
            pctab,
            funcdata,
            functab,
        })
    }

    /// The table's format generation.
    pub fn version(&self) -> PclntabVersion {
        self.version
    }

    /// Pointer size of the target, in bytes.
    pub fn ptr_size(&self) -> u8 {
        self.ptr_size
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Whether the table lists no function.
    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// The `runtime.text` address used for Go 1.18+ entries.
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    fn field_size(&self) -> usize {
        if self.version.relative_entries() {
            4
        } else {
            usize::from(self.ptr_size)
        }
    }

    fn uint(&self, data: &[u8], offset: usize, size: usize) -> Option<u64> {
        image::read_uint(data, offset, size, self.big_endian)
    }

    /// Raw functab word `index` (entries at even, `_func` offsets at odd).
    fn functab_word(&self, index: usize) -> Result<u64, PclntabError> {
        let size = self.field_size();
        index
            .checked_mul(size)
            .and_then(|offset| self.uint(self.functab, offset, size))
            .ok_or(PclntabError::Malformed("function table index out of range"))
    }

    /// Entry address of function `i` (`i == len()` gives the end of text).
    fn pc(&self, i: usize) -> Result<u64, PclntabError> {
        let raw = self.functab_word(i.wrapping_mul(2))?;
        if self.version.relative_entries() {
            self.text_start
                .checked_add(raw)
                .ok_or(PclntabError::Malformed("entry address overflows"))
        } else {
            Ok(raw)
        }
    }

    /// The `_func` record of function `i`.
    fn func_record(&self, i: usize) -> Result<&'data [u8], PclntabError> {
        let offset = self.functab_word(i.wrapping_mul(2).wrapping_add(1))?;
        usize::try_from(offset)
            .ok()
            .and_then(|offset| self.funcdata.get(offset..))
            .ok_or(PclntabError::Malformed(
                "function record is outside the table",
            ))
    }

    /// Field `n` (1-based, `u32`) of a `_func` record, after its entry.
    fn func_field(&self, record: &[u8], n: usize) -> Result<u32, PclntabError> {
        let first = if self.version.relative_entries() {
            4
        } else {
            usize::from(self.ptr_size)
        };
        let value = self
            .uint(record, first + (n - 1) * 4, 4)
            .ok_or(PclntabError::Malformed("function record is truncated"))?;
        // Four bytes always fit a u32.
        Ok(value as u32)
    }

    /// The name bytes at `offset` in the function-name table (up to NUL).
    fn name_at(&self, offset: u32) -> Result<&'data [u8], PclntabError> {
        let tail = usize::try_from(offset)
            .ok()
            .and_then(|offset| self.funcnametab.get(offset..))
            .ok_or(PclntabError::Malformed(
                "function name is outside the table",
            ))?;
        let len = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or(PclntabError::Malformed("function name is not terminated"))?;
        Ok(&tail[..len])
    }

    /// Whether the name at `offset` is exactly `name`, without scanning for
    /// the terminator of longer names.
    fn name_is(&self, offset: u32, name: &[u8]) -> bool {
        let Ok(offset) = usize::try_from(offset) else {
            return false;
        };
        let Some(end) = offset.checked_add(name.len()) else {
            return false;
        };
        self.funcnametab.get(offset..end) == Some(name) && self.funcnametab.get(end) == Some(&0)
    }

    /// Checks that the `_func` record agrees with the functab on the entry,
    /// which catches a wrong layout or a table that is not a pclntab.
    fn check_record_entry(&self, i: usize, record: &[u8]) -> Result<(), PclntabError> {
        let size = self.field_size();
        let recorded = self.uint(record, 0, size);
        if recorded != Some(self.functab_word(i.wrapping_mul(2))?) {
            return Err(PclntabError::Malformed(
                "function record disagrees with the function table",
            ));
        }
        Ok(())
    }

    /// The function size according to its pcsp table, if it has one.
    fn pcsp_size(&self, record: &[u8]) -> Result<Option<u64>, PclntabError> {
        let pcsp = self.func_field(record, 4)?;
        if pcsp == 0 {
            return Ok(None);
        }
        let table = usize::try_from(pcsp)
            .ok()
            .and_then(|offset| self.pctab.get(offset..))
            .ok_or(PclntabError::Malformed("pcsp table is outside the table"))?;
        pcvalue_span(table, self.quantum).map(Some)
    }

    /// Function `i`: its name bytes and code range.
    fn function_at(&self, i: usize) -> Result<(&'data [u8], GoFunction), PclntabError> {
        if i >= self.nfunc {
            return Err(PclntabError::Malformed("function index out of range"));
        }
        let record = self.func_record(i)?;
        self.check_record_entry(i, record)?;
        let name = self.name_at(self.func_field(record, 1)?)?;
        Ok((name, self.range(i, record)?))
    }

    fn range(&self, i: usize, record: &[u8]) -> Result<GoFunction, PclntabError> {
        let entry = self.pc(i)?;
        let next = self.pc(i + 1)?;
        if next < entry {
            return Err(PclntabError::Malformed("function entries are not sorted"));
        }
        let end = match self.pcsp_size(record)? {
            Some(size) if size > 0 && size <= next - entry => entry + size,
            _ => next,
        };
        Ok(GoFunction { entry, end })
    }

    /// Function `i`: name and code range.
    pub fn function(&self, i: usize) -> Result<(&'data str, GoFunction), PclntabError> {
        let (name, function) = self.function_at(i)?;
        let name = std::str::from_utf8(name)
            .map_err(|_| PclntabError::Malformed("function name is not UTF-8"))?;
        Ok((name, function))
    }

    /// Every function, in address order.
    pub fn functions(
        &self,
    ) -> impl Iterator<Item = Result<(&'data str, GoFunction), PclntabError>> + '_ {
        (0..self.nfunc).map(|i| self.function(i))
    }

    /// The function named `name` (first match in address order, linear
    /// scan with early exit). See [`Self::find_all`] for duplicated names.
    pub fn find(&self, name: &str) -> Result<Option<GoFunction>, PclntabError> {
        let wanted = name.as_bytes();
        for i in 0..self.nfunc {
            let record = self.func_record(i)?;
            if self.name_is(self.func_field(record, 1)?, wanted) {
                self.check_record_entry(i, record)?;
                return self.range(i, record).map(Some);
            }
        }
        Ok(None)
    }

    /// Every function named `name`, in address order, with its flags. A name
    /// can appear more than once: an ABI wrapper has the name of the
    /// function it wraps (the symbol table calls the ABI0 one `name.abi0`).
    pub fn find_all(&self, name: &str) -> Result<Vec<(GoFunction, FuncFlags)>, PclntabError> {
        let wanted = name.as_bytes();
        let mut found = Vec::new();
        for i in 0..self.nfunc {
            let record = self.func_record(i)?;
            if self.name_is(self.func_field(record, 1)?, wanted) {
                self.check_record_entry(i, record)?;
                found.push((self.range(i, record)?, self.flags(record)));
            }
        }
        Ok(found)
    }

    /// The `flag` byte of a `_func` record (empty before Go 1.17).
    fn flags(&self, record: &[u8]) -> FuncFlags {
        // After entry and eight u32 fields (nine from Go 1.20: startLine),
        // then funcID.
        let offset = match self.version {
            PclntabVersion::Go12 => return FuncFlags(0),
            PclntabVersion::Go116 => usize::from(self.ptr_size) + 8 * 4 + 1,
            PclntabVersion::Go118 => 4 + 8 * 4 + 1,
            PclntabVersion::Go120 => 4 + 9 * 4 + 1,
        };
        FuncFlags(record.get(offset).copied().unwrap_or(0))
    }
}

/// The `flag` bits of a function (`abi.FuncFlag`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuncFlags(pub u8);

impl FuncFlags {
    /// `FuncFlagAsm`: implemented in assembly (ABI0), so its register-ABI
    /// callers go through an ABIInternal wrapper. Set by Go 1.18+ linkers.
    pub const ASM: u8 = 1 << 2;

    /// Whether the function is written in assembly.
    pub fn is_asm(self) -> bool {
        self.0 & Self::ASM != 0
    }
}

/// Reads a Go varint (little-endian base 128) of at most 32 bits.
fn read_varint(data: &[u8], pos: &mut usize) -> Result<u32, PclntabError> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let byte = *data
            .get(*pos)
            .ok_or(PclntabError::Malformed("pc-value table is truncated"))?;
        *pos += 1;
        value |= u32::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(PclntabError::Malformed("varint is too long"))
}

/// The pc span covered by a pc-value table: the sum of its pc deltas, times
/// the quantum (see `step` in `runtime/symtab.go`). The table ends at a
/// value delta of 0 that is not the first.
fn pcvalue_span(table: &[u8], quantum: u8) -> Result<u64, PclntabError> {
    let mut pos = 0;
    let mut span = 0u64;
    let mut first = true;
    loop {
        let value_delta = read_varint(table, &mut pos)?;
        if value_delta == 0 && !first {
            return Ok(span);
        }
        first = false;
        let pc_delta = read_varint(table, &mut pos)?;
        span = span
            .checked_add(u64::from(pc_delta) * u64::from(quantum))
            .ok_or(PclntabError::Malformed("pc-value table overflows"))?;
    }
}

/// Where the pclntab of an ELF binary is: its bytes and virtual address.
fn locate<'data>(
    file: &object::File<'data>,
    data: &'data [u8],
) -> Result<(&'data [u8], u64), PclntabError> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(section) = file.section_by_name(name) {
            let bytes = section.data().map_err(PclntabError::Elf)?;
            return Ok((bytes, section.address()));
        }
    }
    if let (Some(start), Some(end)) = (
        file.symbol_by_name("runtime.pclntab"),
        file.symbol_by_name("runtime.epclntab"),
    ) {
        let len = end.address().saturating_sub(start.address());
        if let Some(bytes) = image::bytes_at(file, data, start.address(), len) {
            return Ok((bytes, start.address()));
        }
    }
    scan_for_header(file).ok_or(PclntabError::Missing)
}

/// Finds a pclntab header in the loadable segments (for binaries whose
/// section headers are gone). Candidates are pointer-aligned and must parse
/// with a readable first function.
fn scan_for_header<'data>(file: &object::File<'data>) -> Option<(&'data [u8], u64)> {
    for segment in image::segments(file) {
        for offset in (0..segment.data.len()).step_by(4) {
            let candidate = &segment.data[offset..];
            if candidate.get(1..4) != Some(&[0xff, 0xff, 0xff])
                && candidate.get(..3) != Some(&[0xff, 0xff, 0xff])
            {
                continue;
            }
            let Ok(table) = Pclntab::parse(candidate, 0) else {
                continue;
            };
            if table.is_empty() || table.function_at(0).is_err() {
                continue;
            }
            return Some((candidate, segment.address + offset as u64));
        }
    }
    None
}

/// The address of `runtime.text`, the base of Go 1.18+ function entries.
fn text_start(
    file: &object::File<'_>,
    pclntab: &[u8],
    pclntab_address: u64,
) -> Result<u64, PclntabError> {
    if let Some(symbol) = file.symbol_by_name("runtime.text") {
        return Ok(symbol.address());
    }
    let (version, big_endian, _, ptr_size) = header_prefix(pclntab)?;
    let ps = usize::from(ptr_size);
    // Go 1.18 to 1.2x linkers still fill the header's textStart word.
    if let Some(text) = header_word(pclntab, 2, ps, big_endian)
        && text != 0
        && image::is_executable(file, text)
    {
        return Ok(text);
    }
    if let Some(text) = moduledata_text(file, version, big_endian, ps, pclntab, pclntab_address) {
        return Ok(text);
    }
    // What Go's own tools assume (cmd/internal/objfile).
    file.section_by_name(".text")
        .map(|section| section.address())
        .ok_or(PclntabError::NoTextStart)
}

/// `runtime.firstmoduledata.text`, found by scanning data for the
/// `moduledata` whose first two words are the pclntab header address and
/// the function-name table address. Its layout (`runtime/symtab.go`): the
/// header pointer, six slices (funcnametab, cutab, filetab, pctab,
/// pclntable, ftab), findfunctab, minpc, maxpc, then text.
fn moduledata_text(
    file: &object::File<'_>,
    version: PclntabVersion,
    big_endian: bool,
    ps: usize,
    pclntab: &[u8],
    pclntab_address: u64,
) -> Option<u64> {
    let funcname_word = match version {
        PclntabVersion::Go118 | PclntabVersion::Go120 => 3,
        PclntabVersion::Go116 => 2,
        PclntabVersion::Go12 => return None,
    };
    let funcnametab =
        pclntab_address.checked_add(header_word(pclntab, funcname_word, ps, big_endian)?)?;
    let text_index = 1 + 6 * 3 + 3;
    // Go 1.2x puts moduledata in its own section; older ones in .noptrdata
    // (.data.rel.ro when PIE, where the file holds no relocated pointer).
    let preferred = [".go.module", ".noptrdata", ".data.rel.ro", ".data"];
    let sections = preferred
        .iter()
        .filter_map(|name| file.section_by_name(name))
        .filter_map(|section| Some((section.data().ok()?, section.address())));
    let segments = image::segments(file)
        .filter(|segment| !segment.executable)
        .map(|segment| (segment.data, segment.address));
    for (bytes, _) in sections.chain(segments) {
        let mut offset = 0;
        while offset + (text_index + 1) * ps <= bytes.len() {
            let at = |index: usize| image::read_uint(bytes, offset + index * ps, ps, big_endian);
            if at(0) == Some(pclntab_address) && at(1) == Some(funcnametab) {
                let text = at(text_index)?;
                if image::is_executable(file, text) {
                    return Some(text);
                }
            }
            offset += ps;
        }
    }
    None
}

/// The pclntab of an ELF binary, with `runtime.text` resolved.
pub fn from_elf<'data>(
    file: &object::File<'data>,
    data: &'data [u8],
) -> Result<Pclntab<'data>, PclntabError> {
    let (bytes, address) = locate(file, data)?;
    let (version, ..) = header_prefix(bytes)?;
    let text = if version.relative_entries() {
        text_start(file, bytes, address)?
    } else {
        0
    };
    Pclntab::parse(bytes, text)
}

/// Finds the function `name` in the pclntab of the ELF binary `elf`.
pub fn find_function(elf: &[u8], name: &str) -> Result<Option<GoFunction>, PclntabError> {
    let file = object::File::parse(elf).map_err(PclntabError::Elf)?;
    from_elf(&file, elf)?.find(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a little-endian Go 1.18+/1.20 table with 64-bit pointers:
    /// functions given as (name, entry offset, size), text at `text`.
    fn table_120(magic: u32, functions: &[(&str, u32, u32)], text_end: u32) -> Vec<u8> {
        let header_len = 8 + 8 * 8;
        // funcnametab
        let mut names = Vec::new();
        let mut name_offsets = Vec::new();
        for (name, ..) in functions {
            name_offsets.push(names.len() as u32);
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        // pctab: a leading 0, then one pcsp table per function: value +8 over
        // the whole size (quantum 1), then the terminator.
        let mut pctab = vec![0u8];
        let mut pcsp_offsets = Vec::new();
        for (_, _, size) in functions {
            pcsp_offsets.push(pctab.len() as u32);
            pctab.push(16); // zigzag(+8)
            let mut v = *size;
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    pctab.push(b);
                    break;
                }
                pctab.push(b | 0x80);
            }
            pctab.push(0);
        }
        // pclntable: functab then _func records.
        let n = functions.len();
        let functab_len = (2 * n + 1) * 4;
        let record_len = 44;
        let mut pcln = Vec::new();
        for (i, (_, entry, _)) in functions.iter().enumerate() {
            pcln.extend_from_slice(&entry.to_le_bytes());
            pcln.extend_from_slice(&((functab_len + i * record_len) as u32).to_le_bytes());
        }
        pcln.extend_from_slice(&text_end.to_le_bytes());
        for (i, (_, entry, _)) in functions.iter().enumerate() {
            let mut record = vec![0u8; record_len];
            record[0..4].copy_from_slice(&entry.to_le_bytes());
            record[4..8].copy_from_slice(&name_offsets[i].to_le_bytes());
            record[16..20].copy_from_slice(&pcsp_offsets[i].to_le_bytes());
            pcln.extend_from_slice(&record);
        }
        let funcname_off = header_len;
        let cu_off = funcname_off + names.len();
        let pc_off = cu_off;
        let pcln_off = pc_off + pctab.len();
        let mut out = Vec::new();
        out.extend_from_slice(&magic.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, 8]);
        for word in [n, 0, 0, funcname_off, cu_off, cu_off, pc_off, pcln_off] {
            out.extend_from_slice(&(word as u64).to_le_bytes());
        }
        out.extend_from_slice(&names);
        out.extend_from_slice(&pctab);
        out.extend_from_slice(&pcln);
        out
    }

    const FUNCS: &[(&str, u32, u32)] = &[
        ("main.main", 0x0, 0x1c),
        ("crypto/tls.(*Conn).Write", 0x20, 0x35),
        ("crypto/tls.(*Conn).Read", 0x60, 0x200),
    ];

    #[test]
    fn magics_match_the_go_sources() {
        assert_eq!(
            PclntabVersion::from_magic(0xffff_fffb),
            Some(PclntabVersion::Go12)
        );
        assert_eq!(
            PclntabVersion::from_magic(0xffff_fffa),
            Some(PclntabVersion::Go116)
        );
        assert_eq!(
            PclntabVersion::from_magic(0xffff_fff0),
            Some(PclntabVersion::Go118)
        );
        assert_eq!(
            PclntabVersion::from_magic(0xffff_fff1),
            Some(PclntabVersion::Go120)
        );
        assert_eq!(PclntabVersion::from_magic(0xffff_fff2), None);
    }

    #[test]
    fn parses_a_go120_table_relative_to_text() {
        let data = table_120(0xffff_fff1, FUNCS, 0x300);
        let table = Pclntab::parse(&data, 0x40_1000).unwrap();
        assert_eq!(table.version(), PclntabVersion::Go120);
        assert_eq!(table.len(), 3);
        assert_eq!(
            table.find("crypto/tls.(*Conn).Write").unwrap(),
            Some(GoFunction {
                entry: 0x40_1020,
                end: 0x40_1055
            })
        );
        // The last function's end comes from pcsp, not the end of text.
        assert_eq!(
            table.find("crypto/tls.(*Conn).Read").unwrap(),
            Some(GoFunction {
                entry: 0x40_1060,
                end: 0x40_1260
            })
        );
        assert_eq!(
            table.find_all("main.main").unwrap(),
            vec![(
                GoFunction {
                    entry: 0x40_1000,
                    end: 0x40_101c
                },
                FuncFlags(0)
            )]
        );
        // Prefixes and extensions of a name do not match.
        assert_eq!(table.find("crypto/tls.(*Conn).Writ").unwrap(), None);
        assert_eq!(table.find("crypto/tls.(*Conn).Write2").unwrap(), None);
        let all: Vec<_> = table.functions().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            all[0],
            (
                "main.main",
                GoFunction {
                    entry: 0x40_1000,
                    end: 0x40_101c
                }
            )
        );
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn go118_magic_uses_the_same_layout() {
        let data = table_120(0xffff_fff0, FUNCS, 0x300);
        let table = Pclntab::parse(&data, 0x1000).unwrap();
        assert_eq!(table.version(), PclntabVersion::Go118);
        assert_eq!(
            table.find("main.main").unwrap(),
            Some(GoFunction {
                entry: 0x1000,
                end: 0x101c
            })
        );
    }

    #[test]
    fn duplicated_names_are_all_found() {
        let mut data = table_120(
            0xffff_fff1,
            &[("f", 0, 0x10), ("g", 0x20, 0x8), ("f", 0x40, 0x4)],
            0x50,
        );
        // The records (44 bytes each) end the table: flag the last one asm.
        let flag = data.len() - 44 + 41;
        data[flag] = FuncFlags::ASM;
        let table = Pclntab::parse(&data, 0x1000).unwrap();
        let first = GoFunction {
            entry: 0x1000,
            end: 0x1010,
        };
        let second = GoFunction {
            entry: 0x1040,
            end: 0x1044,
        };
        assert_eq!(table.find("f").unwrap(), Some(first));
        assert_eq!(
            table.find_all("f").unwrap(),
            vec![(first, FuncFlags(0)), (second, FuncFlags(FuncFlags::ASM))]
        );
        assert!(table.find_all("f").unwrap()[1].1.is_asm());
        assert_eq!(table.find_all("h").unwrap(), vec![]);
    }

    #[test]
    fn oversized_pcsp_falls_back_to_the_next_entry() {
        // Function 0 claims 0x40 bytes but function 1 starts at 0x20.
        let data = table_120(0xffff_fff1, &[("a", 0, 0x40), ("b", 0x20, 0x10)], 0x30);
        let table = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(
            table.find("a").unwrap(),
            Some(GoFunction {
                entry: 0,
                end: 0x20
            })
        );
    }

    #[test]
    fn go116_table_has_absolute_pointer_sized_entries() {
        // Header: magic, 0, 0, quantum 1, ptr 8; nfunc, nfiles, funcname,
        // cu, file, pc, func offsets.
        let header_len = 8 + 7 * 8;
        let names = b"main.f\0";
        let pctab = [0u8, 2, 0x10, 0]; // table at 1: +1 over 16 bytes
        let funcname_off = header_len;
        let pc_off = funcname_off + names.len();
        let pcln_off = pc_off + pctab.len();
        let mut out = Vec::new();
        out.extend_from_slice(&0xffff_fffau32.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, 8]);
        for word in [1, 0, funcname_off, pc_off, pc_off, pc_off, pcln_off] {
            out.extend_from_slice(&(word as u64).to_le_bytes());
        }
        out.extend_from_slice(names);
        out.extend_from_slice(&pctab);
        // functab: entry, record offset, end entry (pointer-sized).
        out.extend_from_slice(&0x45_0000u64.to_le_bytes());
        out.extend_from_slice(&24u64.to_le_bytes());
        out.extend_from_slice(&0x45_0020u64.to_le_bytes());
        // _func: entry (8), nameoff, args, deferreturn, pcsp.
        out.extend_from_slice(&0x45_0000u64.to_le_bytes());
        for field in [0u32, 0, 0, 1, 0, 0, 0, 0] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        let table = Pclntab::parse(&out, 0xdead).unwrap();
        assert_eq!(table.version(), PclntabVersion::Go116);
        assert_eq!(
            table.find("main.f").unwrap(),
            Some(GoFunction {
                entry: 0x45_0000,
                end: 0x45_0010
            })
        );
    }

    #[test]
    fn big_endian_magic_is_recognised() {
        let mut data = vec![0xff, 0xff, 0xff, 0xf1, 0, 0, 4, 8];
        data.extend_from_slice(&[0u8; 64]);
        let table = Pclntab::parse(&data, 0).unwrap();
        assert_eq!(table.version(), PclntabVersion::Go120);
        assert!(table.is_empty());
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(
            Pclntab::parse(&[0xf1, 0xff, 0xff], 0).unwrap_err(),
            PclntabError::Malformed("shorter than its header")
        );
        assert_eq!(
            Pclntab::parse(&[0x12, 0x34, 0x56, 0x78, 0, 0, 1, 8], 0).unwrap_err(),
            PclntabError::UnknownMagic(0x7856_3412)
        );
        assert!(matches!(
            Pclntab::parse(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 3, 8], 0),
            Err(PclntabError::Malformed(_))
        ));
        assert!(matches!(
            Pclntab::parse(&[0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8, 1, 0], 0),
            Err(PclntabError::Malformed("header is truncated"))
        ));
        // A function count larger than the table.
        let mut data = table_120(0xffff_fff1, FUNCS, 0x300);
        data[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Pclntab::parse(&data, 0),
            Err(PclntabError::Malformed(_))
        ));
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let data = table_120(0xffff_fff1, FUNCS, 0x300);
        for len in 0..data.len() {
            if let Ok(table) = Pclntab::parse(&data[..len], 0) {
                let _ = table.find("crypto/tls.(*Conn).Read");
                let _ = table.functions().count();
            }
        }
        for i in 0..data.len() {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut corrupt = data.clone();
                corrupt[i] = value;
                if let Ok(table) = Pclntab::parse(&corrupt, u64::MAX - 4) {
                    let _ = table.find("crypto/tls.(*Conn).Read");
                    let _ = table.functions().count();
                }
            }
        }
    }

    #[test]
    fn varints_and_pcvalue_spans() {
        let mut pos = 0;
        assert_eq!(read_varint(&[0xac, 0x02], &mut pos), Ok(300));
        assert_eq!(pos, 2);
        let mut pos = 0;
        assert!(read_varint(&[0xff; 6], &mut pos).is_err());
        // +8 over 0x10, -8 over 0x04, end.
        assert_eq!(pcvalue_span(&[16, 0x10, 15, 0x04, 0], 1), Ok(0x14));
        assert_eq!(pcvalue_span(&[16, 0x10, 0], 4), Ok(0x40));
        // A first value delta of 0 is not the end.
        assert_eq!(pcvalue_span(&[0, 0x08, 0], 1), Ok(0x08));
        assert!(pcvalue_span(&[16, 0x10], 1).is_err());
    }

    const TEXT: u64 = 0x40_1000;
    const RODATA: u64 = 0x50_0000;
    const DATA: u64 = 0x60_0000;
    const RX: u32 = object::elf::PF_R | object::elf::PF_X;
    const RW: u32 = object::elf::PF_R | object::elf::PF_W;

    /// Text of NOPs with a RET ending each function of `FUNCS`.
    fn text() -> Vec<u8> {
        let mut text = vec![0x90u8; 0x300];
        for (_, entry, size) in FUNCS {
            text[(entry + size - 1) as usize] = 0xc3;
        }
        text
    }

    /// A stripped ELF (no section headers) with the table in a read-only
    /// segment, the header's textStart word set to `header_text`, and
    /// `data` as a writable segment.
    fn stripped_elf(header_text: u64, data: &[u8]) -> Vec<u8> {
        let mut table = table_120(0xffff_fff1, FUNCS, 0x300);
        table[24..32].copy_from_slice(&header_text.to_le_bytes());
        let text = text();
        image::test_elf(&[
            (TEXT, RX, &text),
            (RODATA, object::elf::PF_R, &table),
            (DATA, RW, data),
        ])
    }

    #[test]
    fn stripped_elf_uses_the_header_text_start() {
        let elf = stripped_elf(TEXT, &[0; 64]);
        assert_eq!(
            find_function(&elf, "crypto/tls.(*Conn).Write").unwrap(),
            Some(GoFunction {
                entry: TEXT + 0x20,
                end: TEXT + 0x55
            })
        );
        assert_eq!(find_function(&elf, "main.nothing").unwrap(), None);
        // A header textStart outside executable memory is ignored.
        let elf = stripped_elf(RODATA, &[0; 64]);
        assert_eq!(
            find_function(&elf, "main.main"),
            Err(PclntabError::NoTextStart)
        );
    }

    #[test]
    fn stripped_elf_without_header_text_start_uses_moduledata() {
        let table = table_120(0xffff_fff1, FUNCS, 0x300);
        let funcname_off = u64::from_le_bytes(table[32..40].try_into().unwrap());
        let mut moduledata = vec![0u8; 8]; // something before it
        for word in 0..30u64 {
            let value = match word {
                0 => RODATA,
                1 => RODATA + funcname_off,
                22 => TEXT,
                _ => 0,
            };
            moduledata.extend_from_slice(&value.to_le_bytes());
        }
        let elf = stripped_elf(0, &moduledata);
        assert_eq!(
            find_function(&elf, "crypto/tls.(*Conn).Read").unwrap(),
            Some(GoFunction {
                entry: TEXT + 0x60,
                end: TEXT + 0x260
            })
        );
        // Through the binary-level API: entry and RET file offsets.
        let binary = super::super::GoBinary::from_bytes("stripped", elf.clone());
        let location = binary.go_function("crypto/tls.(*Conn).Write").unwrap();
        let text_offset = image::file_range_at(&object::File::parse(&*elf).unwrap(), TEXT)
            .unwrap()
            .0;
        assert_eq!(location.address, TEXT + 0x20);
        assert_eq!(location.size, 0x35);
        assert_eq!(location.entry_file_offset, text_offset + 0x20);
        assert_eq!(location.ret_file_offsets, vec![text_offset + 0x54]);
        assert_eq!(location.source, super::super::SymbolSource::Pclntab);
        assert_eq!(elf[(text_offset + 0x54) as usize], 0xc3);
    }

    #[test]
    fn corrupt_stripped_elves_never_panic() {
        let elf = stripped_elf(TEXT, &[0; 64]);
        let binary = super::super::GoBinary::from_bytes("ok", elf.clone());
        assert!(binary.go_function("main.main").is_ok());
        for i in (0..elf.len()).step_by(3) {
            let mut corrupt = elf.clone();
            corrupt[i] ^= 0xa5;
            let _ = find_function(&corrupt, "crypto/tls.(*Conn).Read");
            let binary = super::super::GoBinary::from_bytes("corrupt", corrupt);
            let _ = binary.go_function("crypto/tls.(*Conn).Read");
        }
    }

    #[test]
    fn non_elf_input_is_an_error() {
        assert!(matches!(
            find_function(b"not an elf file", "main.main"),
            Err(PclntabError::Elf(_))
        ));
    }
}

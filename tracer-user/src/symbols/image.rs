//! Mapping virtual addresses of an ELF executable to its file bytes.

use object::{Object as _, ObjectSection as _, ObjectSegment as _, SegmentFlags};

/// The file offset of virtual address `address`, and how many file-backed
/// bytes follow it in the same segment (or section, when the file has no
/// program headers).
///
/// Loadable segments (`PT_LOAD`) are what the kernel maps, so they decide;
/// sections are the fallback for files without program headers.
pub(crate) fn file_range_at(file: &object::File<'_>, address: u64) -> Option<(u64, u64)> {
    let segments = file.segments().map(|segment| {
        let (offset, size) = segment.file_range();
        (segment.address(), offset, size)
    });
    let mut sections = file.sections().filter_map(|section| {
        let (offset, size) = section.file_range()?;
        // Non-allocated sections (.debug_*, .symtab) have address 0.
        (section.address() != 0).then_some((section.address(), offset, size))
    });
    let mut had_segments = false;
    for (base, offset, size) in segments {
        had_segments = true;
        if let Some(found) = within(address, base, offset, size) {
            return Some(found);
        }
    }
    if had_segments {
        return None;
    }
    sections.find_map(|(base, offset, size)| within(address, base, offset, size))
}

fn within(address: u64, base: u64, offset: u64, size: u64) -> Option<(u64, u64)> {
    let delta = address.checked_sub(base)?;
    if delta >= size {
        return None;
    }
    Some((offset.checked_add(delta)?, size - delta))
}

/// The `len` file bytes at virtual address `address`, if they are all
/// file-backed and contiguous.
pub(crate) fn bytes_at<'data>(
    file: &object::File<'_>,
    data: &'data [u8],
    address: u64,
    len: u64,
) -> Option<&'data [u8]> {
    let (offset, available) = file_range_at(file, address)?;
    if len > available {
        return None;
    }
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end)
}

/// Whether `address` lies in an executable loadable segment (or, for files
/// without program headers, an executable section).
pub(crate) fn is_executable(file: &object::File<'_>, address: u64) -> bool {
    let mut had_segments = false;
    for segment in file.segments() {
        had_segments = true;
        let inside = address
            .checked_sub(segment.address())
            .is_some_and(|delta| delta < segment.size());
        if inside {
            return matches!(
                segment.flags(),
                SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0
            );
        }
    }
    if had_segments {
        return false;
    }
    file.sections().any(|section| {
        let inside = address
            .checked_sub(section.address())
            .is_some_and(|delta| delta < section.size());
        inside
            && section.address() != 0
            && matches!(
                section.flags(),
                object::SectionFlags::Elf { sh_flags }
                    if sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0
            )
    })
}

/// Loadable segments with their virtual address and file bytes, in file
/// order, for scans (pclntab header, moduledata, build info).
pub(crate) fn segments<'data, 'file>(
    file: &'file object::File<'data>,
) -> impl Iterator<Item = Segment<'data>> + use<'data, 'file> {
    file.segments().filter_map(|segment| {
        let data = segment.data().ok()?;
        let p_flags = match segment.flags() {
            SegmentFlags::Elf { p_flags } => p_flags,
            _ => 0,
        };
        Some(Segment {
            address: segment.address(),
            data,
            writable: p_flags & object::elf::PF_W != 0,
            executable: p_flags & object::elf::PF_X != 0,
        })
    })
}

/// One loadable segment.
pub(crate) struct Segment<'data> {
    pub(crate) address: u64,
    pub(crate) data: &'data [u8],
    pub(crate) writable: bool,
    pub(crate) executable: bool,
}

/// Reads an unsigned integer of `size` bytes (1, 2, 4 or 8) at `offset`.
pub(crate) fn read_uint(data: &[u8], offset: usize, size: usize, big_endian: bool) -> Option<u64> {
    let bytes = data.get(offset..offset.checked_add(size)?)?;
    let mut value = 0u64;
    if big_endian {
        for &b in bytes {
            value = (value << 8) | u64::from(b);
        }
    } else {
        for &b in bytes.iter().rev() {
            value = (value << 8) | u64::from(b);
        }
    }
    match size {
        1 | 2 | 4 | 8 => Some(value),
        _ => None,
    }
}

/// Builds a minimal little-endian x86-64 ELF executable with one `PT_LOAD`
/// per `(address, p_flags, bytes)` and no section headers, for tests.
#[cfg(test)]
pub(crate) fn test_elf(segments: &[(u64, u32, &[u8])]) -> Vec<u8> {
    let phoff = 64usize;
    let mut offset = phoff + 56 * segments.len();
    let mut placed = Vec::new();
    for (_, _, bytes) in segments {
        offset = offset.next_multiple_of(16);
        placed.push(offset);
        offset += bytes.len();
    }
    let mut elf = vec![0u8; offset];
    elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
    elf[52..54].copy_from_slice(&64u16.to_le_bytes());
    elf[54..56].copy_from_slice(&56u16.to_le_bytes());
    elf[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    for (i, ((address, flags, bytes), &at)) in segments.iter().zip(&placed).enumerate() {
        let ph = phoff + 56 * i;
        elf[ph..ph + 4].copy_from_slice(&object::elf::PT_LOAD.to_le_bytes());
        elf[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
        elf[ph + 8..ph + 16].copy_from_slice(&(at as u64).to_le_bytes());
        elf[ph + 16..ph + 24].copy_from_slice(&address.to_le_bytes());
        elf[ph + 24..ph + 32].copy_from_slice(&address.to_le_bytes());
        elf[ph + 32..ph + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        elf[ph + 40..ph + 48].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        elf[ph + 48..ph + 56].copy_from_slice(&16u64.to_le_bytes());
        elf[at..at + bytes.len()].copy_from_slice(bytes);
    }
    elf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_uint_handles_both_endiannesses_and_bounds() {
        let data = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(read_uint(&data, 0, 4, false), Some(0x0403_0201));
        assert_eq!(read_uint(&data, 0, 4, true), Some(0x0102_0304));
        assert_eq!(read_uint(&data, 0, 8, false), Some(0x0807_0605_0403_0201));
        assert_eq!(read_uint(&data, 5, 4, false), None);
        assert_eq!(read_uint(&data, usize::MAX, 4, false), None);
        assert_eq!(read_uint(&data, 0, 3, false), None);
    }
}

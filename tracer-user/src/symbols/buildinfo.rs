//! The Go toolchain version recorded in a binary's build info, as
//! `debug/buildinfo` reads it.
//!
//! The blob is 16-byte aligned and starts with a 32-byte header: the magic
//! `"\xff Go buildinf:"` (14 bytes), the pointer size, flags, then two
//! pointers. Since Go 1.18 (flag bit 1, value 2) the pointers are unused and
//! the version and module strings follow the header inline, each prefixed by
//! its length as an unsigned varint. Before, the pointers address Go string
//! headers (pointer, length) for the version and module strings. The blob
//! lives in `.go.buildinfo`, or at the start of the first writable segment.

use object::{Object as _, ObjectSection as _};

use super::image;

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const ALIGN: usize = 16;
const FLAG_BIG_ENDIAN: u8 = 0x1;
const FLAG_INLINE: u8 = 0x2;

/// The Go version that built the ELF binary `elf` (e.g. `go1.19.8`), if it
/// is a Go binary with readable build info.
pub fn go_version(elf: &[u8]) -> Option<String> {
    let file = object::File::parse(elf).ok()?;
    go_version_in(&file, elf)
}

pub(crate) fn go_version_in(file: &object::File<'_>, data: &[u8]) -> Option<String> {
    if let Some(section) = file.section_by_name(".go.buildinfo")
        && let Ok(bytes) = section.data()
        && let Some(version) = decode(file, data, bytes)
    {
        return Some(version);
    }
    // Go's DataStart for ELF: the first writable, non-executable segment.
    let segment = image::segments(file).find(|s| s.writable && !s.executable)?;
    (0..segment.data.len())
        .step_by(ALIGN)
        .find_map(|offset| decode(file, data, &segment.data[offset..]))
}

/// Decodes a build-info blob at the start of `blob`.
fn decode(file: &object::File<'_>, data: &[u8], blob: &[u8]) -> Option<String> {
    let header = blob.get(..HEADER_LEN)?;
    if !header.starts_with(MAGIC) {
        return None;
    }
    let ptr_size = usize::from(header[14]);
    let flags = header[15];
    let version = if flags & FLAG_INLINE != 0 {
        let mut rest = &blob[HEADER_LEN..];
        let len = usize::try_from(read_uvarint(&mut rest)?).ok()?;
        rest.get(..len)?.to_vec()
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return None;
        }
        let big_endian = flags & FLAG_BIG_ENDIAN != 0;
        let pointer = image::read_uint(header, 16, ptr_size, big_endian)?;
        let string_header = image::bytes_at(file, data, pointer, 2 * ptr_size as u64)?;
        let address = image::read_uint(string_header, 0, ptr_size, big_endian)?;
        let len = image::read_uint(string_header, ptr_size, ptr_size, big_endian)?;
        image::bytes_at(file, data, address, len)?.to_vec()
    };
    let version = String::from_utf8(version).ok()?;
    (!version.is_empty()).then_some(version)
}

/// Reads an unsigned LEB128 varint (Go's `binary.Uvarint`).
fn read_uvarint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            *data = &data[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline_blob(version: &str) -> Vec<u8> {
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&[8, FLAG_INLINE]);
        blob.extend_from_slice(&[0; 16]);
        blob.push(version.len() as u8);
        blob.extend_from_slice(version.as_bytes());
        blob.extend_from_slice(b"\x050w\xaf\x0c\x92");
        blob
    }

    /// An ELF file with no sections or segments: pointer-based blobs cannot
    /// resolve their pointers in it.
    fn empty_elf() -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[6] = 1; // version
        elf[16] = 2; // ET_EXEC
        elf[18] = 62; // x86-64
        elf[20] = 1; // version
        elf[52] = 64; // e_ehsize
        elf
    }

    #[test]
    fn inline_version_string() {
        let elf = empty_elf();
        let file = object::File::parse(&*elf).unwrap();
        assert_eq!(
            decode(&file, &elf, &inline_blob("go1.27.3")).as_deref(),
            Some("go1.27.3")
        );
    }

    #[test]
    fn malformed_blobs_are_none() {
        let elf = empty_elf();
        let file = object::File::parse(&*elf).unwrap();
        let good = inline_blob("go1.19.8");
        // Anything shorter than header + length byte + "go1.19.8".
        for len in 0..HEADER_LEN + 1 + 8 {
            assert_eq!(decode(&file, &elf, &good[..len]), None, "len {len}");
        }
        assert_eq!(
            decode(&file, &elf, &good[..HEADER_LEN + 9]).as_deref(),
            Some("go1.19.8")
        );
        let mut wrong_magic = good.clone();
        wrong_magic[1] = b'X';
        assert_eq!(decode(&file, &elf, &wrong_magic), None);
        // Pointer format whose pointers lead nowhere.
        let mut pointers = good.clone();
        pointers[15] = 0;
        pointers[16..24].copy_from_slice(&0x1234u64.to_le_bytes());
        assert_eq!(decode(&file, &elf, &pointers), None);
        // Empty version.
        assert_eq!(decode(&file, &elf, &inline_blob("")), None);
    }

    #[test]
    fn uvarint() {
        let mut data: &[u8] = &[0xac, 0x02, 0x07];
        assert_eq!(read_uvarint(&mut data), Some(300));
        assert_eq!(data, &[0x07]);
        let mut data: &[u8] = &[0x80; 11];
        assert_eq!(read_uvarint(&mut data), None);
    }

    #[test]
    fn non_elf_has_no_version() {
        assert_eq!(go_version(b"\xff Go buildinf:"), None);
    }
}

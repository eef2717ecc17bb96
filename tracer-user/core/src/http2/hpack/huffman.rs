//! HPACK Huffman decoding ([RFC 7541 §5.2], code in [Appendix B]).
//!
//! The code is canonical: codes of equal length are consecutive in symbol
//! order, and each length starts at the previous length's next code shifted
//! left. So the bit lengths alone define it, and the table below is just the
//! 257 lengths; the codes, the decoding tree and a 4-bits-at-a-time state
//! machine are all computed at compile time. A unit test checks the derived
//! codes against values printed in the appendix.
//!
//! Decoding reads a nibble per step (two per byte) through a 256-state
//! table: no per-bit loop, no allocation beyond the output.
//!
//! [RFC 7541 §5.2]: https://www.rfc-editor.org/rfc/rfc7541#section-5.2
//! [Appendix B]: https://www.rfc-editor.org/rfc/rfc7541#appendix-B

use thiserror::Error;

/// Code length in bits of each symbol 0..=255 and EOS (256).
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0..16
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16..32
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // ' '..'/'
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // '0'..'?'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // '@'..'O'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 'P'..'_'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // '`'..'o'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 'p'..127
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128..144
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144..160
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160..176
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176..192
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192..208
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208..224
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224..240
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240..256
    30, // EOS
];

const EOS: u16 = 256;
/// Child slot value marking a leaf; the low 9 bits are the symbol.
const LEAF: u16 = 0x8000;

/// Canonical codes, right-aligned, derived from [`LENGTHS`].
const CODES: [u32; 257] = {
    let mut codes = [0u32; 257];
    let mut next: u32 = 0;
    let mut len = 1u8;
    while len <= 30 {
        let mut sym = 0;
        while sym < 257 {
            if LENGTHS[sym] == len {
                codes[sym] = next;
                next += 1;
            }
            sym += 1;
        }
        next <<= 1;
        len += 1;
    }
    codes
};

/// The binary decoding tree: 256 internal nodes (257 leaves), node 0 is the
/// root; a child is either another node's index or `LEAF | symbol`.
const TREE: [[u16; 2]; 256] = {
    let mut tree = [[0u16; 2]; 256];
    let mut free: u16 = 1;
    let mut sym = 0;
    while sym < 257 {
        let len = LENGTHS[sym] as u32;
        let code = CODES[sym];
        let mut node = 0usize;
        let mut bit = len;
        while bit > 1 {
            bit -= 1;
            let b = ((code >> bit) & 1) as usize;
            // 0 can never be a child (it is the root), so it marks "unset".
            if tree[node][b] == 0 {
                tree[node][b] = free;
                free += 1;
            }
            node = tree[node][b] as usize;
        }
        tree[node][(code & 1) as usize] = LEAF | sym as u16;
        sym += 1;
    }
    tree
};

const EMIT: u32 = 1 << 16;
const FAIL: u32 = 1 << 17;

/// For each (state, nibble): next state in bits 0..8, emitted symbol in bits
/// 8..16 if `EMIT`, or `FAIL` if the nibble completes EOS. Codes are at least
/// 5 bits, so a nibble completes at most one symbol.
const STEP: [[u32; 16]; 256] = {
    let mut step = [[0u32; 16]; 256];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut out = 0u32;
            let mut i = 4;
            while i > 0 {
                i -= 1;
                let child = TREE[node][(nibble >> i) & 1];
                if child & LEAF != 0 {
                    let sym = child & !LEAF;
                    if sym == EOS {
                        out |= FAIL;
                    } else {
                        out |= EMIT | ((sym as u32) << 8);
                    }
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            step[state][nibble] = out | node as u32;
            nibble += 1;
        }
        state += 1;
    }
    step
};

/// States where the input may end: the root, or a node reached from the root
/// by at most 7 one-bits (a prefix of EOS used as padding, §5.2).
const ACCEPT: [bool; 256] = {
    let mut accept = [false; 256];
    accept[0] = true;
    let mut node = 0usize;
    let mut depth = 0;
    while depth < 7 {
        node = TREE[node][1] as usize;
        accept[node] = true;
        depth += 1;
    }
    accept
};

/// Why a Huffman string is invalid.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum HuffmanError {
    /// The string contains the EOS symbol.
    #[error("Huffman string contains EOS")]
    Eos,
    /// The padding is longer than 7 bits or not a prefix of EOS.
    #[error("Huffman string has invalid padding")]
    Padding,
}

/// Decodes `src`, appending to `dst`.
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
    // Shortest code is 5 bits, so at most 8/5 output bytes per input byte.
    dst.reserve(src.len() * 8 / 5 + 1);
    let mut state = 0usize;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0xf] {
            let s = STEP[state][usize::from(nibble)];
            if s & FAIL != 0 {
                return Err(HuffmanError::Eos);
            }
            if s & EMIT != 0 {
                dst.push((s >> 8) as u8);
            }
            state = (s & 0xff) as usize;
        }
    }
    if ACCEPT[state] {
        Ok(())
    } else {
        Err(HuffmanError::Padding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    /// Test-only encoder, to round-trip every symbol.
    fn enc(src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &b in src {
            let len = u32::from(LENGTHS[usize::from(b)]);
            acc = (acc << len) | u64::from(CODES[usize::from(b)]);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
        }
        out
    }

    // Invariant: the canonical derivation reproduces the codes printed in
    // RFC 7541 Appendix B (spot checks across every length).
    #[test]
    fn derived_codes_match_appendix_b() {
        let printed: [(usize, u32, u8); 12] = [
            (0, 0x1ff8, 13),
            (1, 0x7f_ffd8, 23),
            (10, 0x3fff_fffc, 30),
            (b' ' as usize, 0x14, 6),
            (b'0' as usize, 0x0, 5),
            (b':' as usize, 0x5c, 7),
            (b'\\' as usize, 0x7_fff0, 19),
            (b'~' as usize, 0x1ffd, 13),
            (128, 0xf_ffe6, 20),
            (199, 0x1ff_ffec, 25),
            (255, 0x3ff_ffee, 26),
            (256, 0x3fff_ffff, 30),
        ];
        for (sym, code, len) in printed {
            assert_eq!((CODES[sym], LENGTHS[sym]), (code, len), "symbol {sym}");
        }
        // Kraft equality: a complete prefix code.
        let kraft: u64 = LENGTHS.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
    }

    // Invariant: RFC 7541 C.4.1 / C.6.1 Huffman literals decode exactly.
    #[test]
    fn rfc_examples() {
        let www = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(dec(&www).unwrap(), b"www.example.com");
        assert_eq!(
            dec(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]).unwrap(),
            b"no-cache"
        );
        assert_eq!(dec(&[0x64, 0x02]).unwrap(), b"302");
        assert_eq!(dec(&[0x64, 0x0e, 0xff]).unwrap(), b"307");
        assert_eq!(dec(&[]).unwrap(), b"");
    }

    // Invariant: every byte value round-trips, at every alignment.
    #[test]
    fn all_symbols_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        for shift in 0..8 {
            let mut s = vec![b'a'; shift];
            s.extend_from_slice(&all);
            assert_eq!(dec(&enc(&s)).unwrap(), s);
        }
    }

    // Invariant: padding is at most 7 one-bits; EOS inside is an error.
    #[test]
    fn rejects_bad_padding_and_eos() {
        // 'a' (00011) then 3 one-bits: fine. Then a full 0xff byte: 8+3 bits
        // of padding, too long.
        assert_eq!(dec(&[0x1f]).unwrap(), b"a");
        assert_eq!(dec(&[0x1f, 0xff]), Err(HuffmanError::Padding));
        // 'a' padded with zeros: padding must be ones.
        assert_eq!(dec(&[0x18]), Err(HuffmanError::Padding));
        // 30 one-bits is EOS.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
    }
}

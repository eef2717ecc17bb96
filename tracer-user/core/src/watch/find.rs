//! Fast search for one byte value.
//!
//! Framing a JSON watch stream means finding every `\n`, and resynchronising
//! a protobuf one means finding every `0x0A` tag byte: that search sets the
//! throughput floor of both decoders. A word-at-a-time (SWAR) loop avoids a
//! `memchr` dependency and runs several times faster than a byte loop.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

fn word(c: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(c);
    u64::from_le_bytes(a)
}

/// Nonzero iff some byte of `w` is zero; the lowest set high bit marks the
/// first zero byte exactly (borrows only create false marks above it).
fn zero_mask(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// Index of the first `needle` in `hay`.
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let rep = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(16);
    let mut base = 0;
    for c in &mut chunks {
        let a = zero_mask(word(&c[..8]) ^ rep);
        let b = zero_mask(word(&c[8..]) ^ rep);
        if a | b != 0 {
            return Some(if a != 0 {
                base + (a.trailing_zeros() / 8) as usize
            } else {
                base + 8 + (b.trailing_zeros() / 8) as usize
            });
        }
        base += 16;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|p| base + p)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn finds_first_occurrence_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                let mut v = vec![b'x'; len];
                v[at] = b'\n';
                // A later occurrence must not win.
                if at + 3 < len {
                    v[at + 3] = b'\n';
                }
                assert_eq!(find_byte(b'\n', &v), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_byte(b'\n', &vec![b'x'; len]), None);
        }
    }

    #[test]
    fn bytes_next_to_the_needle_do_not_confuse_it() {
        // 0x0B and 0x09 differ from 0x0A by one bit; 0x8A has the high bit.
        let v = [0x0B, 0x09, 0x8A, 0x0A];
        assert_eq!(find_byte(0x0A, &v), Some(3));
        assert_eq!(find_byte(0, &[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]), Some(9));
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_loop(hay in proptest::collection::vec(any::<u8>(), 0..100), n: u8) {
            prop_assert_eq!(find_byte(n, &hay), hay.iter().position(|&b| b == n));
        }
    }
}

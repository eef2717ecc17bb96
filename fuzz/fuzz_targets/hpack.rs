//! Fuzzes the HPACK decoder with arbitrary header blocks, from the start of
//! a connection or joined mid-way, with table size limits.
//!
//! Input: one options byte, then blocks `[len, len bytes...]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use watchtrace::http2::hpack::{Decoder, FieldText};

const RETAIN: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Some((&opts, mut rest)) = data.split_first() else {
        return;
    };
    let mut decoder = if opts & 1 == 0 {
        Decoder::with_retain_cap(RETAIN)
    } else {
        Decoder::mid_stream(RETAIN, (opts & 2 != 0).then_some(256))
    };
    if opts & 4 != 0 {
        decoder.set_size_limit(Some(u32::from(opts >> 3) * 128));
    }
    let mut out = Vec::new();
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (block, next) = tail.split_at(n);
        rest = next;
        out.clear();
        // Complete before the block, on a basis that cannot be withdrawn
        // (no assumed capacity): no field may be unknown.
        let trusted = decoder.is_complete() && opts & 2 == 0;
        match decoder.decode(block, &mut out) {
            Ok(()) => {
                let _ = decoder.take_became_complete();
                if trusted {
                    assert!(
                        out.iter()
                            .all(|f| f.name != FieldText::Unknown && f.value != FieldText::Unknown)
                    );
                }
            }
            // As the connection does: the table may now be wrong.
            Err(_) => decoder.forget(),
        }
        let (_, size) = decoder.table_len_and_size();
        assert!(size <= RETAIN.max(4096), "table grew to {size}");
    }
});

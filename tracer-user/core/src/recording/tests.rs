use super::*;

fn meta() -> Metadata {
    Metadata {
        realtime_offset_ns: 42,
        hostname: "h".into(),
        ..Metadata::default()
    }
}

/// A recording of `n` records, record `i` being `i` repeated `i % 50 + 1`
/// times (as bytes).
fn recording(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let records: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i % 50 + 1]).collect();
    let mut writer = Writer::new(Vec::new(), &meta()).unwrap();
    for r in &records {
        writer.record(r).unwrap();
    }
    (writer.finish().unwrap(), records)
}

/// Where frame `i` starts in a [`recording`].
fn frame_offset(bytes: &[u8], i: usize) -> usize {
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut at = 16 + meta_len + 4;
    for _ in 0..i {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += FRAME_HEADER + len;
    }
    at
}

/// Every record a reader delivers, the damage it reported, and how it
/// ended.
fn read_all(bytes: &[u8]) -> (Vec<Vec<u8>>, Vec<Damage>, Result<(), String>) {
    let mut reader = match Reader::new(bytes) {
        Ok(reader) => reader,
        Err(e) => return (Vec::new(), Vec::new(), Err(e.to_string())),
    };
    let mut records = Vec::new();
    let end = loop {
        match reader.next_record() {
            Ok(Some(r)) => records.push(r.to_vec()),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        }
    };
    (records, reader.take_damage(), end)
}

#[test]
fn round_trips_metadata_and_records() {
    let (bytes, records) = recording(3);
    let mut reader = Reader::new(&bytes[..]).unwrap();
    assert!(reader.verified());
    assert_eq!(reader.metadata().realtime_offset_ns, 42);
    for r in &records {
        assert_eq!(reader.next_record().unwrap(), Some(&r[..]));
    }
    assert_eq!(reader.next_record().unwrap(), None);
    assert!(!reader.has_damage());
}

#[test]
fn a_truncated_tail_is_an_error_after_every_complete_record() {
    let (bytes, records) = recording(3);
    let (got, damage, end) = read_all(&bytes[..bytes.len() - 2]);
    assert_eq!(got, records[..2]);
    assert!(damage.is_empty(), "{damage:?}");
    assert!(end.unwrap_err().contains("truncated"));
}

#[test]
fn rejects_other_files_and_versions_and_a_damaged_header() {
    assert!(matches!(
        Reader::new(&b"GIF89a.........."[..]),
        Err(RecordingError::BadMagic)
    ));
    assert!(matches!(
        Reader::new(&b"WAT"[..]),
        Err(RecordingError::BadMagic)
    ));
    let (mut bytes, _) = recording(1);
    bytes[8] = 9;
    assert!(matches!(
        Reader::new(&bytes[..]),
        Err(RecordingError::Version { found: 9 })
    ));
    // A changed metadata byte (here the realtime offset: every timestamp
    // would move) is an error, not different output.
    let (mut bytes, _) = recording(1);
    let digit = bytes.iter().position(|&b| b == b'4').unwrap();
    bytes[digit] = b'5';
    assert!(matches!(
        Reader::new(&bytes[..]),
        Err(RecordingError::MetadataDamaged)
    ));
}

#[test]
fn a_damaged_frame_is_reported_and_skipped_and_the_next_ones_are_delivered() {
    let (mut bytes, records) = recording(10);
    let at = frame_offset(&bytes, 4);
    bytes[at + FRAME_HEADER] ^= 0x20;
    let (got, damage, end) = read_all(&bytes);
    end.unwrap();
    let mut want = records.clone();
    want.remove(4);
    assert_eq!(got, want);
    assert_eq!(
        damage,
        [Damage {
            what: DamageKind::Corrupt,
            at: at as u64,
            bytes: (FRAME_HEADER + records[4].len()) as u64,
            frames: 1
        }]
    );
    // A damaged length: the same.
    let (mut bytes, _) = recording(10);
    bytes[at + 1] ^= 0x01;
    let (got, damage, _) = read_all(&bytes);
    assert_eq!(got, want);
    assert_eq!(damage.len(), 1);
    assert_eq!((damage[0].what, damage[0].frames), (DamageKind::Corrupt, 1));
}

#[test]
fn duplicated_frames_are_reported_and_not_delivered_twice() {
    let (bytes, records) = recording(6);
    let (a, b) = (frame_offset(&bytes, 2), frame_offset(&bytes, 3));
    let mut doubled = bytes[..b].to_vec();
    doubled.extend_from_slice(&bytes[a..b]);
    doubled.extend_from_slice(&bytes[b..]);
    let (got, damage, end) = read_all(&doubled);
    end.unwrap();
    assert_eq!(got, records);
    assert_eq!(damage.len(), 1);
    assert_eq!(damage[0].what, DamageKind::Duplicate);
    assert_eq!(damage[0].at, b as u64);

    // Every frame twice: twice nothing.
    let mut all_twice = bytes[..frame_offset(&bytes, 0)].to_vec();
    for i in 0..6 {
        let frame = &bytes[frame_offset(&bytes, i)..frame_offset(&bytes, i + 1).min(bytes.len())];
        all_twice.extend_from_slice(frame);
        all_twice.extend_from_slice(frame);
    }
    let (got, damage, _) = read_all(&all_twice);
    assert_eq!(got, records);
    assert_eq!(damage.len(), 6);
    assert!(damage.iter().all(|d| d.what == DamageKind::Duplicate));
}

#[test]
fn reordered_frames_are_reported_missing_then_out_of_order() {
    let (bytes, records) = recording(6);
    let (a, b, c) = (
        frame_offset(&bytes, 2),
        frame_offset(&bytes, 3),
        frame_offset(&bytes, 4),
    );
    let mut swapped = bytes[..a].to_vec();
    swapped.extend_from_slice(&bytes[b..c]);
    swapped.extend_from_slice(&bytes[a..b]);
    swapped.extend_from_slice(&bytes[c..]);
    let (got, damage, end) = read_all(&swapped);
    end.unwrap();
    let mut want = records.clone();
    want.remove(2);
    assert_eq!(got, want, "the late frame is not delivered out of order");
    let kinds: Vec<_> = damage.iter().map(|d| (d.what, d.frames)).collect();
    assert_eq!(
        kinds,
        [(DamageKind::Missing, 1), (DamageKind::OutOfOrder, 0)]
    );
}

#[test]
fn a_version_2_file_still_reads_unverified() {
    let meta = serde_json::to_vec(&meta()).unwrap();
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&UNVERIFIED_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&meta);
    for r in [&b"first"[..], &[7u8; 100]] {
        bytes.extend_from_slice(&(r.len() as u32).to_le_bytes());
        bytes.extend_from_slice(r);
    }
    let mut reader = Reader::new(&bytes[..]).unwrap();
    assert!(!reader.verified());
    assert_eq!(reader.metadata().realtime_offset_ns, 42);
    assert_eq!(reader.next_record().unwrap(), Some(&b"first"[..]));
    assert_eq!(reader.next_record().unwrap().map(<[u8]>::len), Some(100));
    assert_eq!(reader.next_record().unwrap(), None);
    // An absurd length is corruption there too.
    let first = 16 + meta.len();
    bytes[first..first + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut reader = Reader::new(&bytes[..]).unwrap();
    assert!(matches!(
        reader.next_record(),
        Err(RecordingError::FrameTooLarge { .. })
    ));
}

/// xorshift64*: the campaign's seeded choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn of_300_copies_with_1_to_16_flipped_bytes_none_changes_silently() {
    let (clean, records) = recording(200);
    let mut rng = Rng(0x5eed_cafe);
    let (mut refused, mut reported) = (0, 0);
    for _ in 0..300 {
        let mut bytes = clean.clone();
        for _ in 0..1 + rng.below(16) {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        let (got, damage, end) = read_all(&bytes);
        if end.is_err() && got.is_empty() {
            // The header: refused outright.
            refused += 1;
            continue;
        }
        // Whatever came out is the original records, in order, some
        // missing: never a changed one.
        let mut originals = records.iter();
        for r in &got {
            assert!(
                originals.any(|o| o == r),
                "a delivered record is not an original one, in order"
            );
        }
        if got.len() < records.len() || end.is_err() {
            assert!(
                !damage.is_empty() || end.is_err(),
                "records lost without a word"
            );
            reported += 1;
        } else {
            assert_eq!(got, records);
        }
    }
    assert!(
        refused > 0 && reported > 200,
        "{refused} refused, {reported} reported"
    );
}

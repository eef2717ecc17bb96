//! A damaged recording replays to explicit damage, never to changed
//! output: flipped bytes, duplicated and reordered frames, on a committed
//! recording of the testbed (tests/fixtures/recordings).

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use watchtrace::{
    pipeline::PipelineConfig,
    recording::Reader,
    replay::{Line, replay},
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recordings")
        .join(name)
}

/// A replay's JSON lines, how many were damage, and whether reading ended
/// in an error; `None` when the file was refused outright.
fn replayed(bytes: &[u8]) -> Option<(Vec<String>, usize, bool)> {
    let mut reader = Reader::new(bytes).ok()?;
    let mut lines = Vec::new();
    let mut damage = 0;
    let summary = replay(&mut reader, PipelineConfig::default(), |line| {
        if matches!(line, Line::Damage(_)) {
            damage += 1;
        }
        lines.push(serde_json::to_string(&line).unwrap());
    });
    Some((lines, damage, summary.end.is_err()))
}

/// The identity of a watch event line: what a changed byte could alter.
fn watch_event(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    (v["kind"] == "watch_event").then(|| {
        format!(
            "{} {} {} {} {} {} {}",
            v["conn"],
            v["stream"],
            v["resource"],
            v["namespace"],
            v["name"],
            v["event_type"],
            v["resource_version"]
        )
    })
}

/// Frame offsets of a version 3 recording: (start, end) of each.
fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let mut at = 16 + meta_len + 4;
    let mut out = Vec::new();
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, at + 16 + len));
        at += 16 + len;
    }
    out
}

/// xorshift64*: the campaign's seeded choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

#[test]
fn of_240_copies_with_1_to_16_flipped_bytes_none_replays_to_silently_changed_output() {
    let clean = std::fs::read(fixture("tls-watches-cleartext-etcd.wtrec")).unwrap();
    let (clean_lines, damage, failed) = replayed(&clean).unwrap();
    assert_eq!((damage, failed), (0, false));
    let known: BTreeSet<String> = clean_lines.iter().filter_map(|l| watch_event(l)).collect();
    assert!(known.len() > 50);
    let mut rng = Rng(0x0dd_b175);
    let (mut refused, mut explained, mut identical) = (0, 0, 0);
    for variant in 0..240 {
        let mut bytes = clean.clone();
        for _ in 0..1 + rng.below(16) {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        let Some((lines, damage, failed)) = replayed(&bytes) else {
            refused += 1;
            continue;
        };
        if damage == 0 && !failed {
            assert!(
                lines == clean_lines,
                "variant {variant}: changed output, no damage reported"
            );
            identical += 1;
            continue;
        }
        explained += 1;
        // What did come out is what the clean recording says: no watch
        // event with a changed name, type or resourceVersion.
        for line in &lines {
            if let Some(event) = watch_event(line) {
                assert!(
                    known.contains(&event),
                    "variant {variant}: a changed event: {line}"
                );
            }
        }
    }
    println!("{refused} refused, {explained} with damage reported, {identical} unchanged");
    assert!(explained > 150, "{refused} refused, {explained} explained");
}

#[test]
fn a_recording_whose_every_frame_is_doubled_replays_once_with_the_duplicates_reported() {
    let clean = std::fs::read(fixture("tls-watches-cleartext-etcd.wtrec")).unwrap();
    let frames = frames(&clean);
    let mut doubled = clean[..frames[0].0].to_vec();
    for &(from, to) in &frames {
        doubled.extend_from_slice(&clean[from..to]);
        doubled.extend_from_slice(&clean[from..to]);
    }
    let (clean_lines, _, _) = replayed(&clean).unwrap();
    let (lines, damage, failed) = replayed(&doubled).unwrap();
    assert!(!failed);
    assert_eq!(damage, frames.len(), "one duplicate per frame");
    let events: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("recording_damage"))
        .collect();
    assert_eq!(events, clean_lines.iter().collect::<Vec<_>>());
}

#[test]
fn swapped_frames_are_reported_missing_and_out_of_order() {
    let clean = std::fs::read(fixture("tls-watches-cleartext-etcd.wtrec")).unwrap();
    let frames = frames(&clean);
    let (a, b) = (frames[100], frames[101]);
    let mut swapped = clean[..a.0].to_vec();
    swapped.extend_from_slice(&clean[b.0..b.1]);
    swapped.extend_from_slice(&clean[a.0..a.1]);
    swapped.extend_from_slice(&clean[b.1..]);
    let (lines, damage, failed) = replayed(&swapped).unwrap();
    assert!(!failed);
    assert_eq!(damage, 2);
    let what: Vec<String> = lines
        .iter()
        .filter(|l| l.contains("recording_damage"))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["what"].to_string())
        .collect();
    assert_eq!(what, [r#""missing""#, r#""out_of_order""#]);
}

#[test]
fn a_version_2_recording_still_replays_the_same_with_a_warning_that_it_cannot_be_verified() {
    // The committed recording rewritten as version 2 wrote it: the same
    // metadata without its checksum, each frame a length and the record.
    let v3 = std::fs::read(fixture("tls-watches-cleartext-etcd.wtrec")).unwrap();
    let meta_len = u32::from_le_bytes(v3[12..16].try_into().unwrap()) as usize;
    let mut v2 = v3[..16 + meta_len].to_vec();
    v2[8..12].copy_from_slice(&2u32.to_le_bytes());
    for (from, to) in frames(&v3) {
        v2.extend_from_slice(&v3[from..from + 4]);
        v2.extend_from_slice(&v3[from + 16..to]);
    }
    let dir = std::env::temp_dir().join(format!("watchtrace-v2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("v2.wtrec");
    std::fs::write(&path, &v2).unwrap();
    let replay = |path: &PathBuf| {
        Command::new(WATCHTRACE)
            .arg("replay")
            .arg(path)
            .args(["--events", "-"])
            .output()
            .unwrap()
    };
    let (old, new) = (
        replay(&path),
        replay(&fixture("tls-watches-cleartext-etcd.wtrec")),
    );
    assert!(old.status.success());
    assert!(
        !old.stdout.is_empty() && old.stdout == new.stdout,
        "the same lines"
    );
    let stderr = String::from_utf8_lossy(&old.stderr);
    assert!(
        stderr.contains("version 2") && stderr.contains("cannot be detected"),
        "{stderr}"
    );
    assert!(stderr.contains("unverified"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

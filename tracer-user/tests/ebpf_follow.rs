//! Root-only: `watchtrace record --comm` follows a target that restarts,
//! attaching to each new process within the 2 s the design promises.

mod support;

use std::{
    collections::BTreeMap,
    fs::File,
    io::BufReader,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use support::TlsWriter;
use tracer_common::record::{ChunkSource, Direction};
use watchtrace::{
    capture::{Record, StreamEvent, Streams, decode},
    recording::Reader,
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");
/// The promise: a new matching process is attached within this.
const ATTACH_BOUND: Duration = Duration::from_secs(2);

/// Runs one tls-writer, waiting ATTACH_BOUND between its start and its
/// writes; returns its pid and the plaintext bytes it wrote.
fn one_writer(n: u32) -> (u32, u64) {
    let mut writer = TlsWriter::start(&["-n", &n.to_string(), "-base", "1000", "-step", "3"]);
    let pid = writer.pid;
    thread::sleep(ATTACH_BOUND);
    writer.go();
    (pid, writer.finish())
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn record_follows_a_restarting_target_within_two_seconds() {
    let dir = std::env::temp_dir().join(format!("watchtrace-follow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = dir.join("follow.wtrec");
    let mut recorder = Command::new(WATCHTRACE)
        .args([
            "record",
            "--comm",
            "tls-writer",
            "--wait",
            "--duration",
            "12",
            "-o",
        ])
        .arg(&output)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the recorder time to load before the first target starts.
    thread::sleep(Duration::from_secs(2));
    let first = one_writer(300);
    // A restart: the same program as a new process.
    let second = one_writer(200);
    let status = recorder.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut recorder.stderr.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains(&format!("target exited pid={}", first.0)),
        "the first process is cleaned up: {log}"
    );

    // Egress TLS plaintext per process, rebuilt from the recording.
    let mut reader = Reader::new(BufReader::new(File::open(&output).unwrap())).unwrap();
    assert_eq!(
        std::fs::metadata(&output)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap(),
        0o600,
        "recordings hold plaintext: 0600"
    );
    let mut streams = Streams::new(64);
    let mut captured: BTreeMap<u32, u64> = BTreeMap::new();
    let mut gaps = 0u64;
    while let Some(bytes) = reader.next_record().unwrap() {
        let Ok(Record::Chunk(header, data)) = decode(bytes) else {
            continue;
        };
        let mut events = Vec::new();
        streams.on_chunk(&header, data, &mut events);
        for event in events {
            match event {
                StreamEvent::Data { id, bytes, .. }
                    if id.direction() == Some(Direction::Egress)
                        && id.source() == Some(ChunkSource::GoTls) =>
                {
                    *captured.entry(id.conn.tgid).or_default() += bytes.len() as u64;
                }
                StreamEvent::Gap { len, .. } => gaps += len,
                _ => {}
            }
        }
    }
    assert_eq!(gaps, 0);
    assert_eq!(
        captured.get(&first.0),
        Some(&first.1),
        "first process fully captured: {captured:?}"
    );
    assert_eq!(
        captured.get(&second.0),
        Some(&second.1),
        "restarted process fully captured: {captured:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The demo's fault in `watchtrace top`, at 200, 120 and 80 columns: the
//! testbed as `cargo xtask demo` runs it (four client connections, one of
//! which stops reading its socket for 8 s) is recorded, then replayed in
//! tmux up to 6 s into the stall. The first screen must name the culprit:
//! a banner with the cause, the client and the duration so far, and the
//! stalled connection first, marked.
//!
//! With `WATCHTRACE_BLESS=1` the three screens are written into
//! docs/top.md (between its `demo-screen` markers): that is how the
//! screens there are regenerated.

mod support;
#[path = "tmux_support.rs"]
mod tmux;

use std::{fs::File, path::Path};

use tmux::Tmux;
use watchtrace::rfc3339;

/// The widths the docs show.
const WIDTHS: [u16; 3] = [200, 120, 80];

/// The screen of `top --replay recording --until until` at `width`.
fn screen_at(recording: &Path, until: &str, width: u16) -> String {
    let tmux = Tmux::start(width, 16);
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    // `cd` first: the header then names the recording by its file name.
    let command = format!(
        "cd '{}' && '{}' top --replay {} --speed 0 --until {until} --log-file top.log; echo EXIT=$?",
        recording.parent().unwrap().display(),
        env!("CARGO_BIN_EXE_watchtrace"),
        recording.file_name().unwrap().to_string_lossy(),
    );
    tmux.send(&["clear", "Enter"]);
    tmux.send(&[&command, "Enter"]);
    let screen = tmux.wait_for("the replay up to --until", |s| {
        s.contains("--until") && s.contains("reached") && s.contains("STALL ONGOING")
    });
    tmux.send(&["q"]);
    // (The typed line reads `EXIT=$?`: only the echo reads `EXIT=0`.)
    tmux.wait_for("the shell after q", |s| s.contains("EXIT=0"));
    screen
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn the_demos_stall_is_named_on_the_first_screen_at_every_width() {
    let (_turn, dir) = support::testbed_turn("watchtrace-top-demo");
    let recording = dir.join("demo.wtrec");
    // `cargo xtask demo`'s load and fault, sooner and shorter.
    support::record_load(
        &dir,
        &recording,
        &[
            "-load-delay",
            "2s",
            "-duration",
            "15s",
            "--",
            "-conns",
            "4",
            "-watches-per-conn",
            "3",
            "-resources",
            "configmaps,secrets",
            "-write-rate",
            "50",
            "-object-size",
            "16384",
            "-stall-conn",
            "1",
            "-stall-conn-after",
            "3s",
            "-stall-conn-for",
            "8s",
        ],
    );
    let summary: serde_json::Value =
        serde_json::from_reader(File::open(dir.join("bed/watch-load-summary.json")).unwrap())
            .unwrap();
    let stalled = summary["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stalled"].is_object())
        .expect("the stalled connection in the summary");
    let from = stalled["stalled"]["from"].as_u64().unwrap();
    let client_port = stalled["local_addrs"][0]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    // 6 s into the 8 s stop.
    let until = rfc3339::format(from + 6_000_000_000);

    let mut screens = Vec::new();
    for width in WIDTHS {
        let screen = screen_at(&recording, &until, width);
        println!("{width} columns:\n{screen}\n");
        let lines: Vec<&str> = screen.lines().collect();
        // The banner names the cause, and says how long so far (about 6 s).
        let banner = lines
            .iter()
            .find(|l| l.contains("STALL ONGOING"))
            .unwrap_or_else(|| panic!("{width}: a banner: {screen}"));
        assert!(
            banner.contains("so far") && banner.contains("peer_zero_window"),
            "{width}: {banner}"
        );
        // The stalled connection is the first row, marked `!!`.
        let header = lines
            .iter()
            .position(|l| l.starts_with('│') && l.contains("CLIENT"))
            .unwrap_or_else(|| panic!("{width}: a table: {screen}"));
        let first = lines[header + 1];
        assert!(first.contains("!!"), "{width}: the worst first: {screen}");
        if width >= 120 {
            assert!(
                first.contains(&client_port),
                "{width}: the stalled client's connection ({client_port}) first: {screen}"
            );
        }
        for line in &lines {
            assert!(line.chars().count() <= usize::from(width), "{line}");
        }
        screens.push((width, screen));
    }

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/top.md");
    let text = std::fs::read_to_string(&docs).unwrap();
    if std::env::var_os("WATCHTRACE_BLESS").is_some() {
        let mut out = text.clone();
        for (width, screen) in &screens {
            let begin = format!("<!-- demo-screen {width} -->");
            let end = format!("<!-- /demo-screen {width} -->");
            let (Some(b), Some(e)) = (out.find(&begin), out.find(&end)) else {
                panic!("docs/top.md lacks the markers {begin} … {end}");
            };
            out = format!(
                "{}{begin}\n```text\n{screen}\n```\n{}",
                &out[..b],
                &out[e..]
            );
        }
        std::fs::write(&docs, out).unwrap();
    } else {
        for (width, _) in &screens {
            assert!(
                text.contains(&format!("<!-- demo-screen {width} -->")),
                "docs/top.md shows the demo at {width} columns"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The core crate (`tracer-user/core`, everything after the ring buffer)
//! depends on no I/O crate: its purity is the compiler's to enforce, and
//! this test keeps the dependency list honest.

use std::{collections::BTreeSet, process::Command};

/// Crates that do I/O, talk to the kernel or own a terminal.
const IO_CRATES: [&str; 8] = [
    "aya",
    "aya-obj",
    "tokio",
    "mio",
    "libc",
    "ratatui",
    "crossterm",
    "tracing-subscriber",
];

#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "watchtrace-core", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("UTF-8");
    let crates: BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    // The tree is the core's: it names the core and what it decodes with.
    for expected in ["watchtrace-core", "tracer-common", "serde_json"] {
        assert!(crates.contains(expected), "{expected} missing:\n{tree}");
    }
    for io in IO_CRATES {
        assert!(!crates.contains(io), "{io} is in the core's tree:\n{tree}");
    }
}

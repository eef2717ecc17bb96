//! Checks of a `/metrics` body shared by the exposition tests: the
//! families docs/metrics.md documents, and `promtool check metrics`.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
};

const DOC: &str = include_str!("../../../docs/metrics.md");

/// Family name to type (`counter`, `gauge`, `histogram`), one per table
/// row `| \`watchtrace_…\` | type | labels | meaning |`.
pub(crate) fn documented_families() -> BTreeMap<String, String> {
    DOC.lines()
        .filter(|l| l.starts_with("| `watchtrace_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}

/// `promtool check metrics` on `body`: whether it passed (exit 0 and
/// nothing said), and what it said.
pub(crate) fn promtool_check(body: &str) -> (bool, String) {
    let promtool = std::env::var_os("WATCHTRACE_PROMTOOL")
        .map(PathBuf::from)
        .expect("WATCHTRACE_PROMTOOL is not set: run through `cargo xtask test`");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.trim().is_empty(), text)
}

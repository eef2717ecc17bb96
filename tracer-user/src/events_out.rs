//! `run --events`: the JSON lines, appended to a file or written to
//! stdout. Each run begins with a `session_start` line; a file whose last
//! line an earlier run left unfinished (killed mid-write) is continued on a
//! new line, so that line stays the only broken one.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write as _},
    os::unix::fs::FileExt as _,
    path::Path,
};

use anyhow::Context as _;
use serde::Serialize;

use crate::time_format::{TimeFormat, write_json};

/// The first line a run writes.
#[derive(Debug, Serialize)]
pub struct SessionStart {
    kind: &'static str,
    /// Unix epoch ns.
    ts: u64,
    version: &'static str,
    /// The target selectors, as `--pid`, `--comm`, `--exe` spell them.
    targets: String,
    workers: usize,
}

impl SessionStart {
    #[must_use]
    pub fn new(ts: u64, targets: String, workers: usize) -> Self {
        Self {
            kind: "session_start",
            ts,
            version: env!("CARGO_PKG_VERSION"),
            targets,
            workers,
        }
    }
}

/// Something the agent does without, for lack of a privilege (written once
/// per reason, when first seen).
#[derive(Debug, Serialize)]
pub struct Warning<'a> {
    kind: &'static str,
    /// Unix epoch ns.
    ts: u64,
    reason: &'a str,
    message: &'a str,
}

impl<'a> Warning<'a> {
    #[must_use]
    pub fn new(ts: u64, reason: &'a str, message: &'a str) -> Self {
        Self {
            kind: "warning",
            ts,
            reason,
            message,
        }
    }
}

/// The JSON-lines writer; the first write error stops writing and is
/// reported at the end.
pub struct EventsOut {
    out: Option<Box<dyn io::Write>>,
    error: Option<io::Error>,
    time_format: TimeFormat,
}

impl EventsOut {
    /// Nowhere (`None`), stdout (`-`), or appended to a file.
    pub fn open(path: Option<&Path>, time_format: TimeFormat) -> anyhow::Result<Self> {
        let out: Option<Box<dyn io::Write>> = match path {
            None => None,
            Some(path) if path.as_os_str() == "-" => Some(Box::new(BufWriter::new(io::stdout()))),
            Some(path) => {
                let (file, repaired) =
                    open_append(path).with_context(|| format!("opening {}", path.display()))?;
                if repaired {
                    tracing::warn!(
                        path = %path.display(),
                        "the events file ended mid-line (an earlier run stopped while writing): \
                         continuing on a new line"
                    );
                }
                Some(Box::new(BufWriter::new(file)))
            }
        };
        Ok(Self {
            out,
            error: None,
            time_format,
        })
    }

    /// One line: `value` as JSON.
    pub fn write_line(&mut self, value: &impl Serialize) {
        // Serialised only when written: without --events, never.
        if let Some(out) = self.out.as_mut()
            && self.error.is_none()
            && let Err(e) =
                write_json(&mut *out, value, self.time_format).and_then(|()| out.write_all(b"\n"))
        {
            self.error = Some(e);
        }
    }

    /// Pushes buffered lines out (once a second), so the file can be
    /// followed while the agent runs.
    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut()
            && self.error.is_none()
            && let Err(e) = out.flush()
        {
            self.error = Some(e);
        }
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.flush();
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Opens `path` for appending (created if missing). Returns whether it
/// ended without a newline, which is then written first.
fn open_append(path: &Path) -> io::Result<(File, bool)> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    let unfinished = len > 0 && {
        file.read_exact_at(&mut last, len - 1)?;
        last[0] != b'\n'
    };
    if unfinished {
        file.write_all(b"\n")?;
    }
    Ok((file, unfinished))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn path(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "watchtrace-events-{name}-{}.jsonl",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        path
    }

    fn run(path: &Path, line: &str) {
        let mut out = EventsOut::open(Some(path), TimeFormat::Ns).unwrap();
        out.write_line(&SessionStart::new(1, "--comm x".into(), 1));
        out.write_line(&serde_json::json!({ "kind": "conn_open", "conn": line }));
        out.finish().unwrap();
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_run_after_one_killed_mid_line_starts_on_a_new_line() {
        let path = path("partial");
        // An earlier agent was killed in the middle of a line.
        std::fs::write(&path, "{\"kind\":\"watch_event\",\"conn\":3,\"str").unwrap();
        run(&path, "next");
        let lines = lines(&path);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "{\"kind\":\"watch_event\",\"conn\":3,\"str");
        for line in &lines[1..] {
            serde_json::from_str::<serde_json::Value>(line).expect("every later line is whole");
        }
        assert!(
            lines[2].contains("\"next\""),
            "the next run's lines are intact"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn every_run_begins_with_a_session_start_line_and_appends() {
        let path = path("sessions");
        run(&path, "first");
        run(&path, "second");
        let lines = lines(&path);
        assert_eq!(lines.len(), 4);
        for i in [0, 2] {
            let start: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
            assert_eq!(start["kind"], "session_start");
            assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
            assert_eq!(start["targets"], "--comm x");
        }
        assert!(lines[1].contains("first") && lines[3].contains("second"));
        std::fs::remove_file(path).unwrap();
    }
}

//! Helpers for the root-only eBPF integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

pub(crate) mod ground_truth;
pub(crate) mod metrics_checks;

use std::{
    env,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use watchtrace::{
    capture::{Record, decode},
    loader::{LoadOptions, Tracer},
};

/// A child process killed and reaped when dropped: a test that fails while
/// its agent runs leaves no agent behind to trace the next tests' processes.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Already exited and reaped on the passing path: both fail quietly.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why a test cannot run, stated instead of passing silently.
pub(crate) const RUN_THROUGH_XTASK: &str =
    "run through `cargo xtask test` (needs root, the testbed binaries and WATCHTRACE_TESTBED_BIN)";

/// Loads the embedded object with default sizes; panics with the reason.
pub(crate) fn load(options: LoadOptions) -> Tracer {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "eBPF tests need root: {RUN_THROUGH_XTASK}");
    Tracer::load(options).expect("load eBPF object")
}

/// A testbed binary built by `cargo xtask test` (testbed/bin).
pub(crate) fn testbed_bin(name: &str) -> PathBuf {
    let dir = env::var_os("WATCHTRACE_TESTBED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed/bin"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: {RUN_THROUGH_XTASK}",
        path.display()
    );
    path
}

/// `testbed-run` with its state under `<dir>/bed` and its output discarded
/// (the ground truth is in the state directory); callers add the flags.
pub(crate) fn testbed_run(dir: &Path) -> Command {
    let mut cmd = Command::new(testbed_bin("testbed-run"));
    cmd.arg("-dir")
        .arg(dir.join("bed"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The testbed's fake-apiserver as `--exe` takes it (canonical): tests
/// select it by path, so another checkout's testbed running on the machine
/// at the same time is not traced.
pub(crate) fn fake_apiserver_exe() -> String {
    testbed_bin("fake-apiserver")
        .canonicalize()
        .expect("fake-apiserver path")
        .display()
        .to_string()
}

/// Waits (up to 15 s) until no fake-apiserver of this checkout runs: the
/// previous test's may still be shutting down, and a recorder selecting by
/// path would trace it instead of the new one.
pub(crate) fn wait_for_no_fake_apiserver() {
    let exe = PathBuf::from(fake_apiserver_exe());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let running = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|p| std::fs::read_link(p.path().join("exe")).is_ok_and(|e| e == exe));
        if !running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "an earlier fake-apiserver ({}) is still running",
            exe.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serialises the tests of one test binary that run a testbed.
static TESTBED: Mutex<()> = Mutex::new(());

/// This test's turn to run a testbed: no other test of this binary runs
/// one, and no earlier fake-apiserver is still shutting down. Returns the
/// turn (hold it until the testbed has stopped) and an empty scratch
/// directory `<tmp>/<name>-<pid>`.
pub(crate) fn testbed_turn(name: &str) -> (MutexGuard<'static, ()>, PathBuf) {
    let turn = TESTBED.lock().unwrap_or_else(PoisonError::into_inner);
    wait_for_no_fake_apiserver();
    let dir = env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (turn, dir)
}

/// `watchtrace record` of this checkout's fake-apiserver (by path: another
/// checkout's testbed may run on the machine), waiting for it to start,
/// for `seconds`, into `recording`; its log is discarded.
pub(crate) fn record_fake_apiserver(recording: &Path, seconds: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_watchtrace"));
    cmd.args(["record", "--exe", &fake_apiserver_exe()])
        .args(["--wait", "--duration", &seconds.to_string(), "-o"])
        .arg(recording)
        .stderr(Stdio::null());
    cmd
}

/// A recorder of fake-apiserver into `recording` (up to 120 s) that runs
/// until [`stop_recorder`]: a loaded machine may take longer than any
/// fixed duration to run the load.
pub(crate) fn start_recorder(recording: &Path) -> KillOnDrop {
    let child = record_fake_apiserver(recording, 120).spawn().unwrap();
    // Attached before the load starts (its rescan is every second).
    std::thread::sleep(Duration::from_secs(1));
    KillOnDrop(child)
}

/// `testbed-run` with `args` (its own flags, `--`, then watch-load's)
/// in `dir`, while fake-apiserver is recorded into `recording`.
pub(crate) fn record_load(dir: &Path, recording: &Path, args: &[&str]) {
    let recorder = start_recorder(recording);
    let status = testbed_run(dir).args(args).status().unwrap();
    assert!(status.success(), "testbed-run failed");
    stop_recorder(recorder);
}

/// Stops a recorder with SIGTERM (it finishes its file) and checks it
/// exited cleanly.
pub(crate) fn stop_recorder(mut recorder: KillOnDrop) {
    // Let the last records of the load be drained first.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on a child we own and have not reaped.
    unsafe { libc::kill(recorder.id() as i32, libc::SIGTERM) };
    let status = recorder.wait().unwrap();
    assert!(status.success(), "recorder exit {status:?}");
}

/// Every record in the ring buffer now, as the kernel wrote it. Records
/// are committed synchronously by the probed syscall or call, so once the
/// traced work has finished they are all there; a short settle loop covers
/// the uprobe path. [`decoded`] reads them.
pub(crate) fn drain(events: &mut RingBuf<MapData>) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_millis(200) {
        let mut got = false;
        while let Some(item) = events.next() {
            records.push(item.to_vec());
            got = true;
        }
        if got {
            idle_since = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    records
}

/// Drained records, decoded (borrowing their bytes).
pub(crate) fn decoded(raw: &[Vec<u8>]) -> Vec<Record<'_>> {
    raw.iter()
        .map(|bytes| decode(bytes).expect("decodable record"))
        .collect()
}

/// The calling thread's kernel thread id.
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// The testbed's `tls-writer`, started and stopped at its `ready <pid>`
/// line (so probes can attach before it writes).
pub(crate) struct TlsWriter {
    child: Child,
    stdout: BufReader<ChildStdout>,
    pub(crate) pid: u32,
}

impl TlsWriter {
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut child = Command::new(testbed_bin("tls-writer"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut writer = Self {
            child,
            stdout,
            pid: 0,
        };
        let line = writer.line();
        writer.pid = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("tls-writer said {line:?}"))
            .parse()
            .unwrap();
        assert_eq!(writer.pid, writer.child.id());
        writer
    }

    /// Lets it write.
    pub(crate) fn go(&mut self) {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }

    /// Its next line of output.
    pub(crate) fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// Waits for it to exit and reads its last line, `done <calls> <bytes>
    /// <ns>`; returns the bytes, panicking with the line if it failed.
    pub(crate) fn finish(mut self) -> u64 {
        let line = self.line();
        assert!(
            self.child.wait().unwrap().success(),
            "tls-writer failed: {line}"
        );
        line.strip_prefix("done ")
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|bytes| bytes.parse().ok())
            .unwrap_or_else(|| panic!("tls-writer said {line:?}"))
    }
}

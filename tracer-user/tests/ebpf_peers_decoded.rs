//! Root-only: golden captures decoded from real peers, on their side.
//!
//! - kubectl (the machine's stripped Go binary) watches configmaps of the
//!   testbed's fake-apiserver over TLS; `watchtrace record --comm kubectl`
//!   traces it, and the replayed recording's `watch_event` lines on
//!   kubectl's side (direction `in`) must be the ground-truth log's writes
//!   to kubectl's stream, event by event (type, resourceVersion, size, in
//!   order).
//! - etcdctl (Debian's etcd-client 3.4, Go 1.19) watches `/registry/` of
//!   the testbed's etcd (Debian's etcd, TLS with client certificates) from
//!   revision 1 while the testbed's writer writes; `record --comm etcdctl`
//!   traces it, and the replayed `etcd_event` lines must be every event the
//!   ground truth says etcd delivered (revision, key, type), with the value
//!   sizes the writer wrote.
//!
//! Both clients are short-lived and connect as soon as they start, before a
//! recorder rescanning /proc could attach. So each is started blocked on
//! opening a file it needs first (kubectl its kubeconfig, etcdctl its CA),
//! a FIFO here, whose content is served only once the recorder says it is
//! tracing that pid: the capture sees each connection from its first byte.

mod support;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    ffi::CString,
    fs::File,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
    process::{Child, ChildStderr, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use support::testbed_bin;
use watchtrace::{
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
    recording::Reader,
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

/// The two tests each run a testbed and a recorder: one at a time, on two
/// cores, and so that neither recorder sees the other's client.
static SERIAL: Mutex<()> = Mutex::new(());

/// `line` without terminal colour sequences.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `watchtrace record` running in the background, its log collected.
struct Recorder {
    child: support::KillOnDrop,
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(comm: &str, output: &Path) -> Self {
        let mut child = support::KillOnDrop(
            Command::new(WATCHTRACE)
                .args(["record", "--comm", comm, "--wait", "-o"])
                .arg(output)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(plain(&line));
            }
        });
        Self { child, log }
    }

    /// Waits until the recorder says it traces `pid`.
    fn wait_tracing(&self, pid: u32) {
        let needle = format!("tracing pid={pid} ");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.log.lock().unwrap().iter().any(|l| l.contains(&needle)) {
            assert!(
                Instant::now() < deadline,
                "recorder never traced pid {pid}: {:?}",
                self.log.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops it (SIGINT) and checks it ended well.
    fn stop(mut self) {
        interrupt(&self.child);
        let status = self.child.wait().unwrap();
        // Let the log thread take the last lines.
        thread::sleep(Duration::from_millis(100));
        assert!(status.success(), "record: {:?}", self.log.lock().unwrap());
    }
}

fn interrupt(child: &Child) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's,
    // not yet waited for.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0, "SIGINT to {}", child.id());
}

/// A FIFO that hands out a file's content to every reader that opens it,
/// until dropped. A client opening it blocks until the first reader is
/// served.
struct Fifo {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    server: Option<thread::JoinHandle<()>>,
}

impl Fifo {
    fn create(path: &Path) -> Self {
        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0, "mkfifo {}", path.display());
        Self {
            path: path.to_owned(),
            stop: Arc::new(AtomicBool::new(false)),
            served: Arc::new(AtomicUsize::new(0)),
            server: None,
        }
    }

    /// Starts serving `content` to each reader.
    fn serve(&mut self, content: Vec<u8>) {
        let (path, stop, served) = (
            self.path.clone(),
            Arc::clone(&self.stop),
            Arc::clone(&self.served),
        );
        self.server = Some(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Non-blocking: with no reader the open fails (ENXIO), so
                // the loop can stop. The content fits the pipe buffer.
                let Ok(mut f) = File::options()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&path)
                else {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                };
                f.write_all(&content).expect("the content fits the pipe");
                drop(f);
                served.fetch_add(1, Ordering::Relaxed);
                // The reader reads to the end of file, which it sees only
                // while no writer has the FIFO open: give it time to finish
                // before the next open, so nobody reads two copies.
                thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// testbed-run in the background, its stderr lines on a channel.
struct Bed {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Bed {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(testbed_bin("testbed-run"))
            .arg("-dir")
            .arg(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let err: ChildStderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The rest of the first stderr line that starts with `prefix`.
    fn wait_for(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("testbed-run never said {prefix:?}: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    fn finish(mut self) {
        assert!(self.child.wait().unwrap().success(), "testbed-run failed");
    }
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    BufReader::new(File::open(path).unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// Replays a recording through the pipeline, keeping the events of the
/// connections of process `pid`.
fn replay(recording: &Path, pid: u32) -> Vec<OutputEvent> {
    let mut reader = Reader::new(BufReader::new(File::open(recording).unwrap())).unwrap();
    let mut pipeline = Pipeline::new(
        PipelineConfig::default(),
        reader.metadata().realtime_offset_ns,
    );
    let mut conns = HashSet::new();
    let mut out = Vec::new();
    while let Some(bytes) = reader.next_record().unwrap() {
        pipeline.on_record(bytes, &mut |event| {
            let conn = match &event {
                OutputEvent::ConnOpen { conn, pid: p, .. } => {
                    if *p == pid {
                        conns.insert(*conn);
                    }
                    *conn
                }
                OutputEvent::Request { conn, .. }
                | OutputEvent::WatchEvent { conn, .. }
                | OutputEvent::EtcdEvent { conn, .. }
                | OutputEvent::Gap { conn, .. } => *conn,
                _ => return,
            };
            if conns.contains(&conn) {
                out.push(event);
            }
        });
    }
    out
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchtrace-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An event's type, resourceVersion and framed size.
type WatchEvent = (String, String, u64);

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn kubectl_watch_decoded_on_its_side_matches_the_ground_truth() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch_dir("kubectl-decoded");
    let recording = dir.join("kubectl.wtrec");
    let recorder = Recorder::start("kubectl", &recording);
    let bed = Bed::start(
        &dir.join("bed"),
        &[
            "-duration",
            "7s",
            "--",
            "-conns",
            "1",
            "-watches-per-conn",
            "1",
            "-resources",
            "configmaps",
            "-namespaces",
            "ns-0",
            "-write-rate",
            "40",
            "-delete-ratio",
            "0.3",
            "-drain",
            "1s",
        ],
    );
    let kubeconfig = PathBuf::from(bed.wait_for("testbed-run: kubeconfig "));
    // The writer is writing once watch-load runs.
    bed.wait_for("testbed-run: watch-load (pid");
    let mut fifo = Fifo::create(&dir.join("kubeconfig.fifo"));
    // fake-apiserver serves collection GETs only (no discovery), so
    // kubectl watches through --raw, as client-go's watch would: an HTTP/2
    // GET over TLS with a streamed JSON body.
    let kubectl = Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&fifo.path)
        .args([
            "get",
            "--raw",
            "/api/v1/namespaces/ns-0/configmaps?watch=1&timeoutSeconds=4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = kubectl.id();
    recorder.wait_tracing(pid);
    fifo.serve(std::fs::read(&kubeconfig).unwrap());
    let output = kubectl.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(fifo.served() >= 1, "kubectl read its kubeconfig");
    println!("kubeconfig served {} times", fifo.served());
    drop(fifo);
    bed.finish();
    recorder.stop();

    // kubectl's stream in the ground truth, by its user-agent.
    let truth = json_lines(&dir.join("bed/state/ground-truth.jsonl"));
    let opens: Vec<&serde_json::Value> = truth
        .iter()
        .filter(|v| {
            v["kind"] == "watch_open"
                && v["user_agent"]
                    .as_str()
                    .is_some_and(|ua| ua.starts_with("kubectl/"))
        })
        .collect();
    assert_eq!(opens.len(), 1, "one kubectl watch in the ground truth");
    let stream = opens[0]["stream"].as_u64().unwrap();
    let mut writes: Vec<(u64, WatchEvent)> = truth
        .iter()
        .filter(|v| v["kind"] == "write" && v["stream"].as_u64() == Some(stream))
        .map(|v| {
            (
                v["seq"].as_u64().unwrap(),
                (
                    v["event_type"].as_str().unwrap().to_owned(),
                    v["rv"].as_str().unwrap().to_owned(),
                    v["bytes"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    writes.sort_by_key(|(seq, _)| *seq);
    let expected: Vec<WatchEvent> = writes.into_iter().map(|(_, e)| e).collect();

    let events = replay(&recording, pid);
    let mut paths = BTreeMap::new();
    let mut decoded: BTreeMap<(u64, u32), Vec<WatchEvent>> = BTreeMap::new();
    for event in &events {
        match event {
            OutputEvent::Request {
                conn, stream, path, ..
            } => {
                paths.insert((*conn, *stream), path.clone());
            }
            OutputEvent::WatchEvent {
                conn,
                stream,
                event_type,
                resource_version,
                bytes,
                direction,
                ..
            } => {
                assert_eq!(
                    *direction,
                    tracer_common::record::Direction::Ingress,
                    "kubectl reads its watch events"
                );
                decoded.entry((*conn, *stream)).or_default().push((
                    event_type.to_string(),
                    resource_version.to_string(),
                    *bytes,
                ));
            }
            OutputEvent::Gap { len, .. } => panic!("{len} bytes lost"),
            _ => {}
        }
    }
    assert_eq!(decoded.len(), 1, "kubectl's one watch stream: {decoded:?}");
    let (key, got) = decoded.into_iter().next().unwrap();
    assert_eq!(
        paths.get(&key).map(String::as_str),
        opens[0]["path"].as_str(),
        "the request was decoded from kubectl's HEADERS"
    );
    let printed = String::from_utf8_lossy(&output.stdout).lines().count();
    println!(
        "kubectl (pid {pid}): {} watch events decoded on its side, {} in the ground truth, {printed} printed by kubectl",
        got.len(),
        expected.len()
    );
    let first_difference = (0..got.len().max(expected.len()))
        .find(|&i| got.get(i) != expected.get(i))
        .map(|i| (i, got.get(i), expected.get(i)));
    assert_eq!(
        first_difference, None,
        "(index, decoded, ground truth) of the first difference"
    );
    assert_eq!(
        printed,
        expected.len(),
        "kubectl printed one line per event"
    );
    let live = expected.iter().filter(|e| e.0 != "ADDED").count();
    assert!(
        expected.len() >= 20 && live >= 5,
        "a meaningful watch: {} events, {live} not ADDED",
        expected.len()
    );
    println!(
        "events matched: {} ({live} MODIFIED/DELETED/BOOKMARK)",
        got.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An etcd event: revision, key, PUT or DELETE, value size.
type EtcdEvent = (i64, String, String, u64);

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn etcdctl_watch_decoded_on_its_side_matches_the_ground_truth() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch_dir("etcdctl-decoded");
    let recording = dir.join("etcdctl.wtrec");
    let recorder = Recorder::start("etcdctl", &recording);
    let bed_dir = dir.join("bed");
    let bed = Bed::start(
        &bed_dir,
        &[
            "-etcd-tls",
            "-duration",
            "5s",
            "--",
            "-conns",
            "1",
            "-watches-per-conn",
            "1",
            "-write-rate",
            "40",
            "-delete-ratio",
            "0.3",
            "-drain",
            "1s",
        ],
    );
    let endpoint = bed.wait_for("testbed-run: etcd ");
    let endpoint = endpoint.split_whitespace().next().unwrap().to_owned();
    let pki = bed_dir.join("etcd/etcd-pki");
    let mut fifo = Fifo::create(&dir.join("ca.fifo"));
    // From revision 1: every event of the run, whenever the watch starts.
    let mut etcdctl = Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--cacert")
        .arg(&fifo.path)
        .arg("--cert")
        .arg(pki.join("client.crt"))
        .arg("--key")
        .arg(pki.join("client.key"))
        .args(["watch", "--prefix", "/registry/", "--rev", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = etcdctl.id();
    recorder.wait_tracing(pid);
    fifo.serve(std::fs::read(pki.join("ca.crt")).unwrap());
    let stdout = BufReader::new(etcdctl.stdout.take().unwrap());
    let printed = thread::spawn(move || stdout.lines().count());
    bed.wait_for("testbed-run: watch-load exit");
    // The writer is done: let the last events arrive, then end the watch.
    thread::sleep(Duration::from_millis(500));
    // etcdctl's watch catches SIGINT and may linger closing its stream:
    // it gets a moment, then SIGKILL.
    interrupt(&etcdctl);
    let deadline = Instant::now() + Duration::from_secs(3);
    while etcdctl.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            etcdctl.kill().unwrap();
            etcdctl.wait().unwrap();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let printed = printed.join().unwrap();
    assert!(fifo.served() >= 1, "etcdctl read its CA");
    println!("CA served {} times", fifo.served());
    drop(fifo);
    bed.finish();
    recorder.stop();

    // What etcd delivered to the testbed's cache, and what the writer wrote.
    let log = json_lines(&bed_dir.join("state/ground-truth.jsonl"));
    let mut expected: Vec<(i64, String, String)> = log
        .iter()
        .filter(|v| v["kind"] == "etcd_event")
        .map(|v| {
            (
                v["revision"].as_i64().unwrap(),
                v["key"].as_str().unwrap().to_owned(),
                v["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    expected.sort();
    let value_len: HashMap<i64, u64> = json_lines(&bed_dir.join("watch-load.jsonl"))
        .iter()
        .filter(|v| v["kind"] == "op" && v["op"] != "delete")
        .map(|v| (v["rev"].as_i64().unwrap(), v["bytes"].as_u64().unwrap()))
        .collect();
    let expected: Vec<EtcdEvent> = expected
        .into_iter()
        .map(|(rev, key, ty)| {
            let len = if ty == "PUT" { value_len[&rev] } else { 0 };
            (rev, key, ty, len)
        })
        .collect();

    let events = replay(&recording, pid);
    let mut got: Vec<EtcdEvent> = Vec::new();
    let mut streams = HashSet::new();
    for event in &events {
        match event {
            OutputEvent::EtcdEvent {
                conn,
                stream,
                key,
                revision,
                event_type,
                value_len,
                ..
            } => {
                streams.insert((*conn, *stream));
                got.push((*revision, key.clone(), event_type.clone(), *value_len));
            }
            OutputEvent::Gap { len, .. } => panic!("{len} bytes lost"),
            _ => {}
        }
    }
    assert_eq!(streams.len(), 1, "etcdctl's one watch stream");
    println!(
        "etcdctl (pid {pid}): {} etcd events decoded on its side, {} in the ground truth, {} lines printed",
        got.len(),
        expected.len(),
        printed
    );
    let first_difference = (0..got.len().max(expected.len()))
        .find(|&i| got.get(i) != expected.get(i))
        .map(|i| (i, got.get(i), expected.get(i)));
    assert_eq!(
        first_difference, None,
        "(index, decoded, ground truth) of the first difference"
    );
    let deletes = got.iter().filter(|e| e.2 == "DELETE").count();
    assert!(
        got.len() >= 100 && deletes > 0,
        "a meaningful watch: {} events, {deletes} deletes",
        got.len()
    );
    // etcdctl prints type, key and value: three lines per event.
    assert_eq!(printed, 3 * got.len(), "etcdctl printed every event");
    println!("events matched: {} ({deletes} DELETE)", got.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

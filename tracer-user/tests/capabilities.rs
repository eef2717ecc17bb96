//! The capability matrix: watchtrace run by an unprivileged user with the
//! five capabilities docs/requirements.md names, one dropped at a time.
//! `check` names the missing one when it is the cause, and `run` without
//! CAP_SYS_PTRACE says it traces without TLS probes (a `warning` line, an
//! unhealthy `/healthz`) instead of running quietly without them.

mod support;

use std::{
    fs,
    io::Read as _,
    net::TcpStream,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::Duration,
};

use support::KillOnDrop;
use watchtrace::check::REQUIRED_CAPABILITIES;

/// A copy of the binary the unprivileged user can run.
fn binary(dir: &Path) -> PathBuf {
    let copy = dir.join("watchtrace");
    fs::copy(env!("CARGO_BIN_EXE_watchtrace"), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// `setpriv` as user nobody holding the capabilities `check` names but
/// `drop`.
fn as_nobody_without(drop: Option<&str>) -> Command {
    let caps: String = REQUIRED_CAPABILITIES
        .iter()
        .map(|c| c.to_lowercase())
        .filter(|c| Some(c.as_str()) != drop)
        .map(|c| format!(",+{c}"))
        .collect();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(format!("--inh-caps=-all{caps}"))
        .arg(format!("--ambient-caps=-all{caps}"))
        .arg("--");
    cmd
}

fn check(bin: &Path, drop: Option<&str>) -> Output {
    as_nobody_without(drop)
        .arg(bin)
        .arg("check")
        .output()
        .expect("setpriv (util-linux) runs")
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchtrace-caps-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Debian's etcd (stripped Go, crypto/tls), owned by root: another user's
/// process to the unprivileged agent. Each test gives its own `port` (and
/// the next): they run at the same time.
fn etcd(dir: &Path, port: u16) -> KillOnDrop {
    let client = format!("http://127.0.0.1:{port}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .arg("--listen-peer-urls")
        .arg(format!("http://127.0.0.1:{}", port + 1))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd (cargo xtask setup installs it)");
    thread::sleep(Duration::from_secs(2));
    let mut etcd = KillOnDrop(child);
    assert!(etcd.try_wait().unwrap().is_none(), "etcd exited at start");
    etcd
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn check_names_the_missing_capability_when_it_is_the_cause() {
    let dir = dir("check");
    let bin = binary(&dir);
    let _etcd = etcd(&dir, 23911);
    assert_eq!(
        REQUIRED_CAPABILITIES.len(),
        5,
        "the matrix below covers each"
    );
    // (dropped, check succeeds, what its output must say)
    let matrix: [(Option<&str>, bool, &str); 6] = [
        (None, true, "result: ok, watchtrace can run on this host\n"),
        // CAP_SYS_ADMIN covers BPF and perf events on its own.
        (
            Some("bpf"),
            true,
            "result: ok, watchtrace can run on this host\n",
        ),
        (
            Some("perfmon"),
            true,
            "result: ok, watchtrace can run on this host\n",
        ),
        (Some("sys_admin"), false, "uprobes need CAP_SYS_ADMIN"),
        (
            Some("dac_read_search"),
            true,
            "degraded: other processes' fds: cannot read",
        ),
        (Some("sys_ptrace"), false, "needs CAP_SYS_PTRACE"),
    ];
    for (drop, ok, says) in matrix {
        let out = check(&bin, drop);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), ok, "without {drop:?}:\n{text}");
        assert!(
            text.contains(says),
            "without {drop:?}, expected {says:?}:\n{text}"
        );
        if drop == Some("dac_read_search") {
            assert!(text.contains("CAP_DAC_READ_SEARCH"), "{text}");
        }
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn run_without_the_tls_probes_privileges_warns_and_is_not_healthy() {
    let dir = dir("run");
    let bin = binary(&dir);
    let etcd = etcd(&dir, 23921);
    // Without CAP_SYS_PTRACE the binary cannot be read, without
    // CAP_SYS_ADMIN the uprobes cannot be made: either way no TLS probes.
    for (drop, cap) in [
        ("sys_ptrace", "CAP_SYS_PTRACE"),
        ("sys_admin", "CAP_SYS_ADMIN"),
    ] {
        degraded_run(&dir, &bin, etcd.id(), drop, cap);
    }
    drop(etcd);
    fs::remove_dir_all(dir).unwrap();
}

/// `run` of `pid` without `drop`: a `no_tls_probes` warning naming `cap`
/// in the log, the events, `/metrics` and `/healthz`.
fn degraded_run(dir: &Path, bin: &Path, pid: u32, drop: &str, cap: &str) {
    let events = dir.join(format!("events-{drop}.jsonl"));
    // A free port for /metrics and /healthz.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = as_nobody_without(Some(drop))
        .arg(bin)
        .args(["run", "--pid", &pid.to_string(), "--duration", "10"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .arg("--events")
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = KillOnDrop(agent);
    let get = |path: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        std::io::Write::write_all(&mut s, format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    // Attaching (resolving the binary's symbols) takes a moment, longer
    // on a busy machine: wait for the verdict, not for a fixed time.
    let started = std::time::Instant::now();
    let health = loop {
        let health = get("/healthz").unwrap_or_default();
        if status(&health) == Some("503") || started.elapsed() > Duration::from_secs(8) {
            break health;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(status(&health) == Some("503"), "without {drop}: {health}");
    assert!(
        health.contains("no_tls_probes") && health.contains(cap),
        "without {drop}: {health}"
    );
    // Not ready, but live: a restart would give it no privilege.
    let ready = get("/readyz").unwrap_or_default();
    assert!(status(&ready) == Some("503"), "without {drop}: {ready}");
    let live = get("/livez").unwrap_or_default();
    assert!(status(&live) == Some("200"), "without {drop}: {live}");
    let metrics = get("/metrics").unwrap_or_default();
    assert!(
        metrics.contains(r#"watchtrace_degraded{reason="no_tls_probes"} 1"#),
        "without {drop}: {metrics}"
    );
    assert!(agent.wait().unwrap().success());
    let mut stderr = String::new();
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains(cap), "without {drop}: {stderr}");
    let lines = fs::read_to_string(&events).unwrap();
    let warning = lines
        .lines()
        .find(|l| l.contains(r#""kind":"warning""#))
        .unwrap_or_else(|| panic!("without {drop}, no warning line in:\n{lines}"));
    assert!(
        warning.contains(r#""reason":"no_tls_probes""#) && warning.contains(cap),
        "{warning}"
    );
}

/// The status code of a raw HTTP response (the server answers an HTTP/1.0
/// request in HTTP/1.0).
fn status(response: &str) -> Option<&str> {
    response
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
}

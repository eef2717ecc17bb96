//! `watchtrace check` run as a real process: as root and as an
//! unprivileged user (the capability matrix is in `capabilities.rs`).

use std::process::{Command, Output};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");
/// `nobody`.
const UNPRIVILEGED_UID: &str = "65534";

fn check_as(prefix: &[&str]) -> Output {
    let (program, args) = match prefix.split_first() {
        Some((program, args)) => (*program, args.to_vec()),
        None => (WATCHTRACE, Vec::new()),
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    if !prefix.is_empty() {
        cmd.arg(WATCHTRACE);
    }
    cmd.arg("check").output().expect("run watchtrace check")
}

fn line_of<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{stdout}"))
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn passes_as_root_and_reports_kprobes_and_fentry_unavailable() {
    let out = check_as(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // These machines have neither (CONFIG_KPROBES off; tracing programs
    // refused), and watchtrace must say so rather than assume.
    assert!(line_of(&stdout, "kprobes").contains("unavailable"));
    assert!(line_of(&stdout, "fentry/fexit").contains("unavailable"));
    for required in [
        "privileges",
        "btf",
        "ringbuf map",
        "uprobes",
        "task registers",
        "raw tracepoint sock:sock_send_length",
        "raw tracepoint tcp:tcp_probe",
    ] {
        let line = line_of(&stdout, required);
        assert!(
            line.contains(" ok ") && line.contains("[required]"),
            "{line}"
        );
    }
    // The prototype the program reads, from kernel BTF, and a real attach.
    assert!(
        line_of(&stdout, "raw tracepoint sock:sock_send_length")
            .contains("sock_send_length(struct sock *, int32) attached")
    );
}

#[test]
#[ignore = "needs root to switch users: run through `cargo xtask test`"]
fn fails_with_one_clear_line_for_an_unprivileged_user() {
    let uid = format!("--reuid={UNPRIVILEGED_UID}");
    let gid = format!("--regid={UNPRIVILEGED_UID}");
    let out = check_as(&["setpriv", &uid, &gid, "--clear-groups"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of reason, got:\n{stderr}");
    assert!(
        lines[0].starts_with("watchtrace check failed: privileges:"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("run as root"), "{}", lines[0]);
}

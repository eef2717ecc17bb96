//! Running commands with their command line echoed, failing with context.

use std::process::Command;

use anyhow::{Context as _, bail};

/// Runs `cmd`, echoing it; fails if it cannot start or exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {shown}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout, or `None` if it cannot start or fails.
pub(crate) fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Test outcomes counted from a runner's output.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
}

/// Runs a test runner, echoing its stdout line by line while counting
/// outcomes with `count` (which adds to the tally from one line); fails like
/// [`run`] on a non-zero exit.
pub(crate) fn run_counting(
    cmd: &mut Command,
    count: impl Fn(&str, &mut Tally),
) -> anyhow::Result<Tally> {
    use std::io::{BufRead as _, BufReader};
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("xtask: $ {shown}");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().context("child stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        println!("{line}");
        count(&line, &mut tally);
    }
    let status = child.wait()?;
    if !status.success() && tally.failed == 0 {
        // Failed without a failing test (a build error, a crash): count it.
        eprintln!("xtask: {shown} failed: {status}");
        tally.failed += 1;
    }
    Ok(tally)
}

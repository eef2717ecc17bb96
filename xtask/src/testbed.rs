//! Building and running the Go testbed (testbed/, standard library only).

use std::{path::PathBuf, process::Command};

use crate::{process, setup, workspace_root};

/// Where the testbed binaries are built (git-ignored).
pub(crate) fn bin_dir() -> PathBuf {
    workspace_root().join("testbed/bin")
}

/// A `go` command in testbed/ with the pinned toolchain and no network.
pub(crate) fn go(args: &[&str]) -> Command {
    let mut cmd = Command::new(setup::go_binary());
    cmd.current_dir(workspace_root().join("testbed"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .args(args);
    cmd
}

/// Builds every testbed command into testbed/bin.
pub(crate) fn build() -> anyhow::Result<()> {
    let out = format!("{}/", bin_dir().display());
    process::run(&mut go(&["build", "-o", &out, "./cmd/..."]))
}

/// `cargo xtask testbed [flags]`: runs testbed-run in the foreground; it
/// starts etcd, fake-apiserver and watch-load and stops them on exit or
/// Ctrl-C.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    setup::run()?;
    build()?;
    process::run(Command::new(bin_dir().join("testbed-run")).args(args))
}

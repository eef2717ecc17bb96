//! The source revision, for `watchtrace_build_info{revision}`: the git
//! commit this was built from (with `-dirty` for uncommitted changes), or
//! `WATCHTRACE_REVISION` when set (an image build without `.git`), else
//! `unknown`.

use std::{path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=WATCHTRACE_REVISION");
    let revision = std::env::var("WATCHTRACE_REVISION")
        .ok()
        .or_else(git_revision);
    let revision = revision.unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=WATCHTRACE_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    // Rebuilt when HEAD moves (a commit, a checkout).
    for file in [".git/HEAD", ".git/index"] {
        let path = Path::new(&top).join(file);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

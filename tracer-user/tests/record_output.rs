//! `watchtrace record -o PATH` never writes through a link and never
//! replaces a file by surprise: the recording holds plaintext.

use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Output},
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("watchtrace-record-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A victim file another user cares about, mode 0644.
fn victim(dir: &Path) -> PathBuf {
    let victim = dir.join("victim");
    fs::write(&victim, "precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    victim
}

fn untouched(victim: &Path) {
    assert_eq!(fs::read_to_string(victim).unwrap(), "precious");
    assert_eq!(fs::metadata(victim).unwrap().mode() & 0o777, 0o644);
}

/// Records this test process for a moment.
fn record(output: &Path, force: bool) -> Output {
    let mut cmd = Command::new(WATCHTRACE);
    cmd.args(["record", "--pid", &std::process::id().to_string()])
        .args(["--duration", "0.2", "-o"])
        .arg(output);
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

fn refused(out: &Output) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exists") && stderr.contains("--force"),
        "{stderr}"
    );
}

#[test]
fn an_existing_file_a_symlink_a_dangling_symlink_or_a_hard_link_is_refused_before_attaching() {
    let dir = dir("refused");
    let victim = victim(&dir);

    let link = dir.join("symlink.wtrec");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    refused(&record(&link, false));

    let dangling = dir.join("dangling.wtrec");
    let nowhere = dir.join("nowhere");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    refused(&record(&dangling, false));
    assert!(!nowhere.exists(), "nothing created where the link points");

    let hard = dir.join("hard.wtrec");
    fs::hard_link(&victim, &hard).unwrap();
    refused(&record(&hard, false));

    refused(&record(&victim, false));
    untouched(&victim);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn force_replaces_a_symlink_or_a_hard_link_without_writing_through_it() {
    let dir = dir("force");
    let victim = victim(&dir);
    let symlink: fn(&Path, &Path) -> std::io::Result<()> = |a, b| std::os::unix::fs::symlink(a, b);
    let hard_link: fn(&Path, &Path) -> std::io::Result<()> = |a, b| fs::hard_link(a, b);
    for (name, make) in [("symlink.wtrec", symlink), ("hard.wtrec", hard_link)] {
        let path = dir.join(name);
        make(&victim, &path).unwrap();
        let out = record(&path, true);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        untouched(&victim);
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.is_file(),
            "{name}: the path is now the recording itself"
        );
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_ne!(meta.ino(), fs::metadata(&victim).unwrap().ino());
    }
    // No temporary file left beside them.
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hard.wtrec", "symlink.wtrec", "victim"]);
    fs::remove_dir_all(dir).unwrap();
}

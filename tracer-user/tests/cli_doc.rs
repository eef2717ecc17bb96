//! docs/cli.md carries the `--help` of watchtrace and of every subcommand,
//! verbatim, and a section per subcommand: a new subcommand or flag fails
//! here until the reference is regenerated and described.
//!
//! Regenerate the verbatim part with
//! `WATCHTRACE_BLESS=1 cargo test -p tracer-user --test cli_doc`.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use clap::CommandFactory as _;
use watchtrace::cli::Cli;

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");
const BEGIN: &str =
    "<!-- BEGIN GENERATED: `watchtrace ... --help`; see tracer-user/tests/cli_doc.rs -->";
const END: &str = "<!-- END GENERATED -->";

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md")
}

/// The subcommands, as clap knows them (without clap's own `help`).
fn subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|n| n != "help")
        .collect()
}

/// `watchtrace [SUB] --help`, as a user sees it: environment defaults
/// cleared (clap prints their current values), lines right-trimmed.
fn help(sub: Option<&str>) -> String {
    let mut cmd = Command::new(WATCHTRACE);
    cmd.env_remove("WATCHTRACE_LOG")
        .env_remove("WATCHTRACE_LOG_FORMAT")
        .env_remove("NO_COLOR")
        .env("TERM", "dumb");
    if let Some(sub) = sub {
        cmd.arg(sub);
    }
    let out = cmd.arg("--help").output().expect("run watchtrace --help");
    assert!(out.status.success());
    trim_lines(&String::from_utf8(out.stdout).unwrap())
}

fn trim_lines(text: &str) -> String {
    let mut out: String = text
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn generated() -> String {
    let mut out = format!("{BEGIN}\n\n");
    let mut push = |title: &str, text: String| {
        out.push_str(&format!("### `{title}`\n\n```text\n{text}```\n\n"));
    };
    push("watchtrace --help", help(None));
    for sub in subcommands() {
        push(&format!("watchtrace {sub} --help"), help(Some(&sub)));
    }
    out.push_str(END);
    out
}

#[test]
fn cli_md_holds_every_subcommands_help_verbatim() {
    let path = doc_path();
    let doc = fs::read_to_string(&path).expect("docs/cli.md");
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/cli.md lacks the generated-section markers");
    };
    let current = &doc[begin..end + END.len()];
    let want = generated();
    if env::var_os("WATCHTRACE_BLESS").is_some() {
        let updated = format!("{}{want}{}", &doc[..begin], &doc[end + END.len()..]);
        fs::write(&path, updated).expect("write docs/cli.md");
        return;
    }
    assert!(
        trim_lines(current) == trim_lines(&want),
        "docs/cli.md is out of date with `watchtrace --help`: regenerate with \
         `WATCHTRACE_BLESS=1 cargo test -p tracer-user --test cli_doc`, then describe \
         what changed in its hand-written part"
    );
}

#[test]
fn cli_md_describes_every_subcommand_and_flag() {
    let doc = fs::read_to_string(doc_path()).expect("docs/cli.md");
    let written = &doc[..doc.find(BEGIN).expect("marker")];
    let cli = Cli::command();
    let mut missing = Vec::new();
    for arg in cli.get_arguments().filter(|a| a.is_global_set()) {
        if let Some(long) = arg.get_long()
            && !written.contains(&format!("`--{long}"))
        {
            missing.push(format!("global --{long}"));
        }
    }
    for sub in cli.get_subcommands().filter(|c| c.get_name() != "help") {
        let name = sub.get_name();
        let heading = format!("\n## `watchtrace {name}");
        let Some(at) = written.find(&heading) else {
            missing.push(format!("section `## watchtrace {name}`"));
            continue;
        };
        let section = &written[at + 1..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for arg in sub.get_arguments() {
            if arg.is_global_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
                continue;
            }
            let shown = match arg.get_long() {
                Some(long) => format!("`--{long}"),
                None => format!("`{}", arg.get_id().as_str().to_uppercase()),
            };
            if !section.contains(&shown) {
                missing.push(format!("{name} {shown}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md does not describe: {missing:?}"
    );
}

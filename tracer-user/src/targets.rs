//! Choosing target processes by pid, command name or executable.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::cli::TargetArgs;

/// A process that matched a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub pid: u32,
    pub comm: String,
    /// Resolved `/proc/PID/exe`, if readable.
    pub exe: Option<PathBuf>,
}

/// Default selector when none is given: the apiserver's command name.
pub const DEFAULT_COMM: &str = "kube-apiserver";

impl TargetArgs {
    /// True when no selector was given.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.comms.is_empty() && self.exes.is_empty()
    }

    /// The selectors in words, for messages.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return format!("default: --comm {DEFAULT_COMM}");
        }
        let mut parts: Vec<String> = self.pids.iter().map(|p| format!("--pid {p}")).collect();
        parts.extend(self.comms.iter().map(|c| format!("--comm {c}")));
        parts.extend(self.exes.iter().map(|e| format!("--exe {}", e.display())));
        parts.join(" ")
    }

    /// Whether a process with this pid, comm and exe matches.
    pub fn matches(&self, pid: u32, comm: &str, exe: Option<&Path>) -> bool {
        if self.is_empty() {
            return comm == DEFAULT_COMM;
        }
        self.pids.contains(&pid)
            || self.comms.iter().any(|c| c == comm)
            || exe.is_some_and(|exe| self.exes.iter().any(|e| same_file(e, exe)))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || fs::canonicalize(a).is_ok_and(|a| a == b)
}

/// Scans /proc for processes matching `args`.
pub fn scan(args: &TargetArgs) -> Vec<Target> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Target> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let comm = comm.trim_end().to_owned();
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
            args.matches(pid, &comm, exe.as_deref())
                .then_some(Target { pid, comm, exe })
        })
        .collect();
    found.sort_by_key(|t| t.pid);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_selects_kube_apiserver_only() {
        let args = TargetArgs {
            pids: vec![],
            comms: vec![],
            exes: vec![],
        };
        assert!(args.matches(10, "kube-apiserver", None));
        assert!(!args.matches(10, "etcd", None));
    }

    #[test]
    fn selectors_combine_as_a_union() {
        let args = TargetArgs {
            pids: vec![42],
            comms: vec!["etcd".into()],
            exes: vec![PathBuf::from("/usr/bin/kubectl")],
        };
        assert!(args.matches(42, "anything", None));
        assert!(args.matches(7, "etcd", None));
        assert!(args.matches(8, "kubectl", Some(Path::new("/usr/bin/kubectl"))));
        assert!(!args.matches(9, "kube-apiserver", Some(Path::new("/usr/bin/other"))));
    }

    #[test]
    fn scan_finds_this_process_by_pid() {
        let me = std::process::id();
        let args = TargetArgs {
            pids: vec![me],
            comms: vec![],
            exes: vec![],
        };
        let found = scan(&args);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pid, me);
    }
}

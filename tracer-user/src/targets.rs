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
    /// `/proc/PID/exe` could not be read for lack of privilege (another
    /// user's process without CAP_SYS_PTRACE): no TLS probes for it.
    pub exe_denied: bool,
}

/// What a scan of /proc found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub targets: Vec<Target>,
    /// Processes whose executable could not be read for lack of privilege:
    /// an `--exe` selector cannot match them.
    pub exe_denied: usize,
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
pub fn scan(args: &TargetArgs) -> Scan {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Scan::default();
    };
    let mut exe_denied = 0;
    let mut found: Vec<Target> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let comm = comm.trim_end().to_owned();
            let (exe, denied) = match fs::read_link(format!("/proc/{pid}/exe")) {
                Ok(exe) => (Some(exe), false),
                // Kernel threads have none; another user's process needs
                // CAP_SYS_PTRACE.
                Err(e) => (None, e.kind() == std::io::ErrorKind::PermissionDenied),
            };
            exe_denied += usize::from(denied);
            args.matches(pid, &comm, exe.as_deref()).then_some(Target {
                pid,
                comm,
                exe,
                exe_denied: denied,
            })
        })
        .collect();
    found.sort_by_key(|t| t.pid);
    Scan {
        targets: found,
        exe_denied,
    }
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
        let found = scan(&args).targets;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pid, me);
    }
}

/// Where the bytes at `file` offsets of `pid`'s executable are in its
/// address space, from /proc/PID/maps: the mapping of that file (matched by
/// inode, so paths that differ between mount namespaces do not matter)
/// that covers them. `None` if no mapping does.
pub fn runtime_range(pid: u32, file: std::ops::Range<u64>) -> Option<std::ops::Range<u64>> {
    use std::os::unix::fs::MetadataExt as _;
    let inode = fs::metadata(format!("/proc/{pid}/exe")).ok()?.ino();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    mapped(&maps, inode, file)
}

/// [`runtime_range`] on the text of /proc/PID/maps.
fn mapped(maps: &str, inode: u64, file: std::ops::Range<u64>) -> Option<std::ops::Range<u64>> {
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (
            u64::from_str_radix(start, 16).ok()?,
            u64::from_str_radix(end, 16).ok()?,
        );
        let _perms = fields.next()?;
        let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
        let _dev = fields.next()?;
        let ino: u64 = fields.next()?.parse().ok()?;
        let covers = ino == inode && file.start >= offset && file.end <= offset + (end - start);
        covers.then(|| start + (file.start - offset)..start + (file.end - offset))
    })
}

#[cfg(test)]
mod runtime_tests {
    use super::*;

    #[test]
    fn file_offsets_map_through_the_mapping_that_covers_them() {
        let maps = "\
00400000-00a00000 r-xp 00000000 fd:01 4242 /usr/local/bin/kube-apiserver
00a00000-01000000 r--p 00600000 fd:01 4242 /usr/local/bin/kube-apiserver
7f0000000000-7f0000100000 r-xp 00001000 fd:01 99 /usr/lib/libc.so.6
";
        // Not PIE: file offset 0x1000 is at 0x401000.
        assert_eq!(
            mapped(maps, 4242, 0x1000..0x1200),
            Some(0x40_1000..0x40_1200)
        );
        // The second mapping, read-only data.
        assert_eq!(
            mapped(maps, 4242, 0x60_0010..0x60_0020),
            Some(0xa0_0010..0xa0_0020)
        );
        // Another file's inode, or offsets no mapping covers.
        assert_eq!(mapped(maps, 7, 0x1000..0x1200), None);
        assert_eq!(mapped(maps, 4242, 0x5f_ff00..0x60_0100), None);
        // A PIE binary mapped at a random base.
        let pie = "55d000000000-55d000800000 r-xp 00000000 fd:01 5 /bin/app (deleted)\n";
        assert_eq!(
            mapped(pie, 5, 0x2000..0x2100),
            Some(0x55d0_0000_2000..0x55d0_0000_2100)
        );
    }
}

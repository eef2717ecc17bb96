//! `watchtrace check`: what this host supports and what watchtrace needs.

use std::fmt::Write as _;

use crate::{
    host::{self, Privileges, Support},
    tracefs, tracepoints,
};

/// Whether watchtrace needs a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// watchtrace cannot run without it.
    Required,
    /// Reported for the operator's information; watchtrace never uses it.
    NotUsed,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Item {
    pub name: String,
    pub need: Need,
    pub support: Support,
}

/// The whole report.
#[derive(Clone, Debug)]
pub struct Report {
    pub kernel: String,
    pub items: Vec<Item>,
}

impl Report {
    /// Probes this host. Needs root (or the capabilities) for the BPF probes;
    /// without them the privilege line says so and later lines fail too.
    pub fn probe() -> Self {
        let mut items = Vec::new();
        let mut push = |name: &str, need, support| {
            items.push(Item {
                name: name.to_owned(),
                need,
                support,
            });
        };
        let privileges = Privileges::current().map_or_else(
            |e| Support::Unavailable(format!("cannot read /proc/self/status: {e}")),
            |p| p.sufficient(),
        );
        let privileged = privileges.is_available();
        push("privileges", Need::Required, privileges);
        push("btf", Need::Required, host::btf());
        push("ringbuf map", Need::Required, host::ringbuf());
        push("uprobes", Need::Required, host::uprobe_attach());
        push("task registers", Need::Required, host::task_pt_regs());
        push("kprobes", Need::NotUsed, host::pmu("kprobe"));
        push("fentry/fexit", Need::NotUsed, host::fentry("tcp_sendmsg"));
        let root = if privileged {
            tracefs::ensure_mounted()
        } else {
            tracefs::find_root().ok_or_else(|| tracefs::TracefsError::NotMounted {
                source: std::io::Error::other(if tracefs::is_mounted() {
                    "mounted but not readable by this user (tracefs is root-only)"
                } else {
                    "not mounted, and mounting needs privileges"
                }),
            })
        };
        match root {
            Ok(root) => {
                push(
                    "tracefs",
                    Need::Required,
                    Support::Available(root.display().to_string()),
                );
                for tp in tracepoints::used() {
                    let name = format!("tracepoint {}:{}", tp.category, tp.name);
                    let support = match tracefs::read_format(&root, tp.category, tp.name) {
                        Ok(format) => match tracepoints::check_fields(tp, &format) {
                            Ok(()) => Support::Available(
                                tp.fields
                                    .iter()
                                    .filter_map(|(f, _)| format.field(f).ok())
                                    .map(|f| format!("{}@{}/{}", f.name, f.offset, f.size))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            ),
                            Err(e) => Support::Unavailable(e.to_string()),
                        },
                        Err(e) => Support::Unavailable(e.to_string()),
                    };
                    push(&name, Need::Required, support);
                }
            }
            Err(e) => push(
                "tracefs",
                Need::Required,
                Support::Unavailable(e.to_string()),
            ),
        }
        Self {
            kernel: host::kernel_release(),
            items,
        }
    }

    /// The first required feature that is missing, as a one-line reason.
    pub fn failure(&self) -> Option<String> {
        self.items
            .iter()
            .find(|i| i.need == Need::Required && !i.support.is_available())
            .map(|i| match &i.support {
                Support::Unavailable(why) => format!("{}: {why}", i.name),
                Support::Available(_) => unreachable!("filtered above"),
            })
    }

    /// Human-readable table.
    pub fn render(&self) -> String {
        let mut out = format!("watchtrace check: kernel {}\n", self.kernel);
        let width = self.items.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for item in &self.items {
            let (status, detail) = match &item.support {
                Support::Available(d) => ("ok", d),
                Support::Unavailable(d) => ("unavailable", d),
            };
            let need = match item.need {
                Need::Required => "required",
                Need::NotUsed => "not used",
            };
            let _ = writeln!(
                out,
                "  {:width$}  {status:11}  [{need}]  {detail}",
                item.name
            );
        }
        let _ = writeln!(
            out,
            "  capabilities needed without root: {}",
            REQUIRED_CAPABILITIES.join(", ")
        );
        out
    }
}

/// Capabilities watchtrace needs when not root. The DaemonSet lists exactly
/// these (a test checks that they agree).
/// - BPF: load programs, create maps;
/// - PERFMON: attach tracepoints (perf events);
/// - SYS_ADMIN: create uprobes (the kernel asks for it, found by test);
/// - DAC_READ_SEARCH: read tracefs (root-only) and the target's binary;
/// - SYS_PTRACE: resolve /proc/PID/exe of processes owned by other users.
///
/// No SYS_RESOURCE: on Linux >= 5.11 BPF memory is charged to the cgroup,
/// not RLIMIT_MEMLOCK.
pub const REQUIRED_CAPABILITIES: &[&str] = &[
    "BPF",
    "PERFMON",
    "SYS_ADMIN",
    "DAC_READ_SEARCH",
    "SYS_PTRACE",
];

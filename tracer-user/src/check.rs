//! `watchtrace check`: what this host supports and what watchtrace needs.

use std::fmt::Write as _;

use crate::{
    btf::Btf,
    host::{self, Privileges, Support},
    tracepoints,
};

/// Whether watchtrace needs a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// watchtrace cannot run without it.
    Required,
    /// watchtrace runs without it, but loses something (said in the row).
    Degrades,
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
        push(
            "other processes' executables",
            Need::Required,
            host::proc_readable(
                "exe",
                "CAP_SYS_PTRACE",
                "without it --exe cannot match and no Go TLS probe can be attached",
            ),
        );
        push(
            "other processes' fds",
            Need::Degrades,
            host::proc_readable(
                "fd",
                "CAP_DAC_READ_SEARCH",
                "without it connections open before attach get their addresses only once used",
            ),
        );
        push("kprobes", Need::NotUsed, host::pmu("kprobe"));
        push("fentry/fexit", Need::NotUsed, host::fentry("tcp_sendmsg"));
        // Prototypes from kernel BTF: the programs read these arguments.
        let btf = std::fs::read("/sys/kernel/btf/vmlinux")
            .map_err(|e| e.to_string())
            .and_then(|data| Btf::parse(&data).map_err(|e| e.to_string()));
        for tp in tracepoints::used() {
            let name = format!("raw tracepoint {}:{}", tp.category, tp.name);
            let support = match &btf {
                Err(e) => Support::Unavailable(format!("no kernel BTF: {e}")),
                Ok(btf) => match tracepoints::check_prototype(btf, tp) {
                    Err(e) => Support::Unavailable(e.to_string()),
                    Ok(()) if !privileged => Support::Unavailable(
                        "attaching needs privileges (see the privileges line)".into(),
                    ),
                    Ok(()) => match host::raw_tracepoint(tp.name) {
                        Support::Available(_) => Support::Available(format!(
                            "{}({}) attached",
                            tp.name,
                            tp.args
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                        unavailable => unavailable,
                    },
                },
            };
            push(&name, Need::Required, support);
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

    /// Features whose absence degrades what watchtrace captures, as
    /// one-line reasons.
    pub fn degraded(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.need == Need::Degrades)
            .filter_map(|i| match &i.support {
                Support::Unavailable(why) => Some(format!("{}: {why}", i.name)),
                Support::Available(_) => None,
            })
            .collect()
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
                Need::Degrades => "degrades",
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
/// - DAC_READ_SEARCH: read the target's binary;
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

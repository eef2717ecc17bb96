//! What this host supports, probed for real: each check performs the
//! operation (a map create, a program load, a PMU lookup) rather than
//! guessing from the kernel version.

use std::{
    fs, io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

/// CAP_SYS_ADMIN: covers everything below on kernels without CAP_BPF.
const CAP_SYS_ADMIN: u32 = 21;
/// CAP_PERFMON (Linux 5.8+): perf events, including tracepoints and uprobes.
const CAP_PERFMON: u32 = 38;
/// CAP_BPF (Linux 5.8+): loading programs and creating maps.
const CAP_BPF: u32 = 39;

/// The outcome of probing one feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    Available(String),
    Unavailable(String),
}

impl Support {
    pub fn is_available(&self) -> bool {
        matches!(self, Self::Available(_))
    }
}

/// Effective capabilities and uid of this process.
#[derive(Clone, Copy, Debug)]
pub struct Privileges {
    pub euid: u32,
    pub effective_caps: u64,
}

impl Privileges {
    /// Reads `/proc/self/status`.
    pub fn current() -> io::Result<Self> {
        let status = fs::read_to_string("/proc/self/status")?;
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        Ok(Self {
            euid,
            effective_caps: cap_eff,
        })
    }

    fn has(&self, cap: u32) -> bool {
        self.effective_caps & (1 << cap) != 0
    }

    /// Whether watchtrace can load and attach its programs: CAP_BPF plus
    /// CAP_PERFMON, or CAP_SYS_ADMIN (which implies both on older kernels).
    /// Reading other users' binaries also needs DAC access,
    /// which root has.
    pub fn sufficient(&self) -> Support {
        let bpf = self.has(CAP_BPF) && self.has(CAP_PERFMON);
        if self.euid == 0 && (bpf || self.has(CAP_SYS_ADMIN)) {
            Support::Available("root".into())
        } else if bpf {
            Support::Available("CAP_BPF and CAP_PERFMON".into())
        } else if self.has(CAP_SYS_ADMIN) {
            Support::Available("CAP_SYS_ADMIN".into())
        } else {
            Support::Unavailable(format!(
                "uid {} lacks CAP_BPF and CAP_PERFMON (effective capabilities {:#x}): run as root, \
                 or grant CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE",
                self.euid, self.effective_caps
            ))
        }
    }
}

/// Kernel BTF, needed by aya to relocate and by the fentry probe.
pub fn btf() -> Support {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    match fs::metadata(path) {
        Ok(m) => Support::Available(format!("{} ({} KiB)", path.display(), m.len() / 1024)),
        Err(e) => Support::Unavailable(format!(
            "{}: {e} (kernel built without CONFIG_DEBUG_INFO_BTF)",
            path.display()
        )),
    }
}

/// A perf event source (PMU) such as `uprobe` or `kprobe`.
pub fn pmu(name: &str) -> Support {
    let path = format!("/sys/bus/event_source/devices/{name}/type");
    match fs::read_to_string(&path) {
        Ok(t) => Support::Available(format!("{name} PMU, perf type {}", t.trim())),
        Err(_) => Support::Unavailable(format!("no {name} PMU in /sys/bus/event_source/devices")),
    }
}

// bpf(2) commands and types used by the probes below (uapi/linux/bpf.h).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const BPF_PROG_TYPE_TRACING: u32 = 26;
// Helper ids (uapi/linux/bpf.h `__BPF_FUNC_MAPPER`).
const BPF_FUNC_GET_CURRENT_TASK_BTF: u64 = 158;
const BPF_FUNC_TASK_PT_REGS: u64 = 175;
const BPF_TRACE_FENTRY: u32 = 24;

/// `union bpf_attr` as bytes: the probes fill the few fields they need at
/// their uapi offsets and leave the rest zero, as the kernel requires.
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn new() -> Self {
        Self([0; 128])
    }
    /// A BPF_PROG_LOAD of `insns` (which must outlive the call) as a GPL
    /// program of `prog_type`.
    fn program(prog_type: u32, insns: &[u64]) -> Self {
        let mut attr = Self::new();
        attr.put_u32(0, prog_type) // prog_type
            .put_u32(4, insns.len() as u32) // insn_cnt
            .put_u64(8, insns.as_ptr() as u64) // insns
            .put_u64(16, c"GPL".as_ptr() as u64); // license (a static)
        attr
    }
    fn put_u32(&mut self, offset: usize, value: u32) -> &mut Self {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }
    fn put_u64(&mut self, offset: usize, value: u64) -> &mut Self {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }
    /// Runs bpf(cmd, attr); returns the new fd, closed again at once.
    fn call(&mut self, cmd: libc::c_long) -> io::Result<()> {
        self.open(cmd).map(drop)
    }
    /// Runs bpf(cmd, attr) and returns the new fd.
    fn open(&mut self, cmd: libc::c_long) -> io::Result<OwnedFd> {
        // SAFETY: attr points to 128 initialised bytes that outlive the call,
        // and the size passed matches.
        let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, self.0.as_mut_ptr(), self.0.len()) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by the kernel and is owned here.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }
}

/// Creates (and closes) a 4 KiB ring buffer map.
pub fn ringbuf() -> Support {
    let result = BpfAttr::new()
        .put_u32(0, BPF_MAP_TYPE_RINGBUF) // map_type
        .put_u32(12, 4096) // max_entries
        .call(BPF_MAP_CREATE);
    match result {
        Ok(()) => Support::Available("BPF_MAP_TYPE_RINGBUF created".into()),
        Err(e) => Support::Unavailable(format!("BPF_MAP_CREATE(ringbuf): {e}")),
    }
}

/// Loads (and closes) a raw tracepoint program that reads the current
/// task's saved user registers, as the socket tracepoints do to read the
/// syscall's arguments and the sender's stack. Linux 5.15+.
pub fn task_pt_regs() -> Support {
    // call bpf_get_current_task_btf; r1 = r0; call bpf_task_pt_regs;
    // r0 = 0; exit
    let call = |helper: u64| (helper << 32) | 0x85;
    let insns: [u64; 5] = [
        call(BPF_FUNC_GET_CURRENT_TASK_BTF),
        0x0000_0000_0000_01bf,
        call(BPF_FUNC_TASK_PT_REGS),
        0x0000_0000_0000_00b7,
        0x0000_0000_0000_0095,
    ];
    match BpfAttr::program(BPF_PROG_TYPE_RAW_TRACEPOINT, &insns).call(BPF_PROG_LOAD) {
        Ok(()) => Support::Available("bpf_task_pt_regs in a raw tracepoint program".into()),
        Err(e) => Support::Unavailable(format!(
            "BPF_PROG_LOAD(raw tracepoint calling bpf_task_pt_regs): {e} (needs Linux 5.15+)"
        )),
    }
}

/// Loads a do-nothing raw tracepoint program and attaches it to `name` for
/// a moment (BPF_RAW_TRACEPOINT_OPEN): what attaching the real one needs.
pub fn raw_tracepoint(name: &str) -> Support {
    let Ok(c_name) = std::ffi::CString::new(name) else {
        return Support::Unavailable(format!("bad tracepoint name {name:?}"));
    };
    // r0 = 0; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let program = match BpfAttr::program(BPF_PROG_TYPE_RAW_TRACEPOINT, &insns).open(BPF_PROG_LOAD) {
        Ok(fd) => fd,
        Err(e) => return Support::Unavailable(format!("BPF_PROG_LOAD(raw tracepoint): {e}")),
    };
    let result = BpfAttr::new()
        .put_u64(0, c_name.as_ptr() as u64) // raw_tracepoint.name
        .put_u32(8, program.as_raw_fd() as u32) // raw_tracepoint.prog_fd
        .call(BPF_RAW_TRACEPOINT_OPEN);
    match result {
        Ok(()) => Support::Available(format!("attached to {name}")),
        Err(e) => Support::Unavailable(format!("BPF_RAW_TRACEPOINT_OPEN({name}): {e}")),
    }
}

/// Loads (and closes) a two-instruction fentry program on `func`, whose BTF
/// type id is looked up in the kernel's BTF. This is exactly what an fentry
/// user needs, so it answers for trampolines, JIT and BTF together.
pub fn fentry(func: &str) -> Support {
    let btf = match aya::Btf::from_sys_fs() {
        Ok(btf) => btf,
        Err(e) => return Support::Unavailable(format!("no kernel BTF: {e}")),
    };
    let btf_id = match btf.id_by_type_name_kind(func, aya_obj::btf::BtfKind::Func) {
        Ok(id) => id,
        Err(e) => return Support::Unavailable(format!("{func} not in kernel BTF: {e}")),
    };
    // r0 = 0; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let result = BpfAttr::program(BPF_PROG_TYPE_TRACING, &insns)
        .put_u32(68, BPF_TRACE_FENTRY) // expected_attach_type
        .put_u32(108, btf_id) // attach_btf_id
        .call(BPF_PROG_LOAD);
    match result {
        Ok(()) => Support::Available(format!("fentry program on {func} loaded")),
        Err(e) => Support::Unavailable(format!("BPF_PROG_LOAD(tracing, fentry on {func}): {e}")),
    }
}

/// The running kernel's release string.
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// `PERF_FLAG_FD_CLOEXEC` from uapi/linux/perf_event.h.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// Opens (and closes) a uprobe perf event on this executable's entry point,
/// for all processes, as the loader does. Unlike the PMU's presence, this
/// answers whether *this* process may create uprobes: the kernel wants
/// CAP_SYS_ADMIN for them even when CAP_PERFMON suffices for tracepoints.
pub fn uprobe_attach() -> Support {
    let pmu_type = match fs::read_to_string("/sys/bus/event_source/devices/uprobe/type")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    {
        Some(t) => t,
        None => {
            return Support::Unavailable("no uprobe PMU in /sys/bus/event_source/devices".into());
        }
    };
    let exe = match fs::read_link("/proc/self/exe") {
        Ok(exe) => exe,
        Err(e) => return Support::Unavailable(format!("/proc/self/exe: {e}")),
    };
    let offset = match entry_file_offset(&exe) {
        Some(offset) => offset,
        None => return Support::Unavailable(format!("no entry point in {}", exe.display())),
    };
    let Ok(path) = std::ffi::CString::new(exe.as_os_str().as_encoded_bytes()) else {
        return Support::Unavailable("executable path contains NUL".into());
    };
    // struct perf_event_attr, zeroed except: type @0, size @4,
    // config1 (uprobe_path) @56, config2 (probe_offset) @64.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&pmu_type.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[56..64].copy_from_slice(&(path.as_ptr() as u64).to_ne_bytes());
    attr[64..72].copy_from_slice(&offset.to_ne_bytes());
    // SAFETY: attr is a valid, fully initialised perf_event_attr of the size
    // it declares, and `path` outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Support::Unavailable(format!(
            "perf_event_open(uprobe): {e}{}",
            if e.raw_os_error() == Some(libc::EACCES) {
                " (uprobes need CAP_SYS_ADMIN)"
            } else {
                ""
            }
        ));
    }
    // SAFETY: fd was just returned by the kernel and is owned here.
    unsafe { libc::close(fd as libc::c_int) };
    Support::Available(format!("uprobe PMU type {pmu_type}, attach permitted"))
}

/// File offset of an ELF file's entry point.
fn entry_file_offset(path: &Path) -> Option<u64> {
    use object::{Object as _, ObjectSection as _};
    let data = fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let entry = file.entry();
    file.sections().find_map(|s| {
        let (start, len) = s.file_range()?;
        (entry >= s.address() && entry < s.address() + len).then(|| entry - s.address() + start)
    })
}

/// Whether `/proc/PID/{what}` of other users' processes (as the
/// apiserver is to a non-root agent) can be read: `cap` is what grants it,
/// `lost` what watchtrace does without. Some processes stay unreadable
/// whatever the privilege (not dumpable), so one readable is enough.
pub fn proc_readable(what: &str, cap: &str, lost: &str) -> Support {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut denied = None;
    let others = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| owner(pid).is_some_and(|uid| uid != me))
        .take(64);
    for pid in others {
        let path = format!("/proc/{pid}/{what}");
        let read = match what {
            "exe" => fs::read_link(&path).map(|_| ()),
            _ => fs::read_dir(&path).map(|_| ()),
        };
        match read {
            Ok(()) => return Support::Available(format!("{path} readable")),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                denied.get_or_insert(format!("cannot read {path}: {e} (needs {cap}; {lost})"));
            }
            // Kernel threads have no executable: nothing learnt.
            Err(_) => {}
        }
    }
    match denied {
        Some(why) => Support::Unavailable(why),
        None => Support::Available("no other user's process to read".to_owned()),
    }
}

/// The real uid owning `pid`.
fn owner(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

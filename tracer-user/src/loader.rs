//! Loads the embedded eBPF object, sizes its maps, hands it the kernel
//! layout from BTF, and attaches programs. The only module that talks to aya's
//! program API.

use std::path::Path;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{RawTracePoint, UProbe, uprobe::UProbeScope},
};
use thiserror::Error;
use tracer_common::{
    counters::Counter,
    maps,
    record::{RecordHeader, RecordKind, SockClose, StreamCursor, StreamKey, TlsFrames},
};

use crate::{
    symbols::{GoBinary, SymbolError},
    tracepoints::{self, TracepointUse},
};

/// The eBPF object, built in release mode with BTF by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

/// Sizes chosen at load time (CLI flags), not baked into the object.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Byte size of the ring buffer; a power of two, at least one page.
    pub ringbuf_bytes: u32,
    /// Capacity of the target-process table.
    pub max_targets: u32,
    /// Capacity of the stream offset table (two entries per connection).
    pub max_streams: u32,
    /// Capacity of the Go TLS conn-to-socket table.
    pub max_tls_conns: u32,
    /// Capacity of the table of receives waiting to name their conn.
    /// Capacity of the known-socket table.
    pub max_socks: u32,
    /// The kernel programs' log (aya-log) from this level up, to tracing
    /// (target `ebpf`); `None`: off, and free (the verifier drops it).
    pub ebpf_log: Option<aya_log::Level>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            ringbuf_bytes: maps::DEFAULT_RINGBUF_BYTES,
            max_targets: maps::DEFAULT_MAX_TARGETS,
            max_streams: maps::DEFAULT_MAX_STREAMS,
            max_tls_conns: maps::DEFAULT_MAX_TLS_CONNS,
            max_socks: maps::DEFAULT_MAX_SOCKS,
            ebpf_log: None,
        }
    }
}

/// Loading or attaching failed.
#[derive(Debug, Error)]
pub enum LoadError {
    /// This binary was built with AYA_BUILD_SKIP=1 and carries no programs.
    #[error(
        "this watchtrace was built with AYA_BUILD_SKIP=1 and has no eBPF programs; rebuild without it"
    )]
    NoObject,
    /// The ring buffer size is not a power of two of at least a page.
    #[error("ring buffer size {bytes} must be a power of two and at least 4096")]
    RingbufSize { bytes: u32 },
    /// The kernel rejected the object or a map.
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program failed to load or attach.
    #[error("program `{program}`: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map was missing or had the wrong type.
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    /// Kernel BTF could not give a struct member the programs read.
    #[error("kernel BTF (/sys/kernel/btf/vmlinux): {0}")]
    Btf(String),
    /// The kernel programs' log could not be read.
    #[error("the eBPF log (--ebpf-log): {0}")]
    Log(#[from] aya_log::Error),
    /// No thread to read the kernel programs' log.
    #[error("starting the eBPF log thread: {0}")]
    LogThread(#[source] std::io::Error),
    /// The kernel refused to keep BPF run-time statistics.
    #[error("enabling BPF run-time statistics: {0}")]
    Stats(String),
    /// A Go function could not be resolved in a binary.
    #[error(transparent)]
    Symbol(#[from] SymbolError),
    /// The target table is full.
    #[error("target table is full ({capacity} processes); raise --max-targets")]
    TargetsFull { capacity: u32 },
}

/// A loaded object with its maps sized and globals set.
pub struct Tracer {
    ebpf: Ebpf,
    max_targets: u32,
    /// Reads the kernel programs' log while `--ebpf-log` is on.
    _log: Option<EbpfLog>,
}

impl Tracer {
    /// Loads the embedded object. Nothing is attached yet.
    pub fn load(options: LoadOptions) -> Result<Self, LoadError> {
        if OBJECT.is_empty() {
            return Err(LoadError::NoObject);
        }
        let bytes = options.ringbuf_bytes;
        if bytes < 4096 || !bytes.is_power_of_two() {
            return Err(LoadError::RingbufSize { bytes });
        }
        let kernel = kernel_layout()?;
        // aya-log-ebpf's level: a log statement below it is dead code to
        // the verifier (the global is in frozen .rodata), so off costs
        // nothing; its own default would log everything.
        let log_level = options.ebpf_log.map_or(0u8, |level| level as u8);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, bytes)
            .map_max_entries(maps::TARGET_TGIDS, options.max_targets)
            .map_max_entries(maps::STREAM_OFFSETS, options.max_streams)
            .map_max_entries(maps::CONN_SOCKS, options.max_tls_conns)
            .map_max_entries(maps::TLS_FRAMES, options.max_targets)
            .override_global(maps::SYSCALL_NUMBERS, &tracepoints::syscall_numbers(), true)
            .override_global(
                maps::RING_WAKEUP_BYTES,
                &u64::from(bytes / maps::RING_WAKEUP_DIVISOR),
                true,
            )
            .map_max_entries(maps::KNOWN_SOCKS, options.max_socks)
            .override_global(maps::KERNEL_LAYOUT, &kernel, true)
            .override_global(aya_log::LEVEL, &log_level, true)
            .load(OBJECT)?;
        let log = match options.ebpf_log {
            Some(_) => Some(EbpfLog::start(&mut ebpf)?),
            None => None,
        };
        Ok(Self {
            ebpf,
            max_targets: options.max_targets,
            _log: log,
        })
    }

    /// Adds a process to the in-kernel target set.
    pub fn add_target(&mut self, tgid: u32) -> Result<(), LoadError> {
        let max_targets = self.max_targets;
        let mut targets = self.targets()?;
        targets.insert(tgid, 1, 0).map_err(|source| match source {
            aya::maps::MapError::SyscallError(ref e)
                if e.io_error.raw_os_error() == Some(libc::E2BIG) =>
            {
                LoadError::TargetsFull {
                    capacity: max_targets,
                }
            }
            source => LoadError::Map {
                map: maps::TARGET_TGIDS,
                source,
            },
        })
    }

    /// Removes a process from the target set (a no-op if absent).
    pub fn remove_target(&mut self, tgid: u32) -> Result<(), LoadError> {
        match self.targets()?.remove(&tgid) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                return Err(LoadError::Map {
                    map: maps::TARGET_TGIDS,
                    source,
                });
            }
        }
        match self.tls_frames()?.remove(&tgid) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(LoadError::Map {
                map: maps::TLS_FRAMES,
                source,
            }),
        }
    }

    /// Tells the kernel where a target's Go TLS Write and readRecordOrCCS
    /// are in its address space (virtual addresses): what its sends and
    /// receives look for on their stack.
    pub fn set_tls_frames(&mut self, tgid: u32, frames: TlsFrames) -> Result<(), LoadError> {
        self.tls_frames()?
            .insert(tgid, frames, 0)
            .map_err(|source| LoadError::Map {
                map: maps::TLS_FRAMES,
                source,
            })
    }

    /// Tells the kernel where Write and readRecordOrCCS are in process
    /// `tgid`, given their code's file offsets in the process's executable
    /// (from [`Tracer::attach_go_tls`]). Returns whether the process maps
    /// them.
    pub fn watch_go_tls(&mut self, tgid: u32, code: &GoTlsCode) -> Result<bool, LoadError> {
        let runtime =
            |range: &std::ops::Range<u64>| crate::targets::runtime_range(tgid, range.clone());
        match (runtime(&code.write), runtime(&code.read)) {
            (Some(write), Some(read)) => self
                .set_tls_frames(
                    tgid,
                    TlsFrames {
                        write_start: write.start,
                        write_end: write.end,
                        read_start: read.start,
                        read_end: read.end,
                    },
                )
                .map(|()| true),
            _ => Ok(false),
        }
    }

    fn tls_frames(&mut self) -> Result<HashMap<&mut MapData, u32, TlsFrames>, LoadError> {
        let map = self.ebpf.map_mut(maps::TLS_FRAMES).ok_or(LoadError::Map {
            map: maps::TLS_FRAMES,
            source: aya::maps::MapError::InvalidName {
                name: maps::TLS_FRAMES.into(),
            },
        })?;
        HashMap::try_from(map).map_err(|source| LoadError::Map {
            map: maps::TLS_FRAMES,
            source,
        })
    }

    fn targets(&mut self) -> Result<HashMap<&mut MapData, u32, u32>, LoadError> {
        let map = self
            .ebpf
            .map_mut(maps::TARGET_TGIDS)
            .ok_or(LoadError::Map {
                map: maps::TARGET_TGIDS,
                source: aya::maps::MapError::InvalidName {
                    name: maps::TARGET_TGIDS.into(),
                },
            })?;
        HashMap::try_from(map).map_err(|source| LoadError::Map {
            map: maps::TARGET_TGIDS,
            source,
        })
    }

    /// Loads and attaches the program of a raw tracepoint (its prototype was
    /// checked against kernel BTF by [`Tracer::load`]).
    pub fn attach_tracepoint(&mut self, tp: &TracepointUse) -> Result<(), LoadError> {
        let err = |source| LoadError::Program {
            program: tp.program,
            source,
        };
        let program: &mut RawTracePoint = self
            .ebpf
            .program_mut(tp.program)
            .ok_or(LoadError::Program {
                program: tp.program,
                source: aya::programs::ProgramError::UnexpectedProgramType,
            })?
            .try_into()
            .map_err(err)?;
        if program.fd().is_err() {
            program.load().map_err(err)?;
        }
        program.attach(tp.name).map_err(err)?;
        Ok(())
    }

    /// Attaches the uprobe program `name` at each file offset in `binary`.
    /// Fires for every process running `binary`; the program itself filters
    /// by the target set.
    fn attach_uprobe(
        &mut self,
        name: &'static str,
        binary: &Path,
        offsets: &[u64],
    ) -> Result<(), LoadError> {
        let err = |source| LoadError::Program {
            program: name,
            source,
        };
        let program: &mut UProbe = self
            .ebpf
            .program_mut(name)
            .ok_or(LoadError::Program {
                program: name,
                source: aya::programs::ProgramError::UnexpectedProgramType,
            })?
            .try_into()
            .map_err(err)?;
        if program.fd().is_err() {
            program.load().map_err(err)?;
        }
        for &offset in offsets {
            program
                .attach(offset, binary, UProbeScope::AllProcesses)
                .map_err(err)?;
        }
        Ok(())
    }

    /// Attaches the Go TLS probes to `binary`: the decrypted-record sites
    /// in `readRecordOrCCS` (see [`crate::symbols::record_site`]), none at
    /// a RET (the kernel cannot emulate its uprobe). Writes need no probe:
    /// the send tracepoint finds their frame, once [`Tracer::watch_go_tls`]
    /// says where Write is in each process. Works on stripped binaries
    /// through Go's pclntab.
    pub fn attach_go_tls(&mut self, binary: &Path) -> Result<GoTlsAttachment, LoadError> {
        let image = GoBinary::read(binary)?;
        let sites = image.tls_probe_sites()?;
        self.attach_uprobe(maps::programs::GO_TLS_RECORD, binary, &sites.records)?;
        Ok(GoTlsAttachment {
            go_version: image.go_version(),
            record_sites: sites.records.len(),
            code: GoTlsCode {
                write: sites.write,
                read: sites.read,
            },
        })
    }

    /// Takes the ring buffer out of the object, for the consumer task.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self.ebpf.take_map(maps::EVENTS).ok_or(LoadError::Map {
            map: maps::EVENTS,
            source: aya::maps::MapError::InvalidName {
                name: maps::EVENTS.into(),
            },
        })?;
        RingBuf::try_from(map).map_err(|source| LoadError::Map {
            map: maps::EVENTS,
            source,
        })
    }

    /// Ends streams whose close the kernel could not report (ring full) or
    /// whose process has exited (`alive` says which tgids still run): reads
    /// their final offsets from the kernel's table, removes them, and returns
    /// the close records userspace must feed to its pipeline in their place.
    pub fn sweep_streams(
        &mut self,
        alive: impl Fn(u32) -> bool,
        now_ns: u64,
    ) -> Result<Vec<SockClose>, LoadError> {
        let err = |source| LoadError::Map {
            map: maps::STREAM_OFFSETS,
            source,
        };
        let map = self
            .ebpf
            .map_mut(maps::STREAM_OFFSETS)
            .ok_or(LoadError::Map {
                map: maps::STREAM_OFFSETS,
                source: aya::maps::MapError::InvalidName {
                    name: maps::STREAM_OFFSETS.into(),
                },
            })?;
        let mut table: HashMap<&mut MapData, StreamKey, StreamCursor> =
            HashMap::try_from(map).map_err(err)?;
        // A socket's streams, Go TLS and syscall, close together.
        let mut ended: std::collections::BTreeMap<(u32, u64), [u64; 4]> = Default::default();
        let mut stale = Vec::new();
        for entry in table.iter() {
            let (key, state) = entry.map_err(err)?;
            if state.closed != 0 || !alive(key.tgid) {
                let slot = match (key.direction, key.source) {
                    (0, 1) => 0,
                    (1, 1) => 1,
                    (0, 2) => 2,
                    _ => 3,
                };
                ended.entry((key.tgid, key.id)).or_insert([u64::MAX; 4])[slot] = state.next_offset;
                stale.push(key);
            }
        }
        for key in &stale {
            // Gone already (the kernel reused or evicted it) is fine.
            let _ = table.remove(key);
        }
        Ok(ended
            .into_iter()
            .map(|((tgid, sock), end_offsets)| SockClose {
                header: RecordHeader {
                    ts_ns: now_ns,
                    kind: RecordKind::SockClose as u16,
                    _pad0: 0,
                    tgid,
                    tid: 0,
                    _pad1: 0,
                },
                fd: -1,
                _pad0: 0,
                tls_conn: 0,
                sock,
                end_offsets,
            })
            .collect())
    }

    /// Run count and total run time of each loaded program, from the
    /// kernel's BPF stats (counted only while [`enable_bpf_stats`]'s fd is
    /// held, or `kernel.bpf_stats_enabled` is set).
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let mut out: Vec<ProgramStats> = self
            .ebpf
            .programs()
            .filter_map(|(name, program)| {
                let info = program.info().ok()?;
                Some(ProgramStats {
                    name: name.to_owned(),
                    run_count: info.run_count(),
                    run_time_ns: info.run_time().as_nanos() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The kernel counters, summed over CPUs, in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>, LoadError> {
        let err = |source| LoadError::Map {
            map: maps::COUNTERS,
            source,
        };
        let map = self.ebpf.map(maps::COUNTERS).ok_or(LoadError::Map {
            map: maps::COUNTERS,
            source: aya::maps::MapError::InvalidName {
                name: maps::COUNTERS.into(),
            },
        })?;
        let array: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(err)?;
        Counter::ALL
            .iter()
            .map(|&counter| {
                let per_cpu = array.get(&(counter as u32), 0).map_err(err)?;
                Ok((counter, per_cpu.iter().sum()))
            })
            .collect()
    }

    /// The counter `which`, summed over CPUs.
    pub fn counter(&self, which: Counter) -> Result<u64, LoadError> {
        Ok(self
            .counters()?
            .into_iter()
            .find(|(c, _)| *c == which)
            .map_or(0, |(_, v)| v))
    }
}

/// What [`Tracer::attach_go_tls`] attached.
#[derive(Clone, Debug)]
pub struct GoTlsAttachment {
    /// The binary's Go version, when its build info is readable.
    pub go_version: Option<String>,
    /// Sites in `readRecordOrCCS` with a decrypted-record uprobe.
    pub record_sites: usize,
    /// Where the frame walks look, for [`Tracer::watch_go_tls`] once mapped
    /// into a process.
    pub code: GoTlsCode,
}

/// Code of a Go binary's TLS functions, as file offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoTlsCode {
    /// `crypto/tls.(*Conn).Write`: its sends find its frame.
    pub write: std::ops::Range<u64>,
    /// `crypto/tls.(*Conn).readRecordOrCCS`: receives made under it join
    /// its conn to the socket.
    pub read: std::ops::Range<u64>,
}

/// Struct member offsets from the running kernel's BTF, after checking that
/// every tracepoint passes the arguments its program reads.
fn kernel_layout() -> Result<tracer_common::layout::KernelLayout, LoadError> {
    let data =
        std::fs::read("/sys/kernel/btf/vmlinux").map_err(|e| LoadError::Btf(e.to_string()))?;
    let btf = crate::btf::Btf::parse(&data).map_err(|e| LoadError::Btf(e.to_string()))?;
    for tp in tracepoints::used() {
        tracepoints::check_prototype(&btf, tp).map_err(|e| LoadError::Btf(e.to_string()))?;
    }
    tracepoints::kernel_layout(&btf).map_err(|e| LoadError::Btf(e.to_string()))
}

/// A program's cost, from the kernel's BPF stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

impl ProgramStats {
    /// Mean run time per invocation in nanoseconds.
    pub fn mean_ns(&self) -> Option<u64> {
        self.run_time_ns.checked_div(self.run_count)
    }
}

/// Turns on the kernel's BPF run-time statistics for as long as the
/// returned fd is held (BPF_ENABLE_STATS, Linux 5.8+).
pub fn enable_bpf_stats() -> Result<std::os::fd::OwnedFd, LoadError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| LoadError::Stats(e.to_string()))
}

/// A thread that hands the kernel programs' log records to tracing, until
/// dropped.
struct EbpfLog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EbpfLog {
    fn start(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        use std::{
            os::fd::AsRawFd as _,
            sync::{Arc, atomic::AtomicBool, atomic::Ordering},
        };
        let mut logger = aya_log::EbpfLogger::init_with_logger(ebpf, ToTracing)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wt-ebpf-log".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    let mut fd = libc::pollfd {
                        fd: logger.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd, alive for the call; the fd
                    // is the logger's ring buffer, open while it lives.
                    unsafe { libc::poll(&mut fd, 1, 200) };
                    logger.flush();
                }
            })
            .map_err(LoadError::LogThread)?;
        tracing::info!("eBPF log on: the kernel programs' records go to target `ebpf`");
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EbpfLog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// aya-log writes through the `log` crate; the agent logs with tracing.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        // `--ebpf-log LEVEL` filtered in the kernel already: every record
        // that arrives is shown at info, with the level it was logged at.
        let level = record.level();
        let message = record.args();
        tracing::info!(target: "ebpf", %level, "{message}");
    }

    fn flush(&self) {}
}

//! CPU time of the calling thread, of the process, and of its threads by
//! name, for the benchmarks that time only their consumer.
#![allow(dead_code, reason = "shared by the benchmarks; each uses part")]

use std::time::Duration;

/// CPU time this thread has used.
pub(crate) fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU time the whole process (every thread) has used.
pub(crate) fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU time used so far by each of this process's threads whose name
/// starts with `prefix`, by name (from /proc: 10 ms resolution).
pub(crate) fn threads_cpu(prefix: &str) -> anyhow::Result<Vec<(String, Duration)>> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut threads = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")? {
        let dir = task?.path();
        let name = std::fs::read_to_string(dir.join("comm"))?.trim().to_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat"))?;
        // Fields after the parenthesised name: state is field 3, utime 14,
        // stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| anyhow::anyhow!("no ')' in {}", dir.display()))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> anyhow::Result<u64> {
            Ok(fields
                .get(n - 3)
                .ok_or_else(|| anyhow::anyhow!("short stat in {}", dir.display()))?
                .parse()?)
        };
        let cpu_ticks = field(14)? + field(15)?;
        threads.push((name, Duration::from_millis(cpu_ticks * 1000 / ticks)));
    }
    threads.sort();
    Ok(threads)
}

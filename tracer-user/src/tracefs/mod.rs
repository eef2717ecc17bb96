//! tracefs: where it is mounted, and the format of each tracepoint.

mod format;

use std::{
    fs, io,
    path::{Path, PathBuf},
};

pub use format::{Field, FormatError, TracepointFormat};
use thiserror::Error;

/// Where tracefs is normally mounted, newest convention first.
const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// tracefs could not be found or read.
#[derive(Debug, Error)]
pub enum TracefsError {
    /// Neither candidate directory has tracefs, and mounting failed.
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed: {source}")]
    NotMounted {
        #[source]
        source: io::Error,
    },
    /// tracefs is mounted, but this user may not read it (it is root-only).
    #[error(
        "tracefs is mounted but not readable by this user: run as root or grant CAP_DAC_READ_SEARCH"
    )]
    Unreadable,
    /// A tracepoint's `format` file is absent: the kernel lacks it.
    #[error("tracepoint {category}:{name} does not exist on this kernel ({path})")]
    MissingTracepoint {
        category: String,
        name: String,
        path: PathBuf,
    },
    /// A `format` file could not be read (usually: not root).
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A `format` file did not parse.
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
}

/// The tracefs root, mounting it at `/sys/kernel/tracing` if no candidate
/// holds it (fresh machines and containers often have it unmounted).
pub fn ensure_mounted() -> Result<PathBuf, TracefsError> {
    if let Some(root) = find_root() {
        return Ok(root);
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: every pointer is a valid NUL-terminated string for the call.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TracefsError::NotMounted {
            source: io::Error::last_os_error(),
        });
    }
    find_root().ok_or_else(|| TracefsError::NotMounted {
        source: io::Error::other("mounted, but events/ is not readable"),
    })
}

/// The first candidate directory where tracefs is mounted and readable.
pub fn find_root() -> Option<PathBuf> {
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("events").is_dir())
}

/// Whether /proc/self/mounts lists a tracefs mount (readable or not).
pub fn is_mounted() -> bool {
    fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("tracefs"))
    })
}

/// Reads and parses `events/<category>/<name>/format` under `root`.
pub fn read_format(
    root: &Path,
    category: &str,
    name: &str,
) -> Result<TracepointFormat, TracefsError> {
    let path = root.join("events").join(category).join(name).join("format");
    let text = fs::read_to_string(&path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            TracefsError::MissingTracepoint {
                category: category.to_owned(),
                name: name.to_owned(),
                path: path.clone(),
            }
        } else {
            TracefsError::Read {
                path: path.clone(),
                source,
            }
        }
    })?;
    TracepointFormat::parse(&text).map_err(|source| TracefsError::Parse { path, source })
}

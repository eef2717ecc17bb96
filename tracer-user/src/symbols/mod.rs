//! Function symbols of an ELF binary, as file offsets for uprobes.
//!
//! Uprobes attach at a file offset. A symbol's virtual address is mapped to
//! the file through the section that contains it.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use thiserror::Error;

/// Go's name for the TLS plaintext write.
pub const GO_TLS_WRITE: &str = "crypto/tls.(*Conn).Write";
/// Go's name for the TLS plaintext read.
pub const GO_TLS_READ: &str = "crypto/tls.(*Conn).Read";

/// A symbol could not be resolved.
#[derive(Debug, Error)]
pub enum SymbolError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an ELF binary: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    /// The binary has no such function (e.g. it does not use crypto/tls).
    #[error("{path} has no symbol `{symbol}` (is it a Go binary that uses crypto/tls?)")]
    NotFound { path: PathBuf, symbol: String },
    #[error("symbol `{symbol}` at {address:#x} is not inside a section with file contents")]
    NoFileOffset { symbol: String, address: u64 },
}

/// A resolved function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionLocation {
    /// Virtual address in the binary.
    pub address: u64,
    /// Size in bytes (0 if the symbol table does not say).
    pub size: u64,
    /// File offset of the first instruction: where a uprobe attaches.
    pub file_offset: u64,
}

/// Finds `symbol` in the ELF symbol table of `path`.
pub fn resolve(path: &Path, symbol: &str) -> Result<FunctionLocation, SymbolError> {
    let data = fs::read(path).map_err(|source| SymbolError::Read {
        path: path.into(),
        source,
    })?;
    resolve_in(&data, symbol).map_err(|e| match e {
        ResolveError::Parse(source) => SymbolError::Parse {
            path: path.into(),
            source,
        },
        ResolveError::NotFound => SymbolError::NotFound {
            path: path.into(),
            symbol: symbol.into(),
        },
        ResolveError::NoFileOffset(address) => SymbolError::NoFileOffset {
            symbol: symbol.into(),
            address,
        },
    })
}

enum ResolveError {
    Parse(object::Error),
    NotFound,
    NoFileOffset(u64),
}

fn resolve_in(data: &[u8], symbol: &str) -> Result<FunctionLocation, ResolveError> {
    let file = object::File::parse(data).map_err(ResolveError::Parse)?;
    let found = file
        .symbols()
        .find(|s| s.name() == Ok(symbol))
        .ok_or(ResolveError::NotFound)?;
    let address = found.address();
    let file_offset = file
        .sections()
        .find_map(|section| {
            let (start, len) = section.file_range()?;
            let base = section.address();
            (address >= base && address < base + len).then(|| address - base + start)
        })
        .ok_or(ResolveError::NoFileOffset(address))?;
    Ok(FunctionLocation {
        address,
        size: found.size(),
        file_offset,
    })
}

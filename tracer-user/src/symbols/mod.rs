//! Function locations in ELF binaries, as file offsets for uprobes, with the
//! RET sites that stand in for uretprobes in Go code.
//!
//! Uprobes attach at a file offset, so every virtual address is mapped to the
//! file through the loadable segment (`PT_LOAD`) that holds it (sections when
//! a file has no program headers).
//!
//! A function is looked up in the ELF symbol table (`.symtab`) first. Go
//! binaries are often stripped (`-ldflags=-s`, or Debian's packaging), but
//! the Go runtime needs its own function table, the pclntab, which stripping
//! keeps: [`gopclntab`] reads it (Go 1.2 to current formats) and gives each
//! function's entry and exact end. The Go version comes from the build info
//! ([`go_version`]), for messages and `watchtrace check`.
//!
//! A Go function's returns are found by decoding its code from entry to end
//! ([`ret_sites`]); uprobes on those RETs replace uretprobes, whose return
//! trampoline breaks Go's stack growth and unwinding.
//!
//! Limits: x86-64 only (RET decoding; arm64 would need its own decoder), a
//! single text section (true on amd64; the runtime only splits text on
//! architectures with short branches), and no relocation of PIE pointers in
//! the file (PIE binaries still resolve, through their section headers). That
//! arguments arrive in registers (Go >= 1.17's register ABI) is an assumption
//! of the eBPF side, not of this module.

pub mod buildinfo;
pub mod gopclntab;
mod image;
pub mod prologue;
pub mod record_site;
pub mod ret_sites;

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use object::{Object as _, ObjectSymbol as _};
use thiserror::Error;

pub use buildinfo::go_version;
pub use gopclntab::{GoFunction, PclntabError, find_function};
pub use record_site::{GO_TLS_DECRYPT, GO_TLS_READ_RECORD, RecordSiteError};
pub use ret_sites::{RetSiteError, find_ret_sites};

/// Go's name for the TLS plaintext write.
pub const GO_TLS_WRITE: &str = "crypto/tls.(*Conn).Write";
/// Go's name for the TLS plaintext read.
pub const GO_TLS_READ: &str = "crypto/tls.(*Conn).Read";

/// A symbol could not be resolved.
#[derive(Debug, Error)]
pub enum SymbolError {
    /// The binary cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The binary is not ELF (or is corrupt).
    #[error("{path} is not an ELF binary: {source}")]
    Parse {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: object::Error,
    },
    /// The binary has no such function (e.g. it does not use crypto/tls).
    #[error("{path} has no symbol `{symbol}` (is it a Go binary that uses crypto/tls?)")]
    NotFound {
        /// The binary.
        path: PathBuf,
        /// The function looked for.
        symbol: String,
    },
    /// The function's address is not backed by file contents.
    #[error("symbol `{symbol}` at {address:#x} is not inside a section with file contents")]
    NoFileOffset {
        /// The function looked for.
        symbol: String,
        /// Its virtual address.
        address: u64,
    },
    /// The binary has a Go function table that cannot be read.
    #[error(
        "{path}: cannot read the Go function table ({}): {source}",
        go_version.as_deref().unwrap_or("Go version unknown")
    )]
    Pclntab {
        /// The binary.
        path: PathBuf,
        /// The Go version from the build info, if readable.
        go_version: Option<String>,
        /// Why.
        #[source]
        source: PclntabError,
    },
    /// No cheap probe site for the decrypted records, or Write does not
    /// keep its buffer where its sends can find it.
    #[error("{path}: cannot read Go TLS plaintext without a return probe: {source}")]
    RecordSite {
        /// The binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: RecordSiteError,
    },
    /// The function's code does not decode, so its returns are unknown.
    #[error("{path}: cannot find the returns of `{symbol}`: {source}")]
    Decode {
        /// The binary.
        path: PathBuf,
        /// The function.
        symbol: String,
        /// Why.
        #[source]
        source: RetSiteError,
    },
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

/// Where a function's address and size came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolSource {
    /// The ELF symbol table.
    Symtab,
    /// Go's pclntab (the binary is stripped).
    Pclntab,
}

/// A resolved Go function with its return sites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoFunctionLocation {
    /// Virtual address of the entry.
    pub address: u64,
    /// Size in bytes (excluding alignment padding).
    pub size: u64,
    /// File offset of the first instruction.
    pub entry_file_offset: u64,
    /// File offset of the first instruction after the stack-check prologue:
    /// where an entry probe fires exactly once per call (see [`prologue`]).
    pub body_file_offset: u64,

    /// File offsets of every RET, in address order: where the return uprobes
    /// attach. Empty for a function that never returns.
    pub ret_file_offsets: Vec<u64>,
    /// Where `address` and `size` came from.
    pub source: SymbolSource,
}

/// Where the Go TLS probes go in a binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsProbeSites {
    /// `crypto/tls.(*Conn).Write`'s code, as file offsets: the send
    /// tracepoint finds a Write's frame by a return address in it (mapped
    /// into each process with [`crate::targets::runtime_range`]), with `b`
    /// in its spill slots (checked).
    pub write: std::ops::Range<u64>,
    /// `crypto/tls.(*Conn).readRecordOrCCS`'s code, as file offsets: a
    /// receive under it joins its receiver (kept at [rbp+16], checked) to
    /// the socket.
    pub read: std::ops::Range<u64>,
    /// File offsets in `readRecordOrCCS` where a decrypted record is read
    /// (see [`record_site`]).
    pub records: Vec<u64>,
}

/// Finds `symbol` in `path`: in the ELF symbol table, else (stripped Go
/// binaries) in Go's pclntab.
pub fn resolve(path: &Path, symbol: &str) -> Result<FunctionLocation, SymbolError> {
    GoBinary::read(path)?.function(symbol)
}

/// Finds the Go function `name` in `path` with its RET sites.
pub fn resolve_go(path: &Path, name: &str) -> Result<GoFunctionLocation, SymbolError> {
    GoBinary::read(path)?.go_function(name)
}

/// A binary read into memory, for several look-ups.
#[derive(Clone, Debug)]
pub struct GoBinary {
    path: PathBuf,
    data: Vec<u8>,
}

impl GoBinary {
    /// Reads the binary at `path`.
    pub fn read(path: &Path) -> Result<Self, SymbolError> {
        let data = fs::read(path).map_err(|source| SymbolError::Read {
            path: path.into(),
            source,
        })?;
        Ok(Self::from_bytes(path, data))
    }

    /// A binary already in memory; `path` is only used in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, data: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            data,
        }
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Go version that built the binary (e.g. `go1.19.8`), if it is a Go
    /// binary with readable build info.
    pub fn go_version(&self) -> Option<String> {
        go_version(&self.data)
    }

    fn parse(&self) -> Result<object::File<'_>, SymbolError> {
        object::File::parse(&*self.data).map_err(|source| SymbolError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    fn not_found(&self, symbol: &str) -> SymbolError {
        SymbolError::NotFound {
            path: self.path.clone(),
            symbol: symbol.into(),
        }
    }

    /// Address and size of `symbol` from the pclntab.
    fn locate_in_pclntab(
        &self,
        file: &object::File<'_>,
        symbol: &str,
    ) -> Result<(u64, u64), SymbolError> {
        let found = gopclntab::from_elf(file, &self.data).and_then(|table| table.find_all(symbol));
        let candidates = match found {
            Ok(candidates) => candidates,
            Err(PclntabError::Missing) => return Err(self.not_found(symbol)),
            Err(source) => {
                return Err(SymbolError::Pclntab {
                    path: self.path.clone(),
                    go_version: buildinfo::go_version_in(file, &self.data),
                    source,
                });
            }
        };
        let function = self
            .prefer_abi_internal(file, &candidates)
            .ok_or_else(|| self.not_found(symbol))?;
        Ok((function.entry, function.end - function.entry))
    }

    /// Of the functions sharing a name, the ABIInternal one (register
    /// arguments), which the symbol table names without `.abi0`. Two
    /// functions share a name when one is an ABI wrapper calling the other:
    /// the callee is the body. A Go body (ABIInternal) has an ABI0 wrapper
    /// for assembly callers; an assembly body (ABI0, flagged asm) has an
    /// ABIInternal wrapper for Go callers. The first one if no call links
    /// them (e.g. generic instantiations that share a name).
    fn prefer_abi_internal(
        &self,
        file: &object::File<'_>,
        candidates: &[(GoFunction, gopclntab::FuncFlags)],
    ) -> Option<GoFunction> {
        if candidates.len() < 2 {
            return candidates.first().map(|(function, _)| *function);
        }
        for (caller, _) in candidates {
            let Some(sweep) =
                image::bytes_at(file, &self.data, caller.entry, caller.end - caller.entry)
                    .and_then(|code| ret_sites::sweep(code, caller.entry, 0).ok())
            else {
                continue;
            };
            let callee = candidates.iter().find(|(other, _)| {
                other.entry != caller.entry && sweep.branch_targets.contains(&other.entry)
            });
            if let Some((callee, flags)) = callee {
                return Some(if flags.is_asm() { *caller } else { *callee });
            }
        }
        candidates.first().map(|(function, _)| *function)
    }

    /// Finds `symbol`: in the ELF symbol table, else in Go's pclntab.
    pub fn function(&self, symbol: &str) -> Result<FunctionLocation, SymbolError> {
        let file = self.parse()?;
        let (address, size) = match file.symbol_by_name(symbol) {
            Some(found) => (found.address(), found.size()),
            None => self.locate_in_pclntab(&file, symbol)?,
        };
        let (file_offset, _) =
            image::file_range_at(&file, address).ok_or_else(|| SymbolError::NoFileOffset {
                symbol: symbol.into(),
                address,
            })?;
        Ok(FunctionLocation {
            address,
            size,
            file_offset,
        })
    }

    /// Where the Go TLS probes go: Write's range (its sends find its frame),
    /// and the sites in `readRecordOrCCS` where a record has just been
    /// decrypted.
    pub fn tls_probe_sites(&self) -> Result<TlsProbeSites, SymbolError> {
        let write = self.go_function(GO_TLS_WRITE)?;
        let read = self.go_function(GO_TLS_READ_RECORD)?;
        let decrypt = self.function(GO_TLS_DECRYPT)?;
        let file = self.parse()?;
        let code_at = |symbol: &str, address: u64, size: u64| {
            image::bytes_at(&file, &self.data, address, size).ok_or(SymbolError::NoFileOffset {
                symbol: symbol.into(),
                address,
            })
        };
        let site_error = |source| SymbolError::RecordSite {
            path: self.path.clone(),
            source,
        };
        let write_code = code_at(GO_TLS_WRITE, write.address, write.size)?;
        record_site::check_write_frame(write_code, write.address).map_err(site_error)?;
        let read_code = code_at(GO_TLS_READ_RECORD, read.address, read.size)?;
        let records = record_site::find_record_sites(read_code, read.address, decrypt.address)
            .map_err(site_error)?
            .into_iter()
            .map(|site| read.entry_file_offset + (site - read.address))
            .collect();
        Ok(TlsProbeSites {
            write: write.entry_file_offset..write.entry_file_offset + write.size,
            read: read.entry_file_offset..read.entry_file_offset + read.size,
            records,
        })
    }

    /// Finds the Go function `name` (ELF symbol table, else pclntab) and the
    /// file offsets of its entry and of every RET.
    pub fn go_function(&self, name: &str) -> Result<GoFunctionLocation, SymbolError> {
        let file = self.parse()?;
        let from_symtab = file
            .symbol_by_name(name)
            .filter(|s| s.is_definition() && s.size() > 0)
            .map(|s| (s.address(), s.size()));
        let (address, size, source) = match from_symtab {
            Some((address, size)) => (address, size, SymbolSource::Symtab),
            None => {
                let (address, size) = self.locate_in_pclntab(&file, name)?;
                (address, size, SymbolSource::Pclntab)
            }
        };
        let no_file_offset = || SymbolError::NoFileOffset {
            symbol: name.into(),
            address,
        };
        let (entry_file_offset, available) =
            image::file_range_at(&file, address).ok_or_else(no_file_offset)?;
        if size > available {
            return Err(no_file_offset());
        }
        let code = image::bytes_at(&file, &self.data, address, size).ok_or_else(no_file_offset)?;
        let ret_file_offsets =
            find_ret_sites(code, address, entry_file_offset).map_err(|source| {
                SymbolError::Decode {
                    path: self.path.clone(),
                    symbol: name.into(),
                    source,
                }
            })?;
        let body_file_offset = entry_file_offset
            + prologue::body_offset(code, address).map_or(0, |offset| offset as u64);
        Ok(GoFunctionLocation {
            address,
            size,
            entry_file_offset,
            body_file_offset,
            ret_file_offsets,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_path_is_a_read_error() {
        let error = resolve(Path::new("/nonexistent/watchtrace-test"), GO_TLS_WRITE).unwrap_err();
        assert!(matches!(error, SymbolError::Read { .. }), "{error}");
    }

    #[test]
    fn non_elf_is_a_parse_error() {
        let binary = GoBinary::from_bytes("x", b"#!/bin/sh\n".to_vec());
        assert!(matches!(
            binary.go_function(GO_TLS_READ),
            Err(SymbolError::Parse { .. })
        ));
    }

    #[test]
    fn elf_without_go_tables_is_not_found() {
        let elf = image::test_elf(&[(0x40_0000, object::elf::PF_R | object::elf::PF_X, &[0xc3])]);
        let binary = GoBinary::from_bytes("c-binary", elf);
        assert!(matches!(
            binary.function(GO_TLS_WRITE),
            Err(SymbolError::NotFound { .. })
        ));
        assert!(matches!(
            binary.go_function(GO_TLS_WRITE),
            Err(SymbolError::NotFound { .. })
        ));
        assert_eq!(binary.go_version(), None);
    }
}

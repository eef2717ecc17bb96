//! Rebuild the object when bpf-linker changes: the linker, not rustc, emits
//! the final BPF and its BTF.
use which::which;

fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}

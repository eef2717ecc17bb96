//! deploy/Containerfile: the image is built from scratch (nothing to pull,
//! no base image to pin), holding the binary and the libraries it loads,
//! copied from the build host by `cargo xtask image`. The binary must need
//! glibc and libgcc_s only (no OpenSSL, no libelf: nothing else to ship).
//! The root test tests/deploy_container.rs checks the built image itself.

use std::{collections::BTreeSet, fs, path::Path};

use object::{Endianness, elf::DT_NEEDED, read::elf::ElfFile64};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

/// glibc's libraries, the loader and libgcc_s: what the image ships.
const IMAGE_LIBRARIES: [&str; 4] = [
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
];

/// `GLIBC_2.34` -> (2, 34).
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix("GLIBC_")?.split_once('.')?;
    let minor = minor.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[test]
fn the_containerfile_builds_from_scratch_with_the_oci_labels() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/Containerfile");
    let text = fs::read_to_string(path).unwrap();
    // Instructions, with continuation lines joined.
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let froms: Vec<&str> = joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FROM "))
        .collect();
    assert_eq!(froms, ["scratch"], "no base image to pull or pin");
    for key in [
        "title",
        "description",
        "version",
        "revision",
        "created",
        "licenses",
    ] {
        assert!(
            joined.contains(&format!("org.opencontainers.image.{key}=")),
            "label org.opencontainers.image.{key}"
        );
    }
    assert!(joined.contains("org.opencontainers.image.revision=\"${REVISION}\""));
    assert!(joined.contains("ENTRYPOINT [\"/usr/local/bin/watchtrace\"]"));
    // Non-root by default; the DaemonSet chooses uid 0 explicitly.
    assert!(joined.lines().any(|l| l.trim() == "USER 65532:65532"));
}

#[test]
fn the_binary_needs_only_glibc_and_libgcc() {
    let data = fs::read(WATCHTRACE).expect("read the watchtrace binary");
    let elf = ElfFile64::<Endianness>::parse(&*data).expect("ELF");
    let endian = elf.endian();
    let sections = elf.elf_section_table();

    let dynamic = sections
        .dynamic_table(endian, &*data)
        .expect("dynamic table");
    let needed: BTreeSet<String> = dynamic
        .iter()
        .filter(|d| d.tag == DT_NEEDED)
        .map(|d| String::from_utf8_lossy(dynamic.string(d).expect("name")).into_owned())
        .collect();
    assert!(
        !needed.is_empty(),
        "no DT_NEEDED: a static build? {needed:?}"
    );
    let extra: Vec<&String> = needed
        .iter()
        .filter(|n| !IMAGE_LIBRARIES.contains(&n.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "needs {extra:?}, beyond glibc and libgcc_s"
    );

    let (mut needs, link) = sections
        .gnu_verneed(endian, &*data)
        .expect("verneed")
        .expect("a dynamic binary has version needs");
    let strings = sections.strings(endian, &*data, link).expect("strings");
    let mut newest = (0, 0);
    while let Some((_, mut aux)) = needs.next().expect("verneed entry") {
        while let Some(version) = aux.next().expect("vernaux entry") {
            let name =
                String::from_utf8_lossy(version.name(endian, strings).expect("name")).into_owned();
            if let Some(v) = glibc_version(&name) {
                newest = newest.max(v);
            }
        }
    }
    assert!(newest > (2, 0), "no GLIBC_ version found");
    eprintln!(
        "watchtrace needs {needed:?}, glibc >= {}.{}",
        newest.0, newest.1
    );
}

//! deploy/Containerfile puts `watchtrace` on distroless/cc-debian12, which
//! holds glibc 2.36, libm and libgcc_s and nothing else. The binary must
//! need no other shared library and no newer glibc symbol version.

use std::{collections::BTreeSet, fs};

use object::{Endianness, elf::DT_NEEDED, read::elf::ElfFile64};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

/// What the base image provides.
const IMAGE_LIBRARIES: [&str; 4] = [
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
];
/// glibc of Debian 12, the base image's distribution.
const IMAGE_GLIBC: (u32, u32) = (2, 36);

/// `GLIBC_2.34` -> (2, 34).
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.strip_prefix("GLIBC_")?.split_once('.')?;
    let minor = minor.split('.').next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[test]
fn the_binary_needs_only_what_the_base_image_holds() {
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
        "needs {extra:?}, which distroless/cc lacks"
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
    assert!(
        newest <= IMAGE_GLIBC,
        "needs GLIBC_{}.{}, the image has {}.{}",
        newest.0,
        newest.1,
        IMAGE_GLIBC.0,
        IMAGE_GLIBC.1
    );
    eprintln!(
        "watchtrace needs {needed:?}, glibc >= {}.{}",
        newest.0, newest.1
    );
}

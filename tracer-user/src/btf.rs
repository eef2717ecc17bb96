//! Kernel facts the programs depend on, read from the kernel's BTF
//! (/sys/kernel/btf/vmlinux) at load time: member offsets of the structs
//! they read (sockets, TCP state, packets), and the arguments of the raw
//! tracepoints they attach to (`btf_trace_<name>`). Nothing tied to one
//! kernel build is baked into the object.
//!
//! Only what that needs is parsed: STRUCT/UNION members, searched through
//! anonymous members, FUNC_PROTO parameters and the types they name; every
//! other kind is skipped by its documented size.

use thiserror::Error;

const MAGIC: u16 = 0xeb9f;

/// BTF that could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("not BTF (bad magic or header)")]
    BadHeader,
    #[error("BTF type section is truncated")]
    Truncated,
    #[error("unknown BTF kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("no struct `{0}` in kernel BTF")]
    NoStruct(String),
    #[error("struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    #[error("member `{member}` of `{strukt}` is a bitfield")]
    Bitfield { strukt: String, member: String },
    #[error("no raw tracepoint `{0}` in kernel BTF (no `btf_trace_{0}`)")]
    NoTracepoint(String),
}

/// What a raw tracepoint argument is, as far as the programs care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// A pointer to a struct of this name.
    StructPtr(String),
    /// An integer of this many bytes.
    Int(u32),
    /// Anything else.
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    bitfield: bool,
}

#[derive(Clone, Debug)]
struct Type {
    kind: u32,
    name_off: u32,
    /// For TYPEDEF/CONST/VOLATILE/RESTRICT/TYPE_TAG: the referenced type.
    type_ref: u32,
    members: Vec<Member>,
}

/// Parsed BTF: enough to find struct members.
#[derive(Debug)]
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
}

impl Btf {
    /// Parses raw BTF bytes (little-endian, as on x86-64).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |o: usize| {
            data.get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        };
        if u16_at(0) != Some(MAGIC) {
            return Err(BtfError::BadHeader);
        }
        let hdr_len = u32_at(4).ok_or(BtfError::BadHeader)? as usize;
        let field = |i: usize| {
            u32_at(8 + 4 * i)
                .map(|v| v as usize)
                .ok_or(BtfError::BadHeader)
        };
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let types_start = hdr_len + type_off;
        let strings_start = hdr_len + str_off;
        let types_data = data
            .get(types_start..types_start + type_len)
            .ok_or(BtfError::Truncated)?;
        let strings = data
            .get(strings_start..strings_start + str_len)
            .ok_or(BtfError::Truncated)?
            .to_vec();
        // Type ids start at 1; id 0 is void.
        let mut types = vec![Type {
            kind: 0,
            name_off: 0,
            type_ref: 0,
            members: Vec::new(),
        }];
        let mut pos = 0usize;
        let word = |o: usize| {
            types_data
                .get(o..o + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or(BtfError::Truncated)
        };
        while pos < types_data.len() {
            let name_off = word(pos)?;
            let info = word(pos + 4)?;
            let size_or_type = word(pos + 8)?;
            pos += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            if kind == 13 {
                // FUNC_PROTO: its parameters, as members without offsets.
                for i in 0..vlen {
                    let at = pos + 8 * i;
                    members.push(Member {
                        name_off: word(at)?,
                        type_id: word(at + 4)?,
                        bit_offset: 0,
                        bitfield: false,
                    });
                }
            }
            let extra = match kind {
                1 => 4,                                      // INT
                2 | 7 | 8 | 9 | 10 | 11 | 12 | 16 | 18 => 0, // PTR FWD TYPEDEF VOLATILE CONST RESTRICT FUNC FLOAT TYPE_TAG
                3 => 12,                                     // ARRAY
                4 | 5 => {
                    for i in 0..vlen {
                        let at = pos + 12 * i;
                        let offset = word(at + 8)?;
                        members.push(Member {
                            name_off: word(at)?,
                            type_id: word(at + 4)?,
                            bit_offset: if kind_flag {
                                offset & 0x00ff_ffff
                            } else {
                                offset
                            },
                            bitfield: kind_flag && (offset >> 24) != 0,
                        });
                    }
                    12 * vlen
                }
                6 => 8 * vlen,   // ENUM
                13 => 8 * vlen,  // FUNC_PROTO
                14 => 4,         // VAR
                15 => 12 * vlen, // DATASEC
                17 => 4,         // DECL_TAG
                19 => 12 * vlen, // ENUM64
                kind => return Err(BtfError::UnknownKind { kind }),
            };
            pos += extra;
            types.push(Type {
                kind,
                name_off,
                type_ref: size_or_type,
                members,
            });
        }
        Ok(Self { types, strings })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    /// Byte offset of `member` in struct `strukt`, looking through anonymous
    /// struct and union members (kernels group fields that way).
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = self
            .types
            .iter()
            .position(|t| {
                t.kind == 4 && self.name(t.name_off) == strukt.as_bytes() && !t.members.is_empty()
            })
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        match self.find(id, member.as_bytes(), 0) {
            Some((bits, false)) if bits % 8 == 0 => Ok(bits / 8),
            Some(_) => Err(BtfError::Bitfield {
                strukt: strukt.into(),
                member: member.into(),
            }),
            None => Err(BtfError::NoMember {
                strukt: strukt.into(),
                member: member.into(),
            }),
        }
    }

    /// Byte offset of a member reached through named members: `path[0]` in
    /// `strukt`, `path[1]` in that member's struct, and so on.
    pub fn member_path_offset(&self, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut offset = 0;
        let mut current = strukt.to_owned();
        for (i, member) in path.iter().enumerate() {
            offset += self.member_offset(&current, member)?;
            if i + 1 < path.len() {
                current = self
                    .member_struct_name(&current, member)
                    .ok_or_else(|| BtfError::NoStruct(format!("{current}.{member}")))?;
            }
        }
        Ok(offset)
    }

    /// The struct type name of `strukt.member`.
    fn member_struct_name(&self, strukt: &str, member: &str) -> Option<String> {
        let id = self.types.iter().position(|t| {
            t.kind == 4 && self.name(t.name_off) == strukt.as_bytes() && !t.members.is_empty()
        })?;
        let m = self.types[id]
            .members
            .iter()
            .find(|m| self.name(m.name_off) == member.as_bytes())?;
        let target = self.resolve(m.type_id as usize)?;
        Some(String::from_utf8_lossy(self.name(self.types[target].name_off)).into_owned())
    }

    /// The arguments of raw tracepoint `name` (its `TP_PROTO`), from the
    /// `btf_trace_<name>` typedef (a pointer to a function whose first
    /// parameter is the probe's data pointer, which is not an argument).
    pub fn raw_tracepoint_args(&self, name: &str) -> Result<Vec<ArgType>, BtfError> {
        let typedef = format!("btf_trace_{name}");
        let missing = || BtfError::NoTracepoint(name.to_owned());
        let id = self
            .types
            .iter()
            .position(|t| t.kind == 8 && self.name(t.name_off) == typedef.as_bytes())
            .ok_or_else(missing)?;
        let ptr = self
            .types
            .get(self.types[id].type_ref as usize)
            .ok_or_else(missing)?;
        let proto = self.types.get(ptr.type_ref as usize).ok_or_else(missing)?;
        if ptr.kind != 2 || proto.kind != 13 {
            return Err(missing());
        }
        Ok(proto
            .members
            .iter()
            .skip(1)
            .map(|param| self.arg_type(param.type_id as usize))
            .collect())
    }

    fn arg_type(&self, id: usize) -> ArgType {
        let id = self.strip_qualifiers(id);
        let Some(t) = self.types.get(id) else {
            return ArgType::Other;
        };
        match t.kind {
            1 => ArgType::Int(t.type_ref),
            2 => {
                let target = self.strip_qualifiers(t.type_ref as usize);
                match self.types.get(target) {
                    Some(s) if s.kind == 4 => ArgType::StructPtr(
                        String::from_utf8_lossy(self.name(s.name_off)).into_owned(),
                    ),
                    _ => ArgType::Other,
                }
            }
            _ => ArgType::Other,
        }
    }

    /// Follows typedefs and qualifiers.
    fn strip_qualifiers(&self, mut id: usize) -> usize {
        for _ in 0..16 {
            match self.types.get(id) {
                Some(t) if matches!(t.kind, 8..=11 | 18) => id = t.type_ref as usize,
                _ => break,
            }
        }
        id
    }

    fn find(&self, id: usize, member: &[u8], base_bits: u32) -> Option<(u32, bool)> {
        for m in &self.types.get(id)?.members {
            let name = self.name(m.name_off);
            if name == member {
                return Some((base_bits + m.bit_offset, m.bitfield));
            }
            if name.is_empty() {
                let inner = self.resolve(m.type_id as usize)?;
                if let Some(found) = self.find(inner, member, base_bits + m.bit_offset) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// Follows typedefs and qualifiers to a struct or union.
    fn resolve(&self, mut id: usize) -> Option<usize> {
        for _ in 0..16 {
            let t = self.types.get(id)?;
            match t.kind {
                4 | 5 => return Some(id),
                8..=11 | 18 => id = t.type_ref as usize,
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF with: 1 = int, 2 = struct inner { int b @ 32 }, 3 = struct
    /// outer { int a @ 0; <anon struct inner> @ 64 }.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0inner\0b\0outer\0a\0".to_vec();
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            words
                .iter()
                .for_each(|w| types.extend_from_slice(&w.to_le_bytes()))
        };
        push(&[1, 1 << 24, 4, 32]); // int
        push(&[5, (4 << 24) | 1, 8, 11, 1, 32]); // struct inner { b }
        push(&[13, (4 << 24) | 2, 16, 19, 1, 0, 0, 2, 64]); // struct outer { a; anon inner }
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        data
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.member_offset("outer", "a"), Ok(0));
        // b is 4 bytes into `inner`, which sits 8 bytes into `outer`.
        assert_eq!(btf.member_offset("outer", "b"), Ok(12));
        assert!(matches!(
            btf.member_offset("outer", "zz"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("nope", "a"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn rejects_non_btf_and_truncation() {
        assert_eq!(Btf::parse(b"hello").unwrap_err(), BtfError::BadHeader);
        let mut data = sample();
        data.truncate(40);
        assert_eq!(Btf::parse(&data).unwrap_err(), BtfError::Truncated);
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;

    /// The running kernel's BTF parses and has the members watchtrace reads.
    #[test]
    fn the_running_kernel_has_the_members_we_read() {
        let data =
            std::fs::read("/sys/kernel/btf/vmlinux").expect("kernel BTF (CONFIG_DEBUG_INFO_BTF)");
        let btf = Btf::parse(&data).unwrap();
        for (strukt, member) in [
            ("sk_buff", "head"),
            ("sk_buff", "transport_header"),
            ("tcp_sock", "write_seq"),
            ("tcp_sock", "snd_una"),
        ] {
            let offset = btf.member_offset(strukt, member).unwrap();
            assert!(offset > 0, "{strukt}.{member}");
        }
        // Through the named member that holds them.
        assert_eq!(
            btf.member_path_offset("sock", &["__sk_common", "skc_family"]),
            btf.member_offset("sock_common", "skc_family")
        );
    }

    #[test]
    fn the_running_kernel_describes_the_raw_tracepoints() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
        let btf = Btf::parse(&data).unwrap();
        let args = btf.raw_tracepoint_args("inet_sock_set_state").unwrap();
        assert_eq!(
            args,
            vec![
                ArgType::StructPtr("sock".into()),
                ArgType::Int(4),
                ArgType::Int(4)
            ]
        );
        assert!(matches!(
            btf.raw_tracepoint_args("no_such_tracepoint"),
            Err(BtfError::NoTracepoint(_))
        ));
    }
}

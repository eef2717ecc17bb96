//! Parser for tracefs `events/<category>/<name>/format` files: the kernel's
//! own description of a tracepoint record's layout.
//!
//! A field line looks like
//! `\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;`.

use thiserror::Error;

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The C declaration without the name, e.g. `unsigned int`, `__u8 [28]`.
    pub c_type: String,
    /// Field name, without any array suffix.
    pub name: String,
    /// Byte offset from the start of the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    pub signed: bool,
}

/// A parsed `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointFormat {
    /// The `name:` line.
    pub name: String,
    /// The `ID:` line: the perf event id of the tracepoint.
    pub id: u64,
    /// Every field, common ones (`common_pid`, ...) first, in file order.
    pub fields: Vec<Field>,
}

/// Why a format file could not be parsed or lacks what a program needs.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormatError {
    /// A `field:` line did not have the expected shape.
    #[error("line {line}: malformed field description: {text:?}")]
    MalformedField { line: usize, text: String },
    /// The file had no `ID:` line.
    #[error("no ID line")]
    MissingId,
    /// A field the program reads is absent.
    #[error("tracepoint {tracepoint} has no field `{field}`")]
    MissingField { tracepoint: String, field: String },
    /// Tracepoints that share one program disagree on their layout.
    #[error("{tracepoint} lays out its arguments unlike the other socket syscalls")]
    LayoutMismatch { tracepoint: String },
    /// A field has a size the program cannot read it as.
    #[error("field `{field}` of {tracepoint} is {actual} bytes, expected {expected}")]
    FieldSize {
        tracepoint: String,
        field: String,
        actual: u32,
        expected: u32,
    },
}

impl TracepointFormat {
    /// Parses the text of a `format` file.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let mut name = String::new();
        let mut id = None;
        let mut fields = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("name:") {
                name = rest.trim().to_owned();
            } else if let Some(rest) = trimmed.strip_prefix("ID:") {
                id = rest.trim().parse().ok();
            } else if trimmed.starts_with("field:") {
                fields.push(
                    parse_field(trimmed).ok_or_else(|| FormatError::MalformedField {
                        line: index + 1,
                        text: trimmed.to_owned(),
                    })?,
                );
            }
        }
        Ok(Self {
            name,
            id: id.ok_or(FormatError::MissingId)?,
            fields,
        })
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Result<&Field, FormatError> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| FormatError::MissingField {
                tracepoint: self.name.clone(),
                field: name.to_owned(),
            })
    }

    /// The offset of field `name`, checking that it is `size` bytes wide.
    pub fn offset_of(&self, name: &str, size: u32) -> Result<u32, FormatError> {
        let field = self.field(name)?;
        if field.size != size {
            return Err(FormatError::FieldSize {
                tracepoint: self.name.clone(),
                field: name.to_owned(),
                actual: field.size,
                expected: size,
            });
        }
        Ok(field.offset)
    }
}

/// Parses `field:<decl>;\toffset:N;\tsize:N;\tsigned:N;`.
fn parse_field(line: &str) -> Option<Field> {
    let mut parts = line.split(';').map(str::trim).filter(|p| !p.is_empty());
    let decl = parts.next()?.strip_prefix("field:")?.trim();
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in parts {
        let (key, value) = part.split_once(':')?;
        match key.trim() {
            "offset" => offset = value.trim().parse().ok(),
            "size" => size = value.trim().parse().ok(),
            "signed" => signed = value.trim() == "1",
            _ => {}
        }
    }
    // The name is the last identifier of the declaration, before any `[N]`.
    let without_array = decl.split('[').next()?.trim_end();
    let name_start = without_array
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let name = &without_array[name_start..];
    if name.is_empty() {
        return None;
    }
    let c_type = format!(
        "{}{}",
        without_array[..name_start].trim_end(),
        decl.get(without_array.len()..)
            .map(|array| format!(" {}", array.trim()))
            .filter(|a| !a.trim().is_empty())
            .unwrap_or_default()
    );
    Some(Field {
        c_type,
        name: name.to_owned(),
        offset: offset?,
        size: size?,
        signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbatim from Linux 6.18's `events/tcp/tcp_probe/format` (abridged).
    const TCP_PROBE: &str = "name: tcp_probe
ID: 1613
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__u8 saddr[28];\toffset:8;\tsize:28;\tsigned:0;
\tfield:__u32 snd_una;\toffset:84;\tsize:4;\tsigned:0;
\tfield:__u64 sock_cookie;\toffset:112;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:128;\tsize:8;\tsigned:0;

print fmt: \"family=%s\", __print_symbolic(REC->family)
";

    #[test]
    fn parses_fields_ids_and_arrays() {
        let format = TracepointFormat::parse(TCP_PROBE).unwrap();
        assert_eq!(format.name, "tcp_probe");
        assert_eq!(format.id, 1613);
        assert_eq!(format.fields.len(), 6);
        let saddr = format.field("saddr").unwrap();
        assert_eq!((saddr.offset, saddr.size), (8, 28));
        assert_eq!(saddr.c_type, "__u8 [28]");
        let pid = format.field("common_pid").unwrap();
        assert!(pid.signed);
        assert_eq!(format.field("skaddr").unwrap().c_type, "const void *");
        assert_eq!(format.offset_of("snd_una", 4), Ok(84));
    }

    #[test]
    fn reports_missing_and_mis_sized_fields() {
        let format = TracepointFormat::parse(TCP_PROBE).unwrap();
        assert_eq!(
            format.offset_of("snd_wnd", 4),
            Err(FormatError::MissingField {
                tracepoint: "tcp_probe".into(),
                field: "snd_wnd".into()
            })
        );
        assert!(matches!(
            format.offset_of("sock_cookie", 4),
            Err(FormatError::FieldSize {
                actual: 8,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn rejects_malformed_lines_and_missing_id() {
        let bad = "name: x\nID: 3\n\tfield:int a;\toffset:zz;\tsize:4;\tsigned:1;\n";
        assert!(matches!(
            TracepointFormat::parse(bad),
            Err(FormatError::MalformedField { line: 3, .. })
        ));
        assert_eq!(
            TracepointFormat::parse("name: x\n"),
            Err(FormatError::MissingId)
        );
    }
}

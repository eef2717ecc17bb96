//! Reading protobuf messages held in one contiguous slice (gRPC messages
//! are reassembled whole before decoding).

use thiserror::Error;

/// Why bytes are not the protobuf message expected.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// A field, length or varint runs past the end of its message.
    #[error("truncated field")]
    Truncated,
    /// A varint longer than 10 bytes.
    #[error("varint overflow")]
    VarintOverflow,
    /// Field number 0, or a wire type that does not exist or is not used
    /// (groups).
    #[error("invalid tag {tag:#x}")]
    BadTag { tag: u64 },
    /// A known field with the wrong wire type.
    #[error("field {field} has wire type {wire_type}")]
    WrongType { field: u32, wire_type: u8 },
    /// A oneof message with more or fewer than one member set.
    #[error("not exactly one member of a oneof")]
    Oneof,
}

/// One field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates over the fields of one message.
pub(crate) struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn position(&self) -> usize {
        self.i
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for k in 0..10 {
            let byte = *self.b.get(self.i).ok_or(WireError::Truncated)?;
            self.i += 1;
            if k == 9 && byte > 1 {
                return Err(WireError::VarintOverflow);
            }
            v |= u64::from(byte & 0x7f) << (7 * k);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::VarintOverflow)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.i.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.b.get(self.i..end).ok_or(WireError::Truncated)?;
        self.i = end;
        Ok(s)
    }

    /// The next field, or `None` at the end of the message.
    pub(crate) fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.i == self.b.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = u32::try_from(tag >> 3).map_err(|_| WireError::BadTag { tag })?;
        if field == 0 {
            return Err(WireError::BadTag { tag });
        }
        let v = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let s = self.take(8)?;
                Value::Fixed64(u64::from_le_bytes(
                    s.try_into().map_err(|_| WireError::Truncated)?,
                ))
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                let s = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes(
                    s.try_into().map_err(|_| WireError::Truncated)?,
                ))
            }
            _ => return Err(WireError::BadTag { tag }),
        };
        Ok(Some((field, v)))
    }
}

impl Value<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        }
    }

    /// The varint of a known varint field.
    pub(crate) fn uint(&self, field: u32) -> Result<u64, WireError> {
        match *self {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong(field)),
        }
    }

    /// An `int64` field (two's complement in a varint).
    pub(crate) fn int(&self, field: u32) -> Result<i64, WireError> {
        self.uint(field).map(|v| v as i64)
    }

    pub(crate) fn bool(&self, field: u32) -> Result<bool, WireError> {
        self.uint(field).map(|v| v != 0)
    }

    /// The bytes of a known length-delimited field.
    pub(crate) fn bytes(&self, field: u32) -> Result<&[u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(self.wrong(field)),
        }
    }

    fn wrong(&self, field: u32) -> WireError {
        WireError::WrongType {
            field,
            wire_type: self.wire_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        let b = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1A, 2, b'h', b'i', // 3: bytes
            0x25, 7, 0, 0, 0, // 4: fixed32 7
        ];
        let mut r = Reader::new(&b);
        assert_eq!(r.field().unwrap(), Some((1, Value::Varint(150))));
        assert_eq!(r.field().unwrap(), Some((2, Value::Fixed64(1))));
        assert_eq!(r.field().unwrap(), Some((3, Value::Bytes(b"hi"))));
        assert_eq!(r.field().unwrap(), Some((4, Value::Fixed32(7))));
        assert_eq!(r.field().unwrap(), None);
    }

    #[test]
    fn rejects_bad_input() {
        for (b, e) in [
            (&[0x0A, 5, 1][..], WireError::Truncated),
            (&[0x08][..], WireError::Truncated),
            (&[0x03][..], WireError::BadTag { tag: 3 }),
            (&[0x00, 0x00][..], WireError::BadTag { tag: 0 }),
            (
                &[
                    0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F,
                ][..],
                WireError::VarintOverflow,
            ),
            (&[0x11, 1, 2][..], WireError::Truncated),
        ] {
            assert_eq!(Reader::new(b).field().unwrap_err(), e, "{b:?}");
        }
        assert_eq!(
            Value::Bytes(b"x").uint(3),
            Err(WireError::WrongType {
                field: 3,
                wire_type: 2
            })
        );
        // int64 -1 is ten bytes of two's complement.
        let mut r = Reader::new(&[
            0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        ]);
        assert_eq!(r.field().unwrap().unwrap().1.int(1), Ok(-1));
    }
}

package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTruncated reports a message that ends inside a field.
var ErrTruncated = errors.New("proto: truncated message")

// Field is one decoded field. For WireBytes, Bytes aliases the input buffer;
// for the fixed and varint wire types the value is in Uint.
type Field struct {
	Num   int
	Wire  int
	Uint  uint64
	Bytes []byte
}

// Decoder iterates over the fields of one message.
type Decoder struct {
	buf []byte
	err error
}

// NewDecoder returns a Decoder over msg.
func NewDecoder(msg []byte) *Decoder { return &Decoder{buf: msg} }

// Err returns the first error met by Next.
func (d *Decoder) Err() error { return d.err }

// Next decodes the next field into f. It returns false at the end of the
// message or on error (see Err).
func (d *Decoder) Next(f *Field) bool {
	if d.err != nil || len(d.buf) == 0 {
		return false
	}
	key, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = ErrTruncated
		return false
	}
	d.buf = d.buf[n:]
	*f = Field{Num: int(key >> 3), Wire: int(key & 7)}
	if f.Num == 0 {
		d.err = fmt.Errorf("proto: field number 0")
		return false
	}
	switch f.Wire {
	case WireVarint:
		v, n := binary.Uvarint(d.buf)
		if n <= 0 {
			d.err = ErrTruncated
			return false
		}
		f.Uint = v
		d.buf = d.buf[n:]
	case WireI64:
		if len(d.buf) < 8 {
			d.err = ErrTruncated
			return false
		}
		f.Uint = binary.LittleEndian.Uint64(d.buf)
		d.buf = d.buf[8:]
	case WireI32:
		if len(d.buf) < 4 {
			d.err = ErrTruncated
			return false
		}
		f.Uint = uint64(binary.LittleEndian.Uint32(d.buf))
		d.buf = d.buf[4:]
	case WireBytes:
		l, n := binary.Uvarint(d.buf)
		if n <= 0 || uint64(len(d.buf)-n) < l {
			d.err = ErrTruncated
			return false
		}
		f.Bytes = d.buf[n : n+int(l)]
		d.buf = d.buf[n+int(l):]
	default:
		d.err = fmt.Errorf("proto: unsupported wire type %d (field %d)", f.Wire, f.Num)
		return false
	}
	return true
}

// Int64 returns a varint field as a signed int64 (two's complement, as
// protobuf int64 is encoded).
func (f *Field) Int64() int64 { return int64(f.Uint) }

// String returns a bytes field as a string copy.
func (f *Field) String() string { return string(f.Bytes) }

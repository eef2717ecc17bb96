package cbor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// ErrIncomplete means the item continues past the bytes given: a stream
// reader should read more and try again.
var ErrIncomplete = errors.New("cbor: item continues past the bytes given")

// maxDepth bounds nesting so that hostile input cannot exhaust the stack;
// Kubernetes objects are far shallower.
const maxDepth = 128

// Decode decodes the first item of b and returns it with the number of
// bytes it took. Bytes after the item are left alone, so items of a CBOR
// sequence (RFC 8742) decode one call each.
func Decode(b []byte) (Value, int, error) {
	d := &decoder{b: b}
	v, err := d.item(0)
	if err != nil {
		return nil, 0, err
	}
	return v, d.off, nil
}

type decoder struct {
	b   []byte
	off int
}

const brk = 0xff // "break", ends an indefinite-length item

func (d *decoder) malformed(format string, args ...any) error {
	return fmt.Errorf("cbor: malformed at byte %d: %s", d.off, fmt.Sprintf(format, args...))
}

// head reads an item head. indefinite is true for additional information
// 31 (arg is then meaningless).
func (d *decoder) head() (major byte, info byte, arg uint64, indefinite bool, err error) {
	if d.off >= len(d.b) {
		return 0, 0, 0, false, ErrIncomplete
	}
	first := d.b[d.off]
	major, info = first>>5, first&0x1f
	d.off++
	var n int
	switch {
	case info < 24:
		return major, info, uint64(info), false, nil
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	case info == 31 && major >= MajorBytes && major != MajorTag:
		return major, info, 0, true, nil
	default:
		d.off--
		return 0, 0, 0, false, d.malformed("reserved additional information %d for major type %d", info, major)
	}
	if len(d.b)-d.off < n {
		return 0, 0, 0, false, ErrIncomplete
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	switch n {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	return major, info, arg, false, nil
}

func (d *decoder) item(depth int) (Value, error) {
	if depth > maxDepth {
		return nil, d.malformed("nested deeper than %d", maxDepth)
	}
	start := d.off
	major, info, arg, indef, err := d.head()
	if err != nil {
		return nil, err
	}
	switch major {
	case MajorUint:
		return arg, nil
	case MajorNegint:
		if arg > math.MaxInt64 {
			return nil, d.malformed("negative integer -1-%d does not fit in int64", arg)
		}
		return -1 - int64(arg), nil
	case MajorBytes, MajorText:
		s, err := d.str(major, arg, indef)
		if err != nil {
			return nil, err
		}
		if major == MajorText {
			if !utf8.Valid(s) {
				d.off = start
				return nil, d.malformed("text string is not UTF-8")
			}
			return string(s), nil
		}
		return s, nil
	case MajorArray:
		var out []Value
		for i := uint64(0); indef || i < arg; i++ {
			if indef && d.atBreak() {
				break
			}
			// A definite count cannot exceed the bytes left (each item
			// takes at least one): no allocation from a hostile count.
			if !indef && arg-i > uint64(len(d.b)-d.off) {
				return nil, ErrIncomplete
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if out == nil {
			out = []Value{}
		}
		return out, nil
	case MajorMap:
		out := Map{}
		for i := uint64(0); indef || i < arg; i++ {
			if indef && d.atBreak() {
				break
			}
			if !indef && 2*(arg-i) > uint64(len(d.b)-d.off) {
				return nil, ErrIncomplete
			}
			k, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			v, err := d.item(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, Pair{k, v})
		}
		return out, nil
	case MajorTag:
		v, err := d.item(depth + 1)
		if err != nil {
			return nil, err
		}
		return Tag{Number: arg, Content: v}, nil
	}
	// Major 7: simple values and floats.
	switch {
	case indef:
		d.off = start
		return nil, d.malformed("unexpected break")
	case info == 20:
		return false, nil
	case info == 21:
		return true, nil
	case info == 22, info == 23:
		return nil, nil
	case info == 24:
		if arg < 32 {
			d.off = start
			return nil, d.malformed("simple value %d in two bytes", arg)
		}
		return Simple(arg), nil
	case info == 25:
		return float16(uint16(arg)), nil
	case info == 26:
		return float64(math.Float32frombits(uint32(arg))), nil
	case info == 27:
		return math.Float64frombits(arg), nil
	}
	return Simple(arg), nil
}

// atBreak consumes a break if one is next. At the end of the bytes it
// reports false, and the following item read returns ErrIncomplete.
func (d *decoder) atBreak() bool {
	if d.off < len(d.b) && d.b[d.off] == brk {
		d.off++
		return true
	}
	return false
}

// str reads a byte or text string body; an indefinite one is the
// concatenation of definite chunks of the same major type.
func (d *decoder) str(major byte, n uint64, indef bool) ([]byte, error) {
	if !indef {
		if n > uint64(len(d.b)-d.off) {
			return nil, ErrIncomplete
		}
		s := d.b[d.off : d.off+int(n)]
		d.off += int(n)
		return append([]byte(nil), s...), nil
	}
	out := []byte{}
	for !d.atBreak() {
		m, _, cn, cindef, err := d.head()
		if err != nil {
			return nil, err
		}
		if m != major || cindef {
			return nil, d.malformed("chunk of major type %d in an indefinite string of type %d", m, major)
		}
		c, err := d.str(major, cn, false)
		if err != nil {
			return nil, err
		}
		out = append(out, c...)
	}
	return out, nil
}

// float16 converts an IEEE 754 half-precision value.
func float16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, frac := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 31:
		if frac == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}

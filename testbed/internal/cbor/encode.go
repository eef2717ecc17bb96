package cbor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendHead appends an item head: major type and argument in the shortest
// form (RFC 8949 section 4.2.1, preferred serialization).
func AppendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// AppendUint appends an unsigned integer.
func AppendUint(b []byte, v uint64) []byte { return AppendHead(b, MajorUint, v) }

// AppendInt appends a signed integer: major 0 when >= 0, else major 1 with
// argument -1-v.
func AppendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return AppendHead(b, MajorUint, uint64(v))
	}
	return AppendHead(b, MajorNegint, uint64(-1-v))
}

// AppendBytes appends a byte string.
func AppendBytes(b []byte, v []byte) []byte {
	return append(AppendHead(b, MajorBytes, uint64(len(v))), v...)
}

// AppendByteString appends s as a byte string (major 2). kube-apiserver
// encodes every Go string, and every struct field name, this way
// (StringToByteString, FieldNameToByteString), so its output never holds a
// text string.
func AppendByteString(b []byte, s string) []byte {
	return append(AppendHead(b, MajorBytes, uint64(len(s))), s...)
}

// AppendText appends s as a text string (major 3).
func AppendText(b []byte, s string) []byte {
	return append(AppendHead(b, MajorText, uint64(len(s))), s...)
}

// AppendArrayHead starts an array of n items.
func AppendArrayHead(b []byte, n int) []byte { return AppendHead(b, MajorArray, uint64(n)) }

// AppendMapHead starts a map of n pairs.
func AppendMapHead(b []byte, n int) []byte { return AppendHead(b, MajorMap, uint64(n)) }

// AppendTag appends the head of tag num; the tagged item follows.
func AppendTag(b []byte, num uint64) []byte { return AppendHead(b, MajorTag, num) }

// AppendSelfDescribed appends the head of tag 55799.
func AppendSelfDescribed(b []byte) []byte { return append(b, SelfDescribed...) }

// AppendBool appends false (f4) or true (f5).
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xf5)
	}
	return append(b, 0xf4)
}

// AppendNull appends null (f6).
func AppendNull(b []byte) []byte { return append(b, 0xf6) }

// AppendFloat appends f as a float32 when that is exact, else as a float64.
// (kube-apiserver also uses float16 when exact; the testbed's objects carry
// no floats, so the shortest-of-two form is enough.)
func AppendFloat(b []byte, f float64) []byte {
	if f32 := float32(f); float64(f32) == f {
		return binary.BigEndian.AppendUint32(append(b, 0xfa), math.Float32bits(f32))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xfb), math.Float64bits(f))
}

// Append encodes a Value (see Value for the types) with definite lengths,
// maps in their given order.
func Append(b []byte, v Value) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return AppendNull(b), nil
	case bool:
		return AppendBool(b, x), nil
	case uint64:
		return AppendUint(b, x), nil
	case int64:
		return AppendInt(b, x), nil
	case int:
		return AppendInt(b, int64(x)), nil
	case float64:
		return AppendFloat(b, x), nil
	case []byte:
		return AppendBytes(b, x), nil
	case string:
		return AppendText(b, x), nil
	case Simple:
		if x < 24 {
			return append(b, 0xe0|byte(x)), nil
		}
		return append(b, 0xf8, byte(x)), nil
	case Tag:
		return Append(AppendTag(b, x.Number), x.Content)
	case []Value:
		b = AppendArrayHead(b, len(x))
		for _, it := range x {
			if b, err = Append(b, it); err != nil {
				return nil, err
			}
		}
		return b, nil
	case Map:
		b = AppendMapHead(b, len(x))
		for _, p := range x {
			if b, err = Append(b, p.Key); err != nil {
				return nil, err
			}
			if b, err = Append(b, p.Value); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("cbor: cannot encode %T", v)
}

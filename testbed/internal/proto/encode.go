// Package proto is a minimal hand-written protobuf wire-format encoder and
// decoder. The testbed may only use the Go standard library, and the messages
// it needs (etcd gRPC, Kubernetes watch envelopes) are few and small, so a
// generic append-style encoder plus a field iterator is enough; each message
// is encoded by hand where it is used, keeping field numbers visible next to
// the protocol they belong to.
package proto

import "encoding/binary"

// Wire types from the protobuf encoding spec.
const (
	WireVarint = 0
	WireI64    = 1
	WireBytes  = 2
	WireI32    = 5
)

// AppendVarint appends v as a base-128 varint.
func AppendVarint(b []byte, v uint64) []byte {
	return binary.AppendUvarint(b, v)
}

// AppendTag appends the key of field num with wire type wt.
func AppendTag(b []byte, num int, wt int) []byte {
	return AppendVarint(b, uint64(num)<<3|uint64(wt))
}

// AppendBytes appends a length-delimited field, even when v is empty. gogo
// generated Kubernetes marshalers write non-pointer strings unconditionally,
// so callers that mimic them need the "always" variant.
func AppendBytes(b []byte, num int, v []byte) []byte {
	b = AppendTag(b, num, WireBytes)
	b = AppendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// AppendString is AppendBytes for a string value.
func AppendString(b []byte, num int, v string) []byte {
	b = AppendTag(b, num, WireBytes)
	b = AppendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// AppendStringOpt appends a string field only when it is non-empty, as
// proto3 encoders (etcd) do.
func AppendStringOpt(b []byte, num int, v string) []byte {
	if v == "" {
		return b
	}
	return AppendString(b, num, v)
}

// AppendBytesOpt appends a bytes field only when it is non-empty (proto3).
func AppendBytesOpt(b []byte, num int, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return AppendBytes(b, num, v)
}

// AppendUint appends a varint field unconditionally.
func AppendUint(b []byte, num int, v uint64) []byte {
	b = AppendTag(b, num, WireVarint)
	return AppendVarint(b, v)
}

// AppendUintOpt appends a varint field only when it is non-zero (proto3).
func AppendUintOpt(b []byte, num int, v uint64) []byte {
	if v == 0 {
		return b
	}
	return AppendUint(b, num, v)
}

// AppendBool appends a bool field only when it is true (proto3).
func AppendBool(b []byte, num int, v bool) []byte {
	if !v {
		return b
	}
	return AppendUint(b, num, 1)
}

// AppendMessage appends an embedded message whose encoding is msg.
func AppendMessage(b []byte, num int, msg []byte) []byte {
	return AppendBytes(b, num, msg)
}

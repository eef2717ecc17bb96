package proto

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b []byte
	b = AppendString(b, 1, "key")
	b = AppendUint(b, 3, 300)
	b = AppendBytes(b, 2, nil)
	b = AppendUint(b, 15, 1<<40)
	b = AppendStringOpt(b, 4, "")
	b = AppendBool(b, 5, false)
	b = AppendMessage(b, 16, AppendString(nil, 1, "x"))

	// 0x0A len "key", 0x18 0xAC 0x02, 0x12 0x00, 0x78 varint(1<<40), 0x82 0x01 ...
	if !bytes.HasPrefix(b, []byte{0x0a, 3, 'k', 'e', 'y', 0x18, 0xac, 0x02, 0x12, 0x00, 0x78}) {
		t.Fatalf("unexpected encoding % x", b)
	}
	d := NewDecoder(b)
	var f Field
	var got []int
	for d.Next(&f) {
		got = append(got, f.Num)
		switch f.Num {
		case 1:
			if f.String() != "key" {
				t.Errorf("field 1 = %q", f.String())
			}
		case 3:
			if f.Uint != 300 {
				t.Errorf("field 3 = %d", f.Uint)
			}
		case 15:
			if f.Int64() != 1<<40 {
				t.Errorf("field 15 = %d", f.Uint)
			}
		case 16:
			inner := NewDecoder(f.Bytes)
			var g Field
			if !inner.Next(&g) || g.String() != "x" {
				t.Errorf("nested message wrong")
			}
		}
	}
	if d.Err() != nil {
		t.Fatal(d.Err())
	}
	if want := []int{1, 3, 2, 15, 16}; len(got) != len(want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
}

func TestTruncated(t *testing.T) {
	b := AppendString(nil, 1, "hello")
	d := NewDecoder(b[:4])
	var f Field
	if d.Next(&f) {
		t.Fatal("decoded a truncated field")
	}
	if d.Err() != ErrTruncated {
		t.Fatalf("err = %v", d.Err())
	}
}

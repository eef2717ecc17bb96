package cbor

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestValuesRoundTripThroughTheDecoder(t *testing.T) {
	v := Tag{TagSelfDescribed, Map{
		{[]byte("object"), Map{
			{[]byte("n"), uint64(1<<40 + 7)},
			{[]byte("neg"), int64(-500)},
			{[]byte("min"), int64(math.MinInt64)},
			{[]byte("bytes"), Tag{TagExpectedBase64, []byte{0, 1, 0xff}}},
			{"text", "héllo"},
			{[]byte("list"), []Value{true, false, nil, 1.5, float64(1e300), Simple(99)}},
			{[]byte("empty"), Map{}},
			{[]byte("none"), []Value{}},
		}},
		{[]byte("type"), []byte("ADDED")},
	}}
	b, err := Append(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := Decode(append(b, 0x00)) // a following item is left alone
	if err != nil || n != len(b) {
		t.Fatalf("Decode: n=%d of %d, err %v", n, len(b), err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip\n got %#v\nwant %#v", got, v)
	}
}

func TestHeadsAreShortest(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "00", 23: "17", 24: "1818", 255: "18ff", 256: "190100", 65535: "19ffff",
		65536: "1a00010000", 1 << 32: "1b0000000100000000",
	} {
		if got := hex.EncodeToString(AppendUint(nil, n)); got != want {
			t.Errorf("AppendUint(%d) = %s, want %s", n, got, want)
		}
	}
	if got := hex.EncodeToString(AppendInt(nil, -1)); got != "20" {
		t.Errorf("AppendInt(-1) = %s", got)
	}
	if got := hex.EncodeToString(AppendInt(nil, -1000)); got != "3903e7" {
		t.Errorf("AppendInt(-1000) = %s", got)
	}
	if got := hex.EncodeToString(AppendSelfDescribed(nil)); got != "d9d9f7" {
		t.Errorf("self-described tag = %s", got)
	}
	if got := hex.EncodeToString(AppendByteString(nil, "type")); got != "4474797065" {
		t.Errorf("byte string = %s", got)
	}
}

func TestIndefiniteLengthsAndTextKeysDecode(t *testing.T) {
	// {_ "a": (_ h'01', h'02'), "b": [_ 1, 2]} followed by half an item.
	in, _ := hex.DecodeString("bf6161" + "5f41014102ff" + "6162" + "9f0102ff" + "ff" + "a1")
	v, n, err := Decode(in)
	if err != nil || n != len(in)-1 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	m := v.(Map)
	a, _ := m.Get("a")
	b, _ := m.Get("b")
	if !bytes.Equal(a.([]byte), []byte{1, 2}) || !reflect.DeepEqual(b, []Value{uint64(1), uint64(2)}) {
		t.Fatalf("decoded %#v", v)
	}
	if _, _, err := Decode(in[n:]); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("half an item: %v", err)
	}
}

func TestTruncatedItemsAreIncompleteAtEveryCut(t *testing.T) {
	b, _ := Append(nil, Tag{TagSelfDescribed, Map{{[]byte("k"), []Value{[]byte("vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"), int64(-70000)}}}})
	for i := range len(b) {
		if _, _, err := Decode(b[:i]); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("cut at %d of %d: %v", i, len(b), err)
		}
	}
}

func TestMalformedInputIsRefused(t *testing.T) {
	for _, h := range []string{
		"1c",                 // reserved additional information
		"ff",                 // stray break
		"5f6100",             // text chunk inside an indefinite byte string
		"62c328",             // invalid UTF-8 text
		"f810",               // two-byte simple value below 32
		"3bffffffffffffffff", // negative integer beyond int64
	} {
		in, _ := hex.DecodeString(h)
		if _, _, err := Decode(in); err == nil || errors.Is(err, ErrIncomplete) {
			t.Errorf("%s: err %v, want malformed", h, err)
		}
	}
	deep := bytes.Repeat([]byte{0x81}, maxDepth+2)
	if _, _, err := Decode(append(deep, 0)); err == nil || errors.Is(err, ErrIncomplete) {
		t.Errorf("deep nesting: %v", err)
	}
}

func TestHalfPrecisionFloatsDecode(t *testing.T) {
	for h, want := range map[string]float64{"f93c00": 1, "f9c400": -4, "f97bff": 65504, "f90001": 5.960464477539063e-8} {
		in, _ := hex.DecodeString(h)
		v, _, err := Decode(in)
		if err != nil || v.(float64) != want {
			t.Errorf("%s: %v %v, want %v", h, v, err, want)
		}
	}
}

package cbor

// Value is a decoded item: uint64 (major 0), int64 (major 1), []byte (byte
// string), string (text string), []Value (array), Map, Tag, bool, nil (null
// and undefined), float64, or Simple (other simple values).
type Value = any

// Map is a CBOR map with its pairs in wire order (the order matters to the
// tests that check kube-apiserver's key order).
type Map []Pair

// Pair is one map entry.
type Pair struct {
	Key   Value
	Value Value
}

// Tag is a tagged item.
type Tag struct {
	Number  uint64
	Content Value
}

// Simple is a simple value other than false, true, null and undefined.
type Simple uint8

// Get returns the value of the first entry whose key is the byte or text
// string k, and whether there was one. Kubernetes writes keys as byte
// strings; other encoders use text strings, so both match.
func (m Map) Get(k string) (Value, bool) {
	for _, p := range m {
		if s, ok := Str(p.Key); ok && s == k {
			return p.Value, true
		}
	}
	return nil, false
}

// Str returns a byte or text string as a Go string.
func Str(v Value) (string, bool) {
	switch s := v.(type) {
	case []byte:
		return string(s), true
	case string:
		return s, true
	}
	return "", false
}

// Untag strips any enclosing tags (the self-described tag in particular).
func Untag(v Value) Value {
	for {
		t, ok := v.(Tag)
		if !ok {
			return v
		}
		v = t.Content
	}
}

// Int returns an integer value as int64 (false if not an integer or out of
// range).
func Int(v Value) (int64, bool) {
	switch n := v.(type) {
	case uint64:
		if n > 1<<63-1 {
			return 0, false
		}
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

package k8sobj

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"watchtrace/testbed/internal/cbor"
)

// The stored objects keep their non-metadata fields as compact JSON
// (RawField); these helpers re-encode such JSON as Kubernetes CBOR:
// objects in stored order with byte-string keys, strings as byte strings,
// integers as integers.

// jsonMember is one member of a JSON object, in stored order.
type jsonMember struct {
	key string
	val any
}

// readJSON reads one JSON value from dec (UseNumber on) into strings,
// json.Number, bool, nil, []any and []jsonMember.
func readJSON(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		obj := []jsonMember{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, jsonMember{k.(string), v})
		}
		_, err = dec.Token()
		return obj, err
	case '[':
		arr := []any{}
		for dec.More() {
			v, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err = dec.Token()
		return arr, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}

func parseJSON(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return readJSON(dec)
}

// appendJSONAsCBOR converts one JSON value. RawField values were compacted
// from valid JSON, so an error cannot happen; null is written if it does.
func appendJSONAsCBOR(b []byte, raw json.RawMessage) []byte {
	v, err := parseJSON(raw)
	if err != nil {
		return cbor.AppendNull(b)
	}
	return appendTreeCBOR(b, v)
}

func appendTreeCBOR(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return cbor.AppendByteString(b, x)
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return cbor.AppendInt(b, n)
		}
		if n, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return cbor.AppendUint(b, n)
		}
		f, _ := x.Float64()
		return cbor.AppendFloat(b, f)
	case bool:
		return cbor.AppendBool(b, x)
	case []any:
		b = cbor.AppendArrayHead(b, len(x))
		for _, it := range x {
			b = appendTreeCBOR(b, it)
		}
		return b
	case []jsonMember:
		b = cbor.AppendMapHead(b, len(x))
		for _, m := range x {
			b = appendTreeCBOR(cbor.AppendByteString(b, m.key), m.val)
		}
		return b
	}
	return cbor.AppendNull(b)
}

// appendBase64MapCBOR converts a JSON map of base64 strings (a
// map[string][]byte field) to a map of tag-22 byte strings holding the
// decoded bytes. A value that is not valid base64 keeps its text as bytes,
// as the protobuf encoding does; non-string values convert generically.
func appendBase64MapCBOR(b []byte, raw json.RawMessage) []byte {
	v, err := parseJSON(raw)
	obj, ok := v.([]jsonMember)
	if err != nil || !ok {
		return appendJSONAsCBOR(b, raw)
	}
	b = cbor.AppendMapHead(b, len(obj))
	for _, m := range obj {
		b = cbor.AppendByteString(b, m.key)
		s, ok := m.val.(string)
		if !ok {
			b = appendTreeCBOR(b, m.val)
			continue
		}
		data, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			data = []byte(s)
		}
		b = cbor.AppendBytes(cbor.AppendTag(b, cbor.TagExpectedBase64), data)
	}
	return b
}

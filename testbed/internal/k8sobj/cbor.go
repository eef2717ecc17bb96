package k8sobj

import (
	"sort"

	"watchtrace/testbed/internal/cbor"
)

// CBOR (KEP-4222) follows what a v1.36 kube-apiserver was seen to send:
// every key and every string value is a byte string (the serializer's
// StringToByteString and FieldNameToByteString options), Go []byte fields
// are byte strings in tag 22 (ByteSliceLaterFormatBase64), and an object
// map holds its own fields first, then kind, apiVersion and metadata.

// AppendCBOR appends the object as a CBOR map. tagged prefixes the
// self-described tag 55799, which the serializer writes before each
// top-level item (a watch event's object is encoded on its own, so it has
// one; LIST items do not). LIST items are also rendered without kind and
// apiVersion: pass withType false.
func (o *Object) AppendCBOR(b []byte, r Resource, tagged, withType bool) []byte {
	if tagged {
		b = cbor.AppendSelfDescribed(b)
	}
	n := len(o.Rest) + 1
	if withType && o.Kind != "" {
		n++
	}
	if withType && o.APIVersion != "" {
		n++
	}
	b = cbor.AppendMapHead(b, n)
	for _, f := range o.Rest {
		b = cbor.AppendByteString(b, f.Name)
		if isBytesMap(r.Kind, f.Name) {
			b = appendBase64MapCBOR(b, f.Value)
		} else {
			b = appendJSONAsCBOR(b, f.Value)
		}
	}
	if withType && o.Kind != "" {
		b = appendStringPair(b, "kind", o.Kind)
	}
	if withType && o.APIVersion != "" {
		b = appendStringPair(b, "apiVersion", o.APIVersion)
	}
	b = cbor.AppendByteString(b, "metadata")
	return appendObjectMetaCBOR(b, &o.Meta)
}

// isBytesMap reports the map[string][]byte fields of the served kinds.
func isBytesMap(kind, field string) bool {
	return (kind == "Secret" && field == "data") || (kind == "ConfigMap" && field == "binaryData")
}

// appendObjectMetaCBOR renders metav1.ObjectMeta with the JSON rendering's
// fields and omissions: struct order, empty fields left out except
// creationTimestamp, which is null when unset (metav1.Time marshals the
// zero time to null in CBOR as in JSON).
func appendObjectMetaCBOR(b []byte, m *ObjectMeta) []byte {
	strs := []struct{ k, v string }{
		{"name", m.Name}, {"generateName", m.GenerateName}, {"namespace", m.Namespace},
		{"selfLink", m.SelfLink}, {"uid", m.UID}, {"resourceVersion", m.ResourceVersion},
	}
	n := 1 // creationTimestamp
	for _, s := range strs {
		if s.v != "" {
			n++
		}
	}
	if m.Generation != 0 {
		n++
	}
	if len(m.Labels) > 0 {
		n++
	}
	if len(m.Annotations) > 0 {
		n++
	}
	b = cbor.AppendMapHead(b, n)
	for _, s := range strs {
		if s.v != "" {
			b = appendStringPair(b, s.k, s.v)
		}
	}
	if m.Generation != 0 {
		b = cbor.AppendInt(cbor.AppendByteString(b, "generation"), m.Generation)
	}
	b = cbor.AppendByteString(b, "creationTimestamp")
	if m.CreationTimestamp == nil {
		b = cbor.AppendNull(b)
	} else {
		b = cbor.AppendByteString(b, *m.CreationTimestamp)
	}
	if len(m.Labels) > 0 {
		b = appendStringMapCBOR(cbor.AppendByteString(b, "labels"), m.Labels)
	}
	if len(m.Annotations) > 0 {
		b = appendStringMapCBOR(cbor.AppendByteString(b, "annotations"), m.Annotations)
	}
	return b
}

// appendStringMapCBOR renders a map[string]string with sorted keys, the
// order encoding/json gives the same map.
func appendStringMapCBOR(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = cbor.AppendMapHead(b, len(keys))
	for _, k := range keys {
		b = appendStringPair(b, k, m[k])
	}
	return b
}

func appendStringPair(b []byte, k, v string) []byte {
	return cbor.AppendByteString(cbor.AppendByteString(b, k), v)
}

// AppendListCBOR renders a <Kind>List: the self-described tag, then
// {kind, apiVersion, metadata: {resourceVersion}, items: [...]} with items
// untagged and without kind/apiVersion, as in the JSON list.
func AppendListCBOR(b []byte, r Resource, rv string, items []*Object) []byte {
	b = cbor.AppendSelfDescribed(b)
	b = cbor.AppendMapHead(b, 4)
	b = appendStringPair(b, "kind", r.Kind+"List")
	b = appendStringPair(b, "apiVersion", r.APIVersion())
	b = cbor.AppendByteString(b, "metadata")
	b = appendStringPair(cbor.AppendMapHead(b, 1), "resourceVersion", rv)
	b = cbor.AppendArrayHead(cbor.AppendByteString(b, "items"), len(items))
	for _, it := range items {
		b = it.AppendCBOR(b, r, false, false)
	}
	return b
}

// AppendCBOR appends the Status as a tagged CBOR map: status, message,
// reason, details, code (the JSON fields, empty ones left out), then kind,
// apiVersion and an empty metadata map.
func (s Status) AppendCBOR(b []byte) []byte {
	b = cbor.AppendSelfDescribed(b)
	d := s.details()
	n := 5 // status, code, kind, apiVersion, metadata
	for _, set := range []bool{s.Message != "", s.Reason != "", d != nil} {
		if set {
			n++
		}
	}
	b = cbor.AppendMapHead(b, n)
	b = appendStringPair(b, "status", "Failure")
	if s.Message != "" {
		b = appendStringPair(b, "message", s.Message)
	}
	if s.Reason != "" {
		b = appendStringPair(b, "reason", s.Reason)
	}
	if d != nil {
		b = cbor.AppendByteString(b, "details")
		m := 0
		for _, set := range []bool{d.Name != "", d.Group != "", d.Kind != "", len(d.Causes) > 0, d.RetryAfterSeconds != 0} {
			if set {
				m++
			}
		}
		b = cbor.AppendMapHead(b, m)
		for _, kv := range [][2]string{{"name", d.Name}, {"group", d.Group}, {"kind", d.Kind}} {
			if kv[1] != "" {
				b = appendStringPair(b, kv[0], kv[1])
			}
		}
		if len(d.Causes) > 0 {
			b = cbor.AppendArrayHead(cbor.AppendByteString(b, "causes"), len(d.Causes))
			for _, c := range d.Causes {
				b = cbor.AppendMapHead(b, 2)
				b = appendStringPair(b, "reason", c.Reason)
				b = appendStringPair(b, "message", c.Message)
			}
		}
		if d.RetryAfterSeconds != 0 {
			b = cbor.AppendInt(cbor.AppendByteString(b, "retryAfterSeconds"), int64(d.RetryAfterSeconds))
		}
	}
	b = cbor.AppendInt(cbor.AppendByteString(b, "code"), int64(s.Code))
	b = appendStringPair(b, "kind", "Status")
	b = appendStringPair(b, "apiVersion", "v1")
	return cbor.AppendMapHead(cbor.AppendByteString(b, "metadata"), 0)
}

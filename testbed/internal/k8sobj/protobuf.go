package k8sobj

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"watchtrace/testbed/internal/proto"
)

// ProtoMagic prefixes every Kubernetes protobuf object: "k8s" and an
// encoding byte (0 = runtime.Unknown follows).
var ProtoMagic = []byte{'k', '8', 's', 0}

// Field numbers and presence rules below follow the gogo-generated
// marshalers in k8s.io/api and apimachinery: non-pointer strings and structs
// are always written (even when empty), pointers only when set, map entries
// sorted by key with key=1 and value=2.

// EncodeUnknown returns "k8s\x00" + runtime.Unknown{typeMeta=1
// runtime.TypeMeta{apiVersion=1, kind=2}, raw=2, contentEncoding=3,
// contentType=4}. Note runtime.TypeMeta numbers apiVersion first, unlike
// metav1.TypeMeta.
func EncodeUnknown(apiVersion, kind string, raw []byte) []byte {
	tm := proto.AppendString(nil, 1, apiVersion)
	tm = proto.AppendString(tm, 2, kind)
	b := append([]byte(nil), ProtoMagic...)
	b = proto.AppendMessage(b, 1, tm)
	b = proto.AppendBytes(b, 2, raw)
	b = proto.AppendString(b, 3, "")
	return proto.AppendString(b, 4, "")
}

// AppendProto appends the object's own protobuf message (ConfigMap, Secret,
// Lease), without magic or Unknown envelope.
func (o *Object) AppendProto(b []byte, r Resource) []byte {
	b = proto.AppendMessage(b, 1, appendObjectMeta(nil, &o.Meta))
	switch r.Kind {
	case "ConfigMap":
		// data=2 map<string,string>, binaryData=3 map<string,bytes>
		b = appendStringMap(b, 2, stringMapField(o.Field("data")))
		b = appendStringMap(b, 3, bytesMapField(o.Field("binaryData")))
		if v, ok := boolField(o.Field("immutable")); ok {
			b = proto.AppendUint(b, 4, boolToUint(v))
		}
	case "Secret":
		// data=2 map<string,bytes>, type=3, stringData=4, immutable=5
		b = appendStringMap(b, 2, bytesMapField(o.Field("data")))
		var typ string
		_ = json.Unmarshal(o.Field("type"), &typ)
		b = proto.AppendString(b, 3, typ)
		b = appendStringMap(b, 4, stringMapField(o.Field("stringData")))
		if v, ok := boolField(o.Field("immutable")); ok {
			b = proto.AppendUint(b, 5, boolToUint(v))
		}
	case "Lease":
		// spec=2 LeaseSpec{holderIdentity=1 *string, leaseDurationSeconds=2 *int32}
		var spec struct {
			HolderIdentity       *string `json:"holderIdentity"`
			LeaseDurationSeconds *int32  `json:"leaseDurationSeconds"`
		}
		_ = json.Unmarshal(o.Field("spec"), &spec)
		var s []byte
		if spec.HolderIdentity != nil {
			s = proto.AppendString(s, 1, *spec.HolderIdentity)
		}
		if spec.LeaseDurationSeconds != nil {
			s = proto.AppendUint(s, 2, uint64(int64(*spec.LeaseDurationSeconds)))
		}
		b = proto.AppendMessage(b, 2, s)
	}
	return b
}

// appendObjectMeta encodes metav1.ObjectMeta: name=1, generateName=2,
// namespace=3, selfLink=4, uid=5, resourceVersion=6, generation=7,
// creationTimestamp=8, labels=11, annotations=12.
func appendObjectMeta(b []byte, m *ObjectMeta) []byte {
	b = proto.AppendString(b, 1, m.Name)
	b = proto.AppendString(b, 2, m.GenerateName)
	b = proto.AppendString(b, 3, m.Namespace)
	b = proto.AppendString(b, 4, m.SelfLink)
	b = proto.AppendString(b, 5, m.UID)
	b = proto.AppendString(b, 6, m.ResourceVersion)
	b = proto.AppendUint(b, 7, uint64(m.Generation))
	b = proto.AppendMessage(b, 8, appendTime(nil, m.CreationTimestamp))
	b = appendStringMap(b, 11, m.Labels)
	b = appendStringMap(b, 12, m.Annotations)
	return b
}

// appendTime encodes metav1.Time as Timestamp{seconds=1, nanos=2}; the zero
// time marshals to an empty message.
func appendTime(b []byte, rfc3339 *string) []byte {
	if rfc3339 == nil {
		return b
	}
	t, err := time.Parse(time.RFC3339, *rfc3339)
	if err != nil || t.IsZero() {
		return b
	}
	b = proto.AppendUint(b, 1, uint64(t.Unix()))
	return proto.AppendUint(b, 2, uint64(t.Nanosecond()))
}

func appendStringMap(b []byte, num int, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := proto.AppendString(nil, 1, k)
		e = proto.AppendString(e, 2, m[k])
		b = proto.AppendMessage(b, num, e)
	}
	return b
}

func stringMapField(raw json.RawMessage) map[string]string {
	var m map[string]string
	_ = json.Unmarshal(raw, &m) // absent or malformed: encode nothing
	return m
}

// bytesMapField decodes a JSON map of base64 values (Secret.data,
// ConfigMap.binaryData) to raw bytes, keeping undecodable values verbatim.
func bytesMapField(raw json.RawMessage) map[string]string {
	m := stringMapField(raw)
	for k, v := range m {
		if d, err := base64.StdEncoding.DecodeString(v); err == nil {
			m[k] = string(d)
		}
	}
	return m
}

func boolField(raw json.RawMessage) (bool, bool) {
	if raw == nil {
		return false, false
	}
	v, err := strconv.ParseBool(string(raw))
	return v, err == nil
}

func boolToUint(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

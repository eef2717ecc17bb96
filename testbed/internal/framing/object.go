package framing

import (
	"sync"

	"watchtrace/testbed/internal/k8sobj"
)

// Object is an immutable watch event payload whose per-format encoding is
// computed once and shared by every watcher, like kube-apiserver's
// CachingObject (the serialized object is reused across watchers).
type Object struct {
	Resource k8sobj.Resource
	Obj      *k8sobj.Object // nil for Status payloads
	Status   *k8sobj.Status // ERROR events
	once     [NumFormats]sync.Once
	enc      [NumFormats][]byte
}

// Encoded returns the object as embedded in a watch event: compact JSON,
// "k8s\x00" + runtime.Unknown for protobuf, or a self-described CBOR item.
func (o *Object) Encoded(f Format) []byte {
	o.once[f].Do(func() {
		switch {
		case o.Status != nil && f == JSON:
			o.enc[f] = o.Status.AppendJSON(nil)
		case o.Status != nil && f == CBOR:
			o.enc[f] = o.Status.AppendCBOR(nil)
		case f == CBOR:
			o.enc[f] = o.Obj.AppendCBOR(nil, o.Resource, true, true)
		case o.Status != nil:
			o.enc[f] = k8sobj.EncodeUnknown("v1", "Status", o.Status.AppendProto(nil))
		case f == JSON:
			o.enc[f] = o.Obj.AppendJSON(nil)
		default:
			o.enc[f] = k8sobj.EncodeUnknown(o.Resource.APIVersion(), o.Resource.Kind, o.Obj.AppendProto(nil, o.Resource))
		}
	})
	return o.enc[f]
}

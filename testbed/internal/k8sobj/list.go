package k8sobj

import (
	"watchtrace/testbed/internal/proto"
)

// AppendListJSON renders a <Kind>List. Items carry no kind/apiVersion, as in
// kube-apiserver's typed lists.
func AppendListJSON(b []byte, r Resource, rv string, items []*Object) []byte {
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, r.Kind+"List")
	b = append(b, `,"apiVersion":`...)
	b = appendJSONString(b, r.APIVersion())
	b = append(b, `,"metadata":{"resourceVersion":`...)
	b = appendJSONString(b, rv)
	b = append(b, `},"items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		item := *it
		item.Kind, item.APIVersion = "", ""
		b = item.AppendJSON(b)
	}
	return append(b, "]}\n"...)
}

// EncodeListProto renders "k8s\x00" + Unknown{<Kind>List{metadata=1
// ListMeta, items=2 repeated <Kind>}}.
func EncodeListProto(r Resource, rv string, items []*Object) []byte {
	body := proto.AppendMessage(nil, 1, appendListMeta(nil, rv))
	for _, it := range items {
		body = proto.AppendMessage(body, 2, it.AppendProto(nil, r))
	}
	return EncodeUnknown(r.APIVersion(), r.Kind+"List", body)
}

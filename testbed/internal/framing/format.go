// Package framing encodes and decodes Kubernetes watch streams exactly as
// kube-apiserver frames them: JSON events are one compact object plus "\n"
// each; protobuf events are a 4-byte big-endian length followed by a
// metav1.WatchEvent, written as two separate Write calls (as
// LengthDelimitedFramer does).
package framing

import "strings"

// Format is a watch stream encoding.
type Format int

// Formats.
const (
	JSON Format = iota
	Protobuf
	numFormats
)

// Media types.
const (
	MediaJSON          = "application/json"
	MediaProtobuf      = "application/vnd.kubernetes.protobuf"
	MediaProtobufWatch = MediaProtobuf + ";stream=watch"
)

func (f Format) String() string {
	if f == Protobuf {
		return "protobuf"
	}
	return "json"
}

// ParseFormat maps "json"/"protobuf" to a Format.
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "json":
		return JSON, true
	case "protobuf", "proto":
		return Protobuf, true
	}
	return JSON, false
}

// Negotiate picks the response format from an Accept header: protobuf when
// the client lists the Kubernetes protobuf media type (client-go sends
// "application/vnd.kubernetes.protobuf, application/json"), JSON otherwise.
func Negotiate(accept string) Format {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), MediaProtobuf) {
			return Protobuf
		}
	}
	return JSON
}

// WatchContentType is the Content-Type of a watch response, as set by
// handlers/watch.go: JSON stays application/json, others get ";stream=watch".
func (f Format) WatchContentType() string {
	if f == Protobuf {
		return MediaProtobufWatch
	}
	return MediaJSON
}

// ContentType is the Content-Type of a non-streaming (LIST) response.
func (f Format) ContentType() string {
	if f == Protobuf {
		return MediaProtobuf
	}
	return MediaJSON
}

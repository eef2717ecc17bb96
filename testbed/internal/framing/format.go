// Package framing encodes and decodes Kubernetes watch streams exactly as
// kube-apiserver frames them: JSON events are one compact object plus "\n"
// each; protobuf events are a 4-byte big-endian length followed by a
// metav1.WatchEvent, written as two separate Write calls (as
// LengthDelimitedFramer does); CBOR events are self-delimiting items back to
// back (application/cbor-seq, RFC 8742), one Write each.
package framing

import "strings"

// Format is a watch stream encoding.
type Format int

// Formats.
const (
	JSON Format = iota
	Protobuf
	CBOR
	// NumFormats sizes per-format caches.
	NumFormats
)

// Media types.
const (
	MediaJSON          = "application/json"
	MediaProtobuf      = "application/vnd.kubernetes.protobuf"
	MediaProtobufWatch = MediaProtobuf + ";stream=watch"
	MediaCBOR          = "application/cbor"
	MediaCBORSeq       = "application/cbor-seq" // watch responses (KEP-4222)
)

func (f Format) String() string {
	switch f {
	case Protobuf:
		return "protobuf"
	case CBOR:
		return "cbor"
	}
	return "json"
}

// ParseFormat maps "json"/"protobuf"/"cbor" to a Format.
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "json":
		return JSON, true
	case "protobuf", "proto":
		return Protobuf, true
	case "cbor":
		return CBOR, true
	}
	return JSON, false
}

// Negotiate picks the response format from an Accept header: CBOR when
// the client lists application/cbor or application/cbor-seq (client-go
// with CBOR enabled), else protobuf when it lists the Kubernetes protobuf
// media type (client-go sends "application/vnd.kubernetes.protobuf,
// application/json"), JSON otherwise.
func Negotiate(accept string) Format {
	f := JSON
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		switch mt = strings.TrimSpace(mt); {
		case strings.EqualFold(mt, MediaCBOR), strings.EqualFold(mt, MediaCBORSeq):
			return CBOR
		case strings.EqualFold(mt, MediaProtobuf):
			f = Protobuf
		}
	}
	return f
}

// WatchContentType is the Content-Type of a watch response, as set by
// handlers/watch.go: JSON stays application/json, protobuf gets
// ";stream=watch", CBOR is a CBOR sequence.
func (f Format) WatchContentType() string {
	switch f {
	case Protobuf:
		return MediaProtobufWatch
	case CBOR:
		return MediaCBORSeq
	}
	return MediaJSON
}

// ContentType is the Content-Type of a non-streaming (LIST) response.
func (f Format) ContentType() string {
	switch f {
	case Protobuf:
		return MediaProtobuf
	case CBOR:
		return MediaCBOR
	}
	return MediaJSON
}

// Package cbor is a minimal RFC 8949 (CBOR) encoder and decoder, enough for
// the Kubernetes CBOR serving format (KEP-4222): the fake apiserver encodes
// objects, lists and watch events with the append functions, and watch-load
// and the tests decode them into a small generic value model. Like package
// proto it is hand-written because the testbed may only use the standard
// library. The encoder emits definite lengths and shortest heads only, as
// kube-apiserver's encoder (fxamacker/cbor in its deterministic modes) does;
// the decoder also accepts indefinite lengths, text-string keys and any tags.
package cbor

// Major types (RFC 8949 section 3.1).
const (
	MajorUint   = 0
	MajorNegint = 1
	MajorBytes  = 2
	MajorText   = 3
	MajorArray  = 4
	MajorMap    = 5
	MajorTag    = 6
	MajorSimple = 7
)

// Tags used by Kubernetes.
const (
	// TagSelfDescribed (55799, RFC 8949 section 3.4.6) encloses every item
	// kube-apiserver's CBOR serializer writes: its head d9 d9 f7 is the
	// "magic number" that recognises CBOR data.
	TagSelfDescribed = 55799
	// TagExpectedBase64 (22, RFC 8949 section 3.4.5.2) marks a byte string
	// whose JSON form is base64: Kubernetes encodes Go []byte (Secret data,
	// ConfigMap binaryData) this way, so a CBOR-to-JSON conversion yields
	// the same base64 text as the JSON serializer.
	TagExpectedBase64 = 22
)

// SelfDescribed is the encoded head of tag 55799.
var SelfDescribed = []byte{0xd9, 0xd9, 0xf7}

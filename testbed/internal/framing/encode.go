package framing

import (
	"encoding/binary"
	"io"

	"watchtrace/testbed/internal/proto"
)

// Frame returns one event as it goes on the wire: for JSON the whole line
// including "\n"; for protobuf the 4-byte length header followed by the
// WatchEvent; for CBOR one self-described item. Write sends it with the
// framer's write pattern.
func Frame(f Format, eventType string, obj []byte) []byte {
	if f == CBOR {
		return frameCBOR(eventType, obj)
	}
	if f == JSON {
		b := make([]byte, 0, len(obj)+len(eventType)+24)
		b = append(b, `{"type":"`...)
		b = append(b, eventType...) // ADDED/MODIFIED/...: no escaping needed
		b = append(b, `","object":`...)
		b = append(b, obj...)
		return append(b, "}\n"...)
	}
	// metav1.WatchEvent{type=1, object=2 runtime.RawExtension{raw=1}}
	raw := proto.AppendBytes(nil, 1, obj)
	b := make([]byte, 4, 4+len(raw)+len(eventType)+16)
	b = proto.AppendString(b, 1, eventType)
	b = proto.AppendMessage(b, 2, raw)
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4))
	return b
}

// Write sends a frame from Frame. JSON and CBOR are one Write (their
// framers pass the encoder's single write through); protobuf is two Writes,
// header then body, like LengthDelimitedFramer. It returns the bytes
// written.
func Write(w io.Writer, f Format, frame []byte) (int, error) {
	if f != Protobuf {
		return w.Write(frame)
	}
	n, err := w.Write(frame[:4])
	if err != nil {
		return n, err
	}
	m, err := w.Write(frame[4:])
	return n + m, err
}

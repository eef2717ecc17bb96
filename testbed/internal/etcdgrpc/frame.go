package etcdgrpc

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MaxMessageSize bounds one received gRPC message. etcd's default request
// limit is 1.5 MiB, but Range responses over many big objects can be larger.
const MaxMessageSize = 256 << 20

// frameMessage returns msg as a gRPC Length-Prefixed-Message (uncompressed).
func frameMessage(msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// readMessage reads one Length-Prefixed-Message. It returns io.EOF only when
// the stream ends cleanly between messages.
func readMessage(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("grpc: truncated message header")
		}
		return nil, err
	}
	if hdr[0] != 0 {
		// We never offer grpc-encoding, so a compressed message is a bug.
		return nil, fmt.Errorf("grpc: compressed message (flag %d) not supported", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxMessageSize {
		return nil, fmt.Errorf("grpc: message of %d bytes exceeds limit", n)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("grpc: truncated message body: %w", err)
	}
	return msg, nil
}

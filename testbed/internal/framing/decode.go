package framing

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"watchtrace/testbed/internal/k8sobj"
	"watchtrace/testbed/internal/proto"
)

// MaxFrame bounds one decoded event (kube-apiserver objects are limited to
// ~1.5 MiB by etcd; this leaves room for padding experiments).
const MaxFrame = 64 << 20

// Event is a decoded watch event.
type Event struct {
	Type       string
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	RV         string
	Labels     map[string]string // JSON and CBOR only
	Bytes      int               // framed size on the wire
	// InitialEventsEnd: a BOOKMARK annotated k8s.io/initial-events-end=true,
	// the end of a watch-list's initial events.
	InitialEventsEnd bool
	// ERROR events.
	Code    int32
	Reason  string
	Message string
}

// Reader decodes a watch response body.
type Reader struct {
	f  Format
	br *bufio.Reader
	// CBOR items have no length prefix: cbuf[coff:] holds bytes read but
	// not yet decoded.
	cbuf []byte
	coff int
}

// NewReader wraps a watch response body of format f.
func NewReader(r io.Reader, f Format) *Reader {
	return &Reader{f: f, br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next event, or io.EOF at a clean end of stream.
func (r *Reader) Next() (*Event, error) {
	switch r.f {
	case JSON:
		return r.nextJSON()
	case CBOR:
		return r.nextCBOR()
	}
	return r.nextProto()
}

func (r *Reader) nextJSON() (*Event, error) {
	// kube-apiserver never pretty-prints watch output, so each event is
	// exactly one line.
	line, err := r.br.ReadBytes('\n')
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, fmt.Errorf("json watch: truncated event (%d bytes)", len(line))
		}
		return nil, err
	}
	ev, err := DecodeJSONEvent(line)
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// DecodeJSONEvent decodes one JSON watch event line (with or without "\n").
func DecodeJSONEvent(line []byte) (*Event, error) {
	var env struct {
		Type   string `json:"type"`
		Object struct {
			Kind       string            `json:"kind"`
			APIVersion string            `json:"apiVersion"`
			Metadata   k8sobj.ObjectMeta `json:"metadata"`
			Code       int32             `json:"code"`
			Reason     string            `json:"reason"`
			Message    string            `json:"message"`
		} `json:"object"`
	}
	if err := json.Unmarshal(line, &env); err != nil {
		return nil, fmt.Errorf("json watch event: %w", err)
	}
	o := env.Object
	return &Event{
		Type: env.Type, APIVersion: o.APIVersion, Kind: o.Kind,
		Namespace: o.Metadata.Namespace, Name: o.Metadata.Name, RV: o.Metadata.ResourceVersion,
		Labels: o.Metadata.Labels, Bytes: len(line),
		Code: o.Code, Reason: o.Reason, Message: o.Message,
		InitialEventsEnd: o.Metadata.Annotations[k8sobj.InitialEventsEndAnnotation] == "true",
	}, nil
}

func (r *Reader) nextProto() (*Event, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("protobuf watch: truncated length header")
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("protobuf watch: frame of %d bytes exceeds limit", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		return nil, fmt.Errorf("protobuf watch: truncated frame: %w", err)
	}
	ev, err := DecodeProtoEvent(body)
	if err != nil {
		return nil, err
	}
	ev.Bytes = 4 + int(n)
	return ev, nil
}

// DecodeProtoEvent decodes a metav1.WatchEvent (without length header) down
// to the object's metadata, or the Status fields for ERROR events.
func DecodeProtoEvent(body []byte) (*Event, error) {
	ev := &Event{}
	var raw []byte
	if err := fields(body, func(f *proto.Field) {
		switch f.Num {
		case 1:
			ev.Type = f.String()
		case 2:
			_ = fields(f.Bytes, func(g *proto.Field) { // RawExtension.raw
				if g.Num == 1 {
					raw = g.Bytes
				}
			})
		}
	}); err != nil {
		return nil, fmt.Errorf("WatchEvent: %w", err)
	}
	if !bytes.HasPrefix(raw, k8sobj.ProtoMagic) {
		return nil, fmt.Errorf("WatchEvent object lacks the k8s\\x00 prefix")
	}
	var obj []byte
	if err := fields(raw[4:], func(f *proto.Field) { // runtime.Unknown
		switch f.Num {
		case 1:
			_ = fields(f.Bytes, func(g *proto.Field) {
				switch g.Num {
				case 1:
					ev.APIVersion = g.String()
				case 2:
					ev.Kind = g.String()
				}
			})
		case 2:
			obj = f.Bytes
		}
	}); err != nil {
		return nil, fmt.Errorf("runtime.Unknown: %w", err)
	}
	if ev.Kind == "Status" {
		err := fields(obj, func(f *proto.Field) {
			switch f.Num {
			case 3:
				ev.Message = f.String()
			case 4:
				ev.Reason = f.String()
			case 6:
				ev.Code = int32(f.Uint)
			}
		})
		return ev, err
	}
	err := fields(obj, func(f *proto.Field) {
		if f.Num != 1 { // metadata
			return
		}
		_ = fields(f.Bytes, func(g *proto.Field) {
			switch g.Num {
			case 1:
				ev.Name = g.String()
			case 3:
				ev.Namespace = g.String()
			case 6:
				ev.RV = g.String()
			case 12: // annotations entry {key=1, value=2}
				var k, v string
				_ = fields(g.Bytes, func(e *proto.Field) {
					switch e.Num {
					case 1:
						k = e.String()
					case 2:
						v = e.String()
					}
				})
				if k == k8sobj.InitialEventsEndAnnotation && v == "true" {
					ev.InitialEventsEnd = true
				}
			}
		})
	})
	return ev, err
}

func fields(msg []byte, fn func(*proto.Field)) error {
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		fn(&f)
	}
	return d.Err()
}

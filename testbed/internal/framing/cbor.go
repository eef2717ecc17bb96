package framing

import (
	"errors"
	"fmt"
	"io"

	"watchtrace/testbed/internal/cbor"
	"watchtrace/testbed/internal/k8sobj"
)

// frameCBOR builds a watch event item as a v1.36 apiserver was seen to
// write it: the self-described tag, then the map {object, type} in that
// order with byte-string keys and type; object is the separately encoded
// object, so it carries its own self-described tag:
//
//	d9d9f7 a2 46 "object" d9d9f7 a4 ... 44 "type" 45 "ADDED"
func frameCBOR(eventType string, obj []byte) []byte {
	b := make([]byte, 0, len(obj)+len(eventType)+20)
	b = cbor.AppendSelfDescribed(b)
	b = cbor.AppendMapHead(b, 2)
	b = cbor.AppendByteString(b, "object")
	b = append(b, obj...)
	b = cbor.AppendByteString(b, "type")
	return cbor.AppendByteString(b, eventType)
}

// nextCBOR decodes the next item of an application/cbor-seq body. Items
// carry no length prefix, so it buffers until one is complete.
func (r *Reader) nextCBOR() (*Event, error) {
	for {
		if pending := r.cbuf[r.coff:]; len(pending) > 0 {
			_, n, err := cbor.Decode(pending)
			if err == nil {
				r.coff += n
				return DecodeCBOREvent(pending[:n])
			}
			if !errors.Is(err, cbor.ErrIncomplete) {
				return nil, fmt.Errorf("cbor watch: %w", err)
			}
			if len(pending) > MaxFrame {
				return nil, fmt.Errorf("cbor watch: item exceeds %d bytes", MaxFrame)
			}
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.coff == len(r.cbuf) {
				return nil, io.EOF
			}
			if err == io.EOF {
				return nil, fmt.Errorf("cbor watch: truncated item (%d bytes)", len(r.cbuf)-r.coff)
			}
			return nil, err
		}
	}
}

// fill moves the undecoded bytes to the front of the buffer and appends
// what the body has available.
func (r *Reader) fill() error {
	n := copy(r.cbuf, r.cbuf[r.coff:])
	r.cbuf, r.coff = r.cbuf[:n], 0
	if cap(r.cbuf)-n < 16<<10 {
		r.cbuf = append(make([]byte, 0, 2*cap(r.cbuf)+32<<10), r.cbuf...)
	}
	m, err := r.br.Read(r.cbuf[n:cap(r.cbuf)])
	r.cbuf = r.cbuf[:n+m]
	if m > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// DecodeCBOREvent decodes one watch event item down to the object's
// metadata, or the Status fields for ERROR events. Keys may be byte or text
// strings and tags are skipped, so any RFC 8949 encoder's output decodes.
func DecodeCBOREvent(item []byte) (*Event, error) {
	v, n, err := cbor.Decode(item)
	if err != nil {
		return nil, fmt.Errorf("cbor watch event: %w", err)
	}
	env, ok := cbor.Untag(v).(cbor.Map)
	if !ok {
		return nil, fmt.Errorf("cbor watch event: not a map")
	}
	ev := &Event{Bytes: n}
	t, _ := env.Get("type")
	ev.Type, _ = cbor.Str(t)
	o, _ := env.Get("object")
	obj, ok := cbor.Untag(o).(cbor.Map)
	if !ok {
		return nil, fmt.Errorf("cbor watch event: object is not a map")
	}
	str := func(m cbor.Map, k string) string {
		v, _ := m.Get(k)
		s, _ := cbor.Str(cbor.Untag(v))
		return s
	}
	ev.Kind, ev.APIVersion = str(obj, "kind"), str(obj, "apiVersion")
	ev.Reason, ev.Message = str(obj, "reason"), str(obj, "message")
	if c, ok := obj.Get("code"); ok {
		n, _ := cbor.Int(c)
		ev.Code = int32(n)
	}
	mv, _ := obj.Get("metadata")
	if meta, ok := cbor.Untag(mv).(cbor.Map); ok {
		ev.Name, ev.Namespace, ev.RV = str(meta, "name"), str(meta, "namespace"), str(meta, "resourceVersion")
		ev.Labels = stringMap(meta, "labels")
		ev.InitialEventsEnd = stringMap(meta, "annotations")[k8sobj.InitialEventsEndAnnotation] == "true"
	}
	return ev, nil
}

// stringMap returns a map of strings held under key k (nil if absent).
func stringMap(m cbor.Map, k string) map[string]string {
	v, _ := m.Get(k)
	mm, ok := cbor.Untag(v).(cbor.Map)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(mm))
	for _, p := range mm {
		ks, _ := cbor.Str(p.Key)
		vs, _ := cbor.Str(cbor.Untag(p.Value))
		out[ks] = vs
	}
	return out
}

// decodeListCBOR returns a CBOR list's metadata.resourceVersion and item
// count.
func decodeListCBOR(body []byte) (rv string, items int, err error) {
	v, n, err := cbor.Decode(body)
	if err != nil {
		return "", 0, fmt.Errorf("cbor list: %w", err)
	}
	if n != len(body) {
		return "", 0, fmt.Errorf("cbor list: %d bytes after the item", len(body)-n)
	}
	l, ok := cbor.Untag(v).(cbor.Map)
	if !ok {
		return "", 0, fmt.Errorf("cbor list: not a map")
	}
	if mv, ok := l.Get("metadata"); ok {
		if meta, ok := mv.(cbor.Map); ok {
			r, _ := meta.Get("resourceVersion")
			rv, _ = cbor.Str(r)
		}
	}
	iv, _ := l.Get("items")
	arr, _ := iv.([]cbor.Value)
	return rv, len(arr), nil
}

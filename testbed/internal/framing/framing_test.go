package framing

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"watchtrace/testbed/internal/k8sobj"
)

const stored = `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-1","namespace":"default","labels":{"app":"x"}},"data":{"counter":"7"}}`

func configMap(t *testing.T, rv int64) *Object {
	t.Helper()
	res, err := k8sobj.Lookup("configmaps")
	if err != nil {
		t.Fatal(err)
	}
	o, err := k8sobj.Parse([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	return &Object{Resource: res, Obj: o.WithRV(rv)}
}

func TestJSONFrame(t *testing.T) {
	obj := configMap(t, 42)
	got := string(Frame(JSON, "ADDED", obj.Encoded(JSON)))
	want := `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-1","namespace":"default","resourceVersion":"42","creationTimestamp":null,"labels":{"app":"x"}},"data":{"counter":"7"}}}` + "\n"
	if got != want {
		t.Fatalf("JSON frame\n got %s\nwant %s", got, want)
	}
	ev, err := NewReader(bytes.NewReader([]byte(got)), JSON).Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "ADDED" || ev.RV != "42" || ev.Name != "cm-1" || ev.Namespace != "default" || ev.Bytes != len(want) {
		t.Fatalf("decoded %+v", ev)
	}
}

func TestProtoFrame(t *testing.T) {
	obj := configMap(t, 42)
	frame := Frame(Protobuf, "MODIFIED", obj.Encoded(Protobuf))
	if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-4 {
		t.Fatalf("length header %d, body %d", n, len(frame)-4)
	}
	// WatchEvent: 0a 08 "MODIFIED" 12 <len> 0a <len> 6b 38 73 00 0a <len> 0a 02 "v1" 12 09 "ConfigMap" 12 ...
	body := frame[4:]
	if !bytes.HasPrefix(body, append([]byte{0x0a, 8}, "MODIFIED"...)) {
		t.Fatalf("WatchEvent type field: % x", body[:12])
	}
	i := bytes.Index(body, k8sobj.ProtoMagic)
	if i < 0 {
		t.Fatal("no k8s magic")
	}
	tm := append([]byte{0x0a, 0x0f, 0x0a, 0x02, 'v', '1', 0x12, 0x09}, "ConfigMap"...)
	if !bytes.HasPrefix(body[i+4:], tm) {
		t.Fatalf("runtime.Unknown typeMeta: %s", hex.EncodeToString(body[i+4:i+24]))
	}
	if !bytes.HasSuffix(body, []byte{0x1a, 0x00, 0x22, 0x00}) {
		t.Fatalf("Unknown must end with empty contentEncoding/contentType: % x", body[len(body)-4:])
	}
	// ObjectMeta: name, generateName "", namespace, selfLink "", uid "", resourceVersion.
	meta := append([]byte{0x0a, 4}, "cm-1"...)
	meta = append(meta, 0x12, 0)
	meta = append(meta, 0x1a, 7)
	meta = append(meta, "default"...)
	meta = append(meta, 0x22, 0, 0x2a, 0, 0x32, 2, '4', '2', 0x38, 0, 0x42, 0)
	if !bytes.Contains(body, meta) {
		t.Fatalf("ObjectMeta layout not found in % x", body)
	}

	var w bytes.Buffer
	cw := &countingWriter{w: &w}
	n, err := Write(cw, Protobuf, frame)
	if err != nil || n != len(frame) || cw.calls != 2 {
		t.Fatalf("Write: n=%d err=%v calls=%d", n, err, cw.calls)
	}
	ev, err := NewReader(&w, Protobuf).Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "MODIFIED" || ev.RV != "42" || ev.Name != "cm-1" || ev.Namespace != "default" || ev.Kind != "ConfigMap" || ev.Bytes != len(frame) {
		t.Fatalf("decoded %+v", ev)
	}
}

func TestStatusEvent(t *testing.T) {
	st := k8sobj.Expired("too old resource version: 5 (10)")
	obj := &Object{Status: &st}
	got := string(Frame(JSON, "ERROR", obj.Encoded(JSON)))
	want := `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (10)","reason":"Expired","code":410}}` + "\n"
	if got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	ev, err := DecodeProtoEvent(Frame(Protobuf, "ERROR", obj.Encoded(Protobuf))[4:])
	if err != nil {
		t.Fatal(err)
	}
	if ev.Code != 410 || ev.Reason != "Expired" || ev.Kind != "Status" {
		t.Fatalf("decoded %+v", ev)
	}
}

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]Format{
		"":                 JSON,
		"application/json": JSON,
		"application/vnd.kubernetes.protobuf, application/json": Protobuf,
		"application/vnd.kubernetes.protobuf;stream=watch":      Protobuf,
		"*/*":                  JSON,
		"application/cbor":     CBOR,
		"application/cbor-seq": CBOR,
		"application/cbor;q=1, application/json;q=0.9":          CBOR,
		"application/vnd.kubernetes.protobuf, application/cbor": CBOR,
	} {
		if got := Negotiate(accept); got != want {
			t.Errorf("Negotiate(%q) = %v", accept, got)
		}
	}
}

type countingWriter struct {
	w     *bytes.Buffer
	calls int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls++
	return c.w.Write(p)
}

package framing

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"watchtrace/testbed/internal/cbor"
	"watchtrace/testbed/internal/k8sobj"
)

func object(t *testing.T, resource, stored string, rv int64) *Object {
	t.Helper()
	res, err := k8sobj.Lookup(resource)
	if err != nil {
		t.Fatal(err)
	}
	o, err := k8sobj.Parse([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	return &Object{Resource: res, Obj: o.WithRV(rv)}
}

// cborPrefix spells an item out as heads and byte strings: a string is a
// byte string (major 2), anything else hex.
func cborPrefix(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		if s, ok := strings.CutPrefix(p, "\""); ok {
			b = cbor.AppendByteString(b, strings.TrimSuffix(s, "\""))
			continue
		}
		h, err := hex.DecodeString(p)
		if err != nil {
			panic(p)
		}
		b = append(b, h...)
	}
	return b
}

func TestACBORConfigMapEventHasTheApiserversBytePrefix(t *testing.T) {
	obj := object(t, "configmaps", `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-1","namespace":"default","uid":"u-1","creationTimestamp":"2024-01-02T03:04:05Z","labels":{"app":"x"}},"data":{"a":"b"}}`, 42)
	frame := Frame(CBOR, "ADDED", obj.Encoded(CBOR))
	want := cborPrefix("d9d9f7", "a2", `"object"`, "d9d9f7", "a4", `"data"`, "a1", `"a"`, `"b"`,
		`"kind"`, `"ConfigMap"`, `"apiVersion"`, `"v1"`, `"metadata"`, "a6",
		`"name"`, `"cm-1"`, `"namespace"`, `"default"`, `"uid"`, `"u-1"`, `"resourceVersion"`, `"42"`,
		`"creationTimestamp"`, `"2024-01-02T03:04:05Z"`, `"labels"`, "a1", `"app"`, `"x"`)
	if !bytes.HasPrefix(frame, want) {
		t.Fatalf("CBOR event\n got %x\nwant %x...", frame, want)
	}
	if tail := cborPrefix(`"type"`, `"ADDED"`); !bytes.HasSuffix(frame, tail) || len(frame) != len(want)+len(tail) {
		t.Fatalf("CBOR event tail: %x", frame[len(want):])
	}

	var w bytes.Buffer
	cw := &countingWriter{w: &w}
	if n, err := Write(cw, CBOR, frame); err != nil || n != len(frame) || cw.calls != 1 {
		t.Fatalf("Write: n=%d err=%v calls=%d, want one Write", n, err, cw.calls)
	}
	ev, err := NewReader(&w, CBOR).Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "ADDED" || ev.Kind != "ConfigMap" || ev.APIVersion != "v1" || ev.Name != "cm-1" || ev.Namespace != "default" ||
		ev.RV != "42" || ev.Labels["app"] != "x" || ev.Bytes != len(frame) {
		t.Fatalf("decoded %+v", ev)
	}
}

// textStrings counts major-type-3 items anywhere in v.
func textStrings(v cbor.Value) int {
	switch x := v.(type) {
	case string:
		return 1
	case cbor.Tag:
		return textStrings(x.Content)
	case []cbor.Value:
		n := 0
		for _, it := range x {
			n += textStrings(it)
		}
		return n
	case cbor.Map:
		n := 0
		for _, p := range x {
			n += textStrings(p.Key) + textStrings(p.Value)
		}
		return n
	}
	return 0
}

func TestASecretsDataIsNeverATextString(t *testing.T) {
	secret := "hunter2-TOPSECRET"
	stored := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"ns-0"},"data":{"password":"` +
		base64.StdEncoding.EncodeToString([]byte(secret)) + `","plain":"not base64!"},"type":"Opaque"}`
	frame := Frame(CBOR, "MODIFIED", object(t, "secrets", stored, 7).Encoded(CBOR))
	v, n, err := cbor.Decode(frame)
	if err != nil || n != len(frame) {
		t.Fatalf("decode: %v (%d of %d bytes)", err, n, len(frame))
	}
	if k := textStrings(v); k != 0 {
		t.Fatalf("%d text strings in a CBOR event; every key and string must be a byte string", k)
	}
	ev, _ := cbor.Untag(v).(cbor.Map).Get("object")
	data, _ := cbor.Untag(ev).(cbor.Map).Get("data")
	pw, _ := data.(cbor.Map).Get("password")
	if tag, ok := pw.(cbor.Tag); !ok || tag.Number != cbor.TagExpectedBase64 || string(tag.Content.([]byte)) != secret {
		t.Fatalf("password: %#v, want tag 22 around the decoded bytes", pw)
	}
	if plain, _ := data.(cbor.Map).Get("plain"); string(plain.(cbor.Tag).Content.([]byte)) != "not base64!" {
		t.Fatalf("undecodable value: %#v", plain)
	}
	// The decoded bytes appear once, as a tagged byte string.
	if bytes.Count(frame, []byte(secret)) != 1 || !bytes.Contains(frame, append([]byte{0xd6, 0x40 | byte(len(secret))}, secret...)) {
		t.Fatalf("secret bytes not a tagged byte string in %x", frame)
	}
	if typ, _ := cbor.Untag(ev).(cbor.Map).Get("type"); string(typ.([]byte)) != "Opaque" {
		t.Fatalf("type: %#v", typ)
	}
}

func TestSplitAndConcatenatedCBORItemsDecode(t *testing.T) {
	res, _ := k8sobj.Lookup("configmaps")
	st := k8sobj.Expired("too old resource version: 5 (10)")
	objs := []struct {
		typ string
		obj *Object
	}{
		{"ADDED", configMap(t, 41)},
		{"DELETED", configMap(t, 42)},
		{"BOOKMARK", &Object{Resource: res, Obj: k8sobj.InitialEventsEnd(res, 43)}},
		{"ERROR", &Object{Status: &st}},
	}
	var stream []byte
	var sizes []int
	for _, o := range objs {
		f := Frame(CBOR, o.typ, o.obj.Encoded(CBOR))
		stream = append(stream, f...)
		sizes = append(sizes, len(f))
	}
	for name, r := range map[string]io.Reader{
		"whole":         bytes.NewReader(stream),
		"one byte each": iotest.OneByteReader(bytes.NewReader(stream)),
		"half items":    iotest.HalfReader(bytes.NewReader(stream)),
	} {
		rd := NewReader(r, CBOR)
		var got []*Event
		for {
			ev, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, ev)
		}
		if len(got) != 4 {
			t.Fatalf("%s: %d events", name, len(got))
		}
		for i, ev := range got {
			if ev.Type != objs[i].typ || ev.Bytes != sizes[i] {
				t.Errorf("%s: event %d: %s %d bytes, want %s %d", name, i, ev.Type, ev.Bytes, objs[i].typ, sizes[i])
			}
		}
		if got[1].RV != "42" || got[1].Name != "cm-1" || !got[2].InitialEventsEnd || got[2].RV != "43" || got[2].Kind != "ConfigMap" ||
			got[0].InitialEventsEnd || got[3].Code != 410 || got[3].Reason != "Expired" || got[3].Kind != "Status" {
			t.Errorf("%s: decoded %+v %+v %+v %+v", name, got[0], got[1], got[2], got[3])
		}
	}
	if _, err := NewReader(bytes.NewReader(stream[:len(stream)-1]), CBOR).Next(); err != nil {
		t.Fatalf("first item of a truncated stream: %v", err)
	}
	rd := NewReader(bytes.NewReader(stream[:sizes[0]+3]), CBOR)
	rd.Next()
	if _, err := rd.Next(); err == nil || err == io.EOF {
		t.Fatalf("truncated second item: %v", err)
	}
}

func TestACBORListHasKindListAndUntypedItems(t *testing.T) {
	res, _ := k8sobj.Lookup("configmaps")
	items := []*k8sobj.Object{configMap(t, 5).Obj, configMap(t, 6).Obj}
	body := k8sobj.AppendListCBOR(nil, res, "9", items)
	want := cborPrefix("d9d9f7", "a4", `"kind"`, `"ConfigMapList"`, `"apiVersion"`, `"v1"`,
		`"metadata"`, "a1", `"resourceVersion"`, `"9"`, `"items"`, "82", "a2", `"data"`)
	if !bytes.HasPrefix(body, want) {
		t.Fatalf("CBOR list\n got %x\nwant %x...", body, want)
	}
	rv, n, err := DecodeList(CBOR, body)
	if err != nil || rv != "9" || n != 2 {
		t.Fatalf("DecodeList: %q %d %v", rv, n, err)
	}
	v, _, _ := cbor.Decode(body)
	if textStrings(v) != 0 {
		t.Fatal("text strings in a CBOR list")
	}
}

func TestBookmarksAnnotateTheEndOfInitialEventsInEveryFormat(t *testing.T) {
	res, _ := k8sobj.Lookup("configmaps")
	end := &Object{Resource: res, Obj: k8sobj.InitialEventsEnd(res, 77)}
	plain := &Object{Resource: res, Obj: k8sobj.Empty(res, 78)}
	for f := range NumFormats {
		for obj, want := range map[*Object]bool{end: true, plain: false} {
			frame := Frame(f, "BOOKMARK", obj.Encoded(f))
			ev, err := NewReader(bytes.NewReader(frame), f).Next()
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if ev.Type != "BOOKMARK" || ev.InitialEventsEnd != want || ev.Kind != "ConfigMap" || ev.Name != "" {
				t.Errorf("%s: decoded %+v, want initial-events-end %v", f, ev, want)
			}
		}
	}
	if got := string(Frame(JSON, "BOOKMARK", end.Encoded(JSON))); got != `{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"77","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}}}}`+"\n" {
		t.Errorf("JSON initial-events-end bookmark: %s", got)
	}
}

package loadgen

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/k8sobj"
)

func gzipMember(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

func TestAGzipBodyIsInflatedAcrossMembersAndCountedOnTheWire(t *testing.T) {
	raw := append(gzipMember(t, "first "), gzipMember(t, "second")...)
	resp := &http.Response{Header: http.Header{"Content-Encoding": {"gzip"}}, Body: io.NopCloser(bytes.NewReader(raw))}
	b := openBody(resp)
	if b.wireBytes() != 0 {
		t.Fatal("the body was read before the first Read")
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "first second" || b.wireBytes() != int64(len(raw)) || b.encoding != "gzip" {
		t.Fatalf("inflated %q (%v), %d wire bytes of %d", got, err, b.wireBytes(), len(raw))
	}

	resp = &http.Response{Header: http.Header{}, Body: io.NopCloser(bytes.NewReader([]byte("plain"))), Uncompressed: true}
	b = openBody(resp)
	if got, _ := io.ReadAll(b); string(got) != "plain" || b.encoding != "gzip" || b.wireBytes() != 0 {
		t.Fatalf("transport-inflated body: %q %q %d", got, b.encoding, b.wireBytes())
	}
}

// A sync-flushed gzip watch delivers each event to the reader before the
// next one is written: the client never waits for more compressed data.
func TestEachSyncFlushedGzipEventDecodesAtOnce(t *testing.T) {
	res, _ := k8sobj.Lookup("configmaps")
	pr, pw := io.Pipe()
	frames := make(chan []byte)
	go func() { // the server: one event, then a sync flush
		zw := gzip.NewWriter(pw)
		for f := range frames {
			zw.Write(f)
			zw.Flush()
		}
		zw.Close()
		pw.Close()
	}()
	got := make(chan *framing.Event)
	go func() { // the client
		rd := framing.NewReader(openBody(&http.Response{Header: http.Header{"Content-Encoding": {"gzip"}}, Body: pr}), framing.CBOR)
		for {
			ev, err := rd.Next()
			if err != nil {
				close(got)
				return
			}
			got <- ev
		}
	}()
	for rv := int64(1); rv <= 3; rv++ {
		obj := &framing.Object{Resource: res, Obj: k8sobj.Empty(res, rv)}
		frames <- framing.Frame(framing.CBOR, "BOOKMARK", obj.Encoded(framing.CBOR))
		select {
		case ev := <-got:
			if ev == nil || ev.RV != strconv.FormatInt(rv, 10) {
				t.Fatalf("event %d: %+v", rv, ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not decodable after its sync flush", rv)
		}
	}
	close(frames)
	if ev, ok := <-got; ok {
		t.Fatalf("after the end: %+v", ev)
	}
}

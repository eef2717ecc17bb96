package apiserver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAcceptEncodingListingGzipEnablesCompression(t *testing.T) {
	for v, want := range map[string]bool{"gzip": true, "deflate, gzip;q=1.0": true, "GZIP": true, "": false, "identity": false, "br, gzipx": false} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if v != "" {
			r.Header.Set("Accept-Encoding", v)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: %v", v, got)
		}
	}
}

// members counts the gzip members of a body.
func members(t *testing.T, body []byte) int {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		zr.Multistream(false)
		if _, err := io.Copy(io.Discard, zr); err != nil {
			t.Fatal(err)
		}
		n++
		if err := zr.Reset(br); err == io.EOF {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAGzipWatchFlushMakesEveryEventDecodableAtOnce(t *testing.T) {
	events := []string{`{"type":"ADDED"}` + "\n", strings.Repeat(`{"type":"MODIFIED"}`, 50) + "\n", `{"type":"BOOKMARK"}` + "\n"}
	for mode, wantMembers := range map[string]int{WatchListGzipStream: 1, WatchListGzipPerFlush: 3} {
		var wire bytes.Buffer
		g, err := newGzipStream(&wire, gzip.DefaultCompression, mode)
		if err != nil {
			t.Fatal(err)
		}
		var sent string
		for _, ev := range events {
			before := g.wire()
			io.WriteString(g, ev)
			if err := g.flush(); err != nil {
				t.Fatal(err)
			}
			sent += ev
			if g.wire() == before {
				t.Fatalf("%s: flushing an event put nothing on the wire", mode)
			}
			// What is on the wire so far inflates to every event sent.
			zr, err := gzip.NewReader(bytes.NewReader(wire.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(zr) // no trailer yet in stream mode: ErrUnexpectedEOF
			if string(got) != sent {
				t.Fatalf("%s: after %d bytes on the wire, inflated %q, want %q", mode, wire.Len(), got, sent)
			}
		}
		if err := g.close(); err != nil {
			t.Fatal(err)
		}
		if g.wire() != int64(wire.Len()) {
			t.Fatalf("%s: counted %d wire bytes, wrote %d", mode, g.wire(), wire.Len())
		}
		if n := members(t, wire.Bytes()); n != wantMembers {
			t.Errorf("%s: %d gzip members, want %d", mode, n, wantMembers)
		}
		zr, _ := gzip.NewReader(bytes.NewReader(wire.Bytes()))
		if all, err := io.ReadAll(zr); err != nil || string(all) != sent {
			t.Errorf("%s: whole body: %v", mode, err)
		}
	}
}

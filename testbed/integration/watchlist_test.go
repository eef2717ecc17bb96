package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"watchtrace/testbed/internal/certs"
	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
)

// TestWatchList checks a watch-list request (sendInitialEvents=true,
// resourceVersionMatch=NotOlderThan, allowWatchBookmarks=true) over HTTPS +
// h2 in CBOR with Accept-Encoding: gzip: the current objects as ADDED, then
// the initial-events-end bookmark at the list RV, in one gzip member whose
// bytes are exactly what the ground truth counts; the same in JSON without
// gzip; the 422 for a missing resourceVersionMatch; and a gzip CBOR LIST.
func TestWatchList(t *testing.T) {
	b := startBed(t, false, "-gzip-min-bytes", "1", "-bookmark-interval", "0")
	c := etcdClient(t, b)
	var last int64
	for i := range 5 {
		last = put(t, c, fmt.Sprintf("/registry/configmaps/wl/cm-%d", i), configMapJSON("wl", fmt.Sprintf("cm-%d", i), i))
	}
	tc, err := certs.ClientTLS(b.api.State.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP2(true)
	// DisableCompression: without an explicit Accept-Encoding nothing asks
	// for gzip; with one, Go leaves the body compressed.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Protocols: &p, DisableCompression: true}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	base := "https://" + b.api.State.HTTPSAddr + "/api/v1/namespaces/wl/configmaps"
	// The cache must hold every put before the watch-list snapshots it.
	waitRV := "&resourceVersion=" + strconv.FormatInt(last, 10)
	const watchList = "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"

	get := func(query, accept string, gz bool) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+query, nil)
		req.Header.Set("Accept", accept)
		if gz {
			req.Header.Set("Accept-Encoding", "gzip")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return resp, raw
	}
	decode := func(f framing.Format, body []byte) []*framing.Event {
		t.Helper()
		var evs []*framing.Event
		rd := framing.NewReader(bytes.NewReader(body), f)
		for {
			ev, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return evs
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			evs = append(evs, ev)
		}
	}
	want := func(evs []*framing.Event) {
		t.Helper()
		var got []string
		for _, ev := range evs {
			got = append(got, fmt.Sprintf("%s %s %v", ev.Type, ev.Name, ev.InitialEventsEnd))
		}
		exp := []string{"ADDED cm-0 false", "ADDED cm-1 false", "ADDED cm-2 false", "ADDED cm-3 false", "ADDED cm-4 false", "BOOKMARK  true"}
		if fmt.Sprint(got) != fmt.Sprint(exp) || evs[5].RV != strconv.FormatInt(last, 10) {
			t.Fatalf("watch-list events %q, want %q with the bookmark at RV %d", got, exp, last)
		}
	}

	resp, raw := get(watchList+waitRV, "application/cbor", true)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != framing.MediaCBORSeq || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("CBOR watch-list: %s %q %q", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"))
	}
	br := bytes.NewReader(raw)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false) // one member: nothing may follow it
	inflated, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if br.Len() != 0 {
		t.Errorf("%d bytes after the first gzip member", br.Len())
	}
	cborWireBytes := int64(len(raw))
	want(decode(framing.CBOR, inflated))
	if !bytes.HasPrefix(inflated, []byte{0xd9, 0xd9, 0xf7, 0xa2, 0x46}) {
		t.Errorf("CBOR item starts % x", inflated[:5])
	}

	resp, raw = get(watchList, "application/json", false)
	if resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("JSON watch-list without gzip: %q %q", resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"))
	}
	want(decode(framing.JSON, raw))

	resp, raw = get("?watch=true&sendInitialEvents=true&allowWatchBookmarks=true", "application/json", false)
	var st struct {
		Reason, Message string
		Code            int
	}
	if err := json.Unmarshal(raw, &st); err != nil || resp.StatusCode != http.StatusUnprocessableEntity || st.Code != 422 || st.Reason != "Invalid" ||
		st.Message != `ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan` {
		t.Errorf("sendInitialEvents without resourceVersionMatch: %s %+v (%v)", resp.Status, st, err)
	}

	resp, raw = get("?resourceVersion=0", "application/cbor", true)
	zr, err = gzip.NewReader(bytes.NewReader(raw))
	if err != nil || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != framing.MediaCBOR {
		t.Fatalf("gzip CBOR LIST: %v %q %q", err, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"))
	}
	list, _ := io.ReadAll(zr)
	if rv, items, err := framing.DecodeList(framing.CBOR, list); err != nil || items != 5 || rv != strconv.FormatInt(last, 10) {
		t.Errorf("gzip CBOR LIST: rv %s, %d items, %v", rv, items, err)
	}

	gt := b.stopAPI()
	var open, closed *groundtruth.Record
	var lists []groundtruth.Record
	for i := range gt {
		r := &gt[i]
		switch {
		case r.Kind == groundtruth.KindWatchOpen && r.ContentType == framing.MediaCBORSeq:
			open = r
		case r.Kind == groundtruth.KindWatchClose && open != nil && r.Stream == open.Stream:
			closed = r
		case r.Kind == groundtruth.KindList:
			lists = append(lists, *r)
		case r.Kind == groundtruth.KindRequestError && r.Status != 422:
			t.Errorf("request error %d %s", r.Status, r.Error)
		}
	}
	if open == nil || closed == nil || open.ContentEncoding != "gzip" || !open.SendInitialEvents || open.RVMatch != "NotOlderThan" ||
		open.InitialEvents != 5 || open.StartRV != last || open.TRequest == 0 || open.TRequest > open.T {
		t.Fatalf("CBOR watch-list open %+v close %+v", open, closed)
	}
	writes := streamWrites(gt, open.Stream)
	var wire int64
	for i, w := range writes {
		if w.WireBytes == nil {
			t.Fatalf("write %d has no wire_bytes", i)
		}
		wire += *w.WireBytes
		if end := i == len(writes)-1; w.Initial == end || w.InitialEventsEnd != end {
			t.Errorf("write %d: %s initial %v initial_events_end %v", i, w.EventType, w.Initial, w.InitialEventsEnd)
		}
	}
	end := writes[len(writes)-1]
	if len(writes) != 6 || end.EventType != "BOOKMARK" || !end.Flushed || end.InitialSyncNs != end.TAfter-open.TRequest || end.InitialSyncNs <= 0 {
		t.Errorf("bookmark write %+v", end)
	}
	// Every byte the client received is accounted for: the writes' wire
	// bytes, then the trailer at close.
	if closed.WireBytes == nil || *closed.WireBytes != cborWireBytes || *closed.WireBytes <= wire {
		t.Errorf("wire bytes: writes %d, close %v, client received %d", wire, closed.WireBytes, cborWireBytes)
	}
	if len(lists) != 1 || lists[0].ContentEncoding != "gzip" || lists[0].Bytes != int64(len(raw)) ||
		lists[0].DecodedBytes != int64(len(list)) || lists[0].Bytes >= lists[0].DecodedBytes || lists[0].TRequest == 0 {
		t.Errorf("list records %+v (client: %d wire, %d decoded bytes)", lists, len(raw), len(list))
	}
}

package integration

import (
	"context"
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

// TestWatchParameters checks the watch query parameters over HTTPS + h2, in
// both encodings: resourceVersion absent, "0", exact and too old (HTTP 200
// and a single ERROR 410 event), labelSelector, allowWatchBookmarks and
// timeoutSeconds (END_STREAM), each against what the ground truth logged.
func TestWatchParameters(t *testing.T) {
	// A 5-event history makes the first revisions "too old" after 8 puts.
	b := startBed(t, false, "-history", "5", "-bookmark-interval", "200ms")
	c := etcdClient(t, b)
	var revs []int64
	for i := range 8 {
		app := []string{"a", "b"}[i%2]
		value := fmt.Appendf(nil, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"p-%d","namespace":"params","labels":{"app":%q}},"data":{"i":"%d"}}`, i, app, i)
		revs = append(revs, put(t, c, fmt.Sprintf("/registry/configmaps/params/p-%d", i), value))
	}
	last := revs[len(revs)-1]

	tc, err := certs.ClientTLS(b.api.State.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP2(true)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Protocols: &p}, Timeout: 20 * time.Second}
	defer client.CloseIdleConnections()
	base := "https://" + b.api.State.HTTPSAddr + "/api/v1/namespaces/params/configmaps?watch=true&timeoutSeconds=1"

	// watch returns the decoded events of one watch that ends by itself.
	watch := func(f framing.Format, query string) []*framing.Event {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+query, nil)
		req.Header.Set("Accept", map[framing.Format]string{framing.JSON: "application/json",
			framing.Protobuf: "application/vnd.kubernetes.protobuf, application/json"}[f])
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || resp.Header.Get("Content-Type") != f.WatchContentType() {
			t.Fatalf("%s: %s %s %q", query, resp.Status, resp.Proto, resp.Header.Get("Content-Type"))
		}
		var evs []*framing.Event
		rd := framing.NewReader(resp.Body, f)
		for {
			ev, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return evs
			}
			if err != nil {
				t.Fatalf("%s %s: %v", f, query, err)
			}
			evs = append(evs, ev)
		}
	}
	summary := func(evs []*framing.Event) []string {
		var out []string
		for _, ev := range evs {
			if ev.Type == "ERROR" {
				out = append(out, fmt.Sprintf("ERROR %d %s", ev.Code, ev.Reason))
				continue
			}
			out = append(out, ev.Type+" "+ev.Name+" "+ev.RV)
		}
		return out
	}
	added := func(objs ...int) []string {
		var out []string
		for _, i := range objs {
			out = append(out, fmt.Sprintf("ADDED p-%d %d", i, revs[i]))
		}
		return out
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}
	// Wait until the cache has every put: an exact-RV watch at the last
	// revision waits for the cache (up to 3 s), then sends nothing.
	watch(framing.JSON, "&resourceVersion="+strconv.FormatInt(last, 10))

	for _, f := range []framing.Format{framing.JSON, framing.Protobuf} {
		for _, tc := range []struct {
			name, query string
			want        []string
		}{
			{"no resourceVersion: current state as ADDED", "", added(all...)},
			{"resourceVersion=0: current state as ADDED", "&resourceVersion=0", added(all...)},
			// History holds the last 5 events, so revs[2] is the oldest
			// servable RV; the watch replays what followed revs[4].
			{"exact resourceVersion: replay after it", "&resourceVersion=" + strconv.FormatInt(revs[4], 10), added(5, 6, 7)},
			{"too old resourceVersion: one ERROR 410", "&resourceVersion=" + strconv.FormatInt(revs[1], 10), []string{"ERROR 410 Expired"}},
			{"labelSelector app=a", "&labelSelector=app%3Da", added(0, 2, 4, 6)},
		} {
			got := summary(watch(f, tc.query))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("%s, %s:\n got %q\nwant %q", f, tc.name, got, tc.want)
			}
		}
		// Bookmarks carry the current RV and nothing else happens.
		evs := watch(f, "&allowWatchBookmarks=true&resourceVersion="+strconv.FormatInt(last, 10))
		if len(evs) < 2 {
			t.Errorf("%s: %d bookmarks in 1 s at a 200 ms interval", f, len(evs))
		}
		for _, ev := range evs {
			if ev.Type != "BOOKMARK" || ev.RV != strconv.FormatInt(last, 10) || ev.Kind != "ConfigMap" || ev.Name != "" {
				t.Errorf("%s: bookmark watch got %s %s/%s rv %s", f, ev.Type, ev.Kind, ev.Name, ev.RV)
			}
		}
	}

	// The ground truth agrees on how each stream ended.
	gt := b.stopAPI()
	reasons := map[string]int{}
	for _, r := range gt {
		if r.Kind == groundtruth.KindWatchClose {
			reasons[r.Reason]++
		}
	}
	t.Logf("watch_close reasons: %v", reasons)
	if reasons[groundtruth.ReasonErrorEvent] != 2 || reasons[groundtruth.ReasonTimeout] != 11 || len(reasons) != 2 {
		t.Errorf("want 2 error_event and 11 timeout closes, got %v", reasons)
	}
}

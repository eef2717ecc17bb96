package watchcache

import (
	"context"
	"fmt"
	"testing"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/k8sobj"
)

func newTestCache(t *testing.T, history, chanSize int) *Cache {
	t.Helper()
	res, err := k8sobj.Lookup("configmaps")
	if err != nil {
		t.Fatal(err)
	}
	c := New(Config{Resource: res, HistorySize: history, ChanSize: chanSize})
	c.replace(nil, 10)
	return c
}

func value(ns, name string, labels string) []byte {
	return fmt.Appendf(nil, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":%q,"namespace":%q,"labels":{%s}}}`, name, ns, labels)
}

// feed applies a put (or delete) at rev and dispatches it.
func feed(t *testing.T, c *Cache, rev int64, del bool, ns, name, labels string) {
	t.Helper()
	kv := etcdgrpc.KeyValue{Key: []byte("/registry/configmaps/" + ns + "/" + name), ModRevision: rev, Value: value(ns, name, labels)}
	prev := c.previous(string(kv.Key))
	var ev *Event
	var err error
	if del {
		ev, err = c.deleteEvent(&etcdgrpc.Event{Type: etcdgrpc.EventDelete, KV: etcdgrpc.KeyValue{Key: kv.Key, ModRevision: rev}}, prev)
	} else {
		ev, err = c.eventFromKV(&kv, prev)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.dispatch(ev, c.apply(ev))
}

func drain(w *Watcher) []string {
	var out []string
	for _, ev := range w.Initial {
		out = append(out, fmt.Sprintf("%s %s/%s %d", ev.Type, ev.Namespace, ev.Name, ev.RV))
	}
	for {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return append(out, "closed")
			}
			out = append(out, fmt.Sprintf("%s %s/%s %d", ev.Type, ev.Namespace, ev.Name, ev.RV))
		default:
			return out
		}
	}
}

func equal(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestStateThenChangesAndNamespaceFilter(t *testing.T) {
	c := newTestCache(t, 100, 100)
	feed(t, c, 11, false, "a", "x", "")
	feed(t, c, 12, false, "b", "y", "")
	w, st, err := c.Watch(context.Background(), WatchOptions{ID: 1, Namespace: "a"})
	if err != nil || st != nil {
		t.Fatal(err, st)
	}
	if w.StartRV != 12 {
		t.Fatalf("start RV %d", w.StartRV)
	}
	feed(t, c, 13, false, "a", "x", "")
	feed(t, c, 14, false, "b", "y", "")
	feed(t, c, 15, true, "a", "x", "")
	equal(t, drain(w), "ADDED a/x 11", "MODIFIED a/x 13", "DELETED a/x 15")
}

func TestExactRVReplaysHistoryOr410(t *testing.T) {
	c := newTestCache(t, 3, 100)
	for rev := int64(11); rev <= 15; rev++ {
		feed(t, c, rev, false, "a", fmt.Sprintf("o%d", rev), "")
	}
	// History holds 13..15, so RV 12 is the oldest servable.
	w, st, err := c.Watch(context.Background(), WatchOptions{ID: 1, HasRV: true, RV: 12})
	if err != nil || st != nil {
		t.Fatal(err, st)
	}
	equal(t, drain(w), "ADDED a/o13 13", "ADDED a/o14 14", "ADDED a/o15 15")
	_, st, err = c.Watch(context.Background(), WatchOptions{ID: 2, HasRV: true, RV: 11})
	if err != nil || st == nil {
		t.Fatalf("want a 410, got %v %v", st, err)
	}
	if st.Code != 410 || st.Reason != "Expired" || st.Message != "too old resource version: 11 (12)" {
		t.Fatalf("status %+v", *st)
	}
}

func TestUnresponsiveWatcherIsTerminated(t *testing.T) {
	c := newTestCache(t, 100, 2)
	slow, _, _ := c.Watch(context.Background(), WatchOptions{ID: 1})
	fast, _, _ := c.Watch(context.Background(), WatchOptions{ID: 2})
	var got []string
	for rev := int64(11); rev <= 14; rev++ {
		feed(t, c, rev, false, "a", "x", "")
		got = append(got, drain(fast)...)
	}
	equal(t, got, "ADDED a/x 11", "MODIFIED a/x 12", "MODIFIED a/x 13", "MODIFIED a/x 14")
	// The slow watcher got what fit in its channel, then was closed.
	equal(t, drain(slow), "ADDED a/x 11", "MODIFIED a/x 12", "closed")
	if slow.Reason() == "" {
		t.Fatal("no termination reason")
	}
}

func TestLabelSelectorTransitions(t *testing.T) {
	c := newTestCache(t, 100, 100)
	sel, err := ParseSelector("app=web,tier!=db")
	if err != nil {
		t.Fatal(err)
	}
	w, _, _ := c.Watch(context.Background(), WatchOptions{ID: 1, Selector: sel})
	feed(t, c, 11, false, "a", "x", `"app":"web"`)
	feed(t, c, 12, false, "a", "x", `"app":"web","tier":"db"`) // leaves the selector
	feed(t, c, 13, false, "a", "x", `"app":"web"`)             // enters again
	feed(t, c, 14, false, "a", "y", `"app":"other"`)
	equal(t, drain(w), "ADDED a/x 11", "DELETED a/x 12", "ADDED a/x 13")
}

func TestSelectorParsing(t *testing.T) {
	for _, bad := range []string{"a in (b)", "=x", "a notin (b)"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) accepted", bad)
		}
	}
	sel, err := ParseSelector("a==1, b, !c")
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(map[string]string{"a": "1", "b": ""}) || sel.Matches(map[string]string{"a": "1", "b": "", "c": "x"}) {
		t.Fatal("selector semantics")
	}
}

func TestAWatchListSendsTheStateThenTheInitialEventsEndBookmark(t *testing.T) {
	c := newTestCache(t, 2, 100)
	for rev := int64(11); rev <= 14; rev++ {
		feed(t, c, rev, false, "a", fmt.Sprintf("o%d", rev), "")
	}
	yes := true
	// RV 11 is older than the 2-event history, yet NotOlderThan is
	// satisfied by the current state: no 410.
	w, st, err := c.Watch(context.Background(), WatchOptions{ID: 1, HasRV: true, RV: 11, Bookmarks: true,
		SendInitialEvents: &yes, InitialEventsEnd: true})
	if err != nil || st != nil {
		t.Fatal(err, st)
	}
	equal(t, drain(w), "ADDED a/o11 11", "ADDED a/o12 12", "ADDED a/o13 13", "ADDED a/o14 14")
	end := w.InitialEventsEnd
	if end == nil || end.Type != Bookmark || end.RV != 14 || !end.InitialEventsEnd || w.StartRV != 14 ||
		end.Obj.Obj.Meta.Annotations["k8s.io/initial-events-end"] != "true" {
		t.Fatalf("initial-events-end bookmark %+v, start RV %d", end, w.StartRV)
	}
	for _, ev := range w.Initial {
		if !ev.Initial {
			t.Fatalf("%s %s not marked initial", ev.Type, ev.Name)
		}
	}
	feed(t, c, 15, false, "a", "o15", "")
	equal(t, drain(w), "ADDED a/o11 11", "ADDED a/o12 12", "ADDED a/o13 13", "ADDED a/o14 14", "ADDED a/o15 15")

	// Without allowWatchBookmarks it is not a watch-list: the state only.
	w, _, _ = c.Watch(context.Background(), WatchOptions{ID: 2, SendInitialEvents: &yes})
	if len(w.Initial) != 5 || w.InitialEventsEnd != nil {
		t.Fatalf("sendInitialEvents without bookmarks: %d initial, end %v", len(w.Initial), w.InitialEventsEnd)
	}
}

func TestSendInitialEventsFalseStartsWithoutTheState(t *testing.T) {
	c := newTestCache(t, 100, 100)
	feed(t, c, 11, false, "a", "x", "")
	feed(t, c, 12, false, "a", "y", "")
	no := false
	w, _, _ := c.Watch(context.Background(), WatchOptions{ID: 1, SendInitialEvents: &no})
	if len(w.Initial) != 0 || w.StartRV != 12 || w.InitialEventsEnd != nil {
		t.Fatalf("from now: %d initial, start %d", len(w.Initial), w.StartRV)
	}
	w, _, _ = c.Watch(context.Background(), WatchOptions{ID: 2, HasRV: true, RV: 11, SendInitialEvents: &no})
	equal(t, drain(w), "ADDED a/y 12")
}

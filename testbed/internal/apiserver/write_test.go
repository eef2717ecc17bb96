package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/harness"
	"watchtrace/testbed/internal/k8sobj"
	"watchtrace/testbed/internal/watchcache"
)

func TestMergePatch(t *testing.T) {
	// RFC 7386 appendix A, a selection.
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		var target, patch any
		json.Unmarshal([]byte(tc.target), &target)
		json.Unmarshal([]byte(tc.patch), &patch)
		got, _ := json.Marshal(mergePatch(target, patch))
		if string(got) != tc.want {
			t.Errorf("merge %s with %s = %s, want %s", tc.target, tc.patch, got, tc.want)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{"a": true, "wl-0001": true, "a.b-c": true, "A": false, "-a": false, "a_b": false, "": false, strings.Repeat("a", 254): false} {
		if validName(name) != ok {
			t.Errorf("validName(%q) = %v", name, !ok)
		}
	}
}

// TestWritesAgainstEtcd drives the write handler against a real etcd,
// with a watch cache that follows etcd 300 ms late (its Watch reads are
// delayed), so an update right after another finds a stale cached state,
// fails its compare and is retried from the state the failed Txn read.
func TestWritesAgainstEtcd(t *testing.T) {
	e, err := harness.StartEtcd(harness.EtcdOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(10 * time.Second)
	kv, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	const lag = 300 * time.Millisecond
	wc, err := etcdgrpc.NewWithOptions(e.Endpoint, nil, etcdgrpc.Options{ReadDelay: lag})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	res, _ := k8sobj.Lookup("configmaps")
	cache := watchcache.New(watchcache.Config{Resource: res})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cache.Run(ctx, watchcache.SourceConfig{Client: kv, WatchClient: wc})
	}()
	defer func() { cancel(); <-done }()
	for cache.RV() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	logPath := filepath.Join(t.TempDir(), "gt.jsonl")
	gt, err := groundtruth.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(Config{Caches: []*watchcache.Cache{cache}, Log: gt, Etcd: kv, Shutdown: make(chan struct{})}))
	defer ts.Close()

	base := ts.URL + "/api/v1/namespaces/ns/configmaps"
	type reply struct {
		code int
		rv   int64
		body map[string]any
	}
	do := func(method, url, ctype, body string) reply {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("User-Agent", "write-test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		r := reply{code: resp.StatusCode}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
		if md, ok := r.body["metadata"].(map[string]any); ok {
			rv, _ := md["resourceVersion"].(string)
			r.rv, _ = strconv.ParseInt(rv, 10, 64)
		}
		return r
	}
	const js = "application/json"
	obj := func(data string) string {
		return `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a","labels":{"app":"t"}},"data":{"k":"` + data + `"}}`
	}

	created := do("POST", base, js, obj("1"))
	if created.code != 201 || created.rv == 0 || created.body["kind"] != "ConfigMap" || created.body["metadata"].(map[string]any)["namespace"] != "ns" {
		t.Fatalf("create: %+v", created)
	}
	if r := do("POST", base, js, obj("1")); r.code != 409 || r.body["reason"] != "AlreadyExists" {
		t.Errorf("second create: %+v", r)
	}
	for {
		if _, rv, ok := cache.Get("/registry/configmaps/ns/a"); ok && rv == created.rv {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := do("PUT", base+"/a", js, obj("2"))
	second := do("PUT", base+"/a", js, obj("3")) // the cache still holds the create
	if first.code != 200 || second.code != 200 || !(created.rv < first.rv && first.rv < second.rv) {
		t.Fatalf("updates: %+v %+v", first, second)
	}
	stale := do("PUT", base+"/a", js, strings.Replace(obj("4"), `"name":"a"`, `"name":"a","resourceVersion":"`+strconv.FormatInt(first.rv, 10)+`"`, 1))
	if stale.code != 409 || stale.body["reason"] != "Conflict" {
		t.Errorf("stale update: %+v", stale)
	}
	patched := do("PATCH", base+"/a", "application/merge-patch+json", `{"data":{"k":null,"p":"5"}}`)
	if patched.code != 200 || patched.rv <= second.rv || patched.body["data"].(map[string]any)["p"] != "5" {
		t.Errorf("patch: %+v", patched)
	}
	deleted := do("DELETE", base+"/a", "", "")
	if deleted.code != 200 || deleted.rv <= patched.rv || deleted.body["data"].(map[string]any)["p"] != "5" {
		t.Errorf("delete: %+v", deleted)
	}
	if r := do("DELETE", base+"/a", "", ""); r.code != 404 || r.body["reason"] != "NotFound" {
		t.Errorf("second delete: %+v", r)
	}
	if r := do("PUT", base+"/b", js, `{"metadata":{"name":"b"}}`); r.code != 404 {
		t.Errorf("update of a missing object: %+v", r)
	}
	if r := do("POST", ts.URL+"/api/v1/configmaps", js, obj("1")); r.code != 405 {
		t.Errorf("create without a namespace: %+v", r)
	}
	if r := do("POST", base, "application/yaml", obj("1")); r.code != 415 {
		t.Errorf("yaml body: %+v", r)
	}
	if r := do("POST", ts.URL+"/api/v1/namespaces/Bad_NS/configmaps", js, obj("1")); r.code != 404 || r.body["message"] != `namespaces "Bad_NS" not found` {
		t.Errorf("invalid namespace: %+v", r)
	}
	ts.Close()
	gt.Close()

	recs, err := groundtruth.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		verb             string
		status           int
		rev              int64
		calls, conflicts int
	}
	wants := []want{
		{"create", 201, created.rv, 1, 0}, {"create", 409, 0, 1, 1},
		{"update", 200, first.rv, 1, 0}, {"update", 200, second.rv, 2, 1}, {"update", 409, 0, 1, 1},
		{"patch", 200, patched.rv, -1, -1}, {"delete", 200, deleted.rv, -1, -1}, {"delete", 404, 0, -1, -1},
		{"update", 404, 0, 0, 0}, {"create", 405, 0, 0, 0}, {"create", 415, 0, 0, 0}, {"create", 404, 0, 0, 0},
	}
	var got []groundtruth.Record
	for _, r := range recs {
		if r.Kind == groundtruth.KindAPIWrite {
			got = append(got, r)
		}
	}
	if len(got) != len(wants) {
		t.Fatalf("%d api_write records, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		r := got[i]
		t.Logf("%s %s -> %d rev %d, etcd calls %d (conflicts %d, reads %d)", r.Method, r.Path, r.Status, r.Revision, r.EtcdCalls, r.EtcdConflicts, r.EtcdReads)
		if r.Verb != w.verb || r.Status != w.status || r.Revision != w.rev || r.UserAgent != "write-test" || r.Resource != "configmaps" ||
			(w.calls >= 0 && (r.EtcdCalls != w.calls || r.EtcdConflicts != w.conflicts)) {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
		if w.rev > 0 && !(r.TRequest <= r.TEtcdSent && r.TEtcdSent < r.TCommitted && r.TCommitted <= r.TResponded) {
			t.Errorf("record %d: times %d %d %d %d", i, r.TRequest, r.TEtcdSent, r.TCommitted, r.TResponded)
		}
		if w.rev == 0 && (r.TCommitted != 0 || r.Error == "") {
			t.Errorf("record %d: a failure with t_committed %d, error %q", i, r.TCommitted, r.Error)
		}
	}
}

package etcdgrpc_test

import (
	"context"
	"testing"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/harness"
)

// TestAgainstEtcd exercises every RPC against the real etcd, in cleartext
// and over TLS with client certificates. A missing etcd fails the test.
func TestAgainstEtcd(t *testing.T) {
	for _, tls := range []bool{false, true} {
		name := map[bool]string{false: "h2c", true: "tls"}[tls]
		t.Run(name, func(t *testing.T) {
			e, err := harness.StartEtcd(harness.EtcdOptions{Dir: t.TempDir(), TLS: tls})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Stop(10 * time.Second)
			c, err := e.Client()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			prefix := []byte("/registry/configmaps/")
			h1, err := c.Put(ctx, []byte("/registry/configmaps/ns/a"), []byte("v1"))
			if err != nil {
				t.Fatal(err)
			}
			rr, err := c.Range(ctx, prefix, etcdgrpc.PrefixEnd(prefix))
			if err != nil {
				t.Fatal(err)
			}
			if rr.Count != 1 || len(rr.KVs) != 1 || string(rr.KVs[0].Value) != "v1" || rr.KVs[0].ModRevision != h1.Revision || rr.Header.Revision != h1.Revision {
				t.Fatalf("range: %+v", rr)
			}
			ws, err := c.Watch(ctx, etcdgrpc.WatchCreate{Key: prefix, RangeEnd: etcdgrpc.PrefixEnd(prefix), StartRevision: rr.Header.Revision + 1, PrevKV: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			r, err := ws.Recv()
			if err != nil || !r.Created {
				t.Fatalf("first watch response: %+v %v", r, err)
			}
			h2, err := c.Put(ctx, []byte("/registry/configmaps/ns/a"), []byte("v2"))
			if err != nil {
				t.Fatal(err)
			}
			h3, deleted, err := c.Delete(ctx, []byte("/registry/configmaps/ns/a"))
			if err != nil || deleted != 1 {
				t.Fatalf("delete: %d %v", deleted, err)
			}
			if _, err := c.Put(ctx, []byte("/registry/secrets/ns/a"), []byte("outside")); err != nil {
				t.Fatal(err)
			}
			var evs []etcdgrpc.Event
			for len(evs) < 2 {
				r, err := ws.Recv()
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, r.Events...)
			}
			put, del := evs[0], evs[1]
			if put.Type != etcdgrpc.EventPut || put.KV.ModRevision != h2.Revision || string(put.KV.Value) != "v2" || put.PrevKV == nil || string(put.PrevKV.Value) != "v1" {
				t.Errorf("put event %+v", put)
			}
			if del.Type != etcdgrpc.EventDelete || del.KV.ModRevision != h3.Revision || del.PrevKV == nil || string(del.PrevKV.Value) != "v2" {
				t.Errorf("delete event %+v", del)
			}
			if len(evs) != 2 {
				t.Errorf("%d events, want 2 (the secrets key is outside the range)", len(evs))
			}
		})
	}
}

func TestPrefixEnd(t *testing.T) {
	for in, want := range map[string]string{"/registry/configmaps/": "/registry/configmaps0", "a\xff": "b", "\xff": "\x00"} {
		if got := string(etcdgrpc.PrefixEnd([]byte(in))); got != want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

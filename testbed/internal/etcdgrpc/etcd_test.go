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

// TestTxnAgainstEtcd runs kube-apiserver's write transactions against the
// real etcd (cleartext and TLS): create, a create that finds the key, an
// update, a stale update, a delete; and a Watch over a client whose reads
// are delayed receives the events that late.
func TestTxnAgainstEtcd(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "h2c", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			e, err := harness.StartEtcd(harness.EtcdOptions{Dir: t.TempDir(), TLS: useTLS})
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
			key := []byte("/registry/configmaps/ns/txn")
			txn := func(rev int64, success etcdgrpc.Op) *etcdgrpc.TxnResponse {
				t.Helper()
				r, err := c.Txn(ctx, etcdgrpc.TxnRequest{
					Compare: []etcdgrpc.Compare{etcdgrpc.ModRevisionEquals(key, rev)},
					Success: []etcdgrpc.Op{success},
					Failure: []etcdgrpc.Op{etcdgrpc.OpGet(key)},
				})
				if err != nil {
					t.Fatal(err)
				}
				if r.SentAt.IsZero() || r.ReadAt.Before(r.SentAt) {
					t.Errorf("txn times: sent %v read %v", r.SentAt, r.ReadAt)
				}
				return r
			}
			created := txn(0, etcdgrpc.OpPutKV(key, []byte("v1")))
			if !created.Succeeded || len(created.Responses) != 1 || created.Responses[0].Put == nil || created.Responses[0].Put.Revision != created.Header.Revision {
				t.Fatalf("create: %+v", created)
			}
			r1 := created.Header.Revision
			exists := txn(0, etcdgrpc.OpPutKV(key, []byte("v1bis")))
			if exists.Succeeded || exists.Responses[0].Range == nil || len(exists.Responses[0].Range.KVs) != 1 ||
				exists.Responses[0].Range.KVs[0].ModRevision != r1 || string(exists.Responses[0].Range.KVs[0].Value) != "v1" {
				t.Fatalf("second create: %+v", exists)
			}
			updated := txn(r1, etcdgrpc.OpPutKV(key, []byte("v2")))
			if !updated.Succeeded || updated.Header.Revision <= r1 {
				t.Fatalf("update: %+v", updated)
			}
			r2 := updated.Header.Revision
			if stale := txn(r1, etcdgrpc.OpPutKV(key, []byte("v3"))); stale.Succeeded || stale.Responses[0].Range.KVs[0].ModRevision != r2 {
				t.Fatalf("stale update: %+v", stale)
			}

			// Watch through a client whose socket reads wait 200 ms.
			const delay = 200 * time.Millisecond
			tc, err := e.ClientTLS()
			if err != nil {
				t.Fatal(err)
			}
			wc, err := etcdgrpc.NewWithOptions(e.Endpoint, tc, etcdgrpc.Options{ReadDelay: delay})
			if err != nil {
				t.Fatal(err)
			}
			defer wc.Close()
			prefix := []byte("/registry/configmaps/")
			ws, err := wc.Watch(ctx, etcdgrpc.WatchCreate{Key: prefix, RangeEnd: etcdgrpc.PrefixEnd(prefix), StartRevision: r2 + 1, PrevKV: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if r, err := ws.Recv(); err != nil || !r.Created {
				t.Fatalf("first watch response: %+v %v", r, err)
			}
			deleted := txn(r2, etcdgrpc.OpDelete(key))
			if !deleted.Succeeded || deleted.Responses[0].Delete == nil || deleted.Responses[0].Delete.Deleted != 1 {
				t.Fatalf("delete: %+v", deleted)
			}
			r, err := ws.Recv()
			if err != nil || len(r.Events) != 1 || r.Events[0].Type != etcdgrpc.EventDelete || r.Events[0].KV.ModRevision != deleted.Header.Revision {
				t.Fatalf("delete event: %+v %v", r, err)
			}
			lag := r.ReadAt.Sub(deleted.ReadAt)
			t.Logf("txn response read -> delayed watch response read: %v (delay %v)", lag, delay)
			if lag < delay-10*time.Millisecond || lag > delay+300*time.Millisecond {
				t.Errorf("watch response read %v after the txn's, want about %v", lag, delay)
			}
		})
	}
}

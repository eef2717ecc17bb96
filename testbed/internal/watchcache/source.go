package watchcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/k8sobj"
)

// SourceConfig configures how a cache follows etcd.
type SourceConfig struct {
	Client *etcdgrpc.Client
	// WatchClient, if set, carries the Watch stream instead of Client
	// (fake-apiserver -etcd-watch-delay: a connection whose reads are
	// delayed, while Range and writes keep using Client).
	WatchClient      *etcdgrpc.Client
	DispatchDelay    time.Duration // sleep before handing each etcd event to watchers (fault knob)
	BookmarkInterval time.Duration // 0 disables bookmarks
	// MaxReconnects bounds consecutive failed etcd watch attempts before
	// the cache gives up (and terminates its watchers).
	MaxReconnects int
}

// incomingSize matches the buffering between kube-apiserver's etcd watcher
// and its cacher (channels of 100): a slow dispatcher backs up into etcd's
// gRPC stream instead of growing memory.
const incomingSize = 100

type incoming struct {
	ev       etcdgrpc.Event
	progress int64 // > 0: progress notification at this revision
	readAt   time.Time
	msgBytes int
	watchID  int64
}

// Run lists the resource from etcd, then follows it with a Watch from the
// list revision + 1, dispatching every event until ctx is done or the etcd
// watch fails for good. It returns nil when ctx ends.
func (c *Cache) Run(ctx context.Context, sc SourceConfig) error {
	res := c.cfg.Resource
	prefix := []byte(res.EtcdPrefix())
	end := etcdgrpc.PrefixEnd(prefix)
	rr, err := sc.Client.Range(ctx, prefix, end)
	if err != nil {
		c.stop("etcd range failed: " + err.Error())
		return fmt.Errorf("%s: range: %w", res.ID(), err)
	}
	var objs []*Event
	for i := range rr.KVs {
		kv := &rr.KVs[i]
		ev, err := c.eventFromKV(kv, nil)
		if err != nil {
			c.logBadKey(string(kv.Key), kv.ModRevision, err)
			continue
		}
		objs = append(objs, ev)
	}
	c.replace(objs, rr.Header.Revision)
	c.cfg.Log.Log(&groundtruth.Record{
		Kind: groundtruth.KindEtcdRange, T: groundtruth.Now(), Resource: res.ID(),
		Key: string(prefix), Revision: rr.Header.Revision, Count: int64(len(rr.KVs)),
	})

	in := make(chan incoming, incomingSize)
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	errc := make(chan error, 1)
	go func() {
		errc <- c.follow(readCtx, sc, rr.Header.Revision+1, in)
		close(in)
	}()

	var bookmarks <-chan time.Time
	if sc.BookmarkInterval > 0 {
		t := time.NewTicker(sc.BookmarkInterval)
		defer t.Stop()
		bookmarks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			c.stop(groundtruth.ReasonShutdown)
			return nil
		case <-bookmarks:
			c.sendBookmarks()
		case it, ok := <-in:
			if !ok {
				err := <-errc
				if ctx.Err() != nil {
					c.stop(groundtruth.ReasonShutdown)
					return nil
				}
				c.stop(groundtruth.ReasonCacheGone + ": " + err.Error())
				return fmt.Errorf("%s: etcd watch: %w", res.ID(), err)
			}
			if !c.handle(ctx, sc, it) {
				c.stop(groundtruth.ReasonShutdown)
				return nil
			}
		}
	}
}

// handle applies one incoming item. It returns false if ctx ended during the
// dispatch delay.
func (c *Cache) handle(ctx context.Context, sc SourceConfig, it incoming) bool {
	res := c.cfg.Resource
	if it.progress > 0 {
		c.progress(it.progress)
		c.cfg.Log.Log(&groundtruth.Record{
			Kind: groundtruth.KindEtcdProgress, T: groundtruth.Now(), TRead: it.readAt.UnixNano(),
			Resource: res.ID(), Revision: it.progress,
		})
		return true
	}
	if sc.DispatchDelay > 0 {
		t := time.NewTimer(sc.DispatchDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	kv := &it.ev.KV
	rec := &groundtruth.Record{
		Kind: groundtruth.KindEtcdEvent, T: groundtruth.Now(), TRead: it.readAt.UnixNano(),
		Resource: res.ID(), Key: string(kv.Key), Revision: kv.ModRevision, Type: it.ev.Type.String(),
		WatchID: it.watchID, MsgBytes: it.msgBytes,
	}
	var prev *Event
	if p := c.previous(string(kv.Key)); p != nil {
		prev = p
	}
	var ev *Event
	var err error
	if it.ev.Type == etcdgrpc.EventDelete {
		ev, err = c.deleteEvent(&it.ev, prev)
	} else {
		ev, err = c.eventFromKV(kv, prev)
	}
	if err != nil {
		rec.Error = err.Error()
		c.cfg.Log.Log(rec)
		return true
	}
	rec.Namespace, rec.Name, rec.EventType = ev.Namespace, ev.Name, ev.Type
	c.cfg.Log.Log(rec)
	c.dispatch(ev, c.apply(ev))
	return true
}

// eventFromKV builds the ADDED/MODIFIED event for a put (or an initial
// object when prev is nil and the cache is loading).
func (c *Cache) eventFromKV(kv *etcdgrpc.KeyValue, prev *Event) (*Event, error) {
	res := c.cfg.Resource
	ns, name, err := k8sobj.SplitKey(res, string(kv.Key))
	if err != nil {
		return nil, err
	}
	obj, err := k8sobj.Parse(kv.Value)
	if err != nil {
		return nil, fmt.Errorf("value of %s: %w", kv.Key, err)
	}
	ev := &Event{
		Type: Added, RV: kv.ModRevision, Key: string(kv.Key), Namespace: ns, Name: name,
		Obj: &framing.Object{Resource: res, Obj: obj.WithRV(kv.ModRevision)},
	}
	if prev != nil {
		ev.Type = Modified
		ev.Prev = prev.Obj
	}
	return ev, nil
}

// deleteEvent builds a DELETED event: the last state of the object (from
// prev_kv, else the cache) stamped with the deletion revision.
func (c *Cache) deleteEvent(e *etcdgrpc.Event, prev *Event) (*Event, error) {
	res := c.cfg.Resource
	key := string(e.KV.Key)
	ns, name, err := k8sobj.SplitKey(res, key)
	if err != nil {
		return nil, err
	}
	var obj *k8sobj.Object
	switch {
	case e.PrevKV != nil:
		if obj, err = k8sobj.Parse(e.PrevKV.Value); err != nil {
			return nil, fmt.Errorf("prev value of %s: %w", key, err)
		}
	case prev != nil:
		obj = prev.Obj.Obj
	default:
		return nil, fmt.Errorf("delete of unknown key %s without prev_kv", key)
	}
	ev := &Event{
		Type: Deleted, RV: e.KV.ModRevision, Key: key, Namespace: ns, Name: name,
		Obj: &framing.Object{Resource: res, Obj: obj.WithRV(e.KV.ModRevision)},
	}
	if prev != nil {
		ev.Prev = prev.Obj
	}
	return ev, nil
}

func (c *Cache) logBadKey(key string, rev int64, err error) {
	c.cfg.Log.Log(&groundtruth.Record{
		Kind: groundtruth.KindEtcdEvent, T: groundtruth.Now(), Resource: c.cfg.Resource.ID(),
		Key: key, Revision: rev, Type: "PUT", Error: err.Error(),
	})
}

// follow runs the etcd Watch, reconnecting from the next revision after
// transient failures, and feeds in. It returns when ctx ends (nil) or after
// MaxReconnects consecutive failures.
func (c *Cache) follow(ctx context.Context, sc SourceConfig, next int64, in chan<- incoming) error {
	res := c.cfg.Resource
	prefix := []byte(res.EtcdPrefix())
	maxFail := sc.MaxReconnects
	if maxFail <= 0 {
		maxFail = 5
	}
	var lastErr error
	for failures := 0; failures < maxFail; failures++ {
		if failures > 0 {
			c.cfg.Log.Log(&groundtruth.Record{
				Kind: groundtruth.KindEtcdWatchFail, T: groundtruth.Now(), Resource: res.ID(),
				Revision: next, Error: lastErr.Error(),
			})
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Duration(failures) * 200 * time.Millisecond):
			}
		}
		progressed, err := c.watchOnce(ctx, sc, prefix, &next, in)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return err
		}
		lastErr = err
		if progressed {
			failures = -1 // the stream worked for a while: start counting afresh
		}
	}
	return fmt.Errorf("giving up after %d failed attempts: %w", maxFail, lastErr)
}

type fatalError struct{ msg string }

func (e *fatalError) Error() string { return e.msg }

// watchOnce runs one Watch stream from *next and advances *next past every
// event delivered. progressed reports whether any response arrived.
func (c *Cache) watchOnce(ctx context.Context, sc SourceConfig, prefix []byte, next *int64, in chan<- incoming) (progressed bool, err error) {
	res := c.cfg.Resource
	wc := sc.Client
	if sc.WatchClient != nil {
		wc = sc.WatchClient
	}
	ws, err := wc.Watch(ctx, etcdgrpc.WatchCreate{
		Key: prefix, RangeEnd: etcdgrpc.PrefixEnd(prefix), StartRevision: *next,
		ProgressNotify: true, PrevKV: true, // as kube-apiserver's etcd3 watcher
	})
	if err != nil {
		return false, err
	}
	defer ws.Close()
	for {
		r, err := ws.Recv()
		if err == io.EOF {
			return progressed, fmt.Errorf("etcd closed the watch stream")
		}
		if err != nil {
			return progressed, err
		}
		progressed = true
		switch {
		case r.CompactRevision != 0:
			return true, &fatalError{fmt.Sprintf("watch from revision %d compacted (compact revision %d); a relist would be needed", *next, r.CompactRevision)}
		case r.Canceled:
			return true, &fatalError{"etcd canceled the watch: " + r.CancelReason}
		case r.Created:
			c.cfg.Log.Log(&groundtruth.Record{
				Kind: groundtruth.KindEtcdWatch, T: groundtruth.Now(), TRead: r.ReadAt.UnixNano(),
				Resource: res.ID(), Key: string(prefix), Revision: *next, WatchID: r.WatchID,
			})
			continue
		case r.IsProgressNotify():
			select {
			case in <- incoming{progress: r.Header.Revision, readAt: r.ReadAt}:
			case <-ctx.Done():
				return true, ctx.Err()
			}
			*next = max(*next, r.Header.Revision+1)
			continue
		}
		for _, ev := range r.Events {
			select {
			case in <- incoming{ev: ev, readAt: r.ReadAt, msgBytes: r.Size, watchID: r.WatchID}:
			case <-ctx.Done():
				return true, ctx.Err()
			}
			*next = ev.KV.ModRevision + 1
		}
	}
}

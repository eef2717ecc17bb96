package watchcache

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/k8sobj"
)

// Config configures one resource's cache.
type Config struct {
	Resource    k8sobj.Resource
	HistorySize int // events kept for exact-RV watches (kube: ~ last few minutes)
	ChanSize    int // per-watcher channel (kube: 100 for unindexed watches)
	Log         *groundtruth.Logger
}

// Cache holds one resource's state and watchers.
type Cache struct {
	cfg Config

	mu        sync.Mutex
	store     map[string]*Event // key -> last ADDED/MODIFIED event
	rv        int64             // everything up to rv has been applied
	histStart int64             // exact-RV watches need rv >= histStart
	hist      *history
	watchers  map[uint64]*Watcher
	rvChanged chan struct{} // closed and replaced whenever rv advances
	stopped   bool
	ready     bool

	budget *timeBudget // dispatcher goroutine only
}

// New returns an empty, not yet initialised cache.
func New(cfg Config) *Cache {
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = 10000
	}
	if cfg.ChanSize <= 0 {
		cfg.ChanSize = 100
	}
	return &Cache{
		cfg:       cfg,
		store:     map[string]*Event{},
		hist:      newHistory(cfg.HistorySize),
		watchers:  map[uint64]*Watcher{},
		rvChanged: make(chan struct{}),
		budget:    newTimeBudget(time.Now()),
	}
}

// Resource returns the cached resource.
func (c *Cache) Resource() k8sobj.Resource { return c.cfg.Resource }

// RV returns the cache's current resourceVersion.
func (c *Cache) RV() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rv
}

func (c *Cache) advance(rv int64) {
	if rv > c.rv {
		c.rv = rv
		close(c.rvChanged)
		c.rvChanged = make(chan struct{})
	}
}

// replace loads the initial state from a Range at revision rev.
func (c *Cache) replace(objs []*Event, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range objs {
		c.store[ev.Key] = ev
	}
	c.histStart = rev
	c.advance(rev)
	c.ready = true
}

// apply records ev in the store and history and returns the watchers to
// dispatch it to. Events must arrive in RV order.
func (c *Cache) apply(ev *Event) []*Watcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Type == Deleted {
		delete(c.store, ev.Key)
	} else {
		c.store[ev.Key] = ev
	}
	if old := c.hist.add(ev); old != nil {
		// kube-apiserver: the oldest deliverable RV is the first buffered
		// event's; anything older than that minus one is "too old".
		c.histStart = c.hist.at(0).RV - 1
	}
	c.advance(ev.RV)
	ws := make([]*Watcher, 0, len(c.watchers))
	for _, w := range c.watchers {
		ws = append(ws, w)
	}
	return ws
}

// progress advances the RV on an etcd progress notification: no event of
// this resource exists between the last one and rev.
func (c *Cache) progress(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(rev)
}

// Get returns the cached object stored under the etcd key and its
// mod_revision (the object's resourceVersion), as kube-apiserver's cacher
// hands the cached object to storage as the expected current state of an
// update or delete. ok is false when the cache does not hold the key, or
// does not serve (not started or stopped).
func (c *Cache) Get(key string) (obj *k8sobj.Object, modRevision int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || !c.ready {
		return nil, 0, false
	}
	ev := c.store[key]
	if ev == nil {
		return nil, 0, false
	}
	return ev.Obj.Obj, ev.RV, true
}

// previous returns the stored event for key (nil if absent).
func (c *Cache) previous(key string) *Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store[key]
}

type blockedWatcher struct {
	w  *Watcher
	ev *Event
}

// dispatch hands ev to watchers like cacher.dispatchEvent: try every watcher
// without blocking; then block on the slow ones with the shared time budget;
// once the budget is spent, remaining blocked watchers are terminated.
func (c *Cache) dispatch(ev *Event, ws []*Watcher) {
	var blocked []blockedWatcher
	for _, w := range ws {
		e := w.convert(ev)
		if e == nil {
			continue
		}
		if !w.nonblockingAdd(e) {
			blocked = append(blocked, blockedWatcher{w, e})
		}
	}
	if len(blocked) == 0 {
		return
	}
	start := time.Now()
	timeout := c.budget.take(start)
	timer := time.NewTimer(timeout)
	for _, b := range blocked {
		if !b.w.add(b.ev, timer) {
			c.terminate(b.w, fmt.Sprintf("unresponsive: channel of %d full, dispatch budget %v spent", cap(b.w.ch), timeout))
			timer = nil
		}
	}
	if timer != nil {
		timer.Stop()
		c.budget.giveBack(timeout - time.Since(start))
	}
}

// sendBookmarks offers a BOOKMARK at the current RV to every watcher that
// asked for them. Bookmarks never block: a full channel just skips one.
func (c *Cache) sendBookmarks() {
	c.mu.Lock()
	rv := c.rv
	var ws []*Watcher
	for _, w := range c.watchers {
		if w.Bookmarks {
			ws = append(ws, w)
		}
	}
	c.mu.Unlock()
	if len(ws) == 0 {
		return
	}
	ev := &Event{Type: Bookmark, RV: rv, Obj: &framing.Object{Resource: c.cfg.Resource, Obj: k8sobj.Empty(c.cfg.Resource, rv)}}
	for _, w := range ws {
		if rv >= w.StartRV {
			w.nonblockingAdd(ev)
		}
	}
}

func (c *Cache) terminate(w *Watcher, reason string) {
	c.mu.Lock()
	_, registered := c.watchers[w.ID]
	delete(c.watchers, w.ID)
	c.mu.Unlock()
	if !registered {
		return
	}
	w.reason = reason
	close(w.ch)
	c.cfg.Log.Log(&groundtruth.Record{
		Kind: groundtruth.KindTerminate, T: groundtruth.Now(), Stream: w.ID,
		Resource: c.cfg.Resource.ID(), Reason: reason, Queued: len(w.ch),
	})
}

// stop terminates every watcher; the cache serves nothing afterwards.
func (c *Cache) stop(reason string) {
	c.mu.Lock()
	c.stopped = true
	ws := make([]*Watcher, 0, len(c.watchers))
	for _, w := range c.watchers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		c.terminate(w, reason)
	}
}

// WatchOptions are the parsed watch parameters.
type WatchOptions struct {
	ID        uint64
	Namespace string
	Selector  Selector
	HasRV     bool  // resourceVersion given and not "0"
	RV        int64 // exact RV when HasRV
	Bookmarks bool
	// SendInitialEvents is the watch-list parameter (nil when absent):
	// true sends the current state whatever the RV (once the cache has
	// reached an exact RV: resourceVersionMatch=NotOlderThan); false sends
	// no initial state (from the exact RV's history, or from now).
	SendInitialEvents *bool
	// InitialEventsEnd ends the initial state with the
	// k8s.io/initial-events-end bookmark (a watch-list request:
	// sendInitialEvents=true and allowWatchBookmarks=true).
	InitialEventsEnd bool
}

// ErrStopped is returned once the cache no longer follows etcd.
var ErrStopped = fmt.Errorf("watch cache stopped")

// tooLargeWait is how long a watch for a future RV waits for the cache, as
// kube-apiserver's waitUntilFreshAndBlock does (3 s).
const tooLargeWait = 3 * time.Second

// Watch registers a watcher. Without an exact RV it starts from the current
// state (one ADDED per object, "Get State and Start at Most Recent"); with
// one it replays history after that RV. sendInitialEvents changes that as
// in the cacher's getAllEventsSinceLocked: true always sends the state
// (after waiting for an exact RV), false never does. A non-nil Status
// means the watch must consist of a single ERROR event (410 Expired, 504
// too large RV).
func (c *Cache) Watch(ctx context.Context, o WatchOptions) (*Watcher, *k8sobj.Status, error) {
	if o.HasRV {
		if st, err := c.waitFor(ctx, o.RV); st != nil || err != nil {
			return nil, st, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || !c.ready {
		return nil, nil, ErrStopped
	}
	w := &Watcher{
		ID: o.ID, Namespace: o.Namespace, Selector: o.Selector, Bookmarks: o.Bookmarks,
		StartRV: c.rv, ch: make(chan *Event, c.cfg.ChanSize), stopped: make(chan struct{}),
	}
	sendState := o.SendInitialEvents != nil && *o.SendInitialEvents
	switch {
	case sendState:
		w.Initial = c.initialState(o.Namespace, o.Selector)
		if o.InitialEventsEnd {
			r := c.cfg.Resource
			w.InitialEventsEnd = &Event{Type: Bookmark, RV: c.rv, InitialEventsEnd: true,
				Obj: &framing.Object{Resource: r, Obj: k8sobj.InitialEventsEnd(r, c.rv)}}
		}
	case o.HasRV:
		if o.RV < c.histStart {
			st := k8sobj.Expired(fmt.Sprintf("too old resource version: %d (%d)", o.RV, c.histStart))
			return nil, &st, nil
		}
		w.StartRV = o.RV
		for _, ev := range c.hist.since(o.RV) {
			if e := w.convert(ev); e != nil {
				w.Initial = append(w.Initial, e)
			}
		}
	case o.SendInitialEvents != nil: // false, no exact RV: from now, no state
	default:
		w.Initial = c.initialState(o.Namespace, o.Selector)
	}
	c.watchers[w.ID] = w
	return w, nil, nil
}

// initialState is the current state as ADDED events, sorted by key, each
// with its object's RV. Callers hold c.mu.
func (c *Cache) initialState(ns string, sel Selector) []*Event {
	var out []*Event
	for _, ev := range c.snapshot(ns, sel) {
		out = append(out, &Event{
			Type: Added, RV: ev.RV, Key: ev.Key, Namespace: ev.Namespace, Name: ev.Name,
			Obj: ev.Obj, Initial: true,
		})
	}
	return out
}

// waitFor blocks until the cache reaches rv, for at most tooLargeWait.
func (c *Cache) waitFor(ctx context.Context, rv int64) (*k8sobj.Status, error) {
	deadline := time.NewTimer(tooLargeWait)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		cur, changed := c.rv, c.rvChanged
		c.mu.Unlock()
		if cur >= rv {
			return nil, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			st := k8sobj.Status{
				Message: fmt.Sprintf("Timeout: Too large resource version: %d, current: %d", rv, cur),
				Reason:  "Timeout", Code: 504, RetryAfterSeconds: 1,
				CauseType: "ResourceVersionTooLarge", CauseMessage: "Too large resource version",
			}
			return &st, nil
		}
	}
}

// Remove unregisters a watcher when its handler ends.
func (c *Cache) Remove(w *Watcher) {
	w.stop()
	c.mu.Lock()
	delete(c.watchers, w.ID)
	c.mu.Unlock()
}

// snapshot returns the stored events matching ns and sel, sorted by key.
// Callers hold c.mu.
func (c *Cache) snapshot(ns string, sel Selector) []*Event {
	out := make([]*Event, 0, len(c.store))
	for _, ev := range c.store {
		if ns != "" && ev.Namespace != ns {
			continue
		}
		if !sel.Matches(labelsOf(ev.Obj)) {
			continue
		}
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// List returns the current objects matching ns and sel and the list RV.
func (c *Cache) List(ns string, sel Selector) (int64, []*k8sobj.Object, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || !c.ready {
		return 0, nil, ErrStopped
	}
	evs := c.snapshot(ns, sel)
	objs := make([]*k8sobj.Object, len(evs))
	for i, ev := range evs {
		objs[i] = ev.Obj.Obj
	}
	return c.rv, objs, nil
}

// Package watchcache is a small stand-in for kube-apiserver's watch cache
// (cacher + watchCache + cacheWatcher): it keeps the current objects of one
// resource and a bounded history of events fed by an etcd watch, and fans
// events out to watchers through bounded channels with kube-apiserver's
// dispatch policy (non-blocking first, then block for a shared time budget,
// then terminate the unresponsive watcher).
package watchcache

import (
	"sync"

	"watchtrace/testbed/internal/framing"
)

// Watch event types.
const (
	Added    = "ADDED"
	Modified = "MODIFIED"
	Deleted  = "DELETED"
	Bookmark = "BOOKMARK"
	Error    = "ERROR"
)

// Event is one watch event. Events are shared by all watchers that receive
// them, so their frames are encoded once per format.
type Event struct {
	Type      string
	RV        int64
	Key       string
	Namespace string
	Name      string
	Obj       *framing.Object
	// Prev is the object before this event (MODIFIED, DELETED), used to
	// turn label-selector transitions into ADDED/DELETED as kube does.
	Prev    *framing.Object
	Initial bool // part of a watch's initial state, not a live change
	// InitialEventsEnd marks the BOOKMARK that ends a watch-list's initial
	// events (annotation k8s.io/initial-events-end).
	InitialEventsEnd bool

	once  [framing.NumFormats]sync.Once
	frame [framing.NumFormats][]byte

	viewMu      sync.Mutex
	addedView   *Event
	deletedView *Event
}

// Frame returns the event framed for f (see framing.Frame).
func (e *Event) Frame(f framing.Format) []byte {
	e.once[f].Do(func() { e.frame[f] = framing.Frame(f, e.Type, e.Obj.Encoded(f)) })
	return e.frame[f]
}

// asAdded is the event seen by a watcher whose selector the object just
// started to match.
func (e *Event) asAdded() *Event {
	e.viewMu.Lock()
	defer e.viewMu.Unlock()
	if e.addedView == nil {
		e.addedView = &Event{Type: Added, RV: e.RV, Key: e.Key, Namespace: e.Namespace, Name: e.Name, Obj: e.Obj}
	}
	return e.addedView
}

// asDeleted is the event seen by a watcher whose selector the object just
// stopped matching: the previous object, stamped with this event's RV.
func (e *Event) asDeleted() *Event {
	e.viewMu.Lock()
	defer e.viewMu.Unlock()
	if e.deletedView == nil {
		prev := &framing.Object{Resource: e.Prev.Resource, Obj: e.Prev.Obj.WithRV(e.RV)}
		e.deletedView = &Event{Type: Deleted, RV: e.RV, Key: e.Key, Namespace: e.Namespace, Name: e.Name, Obj: prev}
	}
	return e.deletedView
}

// labels returns the labels of an event's object (nil-safe).
func labelsOf(o *framing.Object) map[string]string {
	if o == nil || o.Obj == nil {
		return nil
	}
	return o.Obj.Meta.Labels
}

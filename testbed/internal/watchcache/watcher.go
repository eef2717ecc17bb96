package watchcache

import (
	"sync"
	"time"
)

// Watcher is one registered watch. The HTTP handler writes Initial first,
// then everything received from Events until it is closed (terminated by the
// cache) or the handler stops.
type Watcher struct {
	ID        uint64
	Namespace string
	Selector  Selector
	Bookmarks bool
	StartRV   int64    // live events have RV > StartRV
	Initial   []*Event // initial state or history replay, oldest first
	// InitialEventsEnd, for a watch-list, is the BOOKMARK at StartRV
	// annotated k8s.io/initial-events-end, written right after Initial.
	InitialEventsEnd *Event

	ch       chan *Event
	stopped  chan struct{}
	stopOnce sync.Once
	reason   string // set by the dispatcher before closing ch
}

// Events is the channel of live events; it is closed when the cache
// terminates the watcher (see Reason).
func (w *Watcher) Events() <-chan *Event { return w.ch }

// Queued is the number of events waiting in the channel.
func (w *Watcher) Queued() int { return len(w.ch) }

// Reason explains why Events was closed; valid once it is closed.
func (w *Watcher) Reason() string { return w.reason }

func (w *Watcher) stop() { w.stopOnce.Do(func() { close(w.stopped) }) }

// convert returns the event as this watcher should see it, or nil if the
// watcher is not interested (namespace, label selector transitions).
func (w *Watcher) convert(ev *Event) *Event {
	if w.Namespace != "" && ev.Namespace != w.Namespace {
		return nil
	}
	if w.Selector.Empty() {
		return ev
	}
	cur := w.Selector.Matches(labelsOf(ev.Obj))
	switch ev.Type {
	case Added, Deleted:
		if cur {
			return ev
		}
		return nil
	case Modified:
		prev := ev.Prev != nil && w.Selector.Matches(labelsOf(ev.Prev))
		switch {
		case cur && prev:
			return ev
		case cur:
			return ev.asAdded()
		case prev:
			return ev.asDeleted()
		}
	}
	return nil
}

func (w *Watcher) nonblockingAdd(ev *Event) bool {
	select {
	case w.ch <- ev:
		return true
	default:
		return false
	}
}

// add blocks until ev is queued, the watcher stops, or timer fires. A nil
// timer means the round's budget is already spent: fail immediately. It
// returns false when the watcher must be terminated.
func (w *Watcher) add(ev *Event, timer *time.Timer) bool {
	if w.nonblockingAdd(ev) {
		return true
	}
	if timer == nil {
		return false
	}
	select {
	case w.ch <- ev:
		return true
	case <-w.stopped:
		return true // the handler is gone; nothing to terminate
	case <-timer.C:
		return false
	}
}

package watchcache

import "sort"

// history is a ring buffer of the most recent events in RV order, the
// equivalent of watchCache's cyclic buffer: it bounds how far back an
// exact-resourceVersion watch can start.
type history struct {
	buf   []*Event
	start int
	n     int
}

func newHistory(capacity int) *history {
	if capacity < 1 {
		capacity = 1
	}
	return &history{buf: make([]*Event, capacity)}
}

// add appends ev and returns the evicted oldest event, if any.
func (h *history) add(ev *Event) (evicted *Event) {
	if h.n == len(h.buf) {
		evicted = h.buf[h.start]
		h.buf[h.start] = ev
		h.start = (h.start + 1) % len(h.buf)
		return evicted
	}
	h.buf[(h.start+h.n)%len(h.buf)] = ev
	h.n++
	return nil
}

func (h *history) at(i int) *Event { return h.buf[(h.start+i)%len(h.buf)] }

// since returns the events with RV > rv, oldest first.
func (h *history) since(rv int64) []*Event {
	i := sort.Search(h.n, func(i int) bool { return h.at(i).RV > rv })
	out := make([]*Event, 0, h.n-i)
	for ; i < h.n; i++ {
		out = append(out, h.at(i))
	}
	return out
}

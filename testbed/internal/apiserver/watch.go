package apiserver

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/watchcache"
)

// watchStream is the state of one watch response.
type watchStream struct {
	s        *Server
	w        http.ResponseWriter
	out      io.Writer // w, or gz in front of it
	gz       *gzipStream
	rc       *http.ResponseController
	f        framing.Format
	id       uint64
	client   string
	path     string
	res      string
	tRequest int64
	events   int64
	bytes    int64
	lastRV   string
}

// serveWatch follows kube-apiserver's WatchServer.HandleHTTP: set
// Content-Type, flush the response HEADERS before any event, then write
// each event through the framer and flush only when no further event is
// queued, until timeout, client disconnect, server shutdown or the cache
// closing the watcher. A watch-list (sendInitialEvents=true,
// allowWatchBookmarks=true) ends its initial events with the
// initial-events-end bookmark, and is gzip-compressed when the client
// accepts gzip (WatchListCompression, Kubernetes 1.37).
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, f framing.Format, cache *watchcache.Cache, rt route, p params, tRequest int64) {
	ctx := r.Context()
	timeout := time.Duration(p.timeoutSeconds) * time.Second
	if timeout == 0 {
		// handlers/get.go: minRequestTimeout * (rand + 1).
		timeout = time.Duration(float64(s.cfg.MinRequestTimeout) * (rand.Float64() + 1))
	}
	id := s.nextStream.Add(1)
	watcher, errStatus, err := cache.Watch(ctx, watchcache.WatchOptions{
		ID: id, Namespace: rt.namespace, Selector: p.selector,
		HasRV: p.hasExactRV, RV: p.exactRV, Bookmarks: p.bookmarks,
		SendInitialEvents: p.sendInitialEvents, InitialEventsEnd: p.watchList(),
	})
	if err != nil {
		if ctx.Err() != nil {
			return // client left while waiting for a future RV
		}
		s.reject(w, r, f, http.StatusServiceUnavailable, err.Error(), groundtruth.ReasonCacheGone)
		return
	}
	st := &watchStream{s: s, w: w, out: w, rc: http.NewResponseController(w), f: f, id: id,
		client: r.RemoteAddr, path: requestPath(r), res: rt.res.ID(), tRequest: tRequest}
	open := &groundtruth.Record{
		Kind: groundtruth.KindWatchOpen, T: groundtruth.Now(), TRequest: tRequest, Stream: id, Client: st.client,
		Proto: r.Proto, TLS: tlsFlag(r), Path: st.path, UserAgent: userAgent(r),
		ContentType: f.WatchContentType(), Resource: st.res, Namespace: rt.namespace,
		LabelSelector: p.labelSelector, RVParam: p.rv, Bookmarks: p.bookmarks,
		TimeoutSeconds: int64(timeout / time.Second), RVMatch: p.rvMatch,
		SendInitialEvents: p.sendInitialEvents != nil && *p.sendInitialEvents,
	}
	if watcher != nil {
		defer cache.Remove(watcher)
		open.StartRV, open.InitialEvents = watcher.StartRV, len(watcher.Initial)
	}
	if p.watchList() && s.cfg.WatchListGzip != WatchListGzipOff && acceptsGzip(r) {
		gz, err := newGzipStream(w, s.cfg.GzipLevel, s.cfg.WatchListGzip)
		if err != nil {
			s.reject(w, r, f, http.StatusInternalServerError, err.Error(), groundtruth.ReasonBadRequest)
			return
		}
		st.gz, st.out = gz, gz
		open.ContentEncoding = "gzip"
		w.Header().Set("Content-Encoding", "gzip")
	}

	w.Header().Set("Content-Type", f.WatchContentType())
	// Dropped by the HTTP/2 server (connection-specific); kept so HTTP/1.1
	// watches look like kube-apiserver's.
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	s.cfg.Log.Log(open)
	if err := st.rc.Flush(); err != nil {
		st.close(groundtruth.ReasonWriteError, err)
		return
	}

	if errStatus != nil {
		// The watch cache answers an unusable RV with HTTP 200 and a single
		// ERROR event (newErrWatcher).
		ev := &watchcache.Event{Type: watchcache.Error, Obj: &framing.Object{Status: errStatus}}
		if err := st.write(ev, nil, 0); err != nil {
			st.close(groundtruth.ReasonWriteError, err)
			return
		}
		st.close(groundtruth.ReasonErrorEvent, nil)
		return
	}
	st.run(ctx, watcher, timeout)
}

func (st *watchStream) run(ctx context.Context, watcher *watchcache.Watcher, timeout time.Duration) {
	initial := watcher.Initial
	if watcher.InitialEventsEnd != nil {
		initial = append(initial[:len(initial):len(initial)], watcher.InitialEventsEnd)
	}
	for i, ev := range initial {
		remaining := len(initial) - 1 - i
		if err := st.write(ev, watcher, remaining); err != nil {
			st.close(groundtruth.ReasonWriteError, err)
			return
		}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	events := watcher.Events()
	for {
		select {
		case <-st.s.cfg.Shutdown:
			st.close(groundtruth.ReasonShutdown, nil)
			return
		case <-ctx.Done():
			st.close(groundtruth.ReasonClientGone, nil)
			return
		case <-timer.C:
			st.close(groundtruth.ReasonTimeout, nil)
			return
		case ev, ok := <-events:
			if !ok {
				st.close(groundtruth.ReasonTerminated+": "+watcher.Reason(), nil)
				return
			}
			if err := st.write(ev, watcher, 0); err != nil {
				reason := groundtruth.ReasonWriteError
				if ctx.Err() != nil {
					reason = groundtruth.ReasonClientGone
				}
				st.close(reason, err)
				return
			}
		}
	}
}

// write sends one event and flushes if nothing else is waiting (pending
// initial events or queued live events), then logs the write. On a gzip
// stream the flush is the gzip flush, then the HTTP one, so that the event
// reaches the client at once.
func (st *watchStream) write(ev *watchcache.Event, watcher *watchcache.Watcher, pendingInitial int) error {
	frame := ev.Frame(st.f)
	rec := &groundtruth.Record{
		Kind: groundtruth.KindWrite, Stream: st.id, Client: st.client, Path: st.path,
		EventType: ev.Type, Resource: st.res, Namespace: ev.Namespace, Name: ev.Name,
		Initial: ev.Initial, InitialEventsEnd: ev.InitialEventsEnd,
	}
	if ev.Type != watchcache.Error {
		rec.RV = strconv.FormatInt(ev.RV, 10)
	}
	var wire0 int64
	if st.gz != nil {
		wire0 = st.gz.wire()
	}
	rec.TBefore = groundtruth.Now()
	n, err := framing.Write(st.out, st.f, frame)
	rec.TAfter = groundtruth.Now()
	rec.Bytes = int64(n)
	if ev.InitialEventsEnd {
		rec.InitialSyncNs = rec.TAfter - st.tRequest
	}
	queued := pendingInitial
	if watcher != nil {
		queued += watcher.Queued()
	}
	rec.Queued = queued
	if err == nil && queued == 0 {
		if st.gz != nil {
			err = st.gz.flush()
		}
		if err == nil {
			err = st.rc.Flush()
		}
		rec.Flushed, rec.TFlush = true, groundtruth.Now()
	}
	if st.gz != nil {
		wire := st.gz.wire() - wire0
		rec.WireBytes = &wire
	}
	if err != nil {
		rec.Error = err.Error()
	}
	st.events++
	st.bytes += int64(n)
	rec.Seq = st.events
	if rec.RV != "" {
		st.lastRV = rec.RV
	}
	st.s.cfg.Log.Log(rec)
	return err
}

func (st *watchStream) close(reason string, err error) {
	var wire *int64
	if st.gz != nil {
		// The gzip trailer; errors are moot once the stream ends.
		_ = st.gz.close()
		n := st.gz.wire()
		wire = &n
	}
	rec := &groundtruth.Record{
		Kind: groundtruth.KindWatchClose, T: groundtruth.Now(), Stream: st.id, Client: st.client,
		Path: st.path, Resource: st.res, Reason: reason, Events: st.events, Bytes: st.bytes, RV: st.lastRV,
		WireBytes: wire,
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		rec.Error = err.Error()
	}
	st.s.cfg.Log.Log(rec)
}

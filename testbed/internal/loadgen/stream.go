package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"time"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/jsonl"
	"watchtrace/testbed/internal/k8sobj"
)

// stream is one reflector-like list+watch loop on a connection.
type stream struct {
	conn      *connection
	index     int
	res       k8sobj.Resource
	namespace string
	format    framing.Format
	listFirst bool // list (RV=0) then watch from the list RV, like client-go
	// watchList opens with a watch-list request instead (client-go's
	// WatchList: sendInitialEvents=true, no LIST), until one has delivered
	// the initial-events-end bookmark.
	watchList bool
	gzip      bool // send Accept-Encoding: gzip and inflate here
	bookmarks bool
	timeout   func() int64 // timeoutSeconds for each watch request
	selector  string
	log       *jsonl.Writer

	established     chan struct{}
	establishedOnce sync.Once

	mu  sync.Mutex
	sum StreamSummary
	// stall (fault mode 1): stop reading the body during [stallFrom, stallTo).
	stallFrom, stallTo time.Time
	// checking is false while a watch without RV delivers its initial
	// state (RVs are in key order then); it turns on at the first BOOKMARK.
	checking bool
	// synced: a watch-list delivered its initial-events-end bookmark.
	synced bool
	lastRV int64 // last ADDED/MODIFIED/DELETED RV
	seenRV int64 // max RV incl. bookmarks: where to resume
}

func (s *stream) basePath() string {
	p := "/api/" + s.res.Version
	if s.res.Group != "" {
		p = "/apis/" + s.res.Group + "/" + s.res.Version
	}
	if s.namespace != "" {
		p += "/namespaces/" + s.namespace
	}
	return p + "/" + s.res.Name
}

func (s *stream) accept() string {
	switch s.format {
	case framing.Protobuf:
		return "application/vnd.kubernetes.protobuf, application/json"
	case framing.CBOR:
		return framing.MediaCBOR
	}
	return "application/json"
}

func (s *stream) markEstablished() { s.establishedOnce.Do(func() { close(s.established) }) }

func (s *stream) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sum.Errors) < 20 {
		s.sum.Errors = append(s.sum.Errors, fmt.Sprintf(format, args...))
	}
}

func (s *stream) summary() StreamSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sum
	out.LastRV = s.seenRV
	out.Requests = append([]RequestSummary(nil), s.sum.Requests...)
	out.Errors = append([]string(nil), s.sum.Errors...)
	return out
}

func (s *stream) caughtUp(rev int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seenRV >= rev
}

// run lists/watches until ctx ends. Every loop iteration makes at most one
// request and sleeps on failure, so it is bounded by ctx.
func (s *stream) run(ctx context.Context) {
	needList, needWatchList := s.listFirst, s.watchList
	rv := ""
	for reqNo := 1; ctx.Err() == nil; reqNo++ {
		if needList {
			listRV, err := s.list(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.problem("list: %v", err)
					sleepCtx(ctx, 200*time.Millisecond)
				}
				continue
			}
			rv, needList = listRV, false
			s.mu.Lock()
			if s.sum.FirstRV == 0 {
				s.sum.FirstRV, _ = strconv.ParseInt(listRV, 10, 64)
			} else {
				s.sum.Relists++
			}
			n, _ := strconv.ParseInt(listRV, 10, 64)
			s.seenRV, s.lastRV, s.checking = n, n, true
			s.mu.Unlock()
			continue
		}
		var outcome outcome
		if needWatchList {
			// Like client-go: the initial sync is consistent (no RV);
			// once it has ended, re-watches are plain watches.
			s.mu.Lock()
			s.synced = false
			s.mu.Unlock()
			outcome = s.watch(ctx, reqNo, "", true)
			s.mu.Lock()
			needWatchList = !s.synced
			s.mu.Unlock()
		} else {
			outcome = s.watch(ctx, reqNo, rv, false)
		}
		if ctx.Err() != nil {
			return
		}
		switch outcome {
		case outcomeExpired:
			switch {
			case s.listFirst:
				needList = true
			case s.watchList:
				needWatchList = true
			default:
				rv = ""
			}
		case outcomeError:
			sleepCtx(ctx, 200*time.Millisecond)
		}
		s.mu.Lock()
		if s.seenRV > 0 {
			rv = strconv.FormatInt(s.seenRV, 10)
		}
		s.sum.Rewatches++
		s.mu.Unlock()
	}
}

type outcome int

const (
	outcomeEOF outcome = iota
	outcomeExpired
	outcomeError
)

func (s *stream) newRequest(ctx context.Context, q url.Values, local *string) (*http.Request, error) {
	u := s.conn.baseURL + s.basePath()
	if len(q) > 0 {
		u += "?" + q.Encode() // sorted keys, as client-go's URL builder
	}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		*local = info.Conn.LocalAddr().String()
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", s.accept())
	if s.gzip {
		// Set explicitly, so Go's transport leaves the body compressed
		// and the client sees the wire bytes.
		req.Header.Set("Accept-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", s.conn.userAgent)
	// A bearer token like client-go's: the server ignores it, but a tracer
	// must cope with (and not print) credentials in HEADERS.
	req.Header.Set("Authorization", "Bearer watchtrace-testbed-token")
	return req, nil
}

// watch runs one WATCH request from rv ("" = no resourceVersion); with
// watchList a watch-list request.
func (s *stream) watch(ctx context.Context, reqNo int, rv string, watchList bool) outcome {
	q := url.Values{"watch": {"true"}}
	if rv != "" {
		q.Set("resourceVersion", rv)
	}
	if s.bookmarks || watchList {
		q.Set("allowWatchBookmarks", "true")
	}
	if watchList {
		q.Set("sendInitialEvents", "true")
		q.Set("resourceVersionMatch", "NotOlderThan")
	}
	if s.selector != "" {
		q.Set("labelSelector", s.selector)
	}
	if t := s.timeout(); t > 0 {
		q.Set("timeoutSeconds", strconv.FormatInt(t, 10))
		q.Set("timeout", (time.Duration(t) * time.Second).String())
	}
	var local string
	req, err := s.newRequest(ctx, q, &local)
	if err != nil {
		s.problem("watch request: %v", err)
		return outcomeError
	}
	rs := RequestSummary{Verb: "WATCH", Path: req.URL.RequestURI(), Start: time.Now().UnixNano(), SendInitialEvents: watchList}
	var b *body
	defer func() {
		rs.End, rs.LocalAddr = time.Now().UnixNano(), local
		if b != nil {
			rs.WireBytes = b.wireBytes()
		}
		s.mu.Lock()
		s.sum.Requests = append(s.sum.Requests, rs)
		s.mu.Unlock()
	}()
	resp, err := s.conn.client.Do(req)
	if err != nil {
		rs.EndReason = "error: " + err.Error()
		if ctx.Err() == nil {
			s.problem("watch: %v", err)
		}
		return outcomeError
	}
	defer resp.Body.Close()
	rs.Status, rs.Proto = resp.StatusCode, resp.Proto
	rs.ContentType = resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK {
		rs.EndReason = "status"
		s.problem("watch: HTTP %s", resp.Status)
		return outcomeError
	}
	if want := s.conn.wantProtoMajor(); resp.ProtoMajor != want {
		s.problem("watch: served over %s, want HTTP/%d", resp.Proto, want)
	}
	if ct, want := resp.Header.Get("Content-Type"), s.format.WatchContentType(); ct != want {
		s.problem("watch: Content-Type %q, want %q", ct, want)
	}
	s.markEstablished()
	if (rv == "" && !s.listFirst) || watchList {
		// The initial state comes in key order, not RV order.
		s.mu.Lock()
		s.checking = false
		s.mu.Unlock()
	}

	b = openBody(resp)
	rs.ContentEncoding = b.encoding
	rd := framing.NewReader(b, s.format)
	for {
		s.maybeStall(ctx)
		ev, err := rd.Next()
		now := time.Now()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				rs.EndReason = "canceled"
			case errors.Is(err, io.EOF):
				rs.EndReason = "eof"
				return outcomeEOF
			default:
				rs.EndReason = "error: " + err.Error()
				s.problem("watch read: %v", err)
				return outcomeError
			}
			return outcomeEOF
		}
		rs.Events++
		rs.Bytes += int64(ev.Bytes)
		if ev.Type != "BOOKMARK" && ev.Type != "ERROR" {
			rs.Changes++
			rs.ChangeBytes += int64(ev.Bytes)
			if watchList && rs.InitialEventsEndAt == 0 {
				rs.InitialEvents++
			}
		}
		if ev.InitialEventsEnd && rs.InitialEventsEndAt == 0 {
			rs.InitialEventsEndAt = now.UnixNano()
			s.mu.Lock()
			s.synced = true
			s.mu.Unlock()
		}
		if s.handle(ev, now, reqNo) {
			rs.EndReason = "error_event"
			return outcomeExpired
		}
	}
}

// handle accounts one event; it returns true for an ERROR event.
func (s *stream) handle(ev *framing.Event, now time.Time, reqNo int) (isError bool) {
	rv, _ := strconv.ParseInt(ev.RV, 10, 64)
	s.log.Write(recvRecord{
		Kind: "recv", T: now.UnixNano(), Conn: s.conn.index, Stream: s.index, Request: reqNo,
		Type: ev.Type, Namespace: ev.Namespace, Name: ev.Name, RV: ev.RV, Bytes: ev.Bytes, Code: ev.Code,
		InitialEventsEnd: ev.InitialEventsEnd,
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum.Bytes += int64(ev.Bytes)
	s.conn.addEvent(int64(ev.Bytes), ev.Type != "BOOKMARK" && ev.Type != "ERROR")
	switch ev.Type {
	case "ERROR":
		s.sum.ErrorEvents++
		if ev.Code != http.StatusGone {
			if len(s.sum.Errors) < 20 {
				s.sum.Errors = append(s.sum.Errors, fmt.Sprintf("ERROR event %d %s: %s", ev.Code, ev.Reason, ev.Message))
			}
		}
		return true
	case "BOOKMARK":
		s.sum.Bookmarks++
		if s.checking && rv < s.seenRV {
			s.sum.RVViolations++
		}
		s.checking = true
		s.seenRV = max(s.seenRV, rv)
	default:
		s.sum.Events++
		if s.checking {
			switch {
			case rv == s.lastRV:
				s.sum.Duplicates++
			case rv < s.lastRV:
				s.sum.RVViolations++
			}
		}
		s.lastRV = max(s.lastRV, rv)
		s.seenRV = max(s.seenRV, rv)
	}
	return false
}

// maybeStall implements fault mode 1: while inside the stall window, do
// not read the body. The transport keeps buffering this stream's DATA until
// its flow-control window (4 MiB for Go clients) is exhausted; other streams
// on the connection continue.
func (s *stream) maybeStall(ctx context.Context) {
	s.mu.Lock()
	from, to := s.stallFrom, s.stallTo
	s.mu.Unlock()
	if from.IsZero() {
		return
	}
	now := time.Now()
	if now.Before(from) || !now.Before(to) {
		return
	}
	sleepCtx(ctx, to.Sub(now))
}

type recvRecord struct {
	Kind      string `json:"kind"`
	T         int64  `json:"t"`
	Conn      int    `json:"conn"`
	Stream    int    `json:"stream"`
	Request   int    `json:"request"`
	Type      string `json:"type"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	RV        string `json:"rv,omitempty"`
	Bytes     int    `json:"bytes"`
	Code      int32  `json:"code,omitempty"`
	// InitialEventsEnd: the watch-list's initial-events-end bookmark.
	InitialEventsEnd bool `json:"initial_events_end,omitempty"`
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// reflectorTimeout mimics client-go's reflector: timeoutSeconds uniformly
// random in [5, 10) minutes.
func reflectorTimeout() int64 { return int64(300 + rand.IntN(300)) }

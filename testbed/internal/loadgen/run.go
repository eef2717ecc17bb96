// Package loadgen is watch-load's engine: M HTTP/2 connections with N
// reflector-like watch streams each against the fake apiserver, an etcd
// writer producing the events, and two fault modes (a stream that stops
// reading its body; a connection that stops reading its socket).
package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/jsonl"
	"watchtrace/testbed/internal/k8sobj"
)

// Config configures a run.
type Config struct {
	BaseURL string      // https://127.0.0.1:port or http://127.0.0.1:port (h2c)
	TLS     *tls.Config // nil for h2c
	// HTTP1 speaks HTTP/1.1 only (client-go with DISABLE_HTTP2): every
	// concurrent watch of a connection gets its own TCP connection.
	HTTP1          bool
	Conns          int
	WatchesPerConn int
	Resources      []k8sobj.Resource
	Namespaces     []string // "" = all namespaces
	UserAgents     []string // assigned to connections round-robin
	Formats        []framing.Format
	ListFirst      bool
	// WatchList opens every stream with a watch-list request
	// (sendInitialEvents=true) instead of a LIST; ListFirst must be false.
	WatchList bool
	// Gzip sends Accept-Encoding: gzip on LISTs and watches and inflates
	// in the client, which then sees the compressed sizes.
	Gzip bool
	// RelistInterval > 0: every interval during the load phase, each
	// connection LISTs each collection its streams watch.
	RelistInterval time.Duration
	Bookmarks      bool
	TimeoutSeconds int64 // 0: random 5-10 min like client-go's reflector
	LabelSelector  string
	Duration       time.Duration // load phase, from all watches established
	Drain          time.Duration // max wait for streams to catch up after the writer
	EstablishWait  time.Duration

	Writer *WriterConfig // nil: no writes
	// Prefill > 0: the writer runs this long before any watch opens, so
	// watches start with objects to return as their initial state.
	Prefill time.Duration

	// Fault mode 1: stream StallStream stops reading after StallStreamAfter
	// for StallStreamFor. Fault mode 2: connection StallConn stops reading
	// its socket after StallConnAfter for StallConnFor. Zero durations
	// disable a mode.
	StallStream      int
	StallStreamAfter time.Duration
	StallStreamFor   time.Duration
	StallConn        int
	StallConnAfter   time.Duration
	StallConnFor     time.Duration

	Log *jsonl.Writer
}

// Run executes the load and returns its summary.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Conns <= 0 || cfg.WatchesPerConn <= 0 {
		return nil, fmt.Errorf("need at least one connection and one watch per connection")
	}
	if len(cfg.UserAgents) == 0 || len(cfg.Formats) == 0 || len(cfg.Resources) == 0 || len(cfg.Namespaces) == 0 {
		return nil, fmt.Errorf("user agents, formats, resources and namespaces must be non-empty")
	}
	if cfg.WatchList && cfg.ListFirst {
		return nil, fmt.Errorf("watch-list streams do not LIST first")
	}
	if cfg.EstablishWait == 0 {
		cfg.EstablishWait = 30 * time.Second
	}
	if cfg.Writer != nil && cfg.Prefill > 0 {
		wc := *cfg.Writer
		wc.Log = cfg.Log
		wc.BaseURL, wc.TLS, wc.HTTP1 = cfg.BaseURL, cfg.TLS, cfg.HTTP1
		wc.Duration = cfg.Prefill
		pctx, cancel := context.WithTimeout(ctx, 2*cfg.Prefill+10*time.Second)
		RunWriter(pctx, wc)
		cancel()
	}
	sum := &Summary{}
	conns := make([]*connection, cfg.Conns)
	var streams []*stream
	for i := range conns {
		conns[i] = newConnection(i, cfg.BaseURL, cfg.UserAgents[i%len(cfg.UserAgents)], cfg.TLS, cfg.HTTP1)
		defer conns[i].close()
		for j := 0; j < cfg.WatchesPerConn; j++ {
			g := len(streams)
			combo := g % (len(cfg.Resources) * len(cfg.Namespaces))
			s := &stream{
				conn: conns[i], index: g,
				res:       cfg.Resources[combo%len(cfg.Resources)],
				namespace: cfg.Namespaces[combo/len(cfg.Resources)],
				format:    cfg.Formats[g%len(cfg.Formats)],
				listFirst: cfg.ListFirst, watchList: cfg.WatchList, gzip: cfg.Gzip,
				bookmarks: cfg.Bookmarks, selector: cfg.LabelSelector,
				log: cfg.Log, established: make(chan struct{}),
			}
			if cfg.TimeoutSeconds > 0 {
				t := cfg.TimeoutSeconds
				s.timeout = func() int64 { return t }
			} else {
				s.timeout = reflectorTimeout
			}
			s.sum = StreamSummary{Index: g, Conn: i, Resource: s.res.ID(), Namespace: s.namespace, Format: s.format.String()}
			streams = append(streams, s)
		}
	}

	streamCtx, cancelStreams := context.WithCancel(ctx)
	defer cancelStreams()
	var wg sync.WaitGroup
	// Open each connection with its first stream alone, so concurrent first
	// requests cannot race into several TCP connections; then start the rest.
	for i := range conns {
		first := streams[i*cfg.WatchesPerConn]
		wg.Go(func() { first.run(streamCtx) })
		if !waitEstablished(ctx, first, cfg.EstablishWait) {
			cancelStreams()
			wg.Wait()
			return nil, fmt.Errorf("connection %d: first watch not established within %v: %v", i, cfg.EstablishWait, first.summary().Errors)
		}
		for _, s := range streams[i*cfg.WatchesPerConn+1 : (i+1)*cfg.WatchesPerConn] {
			wg.Go(func() { s.run(streamCtx) })
		}
	}
	for _, s := range streams {
		if !waitEstablished(ctx, s, cfg.EstablishWait) {
			cancelStreams()
			wg.Wait()
			return nil, fmt.Errorf("stream %d not established within %v: %v", s.index, cfg.EstablishWait, s.summary().Errors)
		}
	}

	t0 := time.Now()
	sum.StartedAt = t0.UnixNano()
	var faultWG sync.WaitGroup
	if cfg.StallStreamFor > 0 && cfg.StallStream < len(streams) {
		s := streams[cfg.StallStream]
		from, to := t0.Add(cfg.StallStreamAfter), t0.Add(cfg.StallStreamAfter+cfg.StallStreamFor)
		s.mu.Lock() // the stream is already running
		s.stallFrom, s.stallTo = from, to
		s.sum.Stalled = &Window{From: from.UnixNano(), To: to.UnixNano()}
		s.mu.Unlock()
	}
	var connStall *Window
	if cfg.StallConnFor > 0 && cfg.StallConn < len(conns) {
		c := conns[cfg.StallConn]
		from := t0.Add(cfg.StallConnAfter)
		connStall = &Window{From: from.UnixNano(), To: from.Add(cfg.StallConnFor).UnixNano()}
		faultWG.Go(func() {
			sleepCtx(ctx, time.Until(from))
			if ctx.Err() != nil {
				return
			}
			// The summary says when the gate really closed and opened
			// (the planned times are late by however long setup took).
			connStall.From = time.Now().UnixNano()
			c.gate.stall()
			sleepCtx(ctx, cfg.StallConnFor)
			connStall.To = time.Now().UnixNano()
			c.gate.resume()
		})
	}

	relisters := make([]*relister, len(conns))
	endLoad := make(chan struct{})
	var relistWG sync.WaitGroup
	if cfg.RelistInterval > 0 {
		for i := range conns {
			relisters[i] = newRelister(streams[i*cfg.WatchesPerConn : (i+1)*cfg.WatchesPerConn])
			relistWG.Go(func() { relisters[i].run(streamCtx, endLoad, cfg.RelistInterval) })
		}
	}

	var wsum *WriterSummary
	if cfg.Writer != nil {
		wc := *cfg.Writer
		wc.Log = cfg.Log
		wc.BaseURL, wc.TLS, wc.HTTP1 = cfg.BaseURL, cfg.TLS, cfg.HTTP1
		wctx, cancel := context.WithTimeout(ctx, 2*cfg.Writer.Duration+10*time.Second)
		wsum = RunWriter(wctx, wc)
		cancel()
	}
	sleepCtx(ctx, time.Until(t0.Add(cfg.Duration)))
	close(endLoad)
	relistWG.Wait()
	faultWG.Wait()
	if wsum != nil {
		drain(ctx, streams, wsum, cfg.Drain)
	}
	cancelStreams()
	wg.Wait()

	sum.FinishedAt = time.Now().UnixNano()
	sum.Writer = wsum
	for _, c := range conns {
		c.counts.mu.Lock()
		cs := ConnectionSummary{Index: c.index, UserAgent: c.userAgent, Dials: c.dials.Load(), LocalAddrs: c.addrs(), Events: c.counts.events, Bytes: c.counts.bytes}
		c.counts.mu.Unlock()
		if c.index == cfg.StallConn && connStall != nil {
			cs.Stalled = connStall
		}
		if r := relisters[c.index]; r != nil {
			cs.PeriodicLists, cs.PeriodicListErrors = r.lists.Load(), r.errors.Load()
			cs.PeriodicListWire, cs.PeriodicListDecoded = r.wire.Load(), r.decoded.Load()
			sum.Totals.PeriodicLists += cs.PeriodicLists
		}
		sum.Connections = append(sum.Connections, cs)
	}
	for _, s := range streams {
		ss := s.summary()
		sum.Streams = append(sum.Streams, ss)
		t := &sum.Totals
		t.Events += ss.Events
		t.Bookmarks += ss.Bookmarks
		t.ErrorEvents += ss.ErrorEvents
		t.Bytes += ss.Bytes
		t.RVViolations += ss.RVViolations
		t.Duplicates += ss.Duplicates
		t.Rewatches += ss.Rewatches
		t.Relists += ss.Relists
	}
	sum.Interrupted = ctx.Err() != nil
	sum.Problems = append([]string{}, problems(sum, cfg.HTTP1)...)
	return sum, nil
}

func waitEstablished(ctx context.Context, s *stream, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.established:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// drain waits until every stream has seen the writer's last revision for
// its scope, or until d passes.
func drain(ctx context.Context, streams []*stream, w *WriterSummary, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, s := range streams {
		target := int64(0)
		for sc, rev := range w.MaxRev {
			res, ns, _ := strings.Cut(sc, "/")
			if res == s.res.ID() && (s.namespace == "" || s.namespace == ns) {
				target = max(target, rev)
			}
		}
		for !s.caughtUp(target) && time.Now().Before(deadline) && ctx.Err() == nil {
			sleepCtx(ctx, 20*time.Millisecond)
		}
	}
}

// problems lists what makes the run invalid: ordering violations,
// duplicates, transport errors, extra TCP connections, writer errors.
func problems(sum *Summary, http1 bool) []string {
	var out []string
	for _, c := range sum.Connections {
		// Over HTTP/1.1 each concurrent request needs a TCP connection of
		// its own, and the pool may dial more while one goes idle.
		if c.Dials != 1 && !(http1 && c.Dials > 1) {
			out = append(out, fmt.Sprintf("connection %d: %d TCP connections, want 1", c.Index, c.Dials))
		}
	}
	for _, s := range sum.Streams {
		if s.RVViolations > 0 || s.Duplicates > 0 {
			out = append(out, fmt.Sprintf("stream %d: %d RV violations, %d duplicates", s.Index, s.RVViolations, s.Duplicates))
		}
		for _, e := range s.Errors {
			out = append(out, fmt.Sprintf("stream %d: %s", s.Index, e))
		}
	}
	// An interrupted run (SIGINT/SIGTERM) legitimately stops early.
	if w := sum.Writer; w != nil && !sum.Interrupted {
		if w.Errors > 0 {
			out = append(out, fmt.Sprintf("writer: %d failed operations", w.Errors))
		}
		if w.Via == ViaAPIServer && w.Dials != 1 && !(http1 && w.Dials > 1) {
			out = append(out, fmt.Sprintf("writer: %d TCP connections, want 1", w.Dials))
		}
		if w.Ops < w.Planned {
			out = append(out, fmt.Sprintf("writer: %d of %d planned operations done", w.Ops, w.Planned))
		}
		for _, s := range sum.Streams {
			var target int64
			for sc, rev := range w.MaxRev {
				res, ns, _ := strings.Cut(sc, "/")
				if res == s.Resource && (s.Namespace == "" || s.Namespace == ns) {
					target = max(target, rev)
				}
			}
			if s.LastRV < target {
				out = append(out, fmt.Sprintf("stream %d: last RV %d, writer reached %d", s.Index, s.LastRV, target))
			}
		}
	}
	sort.Strings(out)
	return out
}

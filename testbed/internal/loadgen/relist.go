package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// relister is -relist-interval for one connection: every interval, all at
// once, a LIST of each collection the connection's streams watch (in that
// stream's format and gzip setting), a relist storm in miniature. Informers
// relist like this when their watches fail, and every LIST of a large
// collection is a burst of bytes next to the watch streams.
type relister struct {
	streams []*stream // one per distinct collection and format
	lists   atomic.Int64
	errors  atomic.Int64
	wire    atomic.Int64
	decoded atomic.Int64
}

func newRelister(streams []*stream) *relister {
	r := &relister{}
	seen := map[string]bool{}
	for _, s := range streams {
		k := s.basePath() + " " + s.format.String()
		if !seen[k] {
			seen[k] = true
			r.streams = append(r.streams, s)
		}
	}
	return r
}

// run lists every interval until stop is closed or ctx ends. A round
// under way when stop closes completes: the load's end does not cut LISTs
// short (a tracer would see truncated responses).
func (r *relister) run(ctx context.Context, stop <-chan struct{}, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, s := range r.streams {
			wg.Go(func() {
				rs, _, err := s.doList(ctx, listPeriodic)
				if ctx.Err() != nil {
					return // interrupted by a signal: not counted
				}
				r.lists.Add(1)
				r.wire.Add(rs.WireBytes)
				r.decoded.Add(rs.Bytes)
				if err != nil {
					r.errors.Add(1)
					s.problem("periodic list: %v", err)
				}
			})
		}
		wg.Wait()
	}
}

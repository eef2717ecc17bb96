package integration

import (
	"os"
	"testing"
	"time"

	"watchtrace/testbed/internal/verify"
)

// loadDuration is the big test's load phase: WATCHTRACE_TESTBED_DURATION
// (a Go duration) or 30 s; 5 s with -short.
func loadDuration(t *testing.T) time.Duration {
	if v := os.Getenv("WATCHTRACE_TESTBED_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("WATCHTRACE_TESTBED_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 30 * time.Second
}

// TestGroundTruthComplete runs 20 connections x 10 watches against 200
// writes/s and checks that every committed etcd event reached every watch
// stream that matches it, in order, exactly once, and that watch-load
// received exactly what the ground truth says was written.
func TestGroundTruthComplete(t *testing.T) {
	dur := loadDuration(t)
	const rate = 200
	b := startBed(t, false)
	sum, logPath, code := b.runLoad("watch-load", dur+90*time.Second,
		"-conns", "20", "-watches-per-conn", "10",
		"-resources", "configmaps,secrets", "-namespaces", "ns-0,ns-1,ns-2,ns-3,*",
		"-write-rate", "200", "-duration", dur.String(), "-format", "mixed", "-drain", "20s")
	if code != 0 {
		t.Errorf("watch-load exit code %d, problems: %v", code, sum.Problems)
	}
	gt := b.stopAPI()
	ops, err := verify.ReadOps(logPath)
	if err != nil {
		t.Fatal(err)
	}
	rep := verify.Check(verify.Input{GroundTruth: gt, Ops: ops, Summary: sum})
	w := sum.Writer
	t.Logf("writer: planned %d, ops %d, committed %d (puts %d, deletes %d), revisions %d..%d, lag %s",
		w.Planned, w.Ops, w.Committed, w.Puts, w.Deletes, w.FirstRev, w.LastRev, w.Lag)
	t.Logf("ground truth: etcd events %d, streams %d (complete %d), expected %d, written %d, missing %d, unexpected %d, duplicates %d, out of order %d, type mismatches %d, bookmarks %d",
		rep.EtcdEvents, rep.Streams, rep.CompleteStreams, rep.Expected, rep.Written, rep.Missing, rep.Unexpected,
		rep.Duplicates, rep.OutOfOrder, rep.TypeMismatches, rep.Bookmarks)
	t.Logf("watch-load: events %d, bookmarks %d, bytes %d, rv violations %d, duplicates %d; %d (client, path) groups, %d mismatches",
		sum.Totals.Events, sum.Totals.Bookmarks, sum.Totals.Bytes, sum.Totals.RVViolations, sum.Totals.Duplicates,
		rep.ClientGroups, rep.ClientMismatches)
	for _, p := range rep.Problems {
		t.Errorf("verify: %s", p)
	}
	for _, p := range sum.Problems {
		t.Errorf("watch-load: %s", p)
	}

	if want := int64(rate * dur.Seconds()); w.Planned != want || w.Ops != want || w.Errors != 0 {
		t.Errorf("writer did %d ops (%d errors), want %d", w.Ops, w.Errors, want)
	}
	if int64(rep.EtcdEvents) != w.Committed || int64(rep.WriterCommitted) != w.Committed {
		t.Errorf("etcd_event lines %d, writer log %d, writer summary %d: must be equal", rep.EtcdEvents, rep.WriterCommitted, w.Committed)
	}
	if rep.Streams != 200 || rep.CompleteStreams != 200 {
		t.Errorf("%d streams (%d complete), want 200 complete", rep.Streams, rep.CompleteStreams)
	}
	// Independent expectation from the writer's per-scope counts: a
	// namespaced stream gets its namespace's events, an all-namespaces
	// stream every event of its resource.
	var want int64
	for _, s := range sum.Streams {
		for scope, n := range w.PerScope {
			res, ns := splitScope(scope)
			if res == s.Resource && (s.Namespace == "" || s.Namespace == ns) {
				want += n
			}
		}
	}
	if rep.Expected != want || rep.Written != want || sum.Totals.Events != want || rep.ClientEvents != want {
		t.Errorf("expected (ground truth) %d, written %d, received %d/%d; writer x matching watchers = %d",
			rep.Expected, rep.Written, sum.Totals.Events, rep.ClientEvents, want)
	}
	if rep.Missing != 0 || rep.Duplicates != 0 || rep.OutOfOrder != 0 || rep.Unexpected != 0 || rep.TypeMismatches != 0 {
		t.Errorf("stream deliveries are not exact")
	}
	if rep.ClientGroups != 200 || rep.ClientMismatches != 0 {
		t.Errorf("client cross-check: %d groups, %d mismatches", rep.ClientGroups, rep.ClientMismatches)
	}
	for _, c := range sum.Connections {
		if c.Dials != 1 || len(c.LocalAddrs) != 1 {
			t.Errorf("connection %d used %d TCP connections", c.Index, c.Dials)
		}
	}
}

func splitScope(s string) (resource, namespace string) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

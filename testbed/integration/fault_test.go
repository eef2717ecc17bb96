package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/loadgen"
	"watchtrace/testbed/internal/verify"
)

// Fault timing: both faults start stallAfter into the load and last
// stallFor; big objects fill a 4 MiB stream window in about a second.
const (
	stallAfter = 2 * time.Second
	stallFor   = 6 * time.Second
	// A stalled write must block at least this long to count as visible.
	minStallBlock = 1500 * time.Millisecond
	// Healthy streams must keep this bound on any single write and on
	// etcd-dispatch-to-write latency while the faults are active.
	maxHealthyBlock   = time.Second
	maxHealthyLatency = 500 * time.Millisecond
)

type streamView struct {
	open   *groundtruth.Record
	close  *groundtruth.Record
	writes []*groundtruth.Record
}

// maxBlock is the longest time one event's Write (+Flush) took.
func (s *streamView) maxBlock() time.Duration {
	var m int64
	for _, w := range s.writes {
		m = max(m, max(w.TAfter, w.TFlush)-w.TBefore)
	}
	return time.Duration(m)
}

// TestFaultModes stalls one stream (stops reading its body) and one whole
// connection (stops reading its socket) and checks that the ground truth
// shows the stall (blocked writes) while the other connections and the
// other streams on the stalled stream's connection keep flowing.
func TestFaultModes(t *testing.T) {
	b := startBed(t, false)
	total := stallAfter + stallFor + 6*time.Second
	sum, logPath, code := b.runLoad("watch-load", total+60*time.Second,
		"-conns", "4", "-watches-per-conn", "3", "-resources", "configmaps", "-namespaces", "ns-0,ns-1",
		"-write-rate", "100", "-object-size", "32768", "-duration", total.String(), "-format", "mixed",
		"-stall-stream", "0", "-stall-stream-after", stallAfter.String(), "-stall-stream-for", stallFor.String(),
		"-stall-conn", "2", "-stall-conn-after", stallAfter.String(), "-stall-conn-for", stallFor.String())
	if code != 0 {
		t.Errorf("watch-load exit code %d: %v", code, sum.Problems)
	}
	gt := b.stopAPI()

	streams := map[uint64]*streamView{}
	dispatched := map[string]int64{} // resource/rv -> etcd_event dispatch time
	var terminated []uint64
	for i := range gt {
		r := &gt[i]
		sv := streams[r.Stream]
		if sv == nil && r.Stream != 0 {
			sv = &streamView{}
			streams[r.Stream] = sv
		}
		switch r.Kind {
		case groundtruth.KindWatchOpen:
			sv.open = r
		case groundtruth.KindWatchClose:
			sv.close = r
		case groundtruth.KindWrite:
			sv.writes = append(sv.writes, r)
		case groundtruth.KindEtcdEvent:
			dispatched[fmt.Sprintf("%s/%d", r.Resource, r.Revision)] = r.T
		case groundtruth.KindTerminate:
			terminated = append(terminated, r.Stream)
		}
	}
	stalledStream := sum.Streams[0]
	if stalledStream.Stalled == nil {
		t.Fatal("watch-load did not report the stream stall")
	}
	stalledConn := sum.Connections[2]
	if stalledConn.Stalled == nil {
		t.Fatal("watch-load did not report the connection stall")
	}
	from, to := stalledConn.Stalled.From, stalledConn.Stalled.To
	// Server streams are matched to watch-load's by client address + path.
	firstWatch := func(s loadgen.StreamSummary) (addr, path string) {
		for _, r := range s.Requests {
			if r.Verb == "WATCH" {
				return r.LocalAddr, r.Path
			}
		}
		t.Fatalf("stream %d made no watch request", s.Index)
		return "", ""
	}
	find := func(addr, path string) *streamView {
		for _, sv := range streams {
			if sv.open != nil && sv.open.Client == addr && sv.open.Path == path {
				return sv
			}
		}
		t.Fatalf("no ground-truth stream for %s %s", addr, path)
		return nil
	}

	// Fault 1: the stalled stream's writes block.
	addr, path := firstWatch(stalledStream)
	sv := find(addr, path)
	t.Logf("fault 1 (stream %d stops reading for %v): longest write blocked %v; closed %q; terminated by cache: %v",
		sv.open.Stream, stallFor, sv.maxBlock(), closeReason(sv), slices.Contains(terminated, sv.open.Stream))
	if sv.maxBlock() < minStallBlock {
		t.Errorf("stalled stream: longest write %v, want >= %v", sv.maxBlock(), minStallBlock)
	}

	// Fault 2: every stream of the stalled connection blocks.
	stalledAddr := stalledConn.LocalAddrs[0]
	for _, s := range sum.Streams {
		if s.Conn != stalledConn.Index {
			continue
		}
		a, p := firstWatch(s)
		v := find(a, p)
		t.Logf("fault 2 (connection %s stops reading for %v): stream %d longest write blocked %v, %d writes during the stall; closed %q",
			stalledAddr, stallFor, v.open.Stream, v.maxBlock(), writesBetween(v, from+int64(time.Second), to), closeReason(v))
		if v.maxBlock() < minStallBlock {
			t.Errorf("stream %d on the stalled connection: longest write %v, want >= %v", v.open.Stream, v.maxBlock(), minStallBlock)
		}
	}

	// Everything else keeps flowing with small latency during the faults.
	for _, s := range sum.Streams {
		if s.Conn == stalledConn.Index || s.Index == stalledStream.Index {
			continue
		}
		a, p := firstWatch(s)
		v := find(a, p)
		n := writesBetween(v, from+int64(time.Second), to)
		var worst time.Duration
		for _, w := range v.writes {
			if w.TBefore < from || w.TBefore > to || w.EventType == "BOOKMARK" {
				continue
			}
			if d, ok := dispatched[fmt.Sprintf("%s/%s", w.Resource, w.RV)]; ok {
				worst = max(worst, time.Duration(w.TBefore-d))
			}
		}
		t.Logf("healthy stream %d (conn %d): %d writes during the stall, worst dispatch-to-write latency %v, longest write %v",
			v.open.Stream, s.Conn, n, worst, v.maxBlock())
		if n == 0 {
			t.Errorf("stream %d (conn %d) got no events during the faults", v.open.Stream, s.Conn)
		}
		if worst > maxHealthyLatency || v.maxBlock() > maxHealthyBlock {
			t.Errorf("stream %d (conn %d): latency %v / write %v too high while others are stalled", v.open.Stream, s.Conn, worst, v.maxBlock())
		}
	}

	// The run as a whole stays consistent: truncated streams hold exact
	// prefixes and the re-watches fill the rest.
	ops, err := verify.ReadOps(logPath)
	if err != nil {
		t.Fatal(err)
	}
	rep := verify.Check(verify.Input{GroundTruth: gt, Ops: ops, Summary: sum})
	t.Logf("verify: streams %d (complete %d, truncated %d), expected %d, written %d, missing %d; watch-load rewatches %d",
		rep.Streams, rep.CompleteStreams, rep.TruncatedStreams, rep.Expected, rep.Written, rep.Missing, sum.Totals.Rewatches)
	for _, p := range rep.Problems {
		t.Errorf("verify: %s", p)
	}
}

func writesBetween(v *streamView, from, to int64) int {
	n := 0
	for _, w := range v.writes {
		if w.TBefore >= from && w.TBefore <= to {
			n++
		}
	}
	return n
}

func closeReason(v *streamView) string {
	if v.close == nil {
		return "never closed"
	}
	return v.close.Reason
}

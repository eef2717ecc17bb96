// Package verify checks a testbed run end to end: that every event etcd
// committed reached every watch stream that should have it, in order,
// exactly once (from the ground-truth log), that the writer's commits match
// the etcd events the server saw, and that watch-load received exactly what
// the server says it wrote.
package verify

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"

	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/loadgen"
)

// Op is one writer operation from watch-load's log.
type Op struct {
	Kind    string `json:"kind"`
	Op      string `json:"op"`
	Key     string `json:"key"`
	Rev     int64  `json:"rev"`
	Deleted int64  `json:"deleted"`
	// Conflict: an update sent with a stale resourceVersion and refused
	// with 409 as intended (-write-via apiserver -conflict-ratio).
	Conflict bool   `json:"conflict"`
	Error    string `json:"error"`
}

// ReadOps returns the writer operations in a watch-load log.
func ReadOps(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []Op
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var op Op
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			return nil, err
		}
		if op.Kind == "op" {
			ops = append(ops, op)
		}
	}
	return ops, sc.Err()
}

// Input is what Check looks at; Ops and Summary are optional.
type Input struct {
	GroundTruth []groundtruth.Record
	Ops         []Op
	Summary     *loadgen.Summary
}

// Report is the outcome. Problems is empty for a valid run.
type Report struct {
	EtcdEvents       int   `json:"etcd_events"`        // etcd_event records without error
	WriterCommitted  int   `json:"writer_committed"`   // writer ops that created a revision
	WriterNotSeen    int   `json:"writer_not_seen"`    // committed revisions missing from etcd_event
	EtcdNotByWriter  int   `json:"etcd_not_by_writer"` // etcd_event revisions the writer did not report
	Streams          int   `json:"streams"`            // watch streams opened
	CompleteStreams  int   `json:"complete_streams"`   // streams that ran until the client left / shutdown
	TruncatedStreams int   `json:"truncated_streams"`  // streams ended early (timeout, terminated): prefix checked
	UncheckedStreams int   `json:"unchecked_streams"`  // label selector or ERROR streams: not checked
	Expected         int64 `json:"expected"`           // sum over streams of matching etcd events after start_rv
	Written          int64 `json:"written"`            // live ADDED/MODIFIED/DELETED writes
	Missing          int64 `json:"missing"`            // expected but not written
	Unexpected       int64 `json:"unexpected"`         // written but not expected
	Duplicates       int64 `json:"duplicates"`         // same RV written twice to a stream
	OutOfOrder       int64 `json:"out_of_order"`       // RV lower than the previous one
	TypeMismatches   int64 `json:"type_mismatches"`    // event type differs from the etcd event
	Initial          int64 `json:"initial"`            // initial-state ADDED writes
	Bookmarks        int64 `json:"bookmarks"`          // BOOKMARK writes
	ClientGroups     int   `json:"client_groups"`      // (client, path) groups compared with watch-load
	ClientMismatches int   `json:"client_mismatches"`  // groups whose counts or bytes differ
	ClientEvents     int64 `json:"client_events"`      // changes received by watch-load
	// api_write records: writes answered 2xx after a successful Txn, those
	// answered 409, any other failure, successful writes whose revision
	// never came back as an etcd_event, and (watch-load -write-via
	// apiserver) writer commits without an api_write at their revision.
	APIWrites         int      `json:"api_writes,omitempty"`
	APIConflicts      int      `json:"api_conflicts,omitempty"`
	APIFailures       int      `json:"api_failures,omitempty"`
	APIWritesNotSeen  int      `json:"api_writes_not_seen,omitempty"`
	WriterNotAPIWrite int      `json:"writer_not_api_write,omitempty"`
	Problems          []string `json:"problems"`
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 50 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

type etcdEvent struct {
	rev       int64
	namespace string
	eventType string
}

type streamInfo struct {
	open   *groundtruth.Record
	close  *groundtruth.Record
	writes []*groundtruth.Record
}

// Check verifies a run.
func Check(in Input) *Report {
	r := &Report{Problems: []string{}}
	byRes := map[string][]etcdEvent{}
	etcdRevs := map[int64]bool{}
	streams := map[uint64]*streamInfo{}
	var apiWrites []*groundtruth.Record
	get := func(id uint64) *streamInfo {
		s := streams[id]
		if s == nil {
			s = &streamInfo{}
			streams[id] = s
		}
		return s
	}
	for i := range in.GroundTruth {
		rec := &in.GroundTruth[i]
		switch rec.Kind {
		case groundtruth.KindEtcdEvent:
			if rec.Error != "" {
				continue
			}
			r.EtcdEvents++
			byRes[rec.Resource] = append(byRes[rec.Resource], etcdEvent{rec.Revision, rec.Namespace, rec.EventType})
			etcdRevs[rec.Revision] = true
		case groundtruth.KindWatchOpen:
			get(rec.Stream).open = rec
		case groundtruth.KindWatchClose:
			get(rec.Stream).close = rec
		case groundtruth.KindWrite:
			get(rec.Stream).writes = append(get(rec.Stream).writes, rec)
		case groundtruth.KindAPIWrite:
			apiWrites = append(apiWrites, rec)
		}
	}
	for _, evs := range byRes {
		sort.Slice(evs, func(i, j int) bool { return evs[i].rev < evs[j].rev })
	}
	if in.Ops != nil {
		checkWriter(r, in.Ops, etcdRevs)
	}
	viaAPI := in.Summary != nil && in.Summary.Writer != nil && in.Summary.Writer.Via == loadgen.ViaAPIServer
	checkAPIWrites(r, apiWrites, etcdRevs, in.Ops, viaAPI)

	ids := make([]uint64, 0, len(streams))
	for id := range streams {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		checkStream(r, id, streams[id], byRes)
	}
	if in.Summary != nil {
		checkClient(r, streams, in.Summary)
	}
	return r
}

func checkWriter(r *Report, ops []Op, etcdRevs map[int64]bool) {
	mine := map[int64]bool{}
	for _, op := range ops {
		if op.Error != "" || op.Conflict || (op.Op == "delete" && op.Deleted == 0) {
			continue
		}
		r.WriterCommitted++
		mine[op.Rev] = true
		if !etcdRevs[op.Rev] {
			r.WriterNotSeen++
		}
	}
	for rev := range etcdRevs {
		if !mine[rev] {
			r.EtcdNotByWriter++
		}
	}
	if r.WriterNotSeen > 0 {
		r.problem("%d writer commits never arrived as etcd events", r.WriterNotSeen)
	}
	if r.EtcdNotByWriter > 0 {
		r.problem("%d etcd events were not written by the writer", r.EtcdNotByWriter)
	}
}

// checkAPIWrites checks that every write the apiserver committed (a
// successful Txn) came back from etcd's watch at its revision, and with
// -write-via apiserver that each writer commit is such a write.
func checkAPIWrites(r *Report, recs []*groundtruth.Record, etcdRevs map[int64]bool, ops []Op, viaAPI bool) {
	committed := map[int64]bool{}
	for _, w := range recs {
		switch {
		case w.Status >= 200 && w.Status < 300 && w.Revision > 0 && w.EtcdCalls > 0:
			r.APIWrites++
			committed[w.Revision] = true
			if !etcdRevs[w.Revision] {
				r.APIWritesNotSeen++
			}
		case w.Status == 409:
			r.APIConflicts++
		case w.Status >= 400 || w.Status == 0:
			r.APIFailures++
		}
	}
	if r.APIWritesNotSeen > 0 {
		r.problem("%d apiserver writes never arrived as etcd events", r.APIWritesNotSeen)
	}
	if !viaAPI {
		return
	}
	for _, op := range ops {
		if op.Error != "" || op.Conflict || (op.Op == "delete" && op.Deleted == 0) {
			continue
		}
		if !committed[op.Rev] {
			r.WriterNotAPIWrite++
		}
	}
	if r.WriterNotAPIWrite > 0 {
		r.problem("%d writer commits have no api_write at their revision", r.WriterNotAPIWrite)
	}
}

func checkStream(r *Report, id uint64, s *streamInfo, byRes map[string][]etcdEvent) {
	if s.open == nil {
		r.problem("stream %d: writes without watch_open", id)
		return
	}
	r.Streams++
	sort.Slice(s.writes, func(i, j int) bool { return s.writes[i].Seq < s.writes[j].Seq })
	var live []*groundtruth.Record
	hasError := false
	for _, w := range s.writes {
		switch {
		case w.EventType == "BOOKMARK":
			r.Bookmarks++
		case w.EventType == "ERROR":
			hasError = true
		case w.Initial:
			r.Initial++
		default:
			live = append(live, w)
		}
	}
	r.Written += int64(len(live))
	if s.open.LabelSelector != "" || hasError {
		r.UncheckedStreams++
		return
	}
	var expected []etcdEvent
	for _, ev := range byRes[s.open.Resource] {
		if ev.rev > s.open.StartRV && (s.open.Namespace == "" || ev.namespace == s.open.Namespace) {
			expected = append(expected, ev)
		}
	}
	complete := s.close != nil && (s.close.Reason == groundtruth.ReasonClientGone || s.close.Reason == groundtruth.ReasonShutdown)
	if complete {
		r.CompleteStreams++
	} else {
		// Ended early by design (timeout, unresponsive watcher): it must
		// hold an unbroken prefix of what it should have received.
		r.TruncatedStreams++
		last := int64(0)
		if n := len(live); n > 0 {
			last, _ = strconv.ParseInt(live[n-1].RV, 10, 64)
		}
		cut := sort.Search(len(expected), func(i int) bool { return expected[i].rev > last })
		expected = expected[:cut]
	}
	r.Expected += int64(len(expected))

	want := make(map[int64]etcdEvent, len(expected))
	for _, ev := range expected {
		want[ev.rev] = ev
	}
	seen := make(map[int64]bool, len(live))
	prev := s.open.StartRV
	for _, w := range live {
		rv, err := strconv.ParseInt(w.RV, 10, 64)
		if err != nil {
			r.problem("stream %d: bad RV %q", id, w.RV)
			continue
		}
		switch {
		case seen[rv]:
			r.Duplicates++
		case rv < prev:
			r.OutOfOrder++
		}
		seen[rv] = true
		prev = max(prev, rv)
		ev, ok := want[rv]
		if !ok {
			r.Unexpected++
			continue
		}
		if ev.eventType != w.EventType {
			r.TypeMismatches++
		}
	}
	missing := int64(0)
	for _, ev := range expected {
		if !seen[ev.rev] {
			missing++
		}
	}
	r.Missing += missing
	if missing > 0 {
		r.problem("stream %d (%s %s ns=%q from %d, closed %q): %d of %d events missing",
			id, s.open.Client, s.open.Resource, s.open.Namespace, s.open.StartRV, closeReason(s), missing, len(expected))
	}
}

func closeReason(s *streamInfo) string {
	if s.close == nil {
		return "never closed"
	}
	return s.close.Reason
}

type counts struct{ events, bytes int64 }

// checkClient compares, per (client address, path), the server's live event
// writes with what watch-load decoded. Keys can repeat (same path on the same
// connection), so the multisets of per-request counts are compared.
func checkClient(r *Report, streams map[uint64]*streamInfo, sum *loadgen.Summary) {
	server := map[string][]counts{}
	for _, s := range streams {
		if s.open == nil {
			continue
		}
		var c counts
		for _, w := range s.writes {
			if w.EventType != "BOOKMARK" && w.EventType != "ERROR" {
				c.events++
				c.bytes += w.Bytes
			}
		}
		k := s.open.Client + " " + s.open.Path
		server[k] = append(server[k], c)
	}
	client := map[string][]counts{}
	for _, st := range sum.Streams {
		for _, req := range st.Requests {
			if req.Verb != "WATCH" || req.Status != 200 {
				continue
			}
			k := req.LocalAddr + " " + req.Path
			client[k] = append(client[k], counts{req.Changes, req.ChangeBytes})
			r.ClientEvents += req.Changes
		}
	}
	for k, cs := range client {
		r.ClientGroups++
		if !sameMultiset(cs, server[k]) {
			r.ClientMismatches++
			r.problem("client %s: watch-load received %v, server wrote %v (events, bytes)", k, cs, server[k])
		}
	}
}

func sameMultiset(a, b []counts) bool {
	if len(a) != len(b) {
		return false
	}
	less := func(x []counts) func(i, j int) bool {
		return func(i, j int) bool {
			if x[i].events != x[j].events {
				return x[i].events < x[j].events
			}
			return x[i].bytes < x[j].bytes
		}
	}
	a, b = append([]counts(nil), a...), append([]counts(nil), b...)
	sort.Slice(a, less(a))
	sort.Slice(b, less(b))
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

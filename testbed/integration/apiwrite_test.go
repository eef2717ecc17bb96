package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/loadgen"
	"watchtrace/testbed/internal/verify"
)

// watchDelay is the -etcd-watch-delay of the second run.
const watchDelay = 200 * time.Millisecond

// commitLead is how much earlier than the Txn response a watch response may
// reach the apiserver: etcd notifies its watchers while it applies the
// transaction, before the Txn's gRPC response is written, so without the
// knob the watch response is usually read first (by about 0.1 ms, up to
// 2 ms measured), and with it t_read - t_committed can be that much under
// the delay. Only this much below the delay is accepted. Measured from
// t_etcd_sent, before which etcd cannot have sent anything about the write,
// the delay holds exactly.
const commitLead = 10 * time.Millisecond

// TestTestbedRunWriteViaAPIServer runs testbed-run with etcd over TLS and
// watch-load writing through the apiserver (POST, PUT, DELETE over HTTPS,
// 10% of updates with a stale resourceVersion), once as is and once with
// -etcd-watch-delay. In the ground truth every write the apiserver
// committed has its revision among the etcd events and in the watchers'
// writes, 409 Conflicts happened, and the api_write records are
// consistent. With the delay, every committed revision is read from the
// etcd watch at least the delay after its Txn response (less etcd's lead,
// see commitLead), while the apiserver still writes each event to its
// watchers at once after reading it.
func TestTestbedRunWriteViaAPIServer(t *testing.T) {
	requireTool(t, "/usr/bin/etcd")
	for _, delay := range []time.Duration{0, watchDelay} {
		name := "no-delay"
		if delay > 0 {
			name = "etcd-watch-delay"
		}
		t.Run(name, func(t *testing.T) { testWriteViaAPIServer(t, delay) })
	}
}

func testWriteViaAPIServer(t *testing.T, delay time.Duration) {
	dir := workDir(t)
	args := []string{"-dir", dir, "-etcd-tls", "-duration", "4s"}
	if delay > 0 {
		args = append(args, "-apiserver-arg=-etcd-watch-delay="+delay.String())
	}
	args = append(args, "--", "-conns", "2", "-watches-per-conn", "3", "-namespaces", "ns-0,*", "-write-rate", "50",
		"-write-via", "apiserver", "-conflict-ratio", "0.1")
	out, errOut, err := runTool(t, 120*time.Second, filepath.Join(binDir, "testbed-run"), args...)
	var res struct {
		OK             bool           `json:"ok"`
		Error          string         `json:"error"`
		EtcdEndpoint   string         `json:"etcd_endpoint"`
		GroundTruthLog string         `json:"ground_truth_log"`
		LoadLog        string         `json:"load_log"`
		LoadSummary    string         `json:"load_summary"`
		Verify         *verify.Report `json:"verify"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("testbed-run output: %v (run error %v)\n%s\n%s", jerr, err, out, errOut)
	}
	if err != nil || !res.OK || res.Verify == nil {
		t.Fatalf("testbed-run failed: %v %s\n%s", err, res.Error, errOut)
	}
	v := res.Verify
	t.Logf("verify: %d etcd events, writer committed %d, expected %d, written %d, missing %d; api writes %d, conflicts %d, failures %d, not seen %d",
		v.EtcdEvents, v.WriterCommitted, v.Expected, v.Written, v.Missing, v.APIWrites, v.APIConflicts, v.APIFailures, v.APIWritesNotSeen)
	if !strings.HasPrefix(res.EtcdEndpoint, "https://") || v.Expected == 0 || v.Written != v.Expected || v.Missing != 0 ||
		v.APIWrites != v.WriterCommitted || v.APIWrites != v.EtcdEvents || v.APIConflicts == 0 || v.APIFailures != 0 || len(v.Problems) != 0 {
		t.Errorf("unexpected verification: %+v", *v)
	}

	raw, err := os.ReadFile(res.LoadSummary)
	if err != nil {
		t.Fatal(err)
	}
	var sum loadgen.Summary
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	w := sum.Writer
	if w == nil || w.Via != loadgen.ViaAPIServer || w.Dials != 1 || len(w.LocalAddrs) != 1 || w.Errors != 0 ||
		w.Conflicts != int64(v.APIConflicts) || w.UserAgent != loadgen.DefaultWriterUserAgent {
		t.Fatalf("writer summary: %+v", w)
	}
	ops, err := verify.ReadOps(res.LoadLog)
	if err != nil {
		t.Fatal(err)
	}

	gt, err := groundtruth.ReadFile(res.GroundTruthLog)
	if err != nil {
		t.Fatal(err)
	}
	etcdRead := map[int64]int64{}    // revision -> etcd_event.t_read
	watched := map[int64][]int64{}   // revision -> t_before of its watch writes
	var writes []*groundtruth.Record // api_write
	verbs := map[string]int{}
	var config string
	for i := range gt {
		r := &gt[i]
		switch r.Kind {
		case groundtruth.KindServerStart:
			config = r.Config
		case groundtruth.KindEtcdEvent:
			etcdRead[r.Revision] = r.TRead
		case groundtruth.KindWrite:
			if !r.Initial && r.EventType != "BOOKMARK" && r.EventType != "ERROR" {
				var rv int64
				fmt.Sscan(r.RV, &rv)
				watched[rv] = append(watched[rv], r.TBefore)
			}
		case groundtruth.KindAPIWrite:
			writes = append(writes, r)
			verbs[fmt.Sprintf("%s %s %d", r.Method, r.Verb, r.Status)]++
		}
	}
	// The config is the options struct in %+v: durations in nanoseconds.
	if want := fmt.Sprintf(" etcdWatchDelay:%d}", delay.Nanoseconds()); !strings.Contains(config, want) {
		t.Errorf("server_start config lacks %s: %s", want, config)
	}
	t.Logf("api_write: %v", verbs)
	wantMethod := map[string]string{"create": "POST", "update": "PUT", "delete": "DELETE"}
	var gaps, fromSent, spans []time.Duration
	conflicts, retried := 0, 0
	for _, r := range writes {
		if r.UserAgent != loadgen.DefaultWriterUserAgent || r.Proto != "HTTP/2.0" || r.TLS == nil || !*r.TLS ||
			r.Client != w.LocalAddrs[0] || wantMethod[r.Verb] != r.Method || (r.Resource != "configmaps" && r.Resource != "secrets") ||
			r.Name == "" || r.Key != "/registry/"+r.Resource+"/"+r.Namespace+"/"+r.Name || r.EtcdCalls < 1 || r.TResponded < r.TRequest {
			t.Errorf("api_write %+v (tls %v)", *r, r.TLS != nil && *r.TLS)
			continue
		}
		if r.Status == 409 {
			conflicts++
			if r.Verb != "update" || r.Reason != "Conflict" || r.EtcdConflicts != r.EtcdCalls || r.Revision != 0 || r.TCommitted != 0 {
				t.Errorf("409 api_write %+v", *r)
			}
			continue
		}
		if r.Status != 200 && r.Status != 201 || (r.Status == 201) != (r.Verb == "create") {
			t.Errorf("api_write status %d for %s", r.Status, r.Verb)
			continue
		}
		if !(r.TRequest <= r.TEtcdSent && r.TEtcdSent < r.TCommitted && r.TCommitted <= r.TResponded) || r.EtcdConflicts != r.EtcdCalls-1 {
			t.Errorf("api_write times or counts: %+v", *r)
		}
		if r.EtcdCalls > 1 {
			retried++
		}
		tRead, ok := etcdRead[r.Revision]
		if !ok {
			t.Errorf("revision %d (%s %s) has no etcd_event", r.Revision, r.Verb, r.Name)
			continue
		}
		if len(watched[r.Revision]) == 0 {
			t.Errorf("revision %d (%s %s) was written to no watcher", r.Revision, r.Verb, r.Name)
		}
		gaps = append(gaps, time.Duration(tRead-r.TCommitted))
		fromSent = append(fromSent, time.Duration(tRead-r.TEtcdSent))
		for _, tb := range watched[r.Revision] {
			spans = append(spans, time.Duration(tb-tRead))
		}
	}
	if conflicts == 0 || conflicts != v.APIConflicts {
		t.Errorf("%d 409 api_writes (verify counted %d)", conflicts, v.APIConflicts)
	}
	staleOps := 0
	for _, op := range ops {
		if op.Conflict {
			staleOps++
		}
	}
	if staleOps != conflicts {
		t.Errorf("watch-load logged %d refused stale updates, the server %d", staleOps, conflicts)
	}
	if len(gaps) == 0 || len(spans) == 0 {
		t.Fatal("no committed writes to measure")
	}
	slices.Sort(gaps)
	slices.Sort(fromSent)
	slices.Sort(spans)
	q := func(d []time.Duration, f float64) time.Duration { return d[int(f*float64(len(d)-1))] }
	t.Logf("%d writes (%d retried after a stale cached state); t_committed -> etcd_event.t_read: min %v, median %v, max %v; t_etcd_sent -> etcd_event.t_read: min %v; etcd_event.t_read -> write.t_before (%d watch writes): median %v, p99 %v, max %v",
		len(gaps), retried, gaps[0], q(gaps, 0.5), gaps[len(gaps)-1], fromSent[0], len(spans), q(spans, 0.5), q(spans, 0.99), spans[len(spans)-1])
	if delay > 0 {
		if fromSent[0] < delay {
			t.Errorf("Txn sent to watch read: min %v, want >= %v", fromSent[0], delay)
		}
		if gaps[0] < delay-commitLead || q(gaps, 0.5) < delay-2*time.Millisecond || q(gaps, 0.5) > delay+50*time.Millisecond {
			t.Errorf("commit to watch read: min %v, median %v; want every one >= %v - %v and the median about %v", gaps[0], q(gaps, 0.5), delay, commitLead, delay)
		}
	} else if q(gaps, 0.5) > 50*time.Millisecond {
		t.Errorf("without the knob, commit to watch read has median %v", q(gaps, 0.5))
	}
	// The knob delays the read, not what follows it.
	if q(spans, 0.5) > 20*time.Millisecond || spans[len(spans)-1] > 150*time.Millisecond {
		t.Errorf("etcd read to watch write: median %v, max %v; the apiserver's own span must stay small", q(spans, 0.5), spans[len(spans)-1])
	}
}

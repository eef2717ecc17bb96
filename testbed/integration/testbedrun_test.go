package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/loadgen"
	"watchtrace/testbed/internal/verify"
)

// TestTestbedRunEtcdTLS runs the orchestrator end to end with etcd over TLS
// (client certificates), so the fake apiserver's and the writer's gRPC go
// over HTTP/2 + TLS, and checks its built-in verification passed.
func TestTestbedRunEtcdTLS(t *testing.T) {
	requireTool(t, "/usr/bin/etcd")
	dir := workDir(t)
	out, errOut, err := runTool(t, 120*time.Second, filepath.Join(binDir, "testbed-run"),
		"-dir", dir, "-etcd-tls", "-duration", "3s", "--",
		"-conns", "2", "-watches-per-conn", "3", "-namespaces", "ns-0,*", "-write-rate", "50")
	var res struct {
		OK           bool   `json:"ok"`
		Error        string `json:"error"`
		EtcdEndpoint string `json:"etcd_endpoint"`
		Verify       *struct {
			EtcdEvents int      `json:"etcd_events"`
			Expected   int64    `json:"expected"`
			Written    int64    `json:"written"`
			Missing    int64    `json:"missing"`
			Problems   []string `json:"problems"`
		} `json:"verify"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("testbed-run output: %v (run error %v)\n%s\n%s", jerr, err, out, errOut)
	}
	if err != nil || !res.OK || res.Verify == nil {
		t.Fatalf("testbed-run failed: %v %s\n%s", err, res.Error, errOut)
	}
	v := res.Verify
	t.Logf("testbed-run with etcd %s: %d etcd events, expected %d, written %d, missing %d",
		res.EtcdEndpoint, v.EtcdEvents, v.Expected, v.Written, v.Missing)
	if res.EtcdEndpoint[:8] != "https://" || v.EtcdEvents != 150 || v.Expected == 0 || v.Expected != v.Written || v.Missing != 0 || len(v.Problems) != 0 {
		t.Errorf("unexpected verification: %+v", *v)
	}
}

// TestTestbedRunCBORGzipWatchList runs the orchestrator with CBOR watch-list
// streams that accept gzip and a relist every 500 ms (gzip from 1 byte), and
// checks through the ground truth that CBOR items were written to gzip
// streams, that each watch-list's initial events ended with the
// initial-events-end bookmark, that the LISTs went out gzip-compressed and
// smaller, and that testbed-run's own verification passed.
func TestTestbedRunCBORGzipWatchList(t *testing.T) {
	requireTool(t, "/usr/bin/etcd")
	dir := workDir(t)
	out, errOut, err := runTool(t, 120*time.Second, filepath.Join(binDir, "testbed-run"),
		"-dir", dir, "-duration", "3s", "-apiserver-arg=-gzip-min-bytes=1", "--",
		"-conns", "2", "-watches-per-conn", "3", "-namespaces", "ns-0,*", "-write-rate", "50",
		"-format", "cbor", "-gzip", "-mode", "watchlist", "-relist-interval", "500ms")
	var res struct {
		OK             bool           `json:"ok"`
		Error          string         `json:"error"`
		GroundTruthLog string         `json:"ground_truth_log"`
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
	t.Logf("verify: %d etcd events, %d streams, expected %d, written %d, client events %d, mismatches %d",
		v.EtcdEvents, v.Streams, v.Expected, v.Written, v.ClientEvents, v.ClientMismatches)
	if v.Streams != 6 || v.Expected == 0 || v.Written != v.Expected || v.Missing != 0 || v.ClientGroups != 6 || v.ClientMismatches != 0 || len(v.Problems) != 0 {
		t.Errorf("unexpected verification: %+v", *v)
	}
	gt, err := groundtruth.ReadFile(res.GroundTruthLog)
	if err != nil {
		t.Fatal(err)
	}
	opens := map[uint64]*groundtruth.Record{}
	endBookmarks := map[uint64]int{}
	var cborItems, gzipLists, smaller int
	for i := range gt {
		r := &gt[i]
		switch r.Kind {
		case groundtruth.KindWatchOpen:
			opens[r.Stream] = r
			if r.ContentType != "application/cbor-seq" || r.ContentEncoding != "gzip" || !r.SendInitialEvents {
				t.Errorf("stream %d opened as %q %q send_initial_events=%v", r.Stream, r.ContentType, r.ContentEncoding, r.SendInitialEvents)
			}
		case groundtruth.KindWrite:
			if o := opens[r.Stream]; o != nil && o.ContentType == "application/cbor-seq" && r.WireBytes != nil && r.Bytes > 0 {
				cborItems++
			}
			if r.InitialEventsEnd {
				endBookmarks[r.Stream]++
				if o := opens[r.Stream]; r.EventType != "BOOKMARK" || o == nil || r.RV != strconv.FormatInt(o.StartRV, 10) ||
					r.Seq != int64(o.InitialEvents)+1 || r.InitialSyncNs != r.TAfter-o.TRequest {
					t.Errorf("stream %d: initial-events-end write %+v", r.Stream, *r)
				}
			}
		case groundtruth.KindList:
			if r.ContentType != "application/cbor" || r.ContentEncoding != "gzip" || r.DecodedBytes == 0 {
				t.Errorf("list %s: %q %q, %d decoded bytes", r.Path, r.ContentType, r.ContentEncoding, r.DecodedBytes)
				continue
			}
			gzipLists++
			if r.Bytes < r.DecodedBytes {
				smaller++
			} else if r.DecodedBytes >= 512 {
				t.Errorf("list %s: gzip %d bytes, decoded %d", r.Path, r.Bytes, r.DecodedBytes)
			}
		}
	}
	t.Logf("%d CBOR watch items, %d initial-events-end bookmarks, %d gzip LISTs (%d smaller than decoded)", cborItems, len(endBookmarks), gzipLists, smaller)
	if len(opens) != 6 || cborItems < int(v.Written) || gzipLists == 0 || smaller == 0 {
		t.Errorf("want 6 watch-list streams, >= %d CBOR items, gzip LISTs mostly smaller", v.Written)
	}
	for id := range opens {
		if endBookmarks[id] != 1 {
			t.Errorf("stream %d: %d initial-events-end bookmarks, want 1", id, endBookmarks[id])
		}
	}
	raw, err := os.ReadFile(res.LoadSummary)
	if err != nil {
		t.Fatal(err)
	}
	var sum loadgen.Summary
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Totals.PeriodicLists == 0 {
		t.Error("no periodic LISTs")
	}
	for _, s := range sum.Streams {
		if len(s.Requests) == 0 || !s.Requests[0].SendInitialEvents || s.Requests[0].InitialEventsEndAt == 0 || s.Requests[0].ContentEncoding != "gzip" {
			t.Errorf("stream %d: first request %+v", s.Index, s.Requests)
		}
	}
}

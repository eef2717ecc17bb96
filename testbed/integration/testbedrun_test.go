package integration

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
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

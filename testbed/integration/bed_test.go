package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/harness"
	"watchtrace/testbed/internal/loadgen"
)

// bed is a running etcd + fake-apiserver for one test.
type bed struct {
	t    *testing.T
	dir  string
	etcd *harness.Etcd
	api  *harness.APIServer
}

// workDir returns a per-test directory on tmpfs when available (cheap etcd
// fsyncs, large logs in memory). It is removed unless the test failed.
func workDir(t *testing.T) string {
	t.Helper()
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "watchtrace-it-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("keeping %s for inspection", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

func requireTool(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("required tool %s is not installed: %v", path, err)
	}
}

func startBed(t *testing.T, etcdTLS bool, apiArgs ...string) *bed {
	t.Helper()
	requireTool(t, harness.EtcdBinary)
	b := &bed{t: t, dir: workDir(t)}
	var err error
	b.etcd, err = harness.StartEtcd(harness.EtcdOptions{Dir: filepath.Join(b.dir, "etcd"), TLS: etcdTLS})
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := b.etcd.Stop(10 * time.Second); err != nil {
			t.Errorf("stopping etcd: %v", err)
		}
	})
	logDir := filepath.Join(b.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b.api, err = harness.StartAPIServer(filepath.Join(binDir, "fake-apiserver"), filepath.Join(b.dir, "state"), logDir,
		30*time.Second, append(b.etcd.APIServerFlags(), apiArgs...)...)
	if err != nil {
		t.Fatalf("starting fake-apiserver: %v", err)
	}
	t.Cleanup(func() {
		if err := b.api.Stop(15 * time.Second); err != nil {
			t.Errorf("stopping fake-apiserver: %v", err)
		}
	})
	return b
}

// stopAPI stops the server gracefully and returns its complete ground truth.
func (b *bed) stopAPI() []groundtruth.Record {
	b.t.Helper()
	if err := b.api.Stop(15 * time.Second); err != nil {
		b.t.Fatalf("fake-apiserver did not stop cleanly: %v; stderr: %s", err, b.api.Tail(2000))
	}
	recs, err := groundtruth.ReadFile(b.api.State.GroundTruthLog)
	if err != nil {
		b.t.Fatal(err)
	}
	if len(recs) == 0 || recs[len(recs)-1].Kind != groundtruth.KindServerStop {
		b.t.Fatalf("ground truth does not end with server_stop")
	}
	return recs
}

// runLoad runs watch-load to completion and returns its summary, the path
// of its log and its exit code.
func (b *bed) runLoad(name string, timeout time.Duration, args ...string) (*loadgen.Summary, string, int) {
	b.t.Helper()
	logPath := filepath.Join(b.dir, name+".jsonl")
	sumPath := filepath.Join(b.dir, name+"-summary.json")
	all := append([]string{"-state-dir", b.api.StateDir, "-log", logPath, "-summary", sumPath}, b.etcdLoadFlags()...)
	p, err := harness.Start(name, filepath.Join(b.dir, "logs"), filepath.Join(binDir, "watch-load"), append(all, args...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := p.Wait(timeout); err != nil && !p.Exited() {
		p.Stop(10 * time.Second)
		b.t.Fatalf("watch-load did not finish: %v", err)
	}
	raw, err := os.ReadFile(sumPath)
	if err != nil {
		b.t.Fatalf("no watch-load summary (exit %d): %v; stderr: %s", p.ExitCode(), err, p.Tail(2000))
	}
	var sum loadgen.Summary
	if err := json.Unmarshal(raw, &sum); err != nil {
		b.t.Fatal(err)
	}
	return &sum, logPath, p.ExitCode()
}

func (b *bed) etcdLoadFlags() []string {
	f := []string{"-etcd", b.etcd.Endpoint}
	if b.etcd.CAFile != "" {
		f = append(f, "-etcd-ca", b.etcd.CAFile, "-etcd-cert", b.etcd.ClientCert, "-etcd-key", b.etcd.ClientKey)
	}
	return f
}

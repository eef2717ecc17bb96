// Package integration runs the testbed end to end against a real etcd:
// completeness of the ground truth under load, the two fault modes, and
// cross-checks of the wire format with independent tools (tshark, kubectl,
// etcdctl, h2load). Missing tools make tests fail, never skip.
package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"watchtrace/testbed/internal/harness"
)

// binDir holds fake-apiserver, watch-load and testbed-run built for this run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "watchtrace-testbed-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Tests run in testbed/integration; the module root is its parent.
	if err := harness.Build(filepath.Dir(wd), dir); err != nil {
		fmt.Fprintln(os.Stderr, "building the testbed:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"watchtrace/testbed/internal/certs"
	"watchtrace/testbed/internal/statefile"
)

// APIServer is a running fake-apiserver.
type APIServer struct {
	*Process
	StateDir string
	State    *statefile.State
}

// StartAPIServer runs the fake-apiserver binary with -state-dir and the
// given flags, and waits until its state file names this process and
// /readyz answers over HTTPS.
func StartAPIServer(bin, stateDir, logDir string, timeout time.Duration, args ...string) (*APIServer, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	// A stale state file from an earlier run must not be mistaken for ours.
	if err := os.Remove(statefile.Path(stateDir)); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	p, err := Start("fake-apiserver", logDir, bin, append([]string{"-state-dir", stateDir}, args...)...)
	if err != nil {
		return nil, err
	}
	a := &APIServer{Process: p, StateDir: stateDir}
	if err := a.waitReady(timeout); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("fake-apiserver not ready: %w; stderr: %s", err, p.Tail(2000))
	}
	return a, nil
}

func (a *APIServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if a.Exited() {
			return fmt.Errorf("exited: %v", a.Err())
		}
		st, err := statefile.Read(a.StateDir)
		if err == nil && st.Pid == a.Pid() {
			a.State = st
			return a.probe()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no state file within %v", timeout)
}

func (a *APIServer) probe() error {
	tc, err := certs.ClientTLS(a.State.CAFile, "", "")
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+a.State.HTTPSAddr+"/readyz", nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

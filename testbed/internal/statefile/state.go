// Package statefile is the contract between fake-apiserver and the tools
// that drive it: the server writes state.json (addresses chosen at start,
// CA, kubeconfig, ground-truth log path) into its state directory, and
// watch-load, testbed-run and the tests read it instead of parsing output.
package statefile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the state file's name inside the state directory.
const FileName = "state.json"

// State describes a running fake-apiserver.
type State struct {
	Pid            int      `json:"pid"`
	HTTPSAddr      string   `json:"https_addr"`         // 127.0.0.1:port (TLS, ALPN h2 + http/1.1)
	H2CAddr        string   `json:"h2c_addr,omitempty"` // 127.0.0.1:port (cleartext, HTTP/2 prior knowledge + HTTP/1.1)
	CAFile         string   `json:"ca_file"`
	Kubeconfig     string   `json:"kubeconfig"`
	GroundTruthLog string   `json:"ground_truth_log"`
	EtcdEndpoint   string   `json:"etcd_endpoint"`
	Resources      []string `json:"resources"`
	StartedAt      int64    `json:"started_at"` // Unix ns
}

// Path returns the state file path in dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Write stores s atomically (write + rename) so readers never see a
// partial file.
func Write(dir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := Path(dir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, Path(dir))
}

// Read loads the state file from dir.
func Read(dir string) (*State, error) {
	b, err := os.ReadFile(Path(dir))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", Path(dir), err)
	}
	return &s, nil
}

// WriteKubeconfig writes a kubeconfig for server (https URL) trusting
// caFile. The token is a placeholder: the fake apiserver does no authn, but
// kubectl wants a user entry.
func WriteKubeconfig(path, server, caFile string) error {
	const tmpl = `apiVersion: v1
kind: Config
clusters:
- name: watchtrace-testbed
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: watchtrace-testbed
  user:
    token: watchtrace-testbed-unused
contexts:
- name: watchtrace-testbed
  context:
    cluster: watchtrace-testbed
    user: watchtrace-testbed
    namespace: default
current-context: watchtrace-testbed
`
	return os.WriteFile(path, fmt.Appendf(nil, tmpl, server, caFile), 0o600)
}

package harness

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"watchtrace/testbed/internal/certs"
	"watchtrace/testbed/internal/etcdgrpc"
)

// EtcdBinary is Debian's etcd 3.4.
const EtcdBinary = "/usr/bin/etcd"

// Etcd is a running single-member etcd on loopback.
type Etcd struct {
	*Process
	Endpoint string
	DataDir  string
	// TLS material when started with TLS (client certs required).
	CAFile, ClientCert, ClientKey string
}

// EtcdOptions configures StartEtcd.
type EtcdOptions struct {
	Dir string // data and logs go here
	TLS bool   // serve clients over TLS with client-certificate auth
	// ProgressNotifyInterval, if set, shortens etcd's watch progress
	// notifications (default 10m).
	ProgressNotifyInterval time.Duration
	ReadyTimeout           time.Duration
}

// StartEtcd starts etcd on free loopback ports and waits until a gRPC
// Range succeeds. A missing etcd binary is an error, never a skip.
func StartEtcd(o EtcdOptions) (*Etcd, error) {
	if _, err := exec.LookPath(EtcdBinary); err != nil {
		return nil, fmt.Errorf("etcd not found at %s (Debian package etcd-server): %w", EtcdBinary, err)
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 20 * time.Second
	}
	var lastErr error
	// Free ports are probed then released, so another process may take one
	// before etcd binds it; retry a few times on early exit.
	for attempt := 0; attempt < 3; attempt++ {
		e, err := startEtcdOnce(o, attempt)
		if err == nil {
			return e, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func startEtcdOnce(o EtcdOptions, attempt int) (*Etcd, error) {
	clientPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	e := &Etcd{DataDir: filepath.Join(o.Dir, "etcd-data-"+strconv.Itoa(attempt))}
	scheme := "http"
	var tlsConf *tls.Config
	args := []string{
		"--name", "testbed",
		"--data-dir", e.DataDir,
		"--listen-peer-urls", "http://127.0.0.1:" + strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:" + strconv.Itoa(peerPort),
		"--initial-cluster", "testbed=http://127.0.0.1:" + strconv.Itoa(peerPort),
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
	}
	if o.ProgressNotifyInterval > 0 {
		args = append(args, "--experimental-watch-progress-notify-interval", o.ProgressNotifyInterval.String())
	}
	if o.TLS {
		scheme = "https"
		b, err := certs.Generate(filepath.Join(o.Dir, "etcd-pki"))
		if err != nil {
			return nil, err
		}
		e.CAFile, e.ClientCert, e.ClientKey = b.CAFile, b.ClientCert, b.ClientKey
		args = append(args, "--cert-file", b.ServerCert, "--key-file", b.ServerKey,
			"--trusted-ca-file", b.CAFile, "--client-cert-auth")
		if tlsConf, err = certs.ClientTLS(b.CAFile, b.ClientCert, b.ClientKey); err != nil {
			return nil, err
		}
	}
	e.Endpoint = scheme + "://127.0.0.1:" + strconv.Itoa(clientPort)
	args = append(args, "--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint)
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	p, err := Start("etcd", o.Dir, EtcdBinary, args...)
	if err != nil {
		return nil, err
	}
	e.Process = p
	if err := e.waitReady(tlsConf, o.ReadyTimeout); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("etcd not ready: %w; stderr: %s", err, p.Tail(2000))
	}
	return e, nil
}

func (e *Etcd) waitReady(tlsConf *tls.Config, timeout time.Duration) error {
	c, err := etcdgrpc.New(e.Endpoint, tlsConf)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if e.Exited() {
			return fmt.Errorf("etcd exited: %v", e.Err())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, lastErr = c.Range(ctx, []byte("/watchtrace-testbed/ready"), nil)
		cancel()
		if lastErr == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no successful Range within %v: %v", timeout, lastErr)
}

// ClientTLS returns the client TLS config for a TLS etcd, nil otherwise.
func (e *Etcd) ClientTLS() (*tls.Config, error) {
	if e.CAFile == "" {
		return nil, nil
	}
	return certs.ClientTLS(e.CAFile, e.ClientCert, e.ClientKey)
}

// Client returns a gRPC client for this etcd.
func (e *Etcd) Client() (*etcdgrpc.Client, error) {
	tc, err := e.ClientTLS()
	if err != nil {
		return nil, err
	}
	return etcdgrpc.New(e.Endpoint, tc)
}

// APIServerFlags are the fake-apiserver flags pointing at this etcd.
func (e *Etcd) APIServerFlags() []string {
	f := []string{"-etcd", e.Endpoint}
	if e.CAFile != "" {
		f = append(f, "-etcd-ca", e.CAFile, "-etcd-cert", e.ClientCert, "-etcd-key", e.ClientKey)
	}
	return f
}

// FreePort returns a currently unused loopback TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

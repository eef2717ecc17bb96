// Package etcdgrpc is a hand-written etcd v3 gRPC client built on Go's
// net/http HTTP/2 client, so that the testbed talks to a real etcd the way
// kube-apiserver does (gRPC over HTTP/2, one long-lived Watch stream per
// resource) without any third-party module.
//
// gRPC over HTTP/2 is simple enough to do by hand: a POST to /<service>/<method>
// with content-type application/grpc and te: trailers, a body made of
// length-prefixed messages (1-byte compressed flag, 4-byte big-endian length,
// protobuf bytes), and a grpc-status trailer at the end.
package etcdgrpc

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// UserAgent is sent on every gRPC request. It does not pretend to be grpc-go
// so traces make clear which client produced the traffic.
const UserAgent = "watchtrace-testbed-etcdgrpc/1.0"

// Client is an etcd v3 client over one HTTP/2 connection (the transport
// multiplexes every call as a stream, like a grpc-go ClientConn).
type Client struct {
	base string // scheme://host:port without trailing slash
	http *http.Client
	tr   *http.Transport
}

// Options are optional Client settings.
type Options struct {
	// ReadDelay > 0 delays every read of the connection's socket until its
	// bytes have been queued for this long (see delayConn): responses
	// reach the client ReadDelay late while requests leave at once. Linux
	// (amd64, arm64) only.
	ReadDelay time.Duration
}

// New returns a Client for endpoint ("http://127.0.0.1:2379" or
// "https://..."). tlsConf is required for https endpoints and ignored for
// http ones, which use cleartext HTTP/2 with prior knowledge (what grpc-go
// does for insecure credentials).
func New(endpoint string, tlsConf *tls.Config) (*Client, error) {
	return NewWithOptions(endpoint, tlsConf, Options{})
}

// NewWithOptions is New with Options.
func NewWithOptions(endpoint string, tlsConf *tls.Config, o Options) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("etcd endpoint %q: %w", endpoint, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("etcd endpoint %q: no host", endpoint)
	}
	var protocols http.Protocols
	tr := &http.Transport{}
	switch u.Scheme {
	case "http":
		protocols.SetUnencryptedHTTP2(true)
	case "https":
		if tlsConf == nil {
			return nil, fmt.Errorf("etcd endpoint %q needs a TLS config", endpoint)
		}
		protocols.SetHTTP2(true)
		tr.TLSClientConfig = tlsConf.Clone()
	default:
		return nil, fmt.Errorf("etcd endpoint %q: scheme must be http or https", endpoint)
	}
	tr.Protocols = &protocols
	if o.ReadDelay > 0 {
		if !delaySupported {
			return nil, fmt.Errorf("etcd read delay: not supported on this platform")
		}
		d := &net.Dialer{}
		delay := o.ReadDelay
		// TLS, if any, is layered by the transport over the delayed
		// socket, so ciphertext is read late and plaintext with it.
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			dc, err := newDelayConn(c.(*net.TCPConn), delay)
			if err != nil {
				c.Close()
				return nil, err
			}
			return dc, nil
		}
	}
	// grpc-go keeps a single connection per target; so do we, by never
	// letting the transport open a second one for concurrency.
	tr.HTTP2 = &http.HTTP2Config{StrictMaxConcurrentRequests: true}
	return &Client{
		base: u.Scheme + "://" + u.Host,
		http: &http.Client{Transport: tr},
		tr:   tr,
	}, nil
}

// Close releases idle connections. Open streams must be closed first.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

func (c *Client) newRequest(ctx context.Context, method string, body interface {
	Read([]byte) (int, error)
}) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+method, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", UserAgent)
	return req, nil
}

// Status is a non-OK gRPC status returned by the server.
type Status struct {
	Code    string
	Message string
}

func (s *Status) Error() string {
	return fmt.Sprintf("grpc status %s: %s", s.Code, s.Message)
}

// statusFrom extracts grpc-status from trailers, or from headers for a
// "trailers-only" response (an error reported before any message).
func statusFrom(resp *http.Response) error {
	code := resp.Trailer.Get("Grpc-Status")
	msg := resp.Trailer.Get("Grpc-Message")
	if code == "" {
		code = resp.Header.Get("Grpc-Status")
		msg = resp.Header.Get("Grpc-Message")
	}
	if code == "" {
		return fmt.Errorf("grpc: response without grpc-status")
	}
	if code != "0" {
		if m, err := url.PathUnescape(msg); err == nil {
			msg = m
		}
		return &Status{Code: code, Message: msg}
	}
	return nil
}

func checkHTTP(resp *http.Response) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("grpc: HTTP status %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return fmt.Errorf("grpc: unexpected content-type %q", ct)
	}
	return nil
}

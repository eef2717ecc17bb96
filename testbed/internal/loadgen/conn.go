package loadgen

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connection is one HTTP/2 connection: its own http.Transport, so all its
// streams share one TCP connection, as a client-go clientset does (client-go
// caches one transport per TLS config).
type connection struct {
	index     int
	userAgent string
	baseURL   string
	http1     bool // HTTP/1.1 only
	client    *http.Client
	tr        *http.Transport
	gate      gate
	dials     atomic.Int64
	counts    eventCounts

	mu         sync.Mutex
	localAddrs []string
}

func newConnection(index int, baseURL, userAgent string, tlsConf *tls.Config, http1 bool) *connection {
	c := &connection{index: index, userAgent: userAgent, baseURL: baseURL, http1: http1}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second} // client-go's dialer
	dial := func(ctx context.Context, network, addr string) (*stallConn, error) {
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.dials.Add(1)
		c.mu.Lock()
		c.localAddrs = append(c.localAddrs, raw.LocalAddr().String())
		c.mu.Unlock()
		return newStallConn(raw, &c.gate), nil
	}
	var p http.Protocols
	tr := &http.Transport{
		MaxIdleConnsPerHost: 25, // client-go transport defaults
		TLSHandshakeTimeout: 10 * time.Second,
		// client-go's HTTP/2 health check (HTTP2_READ_IDLE_TIMEOUT_SECONDS,
		// HTTP2_PING_TIMEOUT_SECONDS defaults).
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
	if tlsConf != nil {
		p.SetHTTP1(true)
		conf := tlsConf.Clone()
		conf.NextProtos = []string{"http/1.1"}
		if !http1 {
			p.SetHTTP2(true)
			conf.NextProtos = []string{"h2", "http/1.1"}
		}
		// The stall wrapper must sit under TLS so that blocking it stops the
		// socket reads; the transport still sees a *tls.Conn and negotiates
		// h2 from its ALPN state.
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			sc, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := conf
			if c.ServerName == "" {
				// Custom dialers must set SNI/verification name themselves.
				c = conf.Clone()
				c.ServerName, _, _ = net.SplitHostPort(addr)
			}
			tc := tls.Client(sc, c)
			if err := tc.HandshakeContext(ctx); err != nil {
				sc.Close()
				return nil, err
			}
			return tc, nil
		}
	} else {
		if http1 {
			p.SetHTTP1(true)
		} else {
			p.SetUnencryptedHTTP2(true)
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dial(ctx, network, addr)
		}
	}
	tr.Protocols = &p
	c.tr = tr
	c.client = &http.Client{Transport: tr}
	return c
}

// wantProtoMajor is the HTTP major version the connection must speak.
func (c *connection) wantProtoMajor() int {
	if c.http1 {
		return 1
	}
	return 2
}

func (c *connection) addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.localAddrs...)
}

func (c *connection) close() { c.tr.CloseIdleConnections() }

// eventCounts are per-connection totals, updated by its streams.
type eventCounts struct {
	mu     sync.Mutex
	events int64
	bytes  int64
}

func (c *connection) addEvent(bytes int64, isEvent bool) {
	c.counts.mu.Lock()
	defer c.counts.mu.Unlock()
	c.counts.bytes += bytes
	if isEvent {
		c.counts.events++
	}
}

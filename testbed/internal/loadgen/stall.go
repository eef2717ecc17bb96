package loadgen

import (
	"net"
	"sync"
)

// gate blocks callers while closed ("stalled"). Used to stop reading a
// connection's socket so the kernel receive buffer and TCP window fill up.
type gate struct {
	mu      sync.Mutex
	blocked chan struct{} // nil when open; closed on resume
}

func (g *gate) stall() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = make(chan struct{})
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked != nil {
		close(g.blocked)
		g.blocked = nil
	}
}

// wait returns when the gate is open or done is closed.
func (g *gate) wait(done <-chan struct{}) {
	g.mu.Lock()
	ch := g.blocked
	g.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-done:
	}
}

// stallConn is the raw TCP connection under TLS (or under h2c). Blocking its
// Read stops the HTTP/2 client's read loop for the whole connection: every
// stream on it stalls, the server's TCP send buffer fills, and the
// connection reaches a TCP zero window.
type stallConn struct {
	net.Conn
	g      *gate
	closed chan struct{}
	once   sync.Once
}

func newStallConn(c net.Conn, g *gate) *stallConn {
	return &stallConn{Conn: c, g: g, closed: make(chan struct{})}
}

func (c *stallConn) Read(p []byte) (int, error) {
	c.g.wait(c.closed)
	return c.Conn.Read(p)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

//go:build linux && (amd64 || arm64)

package etcdgrpc

import (
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// delayConn holds back a TCP connection's incoming bytes: a read(2) of the
// socket returns bytes only once they have sat in the kernel's receive
// queue for delay. It is the fault knob behind fake-apiserver's
// -etcd-watch-delay: a tracer timing the read syscall that returns a Watch
// response sees it delay after etcd sent it, as over a slow link, while
// writes to etcd (window updates, the watch create) leave at once.
//
// A second descriptor of the same socket (a dup) is watched by a monitor
// goroutine through the runtime's poller: at every wake-up it records the
// time and how many bytes have arrived so far (bytes already read plus
// SIOCINQ, the unread bytes queued). Read then reads exactly the bytes that
// arrived at least delay ago, so every byte is read delay after it
// arrived, whatever the rate, and no data is read earlier. The monitor
// never reads the socket; it only asks ioctl(SIOCINQ) and
// getsockopt(TCP_INFO).
type delayConn struct {
	*net.TCPConn // Write, Close, addresses and deadlines; Read is wrapped
	delay        time.Duration
	mon          *net.TCPConn // the dup the monitor waits on

	mu       sync.Mutex
	consumed int64     // bytes returned by read(2) so far
	lastUpto int64     // bytes known to have arrived
	arrivals []arrival // not yet fully read, in order
	ended    bool      // FIN or error seen: once the queue is drained, reads pass through

	notify    chan struct{} // cap 1: the monitor saw something new
	closed    chan struct{}
	closeOnce sync.Once
}

type arrival struct {
	at   time.Time
	upto int64 // bytes arrived in total by then
}

// siocinq is SIOCINQ (= FIONREAD, TIOCINQ) on linux/amd64 and arm64.
const siocinq = 0x541B

// tcpEstablished is TCP_ESTABLISHED, the first byte (tcpi_state) of
// struct tcp_info.
const tcpEstablished = 1

const delaySupported = true

func newDelayConn(tc *net.TCPConn, delay time.Duration) (net.Conn, error) {
	f, err := tc.File()
	if err != nil {
		return nil, err
	}
	fc, err := net.FileConn(f) // another dup, non-blocking, on the poller
	f.Close()
	if err != nil {
		return nil, err
	}
	mon := fc.(*net.TCPConn)
	rc, err := mon.SyscallConn()
	if err != nil {
		mon.Close()
		return nil, err
	}
	c := &delayConn{TCPConn: tc, delay: delay, mon: mon, notify: make(chan struct{}, 1), closed: make(chan struct{})}
	go c.monitor(rc)
	return c, nil
}

func (c *delayConn) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// monitor records arrivals until the peer ends the connection, the socket
// fails or the conn is closed.
func (c *delayConn) monitor(rc syscall.RawConn) {
	rc.Read(func(fd uintptr) bool {
		// The queue is measured under the lock that Read holds across its
		// read(2), so that consumed + SIOCINQ counts every byte once.
		c.mu.Lock()
		var inq int32
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, siocinq, uintptr(unsafe.Pointer(&inq)))
		var info [8]byte // tcpi_state is the first byte
		l := uint32(len(info))
		_, _, errno2 := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
		now := time.Now()
		changed := false
		if errno == 0 {
			if upto := c.consumed + int64(inq); upto > c.lastUpto {
				c.arrivals = append(c.arrivals, arrival{now, upto})
				c.lastUpto = upto
				changed = true
			}
		}
		if errno != 0 || errno2 != 0 || info[0] != tcpEstablished {
			c.ended, changed = true, true
		}
		ended := c.ended
		c.mu.Unlock()
		if changed {
			c.signal()
		}
		select {
		case <-c.closed:
			return true
		default:
		}
		return ended // false: wait for the socket to become readable again
	})
}

// Read returns bytes that arrived at least delay ago, waiting for them if
// needed.
func (c *delayConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.mu.Lock()
		now := time.Now()
		allowed := c.consumed
		for _, a := range c.arrivals {
			if a.at.Add(c.delay).After(now) {
				break
			}
			allowed = a.upto
		}
		if allowed > c.consumed {
			// The bytes are queued, so this read(2) returns at once; the
			// lock keeps the monitor's byte count consistent with it.
			n, err := c.TCPConn.Read(p[:min(int64(len(p)), allowed-c.consumed)])
			c.consumed += int64(n)
			i := 0
			for i < len(c.arrivals) && c.arrivals[i].upto <= c.consumed {
				i++
			}
			c.arrivals = append(c.arrivals[:0], c.arrivals[i:]...)
			c.mu.Unlock()
			return n, err
		}
		wait := time.Duration(-1)
		if len(c.arrivals) > 0 {
			wait = c.arrivals[0].at.Add(c.delay).Sub(now)
		}
		ended := c.ended
		c.mu.Unlock()
		switch {
		case wait >= 0:
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.closed:
				t.Stop()
				return 0, net.ErrClosed
			}
		case ended:
			return c.TCPConn.Read(p) // EOF or the socket's error
		default:
			select {
			case <-c.notify:
			case <-c.closed:
				return 0, net.ErrClosed
			}
		}
	}
}

// Close closes the connection and stops the monitor.
func (c *delayConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mon.Close()
	})
	return c.TCPConn.Close()
}

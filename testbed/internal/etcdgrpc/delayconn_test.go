//go:build linux && (amd64 || arm64)

package etcdgrpc

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestDelayConn checks that every byte is read no earlier than delay after
// it was sent (and not much later), chunk by chunk, whatever arrives in
// between; that EOF comes through; and that writes are not delayed.
func TestDelayConn(t *testing.T) {
	const delay = 150 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := newDelayConn(raw.(*net.TCPConn), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}

	// Writes go out at once.
	start := time.Now()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(srv, one); err != nil || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("write took %v (%v)", time.Since(start), err)
	}

	chunks := []struct {
		after time.Duration
		data  string
	}{{0, "a"}, {50 * time.Millisecond, "bb"}, {60 * time.Millisecond, "dd"}, {400 * time.Millisecond, "ccc"}}
	var chunkOf []int // byte offset -> chunk
	for i, ch := range chunks {
		for range ch.data {
			chunkOf = append(chunkOf, i)
		}
	}
	var mu sync.Mutex
	sentAt := make([]time.Time, len(chunks))
	go func() {
		t0 := time.Now()
		for i, ch := range chunks {
			time.Sleep(time.Until(t0.Add(ch.after)))
			mu.Lock()
			sentAt[i] = time.Now()
			mu.Unlock()
			srv.Write([]byte(ch.data))
		}
		time.Sleep(50 * time.Millisecond)
		srv.Close()
	}()
	buf := make([]byte, 64)
	var got string
	for {
		n, err := c.Read(buf)
		at := time.Now()
		mu.Lock()
		for i := len(got); i < len(got)+n && i < len(chunkOf); i++ {
			lag := at.Sub(sentAt[chunkOf[i]])
			t.Logf("byte %d %q read %v after it was sent", i, buf[i-len(got)], lag)
			if lag < delay || lag > delay+150*time.Millisecond {
				t.Errorf("byte %d read %v after it was sent, want %v (+ scheduling)", i, lag, delay)
			}
		}
		mu.Unlock()
		got += string(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if got != "abbddccc" {
		t.Errorf("read %q", got)
	}
}

// TestDelayConnStream sends a timestamp every half millisecond for a
// second while the reader keeps reading, so reads and arrivals interleave:
// no timestamp may be read less than delay after it was taken.
func TestDelayConnStream(t *testing.T) {
	const delay = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := newDelayConn(raw.(*net.TCPConn), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer srv.Close()
		end := time.Now().Add(time.Second)
		var b [8]byte
		for time.Now().Before(end) {
			binary.BigEndian.PutUint64(b[:], uint64(time.Now().UnixNano()))
			if _, err := srv.Write(b[:]); err != nil {
				return
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()
	var pending []byte
	buf := make([]byte, 37) // odd size: timestamps split across reads
	var n, early int
	var worst, best time.Duration = 0, time.Hour
	for {
		m, err := c.Read(buf)
		at := time.Now().UnixNano()
		pending = append(pending, buf[:m]...)
		for len(pending) >= 8 {
			lag := time.Duration(at - int64(binary.BigEndian.Uint64(pending)))
			pending = pending[8:]
			n++
			worst, best = max(worst, lag), min(best, lag)
			if lag < delay {
				early++
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d timestamps, read %v to %v after they were taken", n, best, worst)
	if n < 500 || early > 0 {
		t.Errorf("%d timestamps, %d read less than %v after they were taken", n, early, delay)
	}
}

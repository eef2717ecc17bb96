// tls-writer makes a known number of crypto/tls.(*Conn).Write calls of known
// sizes over loopback, so eBPF tests can assert exact counts.
//
// It starts a TLS server on 127.0.0.1 that only reads, dials it, prints
// "ready <pid>" and waits for a line on stdin (so the test can attach its
// probes), then writes -n messages where message i (0-based) has
// -base + i*-step bytes, closes, and prints "done <calls> <bytes> <ns>",
// the last being the time from the first Write until the server had read
// everything.
//
// With -handoff the tracer attaches before the handshake: "ready" comes
// first, and after "go" the client dials, handshakes and writes at once,
// while the server delays its handshake reads (100 ms each) so that the
// read bringing the client's Finished also brings its first records. The
// server then decrypts those in another goroutine than the one that read
// them, as Go's http2 server does with a client's preface.
//
// With -park it instead reproduces a goroutine parking inside a Write
// before its first syscall, to check that the tracer does not bind the TLS
// conn to a socket another goroutine then writes on the same thread. On one
// P (GOMAXPROCS=1): a large Write blocks on the unread connection, holding
// the conn's write lock; a second Write enters and parks on that lock; the
// main goroutine then writes -n cleartext messages (sizes as above, 1 ms
// apart) to a plain TCP socket, whose fd it prints: "cleartext <fd>". Then
// the server reads, both Writes finish, and it prints "done <n> <bytes> 0"
// for the cleartext writes.

package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"runtime"
	"time"
)

func main() {
	n := flag.Int("n", 100, "number of Write calls")
	base := flag.Int("base", 100, "size of the first write in bytes")
	step := flag.Int("step", 7, "size increment per write in bytes")
	park := flag.Bool("park", false, "park a Write on its conn's lock while other sockets are written (see the package doc)")
	handoff := flag.Bool("handoff", false, "handshake after \"go\"; the server decrypts in another goroutine the records its handshake read (see the package doc)")
	flag.Parse()
	if *park {
		parked(*n, *base, *step)
		return
	}

	cert, err := selfSigned()
	check(err)
	config := &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	received := make(chan int64, 1)
	start := make(chan struct{})
	go func() {
		raw, err := ln.Accept()
		check(err)
		if !*handoff {
			// Finish the handshake now, and start reading only after "go",
			// so no Read is in flight while a tracer attaches its probes.
			c := tls.Server(raw, config)
			check(c.Handshake())
			<-start
			got, _ := io.Copy(io.Discard, c) // the server side never writes application data
			check(c.Close())
			received <- got
			return
		}
		slow := &slowReads{Conn: raw, delay: 100 * time.Millisecond}
		c := tls.Server(slow, config)
		check(c.Handshake())
		slow.delay = 0
		reader := make(chan int64)
		go func() {
			got, _ := io.Copy(io.Discard, c)
			reader <- got
		}()
		got := <-reader
		check(c.Close())
		received <- got
	}()
	dial := func() *tls.Conn {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		check(err)
		check(conn.Handshake())
		return conn
	}
	var conn *tls.Conn
	if !*handoff {
		conn = dial()
	}

	fmt.Printf("ready %d\n", os.Getpid())
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		check(err)
	}
	close(start)
	if *handoff {
		conn = dial()
	}

	var total int
	began := time.Now()
	for i := 0; i < *n; i++ {
		msg := make([]byte, *base+i**step)
		for j := range msg {
			msg[j] = byte('a' + (i+j)%26)
		}
		w, err := conn.Write(msg)
		check(err)
		total += w
	}
	check(conn.Close())
	select {
	case got := <-received:
		if got != int64(total) {
			check(fmt.Errorf("server received %d bytes, wrote %d", got, total))
		}
	case <-time.After(10 * time.Second):
		check(fmt.Errorf("server did not finish reading"))
	}
	elapsed := time.Since(began)
	fmt.Printf("done %d %d %d\n", *n, total, elapsed.Nanoseconds())
}

func parked(n, base, step int) {
	runtime.GOMAXPROCS(1)
	cert, err := selfSigned()
	check(err)
	// A small send buffer (the receiver's starts at 128 KiB), so a 1 MiB
	// Write blocks, and the tracer's ring buffer still holds its plaintext.
	// (A small receive buffer set after the handshake can stall loopback
	// TCP for seconds.)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	start := make(chan struct{})
	received := make(chan int64, 1)
	go func() {
		raw, err := ln.Accept()
		check(err)
		c := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
		check(c.Handshake())
		<-start
		got, _ := io.Copy(io.Discard, c)
		received <- got
	}()
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	plainGot := make(chan int64, 1)
	go func() {
		c, err := plain.Accept()
		check(err)
		got, _ := io.Copy(io.Discard, c)
		plainGot <- got
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	check(err)
	check(raw.(*net.TCPConn).SetWriteBuffer(4096))
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	check(conn.Handshake())
	clear, err := net.Dial("tcp", plain.Addr().String())
	check(err)

	fmt.Printf("ready %d\n", os.Getpid())
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		check(err)
	}
	// Far more than the socket buffers hold, so this Write blocks with the
	// conn's write lock held until the server reads.
	const big = 1 << 20
	bigDone := make(chan error, 1)
	go func() {
		_, err := conn.Write(make([]byte, big))
		bigDone <- err
	}()
	time.Sleep(200 * time.Millisecond)
	smallDone := make(chan error, 1)
	go func() {
		_, err := conn.Write([]byte("parked"))
		smallDone <- err
	}()
	time.Sleep(50 * time.Millisecond)

	fmt.Printf("cleartext %d\n", sysfd(clear.(*net.TCPConn)))
	var total int
	for i := 0; i < n; i++ {
		msg := make([]byte, base+i*step)
		w, err := clear.Write(msg)
		check(err)
		total += w
		time.Sleep(time.Millisecond)
	}
	check(clear.Close())
	close(start)
	check(<-bigDone)
	check(<-smallDone)
	check(conn.Close())
	if got := <-plainGot; got != int64(total) {
		check(fmt.Errorf("plain server received %d bytes, wrote %d", got, total))
	}
	if got := <-received; got != big+int64(len("parked")) {
		check(fmt.Errorf("TLS server received %d bytes", got))
	}
	fmt.Printf("done %d %d 0\n", n, total)
}

// slowReads waits delay before each Read (set while one goroutine uses it).
type slowReads struct {
	net.Conn
	delay time.Duration
}

func (s *slowReads) Read(b []byte) (int, error) {
	time.Sleep(s.delay)
	return s.Conn.Read(b)
}

// sysfd is the socket's fd.
func sysfd(c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	check(err)
	var fd int
	check(raw.Control(func(f uintptr) { fd = int(f) }))
	return fd
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls-writer:", err)
		os.Exit(1)
	}
}

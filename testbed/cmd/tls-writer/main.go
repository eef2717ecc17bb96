// tls-writer makes a known number of crypto/tls.(*Conn).Write calls of known
// sizes over loopback, so eBPF tests can assert exact counts.
//
// It starts a TLS server on 127.0.0.1 that only reads, dials it, prints
// "ready <pid>" and waits for a line on stdin (so the test can attach its
// probes), then writes -n messages where message i (0-based) has
// -base + i*-step bytes, closes, and prints "done <calls> <bytes> <ns>",
// the last being the time from the first Write until the server had read
// everything.

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
	"time"
)

func main() {
	n := flag.Int("n", 100, "number of Write calls")
	base := flag.Int("base", 100, "size of the first write in bytes")
	step := flag.Int("step", 7, "size increment per write in bytes")
	flag.Parse()

	cert, err := selfSigned()
	check(err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	check(err)
	received := make(chan int64, 1)
	start := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		check(err)
		// Finish the handshake now, and start reading only after "go", so
		// no Read is in flight while a tracer attaches its probes.
		check(c.(*tls.Conn).Handshake())
		<-start
		got, _ := io.Copy(io.Discard, c) // the server side never writes application data
		check(c.Close())
		received <- got

	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	check(err)
	check(conn.Handshake())

	fmt.Printf("ready %d\n", os.Getpid())
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		check(err)
	}
	close(start)

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

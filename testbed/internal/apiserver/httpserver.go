package apiserver

import (
	"crypto/tls"
	"net/http"
	"time"
)

// kube-apiserver's secure_serving.go: resourceBody99Percentile = 256 KiB is
// used for the per-stream receive buffer and the max read frame size, and the
// connection buffer is that times MaxConcurrentStreams (100, "to match
// http2.initialMaxConcurrentStreams used by clients").
const (
	maxConcurrentStreams     = 100
	resourceBody99Percentile = 256 * 1024
)

// HTTP2Config returns kube-apiserver's server-side HTTP/2 settings.
func HTTP2Config() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          maxConcurrentStreams,
		MaxReadFrameSize:              resourceBody99Percentile,
		MaxReceiveBufferPerStream:     resourceBody99Percentile,
		MaxReceiveBufferPerConnection: resourceBody99Percentile * maxConcurrentStreams,
	}
}

// NewHTTPServer returns an http.Server configured like kube-apiserver's
// secure server. With tlsConf it serves HTTP/1.1 and h2 (ALPN); without, it
// serves HTTP/1.1 and h2c with prior knowledge.
func NewHTTPServer(h http.Handler, tlsConf *tls.Config) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	if tlsConf != nil {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		MaxHeaderBytes:    1 << 20,
		IdleTimeout:       90 * time.Second,
		ReadHeaderTimeout: 32 * time.Second,
		Protocols:         &p,
		HTTP2:             HTTP2Config(),
	}
}

// ServerTLS returns the TLS config: TLS 1.2+, ALPN h2 then http/1.1.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

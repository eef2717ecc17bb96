package main

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"watchtrace/testbed/internal/apiserver"
	"watchtrace/testbed/internal/certs"
	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/k8sobj"
	"watchtrace/testbed/internal/statefile"
	"watchtrace/testbed/internal/watchcache"
)

// run starts everything, serves until ctx ends or a cache fails, then stops
// gracefully: watches end with END_STREAM, the log is flushed last.
func run(ctx context.Context, o *options) (err error) {
	resources, err := k8sobj.ParseList(o.resources)
	if err != nil {
		return err
	}
	if o.slowResource != "" {
		if _, err := k8sobj.Lookup(o.slowResource); err != nil {
			return fmt.Errorf("-slow-resource: %w", err)
		}
	}
	if err := loopbackOnly(o.etcdEndpoint); err != nil {
		return err
	}
	switch o.watchListGzip {
	case apiserver.WatchListGzipStream, apiserver.WatchListGzipPerFlush, apiserver.WatchListGzipOff:
	default:
		return fmt.Errorf("-watchlist-gzip must be stream, per-flush or off, not %q", o.watchListGzip)
	}
	if _, err := gzip.NewWriterLevel(nil, o.gzipLevel); err != nil {
		return fmt.Errorf("-gzip-level: %w", err)
	}
	if o.stateDir == "" {
		if o.stateDir, err = os.MkdirTemp("", "fake-apiserver-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	if o.logPath == "" {
		o.logPath = filepath.Join(o.stateDir, "ground-truth.jsonl")
	}
	gt, err := groundtruth.Create(o.logPath)
	if err != nil {
		return err
	}
	defer func() {
		gt.Log(&groundtruth.Record{Kind: groundtruth.KindServerStop, T: groundtruth.Now(), Pid: os.Getpid(), Error: errString(err)})
		if cerr := gt.Close(); err == nil {
			err = cerr
		}
	}()

	// Certificates live in a private temp dir; only the CA is published.
	pkiDir, err := os.MkdirTemp("", "fake-apiserver-pki-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(pkiDir)
	bundle, err := certs.Generate(pkiDir)
	if err != nil {
		return err
	}
	caFile := filepath.Join(o.stateDir, "ca.crt")
	if err := copyFile(bundle.CAFile, caFile); err != nil {
		return err
	}

	etcd, err := newEtcdClient(o, 0)
	if err != nil {
		return err
	}
	defer etcd.Close()
	// -etcd-watch-delay: the Watch streams get a connection of their own
	// whose reads are delayed; KV calls stay on etcd's. Without it every
	// call shares one connection, as with one grpc-go ClientConn.
	var watchEtcd *etcdgrpc.Client
	if o.etcdWatchDelay < 0 {
		return fmt.Errorf("-etcd-watch-delay must not be negative")
	}
	if o.etcdWatchDelay > 0 {
		if watchEtcd, err = newEtcdClient(o, o.etcdWatchDelay); err != nil {
			return err
		}
		defer watchEtcd.Close()
	}

	// Caches: each follows etcd in its own goroutine.
	cacheCtx, cancelCaches := context.WithCancel(context.Background())
	defer cancelCaches()
	var caches []*watchcache.Cache
	var wg sync.WaitGroup
	cacheErr := make(chan error, len(resources))
	for _, res := range resources {
		c := watchcache.New(watchcache.Config{Resource: res, HistorySize: o.historySize, ChanSize: o.chanSize, Log: gt})
		caches = append(caches, c)
		delay := o.dispatchDelay
		if res.ID() == o.slowResource {
			delay = o.slowDelay
		}
		sc := watchcache.SourceConfig{Client: etcd, WatchClient: watchEtcd, DispatchDelay: delay, BookmarkInterval: o.bookmarkInterval}
		wg.Go(func() {
			if err := c.Run(cacheCtx, sc); err != nil {
				cacheErr <- err
			}
		})
	}
	defer func() { cancelCaches(); wg.Wait() }()
	if err := waitReady(ctx, caches, cacheErr, o.startTimeout); err != nil {
		return err
	}

	shutdown := make(chan struct{})
	handler := apiserver.New(apiserver.Config{
		Caches: caches, Log: gt, MinRequestTimeout: o.minRequestTimeout, Shutdown: shutdown,
		GzipMinBytes: o.gzipMinBytes, GzipLevel: o.gzipLevel, WatchListGzip: o.watchListGzip,
		Etcd: etcd,
	})
	tlsConf, err := apiserver.ServerTLS(bundle.ServerCert, bundle.ServerKey)
	if err != nil {
		return err
	}
	servers, addrs, err := listen(o, handler, tlsConf)
	if err != nil {
		return err
	}
	serveErr := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			var err error
			if s.srv.TLSConfig != nil {
				err = s.srv.ServeTLS(s.ln, "", "")
			} else {
				err = s.srv.Serve(s.ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}

	httpsURL := "https://" + addrs.https
	kubeconfig := filepath.Join(o.stateDir, "kubeconfig")
	if err := statefile.WriteKubeconfig(kubeconfig, httpsURL, caFile); err != nil {
		return err
	}
	ids := make([]string, len(resources))
	for i, r := range resources {
		ids[i] = r.ID()
	}
	st := &statefile.State{
		Pid: os.Getpid(), HTTPSAddr: addrs.https, H2CAddr: addrs.h2c, CAFile: caFile, Kubeconfig: kubeconfig,
		GroundTruthLog: o.logPath, EtcdEndpoint: o.etcdEndpoint, Resources: ids, StartedAt: time.Now().UnixNano(),
	}
	gt.Log(&groundtruth.Record{
		Kind: groundtruth.KindServerStart, T: groundtruth.Now(), Pid: st.Pid, HTTPSAddr: addrs.https,
		H2CAddr: addrs.h2c, Config: fmt.Sprintf("%+v", *o),
	})
	if err := statefile.Write(o.stateDir, st); err != nil {
		return err
	}
	fmt.Printf("fake-apiserver ready https=%s h2c=%s state=%s log=%s\n", addrs.https, addrs.h2c, statefile.Path(o.stateDir), o.logPath)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-cacheErr:
	case runErr = <-serveErr:
	}
	// Graceful stop: open watches end (END_STREAM), then the servers drain.
	close(shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		if err := s.srv.Shutdown(sctx); err != nil {
			// Handlers blocked on a stalled client: force the connections.
			s.srv.Close()
		}
	}
	return runErr
}

type listener struct {
	srv *http.Server
	ln  net.Listener
}

type addresses struct{ https, h2c string }

func listen(o *options, h http.Handler, tlsConf *tls.Config) ([]listener, addresses, error) {
	// kube-apiserver uses a 3-minute TCP keepalive on its listener.
	lc := net.ListenConfig{KeepAlive: 3 * time.Minute}
	var out []listener
	var addrs addresses
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.httpsPort)))
	if err != nil {
		return nil, addrs, err
	}
	out = append(out, listener{apiserver.NewHTTPServer(h, tlsConf), ln})
	addrs.https = ln.Addr().String()
	if o.h2cPort >= 0 {
		ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.h2cPort)))
		if err != nil {
			out[0].ln.Close()
			return nil, addrs, err
		}
		out = append(out, listener{apiserver.NewHTTPServer(h, nil), ln})
		addrs.h2c = ln.Addr().String()
	}
	return out, addrs, nil
}

func waitReady(ctx context.Context, caches []*watchcache.Cache, cacheErr <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, c := range caches {
		for c.RV() == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no initial list from etcd within %v", c.Resource().ID(), timeout)
			}
			select {
			case err := <-cacheErr:
				return err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// newEtcdClient returns a client for -etcd; readDelay > 0 delays the reads
// of its connection's socket.
func newEtcdClient(o *options, readDelay time.Duration) (*etcdgrpc.Client, error) {
	var tlsConf *tls.Config
	if o.etcdCA != "" {
		var err error
		if tlsConf, err = certs.ClientTLS(o.etcdCA, o.etcdCert, o.etcdKey); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	return etcdgrpc.NewWithOptions(o.etcdEndpoint, tlsConf, etcdgrpc.Options{ReadDelay: readDelay})
}

// loopbackOnly refuses non-loopback etcd endpoints: the testbed must never
// touch another host.
func loopbackOnly(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return err
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("etcd endpoint %q is not a loopback address", endpoint)
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

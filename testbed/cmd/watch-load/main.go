// watch-load drives the fake apiserver like a fleet of client-go informers:
// M HTTP/2 connections (one http.Transport each) with N list+watch streams
// each, decoding and checking every event, while a writer puts, updates and
// deletes objects at a fixed rate, in etcd directly or through the
// apiserver (-write-via apiserver: POST, PUT, DELETE). Optional faults: one
// stream stops reading its body, or one connection stops reading its
// socket, for a while.
// It prints a JSON summary on stdout and logs every received event.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"watchtrace/testbed/internal/certs"
	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/jsonl"
	"watchtrace/testbed/internal/k8sobj"
	"watchtrace/testbed/internal/loadgen"
	"watchtrace/testbed/internal/statefile"
)

// defaultUserAgents are real component user agents (client-go's
// "<binary>/<version> (<os>/<arch>) kubernetes/<commit>[/<suffix>]").
var defaultUserAgents = []string{
	"kube-controller-manager/v1.32.0 (linux/amd64) kubernetes/abc123/shared-informers",
	"kubelet/v1.32.0 (linux/amd64) kubernetes/abc123",
	"kube-proxy/v1.32.0 (linux/amd64) kubernetes/abc123",
	"kube-scheduler/v1.32.0 (linux/amd64) kubernetes/abc123/scheduler",
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, "|") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var (
		stateDir       = flag.String("state-dir", "", "fake-apiserver state directory (reads state.json); required")
		h2c            = flag.Bool("h2c", false, "connect to the h2c port instead of HTTPS")
		http1          = flag.Bool("http1", false, "HTTP/1.1 only, like client-go with DISABLE_HTTP2 (a TCP connection per concurrent request); with -h2c: cleartext HTTP/1.1")
		conns          = flag.Int("conns", 4, "HTTP/2 connections (each its own http.Transport)")
		watches        = flag.Int("watches-per-conn", 5, "watch streams per connection")
		resources      = flag.String("resources", "configmaps", "resources to watch, comma-separated")
		namespaces     = flag.String("namespaces", "ns-0,ns-1,*", "namespaces to watch, comma-separated; * = all namespaces")
		format         = flag.String("format", "mixed", "json, protobuf, cbor, or mixed (json and protobuf alternating per stream)")
		mode           = flag.String("mode", "listwatch", "listwatch (LIST rv=0, then WATCH from its RV, like client-go), watch (WATCH without RV) or watchlist (WATCH with sendInitialEvents=true and no LIST, like client-go's WatchList)")
		gzipOn         = flag.Bool("gzip", false, "send Accept-Encoding: gzip on LISTs and watches and inflate in the client (Go's transport then leaves the body compressed, so wire bytes are logged)")
		relistEvery    = flag.Duration("relist-interval", 0, "during the load, every connection LISTs each collection it watches this often (0 disables)")
		bookmarks      = flag.Bool("bookmarks", true, "request allowWatchBookmarks=true")
		timeoutSeconds = flag.Int64("timeout-seconds", 0, "timeoutSeconds per watch; 0 = random 300-599 like client-go")
		labelSelector  = flag.String("label-selector", "", "labelSelector for every list/watch")
		duration       = flag.Duration("duration", 30*time.Second, "load phase duration, from all watches established")
		drainTimeout   = flag.Duration("drain", 10*time.Second, "after the writer, wait at most this long for streams to catch up")
		logPath        = flag.String("log", "", "receive log (JSON lines); default <state-dir>/watch-load.jsonl")
		summaryPath    = flag.String("summary", "", "also write the summary JSON here")

		writeRate   = flag.Float64("write-rate", 0, "writes per second (0: no writer)")
		writeVia    = flag.String("write-via", loadgen.ViaEtcd, "etcd (Put and DeleteRange straight to etcd) or apiserver (POST, PUT and DELETE to the fake apiserver over a connection of their own, TLS or h2c like the watches)")
		conflictR   = flag.Float64("conflict-ratio", 0, "with -write-via apiserver: probability that an update sends a stale metadata.resourceVersion (and gets 409 Conflict)")
		writerUA    = flag.String("writer-user-agent", loadgen.DefaultWriterUserAgent, "with -write-via apiserver: the writer connection's User-Agent")
		writeDur    = flag.Duration("write-duration", 0, "writer duration; default -duration")
		prefill     = flag.Duration("prefill", 0, "before opening any watch, run the writer this long: objects that LISTs and watch-list streams then return as initial state")
		writeRes    = flag.String("write-resources", "", "resources to write; default -resources")
		writeNS     = flag.String("write-namespaces", "", "namespaces to write; default the named -namespaces (or default)")
		keys        = flag.Int("keys", 50, "objects per resource and namespace")
		deleteRatio = flag.Float64("delete-ratio", 0.1, "probability that an op on an existing object deletes it")
		objectSize  = flag.Int("object-size", 0, "pad object JSON to about this many bytes (big events)")
		workers     = flag.Int("writers", 4, "concurrent writer workers")
		seed        = flag.Uint64("seed", 1, "writer random seed")
		etcdURL     = flag.String("etcd", "", "etcd endpoint for -write-via etcd; default from state.json")
		etcdCA      = flag.String("etcd-ca", "", "CA for an https etcd")
		etcdCert    = flag.String("etcd-cert", "", "client certificate for etcd")
		etcdKey     = flag.String("etcd-key", "", "client key for etcd")

		stallStream      = flag.Int("stall-stream", 0, "fault 1: global index of the stream that stops reading")
		stallStreamAfter = flag.Duration("stall-stream-after", 0, "fault 1: stop reading this long after the load starts")
		stallStreamFor   = flag.Duration("stall-stream-for", 0, "fault 1: for this long (0 disables)")
		stallConn        = flag.Int("stall-conn", 1, "fault 2: index of the connection that stops reading its socket")
		stallConnAfter   = flag.Duration("stall-conn-after", 0, "fault 2: stop reading this long after the load starts")
		stallConnFor     = flag.Duration("stall-conn-for", 0, "fault 2: for this long (0 disables)")
	)
	var userAgents stringList
	flag.Var(&userAgents, "user-agent", "User-Agent for connections, round-robin (repeatable); default: a set of control-plane agents")
	flag.Parse()

	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "watch-load:", err)
		os.Exit(2)
	}
	if *stateDir == "" {
		fail(fmt.Errorf("-state-dir is required"))
	}
	st, err := statefile.Read(*stateDir)
	if err != nil {
		fail(err)
	}
	cfg := loadgen.Config{
		Conns: *conns, WatchesPerConn: *watches, ListFirst: *mode == "listwatch", WatchList: *mode == "watchlist",
		Gzip: *gzipOn, RelistInterval: *relistEvery, Bookmarks: *bookmarks, Prefill: *prefill,
		TimeoutSeconds: *timeoutSeconds, LabelSelector: *labelSelector, Duration: *duration, Drain: *drainTimeout,
		StallStream: *stallStream, StallStreamAfter: *stallStreamAfter, StallStreamFor: *stallStreamFor,
		StallConn: *stallConn, StallConnAfter: *stallConnAfter, StallConnFor: *stallConnFor,
		UserAgents: userAgents, HTTP1: *http1,
	}
	if *mode != "listwatch" && *mode != "watch" && *mode != "watchlist" {
		fail(fmt.Errorf("-mode must be listwatch, watch or watchlist"))
	}
	if len(cfg.UserAgents) == 0 {
		cfg.UserAgents = defaultUserAgents
	}
	if *h2c {
		if st.H2CAddr == "" {
			fail(fmt.Errorf("the server has no h2c port"))
		}
		cfg.BaseURL = "http://" + st.H2CAddr
	} else {
		cfg.BaseURL = "https://" + st.HTTPSAddr
		if cfg.TLS, err = certs.ClientTLS(st.CAFile, "", ""); err != nil {
			fail(err)
		}
	}
	if cfg.Resources, err = k8sobj.ParseList(*resources); err != nil {
		fail(err)
	}
	var named []string
	for _, ns := range strings.Split(*namespaces, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "*" {
			cfg.Namespaces = append(cfg.Namespaces, "")
		} else if ns != "" {
			cfg.Namespaces = append(cfg.Namespaces, ns)
			named = append(named, ns)
		}
	}
	switch *format {
	case "mixed":
		cfg.Formats = []framing.Format{framing.JSON, framing.Protobuf}
	default:
		f, ok := framing.ParseFormat(*format)
		if !ok {
			fail(fmt.Errorf("-format must be json, protobuf, cbor or mixed"))
		}
		cfg.Formats = []framing.Format{f}
	}
	if *logPath == "" {
		*logPath = filepath.Join(*stateDir, "watch-load.jsonl")
	}
	if cfg.Log, err = jsonl.Create(*logPath); err != nil {
		fail(err)
	}

	if *writeVia != loadgen.ViaEtcd && *writeVia != loadgen.ViaAPIServer {
		fail(fmt.Errorf("-write-via must be etcd or apiserver"))
	}
	if *conflictR < 0 || *conflictR > 1 {
		fail(fmt.Errorf("-conflict-ratio must be between 0 and 1"))
	}
	if *conflictR > 0 && *writeVia != loadgen.ViaAPIServer {
		fail(fmt.Errorf("-conflict-ratio needs -write-via apiserver"))
	}
	if *writeRate > 0 {
		wc := &loadgen.WriterConfig{
			Rate: *writeRate, Duration: *writeDur, Keys: *keys, DeleteRatio: *deleteRatio,
			ObjectSize: *objectSize, Workers: *workers, Seed: *seed,
			Via: *writeVia, ConflictRatio: *conflictR, UserAgent: *writerUA,
		}
		if wc.Duration == 0 {
			wc.Duration = *duration
		}
		wr := *writeRes
		if wr == "" {
			wr = *resources
		}
		if wc.Resources, err = k8sobj.ParseList(wr); err != nil {
			fail(err)
		}
		if *writeNS != "" {
			wc.Namespaces = strings.Split(*writeNS, ",")
		} else if len(named) > 0 {
			wc.Namespaces = named
		} else {
			wc.Namespaces = []string{"default"}
		}
		if wc.Via == loadgen.ViaEtcd {
			endpoint := *etcdURL
			if endpoint == "" {
				endpoint = st.EtcdEndpoint
			}
			var tlsConf *tls.Config
			if *etcdCA != "" {
				if tlsConf, err = certs.ClientTLS(*etcdCA, *etcdCert, *etcdKey); err != nil {
					fail(err)
				}
			}
			if wc.Client, err = etcdgrpc.New(endpoint, tlsConf); err != nil {
				fail(err)
			}
			defer wc.Client.Close()
		}
		cfg.Writer = wc
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sum, err := loadgen.Run(ctx, cfg)
	if cerr := cfg.Log.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		fail(err)
	}
	out, _ := json.MarshalIndent(sum, "", "  ")
	out = append(out, '\n')
	os.Stdout.Write(out)
	if *summaryPath != "" {
		if err := os.WriteFile(*summaryPath, out, 0o644); err != nil {
			fail(err)
		}
	}
	if len(sum.Problems) > 0 {
		fmt.Fprintf(os.Stderr, "watch-load: %d problems, first: %s\n", len(sum.Problems), sum.Problems[0])
		os.Exit(1)
	}
}

package apiserver

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/k8sobj"
	"watchtrace/testbed/internal/watchcache"
)

// Config configures the handler.
type Config struct {
	Caches []*watchcache.Cache
	Log    *groundtruth.Logger
	// MinRequestTimeout is kube-apiserver's --min-request-timeout: watches
	// without timeoutSeconds last 1x-2x this long.
	MinRequestTimeout time.Duration
	// Shutdown is closed when the server stops; open watches then end
	// with END_STREAM.
	Shutdown <-chan struct{}
	// GzipMinBytes: LIST bodies of at least this size are gzip-compressed
	// for clients that accept gzip (kube-apiserver: over 128 KiB);
	// negative disables it.
	GzipMinBytes int
	// GzipLevel is the compress/gzip level (gzip.DefaultCompression, -1,
	// by default; kube-apiserver uses 1).
	GzipLevel int
	// WatchListGzip says how watch-list responses are compressed for
	// clients that accept gzip (WatchListGzipStream, …PerFlush, …Off), as
	// kube-apiserver 1.37's WatchListCompression does.
	WatchListGzip string
	// Etcd is the client writes go through (KV/Txn, KV/Range); nil
	// refuses writes with 405.
	Etcd *etcdgrpc.Client
}

// Server routes list and watch requests to the caches.
type Server struct {
	cfg        Config
	served     map[string]k8sobj.Resource
	caches     map[string]*watchcache.Cache
	nextStream atomic.Uint64
	// APF identifies the flow schema and priority level on every response;
	// constant values keep HPACK behaviour realistic (indexed after the
	// first response on a connection).
	flowSchemaUID, priorityLevelUID string
}

// New returns a Server.
func New(cfg Config) *Server {
	s := &Server{
		cfg:              cfg,
		served:           map[string]k8sobj.Resource{},
		caches:           map[string]*watchcache.Cache{},
		flowSchemaUID:    newUUID(),
		priorityLevelUID: newUUID(),
	}
	for _, c := range cfg.Caches {
		s.served[c.Resource().ID()] = c.Resource()
		s.caches[c.Resource().ID()] = c
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tRequest := groundtruth.Now() // before anything else: watch-list sync time starts here
	h := w.Header()
	h.Set("Audit-Id", newUUID())
	h.Set("Cache-Control", "no-cache, private")
	h.Set("X-Kubernetes-Pf-Flowschema-Uid", s.flowSchemaUID)
	h.Set("X-Kubernetes-Pf-Prioritylevel-Uid", s.priorityLevelUID)

	f := framing.Negotiate(r.Header.Get("Accept"))
	switch r.URL.Path {
	case "/healthz", "/readyz", "/livez":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok"))
		return
	case "/version":
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"major":"1","minor":"32","gitVersion":"v1.32.0-watchtrace-testbed","platform":"linux/amd64"}` + "\n"))
		return
	}
	rt, ok := parseRoute(r.URL.Path, s.served)
	if !ok {
		s.reject(w, r, f, http.StatusNotFound, "the server could not find the requested resource", groundtruth.ReasonNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		s.serveWrite(w, r, f, rt, tRequest)
		return
	default:
		s.reject(w, r, f, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not supported by the testbed", r.Method), groundtruth.ReasonBadRequest)
		return
	}
	if rt.name != "" {
		// Reads of single objects are not served.
		s.reject(w, r, f, http.StatusNotFound, "the server could not find the requested resource", groundtruth.ReasonNotFound)
		return
	}
	p, err := parseParams(r.URL.Query())
	if err != nil {
		s.reject(w, r, f, http.StatusBadRequest, err.Error(), groundtruth.ReasonBadRequest)
		return
	}
	watch := p.watch || rt.legacyWatch
	if err := p.validate(watch); err != nil {
		s.reject(w, r, f, http.StatusUnprocessableEntity, err.Error(), groundtruth.ReasonInvalid)
		return
	}
	cache := s.caches[rt.res.ID()]
	if watch {
		s.serveWatch(w, r, f, cache, rt, p, tRequest)
		return
	}
	s.serveList(w, r, f, cache, rt, p, tRequest)
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, f framing.Format, code int, msg, reason string) {
	s.cfg.Log.Log(&groundtruth.Record{
		Kind: groundtruth.KindRequestError, T: groundtruth.Now(), Client: r.RemoteAddr,
		Path: requestPath(r), UserAgent: userAgent(r), Status: code, Reason: reason, Error: msg,
	})
	writeStatus(w, f, code, msg)
}

func requestPath(r *http.Request) string { return r.URL.RequestURI() }

func tlsFlag(r *http.Request) *bool {
	v := r.TLS != nil
	return &v
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// userAgent returns the request's User-Agent, bounded for the log.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return strings.ToValidUTF8(ua, "?")
}

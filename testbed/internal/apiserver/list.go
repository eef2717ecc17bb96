package apiserver

import (
	"compress/gzip"
	"net/http"
	"strconv"

	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/k8sobj"
	"watchtrace/testbed/internal/watchcache"
)

// serveList answers a LIST from the cache (like resourceVersion=0 in
// kube-apiserver; the testbed has no quorum-read path). limit/continue are
// ignored, as kube-apiserver does for cache-served lists.
//
// A body of at least GzipMinBytes goes out gzip-compressed when the client
// accepts gzip, like kube-apiserver's deferredResponseWriter (which
// compresses responses over 128 KiB).
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, f framing.Format, cache *watchcache.Cache, rt route, p params, tRequest int64) {
	rv, objs, err := cache.List(rt.namespace, p.selector)
	if err != nil {
		s.reject(w, r, f, http.StatusServiceUnavailable, err.Error(), groundtruth.ReasonCacheGone)
		return
	}
	rvs := strconv.FormatInt(rv, 10)
	var body []byte
	switch f {
	case framing.Protobuf:
		body = k8sobj.EncodeListProto(rt.res, rvs, objs)
	case framing.CBOR:
		body = k8sobj.AppendListCBOR(nil, rt.res, rvs, objs)
	default:
		body = k8sobj.AppendListJSON(nil, rt.res, rvs, objs)
	}
	compress := s.cfg.GzipMinBytes >= 0 && len(body) >= s.cfg.GzipMinBytes && acceptsGzip(r)
	h := w.Header()
	h.Set("Content-Type", f.ContentType())
	if compress {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
	} else {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	rec := &groundtruth.Record{
		Kind: groundtruth.KindList, TRequest: tRequest, Client: r.RemoteAddr, Proto: r.Proto, TLS: tlsFlag(r),
		Path: requestPath(r), UserAgent: userAgent(r), ContentType: f.ContentType(),
		Resource: rt.res.ID(), Namespace: rt.namespace, LabelSelector: p.labelSelector,
		RVParam: p.rv, RV: rvs, Items: len(objs), Status: http.StatusOK, DecodedBytes: int64(len(body)),
	}
	var n int64
	rec.TBefore = groundtruth.Now()
	if compress {
		rec.ContentEncoding = "gzip"
		n, err = s.writeGzip(w, body)
	} else {
		var m int
		m, err = w.Write(body)
		n = int64(m)
	}
	rec.TAfter = groundtruth.Now()
	rec.Bytes = n
	if err != nil {
		rec.Error = err.Error()
	}
	s.cfg.Log.Log(rec)
}

// writeGzip writes body as one gzip member and returns the compressed
// bytes written.
func (s *Server) writeGzip(w http.ResponseWriter, body []byte) (int64, error) {
	cw := &countingWriter{w: w}
	gz, err := gzip.NewWriterLevel(cw, s.cfg.GzipLevel)
	if err != nil {
		return 0, err
	}
	_, err = gz.Write(body)
	if cerr := gz.Close(); err == nil {
		err = cerr
	}
	return cw.n, err
}

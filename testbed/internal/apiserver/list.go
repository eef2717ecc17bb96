package apiserver

import (
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
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, f framing.Format, cache *watchcache.Cache, rt route, p params) {
	rv, objs, err := cache.List(rt.namespace, p.selector)
	if err != nil {
		s.reject(w, r, f, http.StatusServiceUnavailable, err.Error(), groundtruth.ReasonCacheGone)
		return
	}
	rvs := strconv.FormatInt(rv, 10)
	var body []byte
	if f == framing.Protobuf {
		body = k8sobj.EncodeListProto(rt.res, rvs, objs)
	} else {
		body = k8sobj.AppendListJSON(nil, rt.res, rvs, objs)
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rec := &groundtruth.Record{
		Kind: groundtruth.KindList, Client: r.RemoteAddr, Proto: r.Proto, TLS: tlsFlag(r),
		Path: requestPath(r), UserAgent: userAgent(r), ContentType: f.ContentType(),
		Resource: rt.res.ID(), Namespace: rt.namespace, LabelSelector: p.labelSelector,
		RVParam: p.rv, RV: rvs, Items: len(objs), Status: http.StatusOK,
	}
	rec.TBefore = groundtruth.Now()
	n, err := w.Write(body)
	rec.TAfter = groundtruth.Now()
	rec.Bytes = int64(n)
	if err != nil {
		rec.Error = err.Error()
	}
	s.cfg.Log.Log(rec)
}

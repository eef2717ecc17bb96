// Package apiserver is the HTTP side of the fake kube-apiserver: URL routing,
// LIST and WATCH handlers that follow kube-apiserver's watch handler
// (handlers/watch.go) closely, error Status responses, and the http.Server
// settings kube-apiserver uses.
package apiserver

import (
	"strings"

	"watchtrace/testbed/internal/k8sobj"
)

// route is a parsed resource URL.
type route struct {
	res         k8sobj.Resource
	namespace   string
	legacyWatch bool   // /api/v1/watch/... (deprecated WATCHLIST paths)
	name        string // single-object paths: the object's name
}

// parseRoute recognises
//
//	/api/v1/[watch/][namespaces/{ns}/]{resource}[/{name}]
//	/apis/{group}/{version}/[watch/][namespaces/{ns}/]{resource}[/{name}]
//
// ok is false for any other path (subresources, legacy watches of one
// object). Object paths are only written to (PUT, PATCH, DELETE).
func parseRoute(path string, served map[string]k8sobj.Resource) (rt route, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var group, version string
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		version, segs = segs[1], segs[2:]
	case len(segs) >= 4 && segs[0] == "apis":
		group, version, segs = segs[1], segs[2], segs[3:]
	default:
		return rt, false
	}
	if segs[0] == "watch" {
		rt.legacyWatch, segs = true, segs[1:]
	}
	if (len(segs) == 3 || len(segs) == 4) && segs[0] == "namespaces" {
		rt.namespace, segs = segs[1], segs[2:]
	}
	if len(segs) == 2 && !rt.legacyWatch && segs[1] != "" {
		rt.name, segs = segs[1], segs[:1]
	}
	if len(segs) != 1 || segs[0] == "" {
		return rt, false
	}
	id := segs[0]
	if group != "" {
		id += "." + group
	}
	res, found := served[id]
	if !found || res.Version != version || !(rt.namespace == "" || res.Namespaced) {
		return rt, false
	}
	rt.res = res
	return rt, true
}

package apiserver

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"watchtrace/testbed/internal/watchcache"
)

// params are the list/watch query parameters the testbed honours.
type params struct {
	watch          bool
	rv             string // as given
	hasExactRV     bool   // rv set and not "0"
	exactRV        int64
	bookmarks      bool
	timeoutSeconds int64 // 0: server default
	labelSelector  string
	selector       watchcache.Selector
}

// parseParams reads the query like kube-apiserver: watch is true unless its
// first value is "0" or "false" (so a bare "watch=" counts), timeout= is
// ignored in favour of timeoutSeconds, and field selectors are rejected
// because the testbed does not implement them.
func parseParams(q url.Values) (params, error) {
	var p params
	if vs, ok := q["watch"]; ok {
		v := strings.ToLower(vs[0])
		p.watch = v != "0" && v != "false"
	}
	p.rv = q.Get("resourceVersion")
	if p.rv != "" && p.rv != "0" {
		n, err := strconv.ParseInt(p.rv, 10, 64)
		if err != nil || n <= 0 {
			return p, fmt.Errorf("invalid resource version: %q", p.rv)
		}
		p.hasExactRV, p.exactRV = true, n
	}
	if v := q.Get("allowWatchBookmarks"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, fmt.Errorf("allowWatchBookmarks: %v", err)
		}
		p.bookmarks = b
	}
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return p, fmt.Errorf("timeoutSeconds: invalid value %q", v)
		}
		p.timeoutSeconds = n
	}
	if fs := q.Get("fieldSelector"); fs != "" {
		return p, fmt.Errorf("fieldSelector %q: field selectors are not supported by the testbed", fs)
	}
	p.labelSelector = q.Get("labelSelector")
	sel, err := watchcache.ParseSelector(p.labelSelector)
	if err != nil {
		return p, err
	}
	p.selector = sel
	return p, nil
}

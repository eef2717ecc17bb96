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
	// Watch-list (KEP-3157): sendInitialEvents (nil when absent) and
	// resourceVersionMatch as given.
	sendInitialEvents *bool
	rvMatch           string
}

// rvMatchNotOlderThan is the only resourceVersionMatch a watch accepts.
const rvMatchNotOlderThan = "NotOlderThan"

// watchList reports a watch-list request as the cacher's
// isListWatchRequest does: sendInitialEvents=true with
// allowWatchBookmarks=true. Only such a watch ends its initial events with
// the k8s.io/initial-events-end bookmark.
func (p *params) watchList() bool {
	return p.sendInitialEvents != nil && *p.sendInitialEvents && p.bookmarks
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
	if v, ok := q["sendInitialEvents"]; ok {
		b, err := strconv.ParseBool(v[0])
		if err != nil {
			return p, fmt.Errorf("sendInitialEvents: invalid value %q", v[0])
		}
		p.sendInitialEvents = &b
	}
	p.rvMatch = q.Get("resourceVersionMatch")
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

// invalidError is kube-apiserver's answer to ListOptions that fail
// validation: 422 Invalid (errors.NewInvalid on ListOptions.meta.k8s.io).
type invalidError struct{ causes []string }

func (e *invalidError) Error() string {
	msg := `ListOptions.meta.k8s.io "" is invalid: `
	if len(e.causes) == 1 {
		return msg + e.causes[0]
	}
	return msg + "[" + strings.Join(e.causes, ", ") + "]"
}

// validate applies ValidateListOptions (apimachinery's
// internalversion/validation) to the watch-list parameters: a watch with
// sendInitialEvents needs resourceVersionMatch=NotOlderThan, and
// resourceVersionMatch needs sendInitialEvents; a list may not have
// sendInitialEvents. Like kube-apiserver it does not require
// allowWatchBookmarks: sendInitialEvents=true without it is served, but is
// not a watch-list (no initial-events-end bookmark, no gzip).
func (p *params) validate(watch bool) error {
	var causes []string
	forbid := func(field, msg string) { causes = append(causes, field+": Forbidden: "+msg) }
	unsupported := func(supported ...string) {
		for i, v := range supported {
			supported[i] = strconv.Quote(v)
		}
		causes = append(causes, fmt.Sprintf("resourceVersionMatch: Unsupported value: %q: supported values: %s",
			p.rvMatch, strings.Join(supported, ", ")))
	}
	if watch {
		if p.sendInitialEvents != nil && p.rvMatch != rvMatchNotOlderThan {
			forbid("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to "+rvMatchNotOlderThan)
		}
		if p.rvMatch != "" {
			if p.sendInitialEvents == nil {
				forbid("resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")
			}
			if p.rvMatch != rvMatchNotOlderThan {
				unsupported(rvMatchNotOlderThan)
			}
		}
	} else {
		if p.rvMatch != "" {
			if p.rv == "" {
				forbid("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided")
			}
			if p.rvMatch != "Exact" && p.rvMatch != rvMatchNotOlderThan {
				unsupported("Exact", rvMatchNotOlderThan, "")
			}
			if p.rvMatch == "Exact" && p.rv == "0" {
				forbid("resourceVersionMatch", `resourceVersionMatch "exact" is forbidden for resourceVersion "0"`)
			}
		}
		if p.sendInitialEvents != nil {
			forbid("sendInitialEvents", "sendInitialEvents is forbidden for list")
		}
	}
	if len(causes) > 0 {
		return &invalidError{causes}
	}
	return nil
}

package apiserver

import (
	"net/url"
	"testing"

	"watchtrace/testbed/internal/k8sobj"
)

func TestParseRoute(t *testing.T) {
	served := map[string]k8sobj.Resource{}
	for _, r := range k8sobj.Known {
		served[r.ID()] = r
	}
	for path, want := range map[string]string{
		"/api/v1/configmaps":                                 "configmaps  false",
		"/api/v1/namespaces/default/configmaps":              "configmaps default false",
		"/api/v1/watch/namespaces/kube-system/secrets":       "secrets kube-system true",
		"/apis/coordination.k8s.io/v1/namespaces/x/leases":   "leases.coordination.k8s.io x false",
		"/apis/coordination.k8s.io/v1/watch/leases":          "leases.coordination.k8s.io  true",
		"/api/v1/namespaces/default/configmaps/one":          "configmaps default false one",
		"/apis/coordination.k8s.io/v1/namespaces/x/leases/l": "leases.coordination.k8s.io x false l",
		"/api/v1/configmaps/one":                             "configmaps  false one",
		"/api/v1/namespaces/default/configmaps/one/status":   "",
		"/api/v1/watch/namespaces/default/configmaps/one":    "",
		"/api/v1/namespaces/default":                         "",
		"/api/v2/configmaps":                                 "",
		"/apis/coordination.k8s.io/v1beta1/leases":           "",
		"/api/v1/pods":              "",
		"/apis/apps/v1/deployments": "",
	} {
		rt, ok := parseRoute(path, served)
		got := ""
		if ok {
			got = rt.res.ID() + " " + rt.namespace + " " + map[bool]string{true: "true", false: "false"}[rt.legacyWatch]
			if rt.name != "" {
				got += " " + rt.name
			}
		}
		if got != want {
			t.Errorf("parseRoute(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParseParams(t *testing.T) {
	for q, watch := range map[string]bool{"watch=1": true, "watch=true": true, "watch=": true, "watch=0": false, "watch=false": false, "": false} {
		v, _ := url.ParseQuery(q)
		p, err := parseParams(v)
		if err != nil || p.watch != watch {
			t.Errorf("%q: watch=%v err=%v", q, p.watch, err)
		}
	}
	v, _ := url.ParseQuery("watch=1&resourceVersion=42&allowWatchBookmarks=true&timeoutSeconds=7&labelSelector=a%3Db")
	p, err := parseParams(v)
	if err != nil || !p.hasExactRV || p.exactRV != 42 || !p.bookmarks || p.timeoutSeconds != 7 || len(p.selector) != 1 {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"resourceVersion=abc", "timeoutSeconds=-1", "fieldSelector=metadata.name%3Dx", "allowWatchBookmarks=maybe"} {
		v, _ := url.ParseQuery(bad)
		if _, err := parseParams(v); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

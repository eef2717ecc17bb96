package apiserver

import (
	"errors"
	"net/url"
	"testing"
)

func TestWatchListParametersAreValidatedLikeKubeApiserver(t *testing.T) {
	for _, tc := range []struct {
		query     string
		watchList bool
		err       string // "" valid; "400" a parse error; else the 422 message
	}{
		{"watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", true, ""},
		{"watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=0", true, ""},
		{"watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=42", true, ""},
		// Served, but not a watch-list: no initial-events-end bookmark.
		{"watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", false, ""},
		{"watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", false, ""},
		{"watch=1&sendInitialEvents=true&allowWatchBookmarks=true", false,
			`ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan`},
		{"watch=1&resourceVersionMatch=NotOlderThan", false,
			`ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided`},
		{"watch=1&sendInitialEvents=true&resourceVersionMatch=Exact&allowWatchBookmarks=true", false,
			`ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"]`},
		{"sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0", false,
			`ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list`},
		{"resourceVersionMatch=NotOlderThan", false,
			`ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided`},
		{"resourceVersionMatch=NotOlderThan&resourceVersion=5", false, ""},
		{"watch=1&sendInitialEvents=maybe", false, "400"},
	} {
		q, _ := url.ParseQuery(tc.query)
		p, err := parseParams(q)
		if err == nil {
			err = p.validate(p.watch)
		}
		var invalid *invalidError
		switch {
		case tc.err == "400":
			if err == nil || errors.As(err, &invalid) {
				t.Errorf("%s: %v, want a 400 parse error", tc.query, err)
			}
		case tc.err == "":
			if err != nil || p.watchList() != tc.watchList {
				t.Errorf("%s: err %v, watch-list %v, want %v", tc.query, err, p.watchList(), tc.watchList)
			}
		case !errors.As(err, &invalid) || err.Error() != tc.err:
			t.Errorf("%s:\n got %v\nwant %s", tc.query, err, tc.err)
		}
	}
}

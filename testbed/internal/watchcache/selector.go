package watchcache

import (
	"fmt"
	"strings"
)

// Selector is a parsed label selector. Only the equality-based forms are
// supported (a=b, a==b, a!=b) plus bare existence (a, !a), which covers what
// informers typically send; set-based forms are rejected.
type Selector []requirement

type requirement struct {
	key    string
	op     string // "=", "!=", "exists", "!exists"
	value  string
	source string
}

// ParseSelector parses a labelSelector query value.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.ContainsAny(part, "()") || strings.Contains(part, " in ") || strings.Contains(part, " notin ") {
			return nil, fmt.Errorf("unsupported label selector %q: only equality and existence", part)
		}
		r := requirement{source: part}
		switch {
		case strings.Contains(part, "!="):
			r.key, r.value, _ = strings.Cut(part, "!=")
			r.op = "!="
		case strings.Contains(part, "=="):
			r.key, r.value, _ = strings.Cut(part, "==")
			r.op = "="
		case strings.Contains(part, "="):
			r.key, r.value, _ = strings.Cut(part, "=")
			r.op = "="
		case strings.HasPrefix(part, "!"):
			r.key, r.op = part[1:], "!exists"
		default:
			r.key, r.op = part, "exists"
		}
		r.key, r.value = strings.TrimSpace(r.key), strings.TrimSpace(r.value)
		if r.key == "" {
			return nil, fmt.Errorf("invalid label selector %q", part)
		}
		sel = append(sel, r)
	}
	return sel, nil
}

// Matches reports whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s {
		v, ok := labels[r.key]
		switch r.op {
		case "=":
			if !ok || v != r.value {
				return false
			}
		case "!=":
			if ok && v == r.value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		}
	}
	return true
}

// Empty reports whether the selector matches everything.
func (s Selector) Empty() bool { return len(s) == 0 }

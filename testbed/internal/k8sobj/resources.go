// Package k8sobj models the few Kubernetes objects the fake apiserver serves:
// JSON values as written to etcd by the load writer, re-rendered as
// kube-apiserver would (field order, resourceVersion from etcd) in JSON and in
// Kubernetes protobuf ("k8s\x00" + runtime.Unknown).
package k8sobj

import (
	"fmt"
	"sort"
	"strings"
)

// Resource describes one served resource type.
type Resource struct {
	Name       string // plural, as in the URL and the etcd key ("configmaps")
	Group      string // "" for the core group
	Version    string
	Kind       string
	Namespaced bool
}

// APIVersion returns "v1" or "group/version".
func (r Resource) APIVersion() string {
	if r.Group == "" {
		return r.Version
	}
	return r.Group + "/" + r.Version
}

// ID is the resource's unique name: "configmaps" for the core group,
// "leases.coordination.k8s.io" otherwise (kubectl's resource.group form).
func (r Resource) ID() string {
	if r.Group == "" {
		return r.Name
	}
	return r.Name + "." + r.Group
}

// EtcdPrefix is the key prefix kube-apiserver uses: /registry/<resource>/.
// (Real kube-apiserver has historical exceptions such as services/specs;
// none of the resources here is one of them.)
func (r Resource) EtcdPrefix() string { return "/registry/" + r.Name + "/" }

// Known lists the resources the testbed can serve. Their protobuf encodings
// are in protobuf.go; only fields the load writer produces are encoded.
var Known = []Resource{
	{Name: "configmaps", Version: "v1", Kind: "ConfigMap", Namespaced: true},
	{Name: "secrets", Version: "v1", Kind: "Secret", Namespaced: true},
	{Name: "leases", Group: "coordination.k8s.io", Version: "v1", Kind: "Lease", Namespaced: true},
}

// Lookup finds a resource by ID ("configmaps", "leases.coordination.k8s.io").
func Lookup(id string) (Resource, error) {
	for _, r := range Known {
		if r.ID() == id {
			return r, nil
		}
	}
	ids := make([]string, 0, len(Known))
	for _, r := range Known {
		ids = append(ids, r.ID())
	}
	sort.Strings(ids)
	return Resource{}, fmt.Errorf("unknown resource %q (known: %s)", id, strings.Join(ids, ", "))
}

// ParseList parses a comma-separated list of resource IDs.
func ParseList(s string) ([]Resource, error) {
	var out []Resource
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		r, err := Lookup(id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no resources in %q", s)
	}
	return out, nil
}

// SplitKey splits an etcd key /registry/<resource>/<ns>/<name> into
// namespace and name (namespace empty for cluster-scoped keys).
func SplitKey(r Resource, key string) (namespace, name string, err error) {
	rest, ok := strings.CutPrefix(key, r.EtcdPrefix())
	if !ok {
		return "", "", fmt.Errorf("key %q outside %s", key, r.EtcdPrefix())
	}
	if !r.Namespaced {
		return "", rest, nil
	}
	ns, name, ok := strings.Cut(rest, "/")
	if !ok || ns == "" || name == "" {
		return "", "", fmt.Errorf("key %q is not <prefix><namespace>/<name>", key)
	}
	return ns, name, nil
}

// Key builds the etcd key for a namespaced object.
func Key(r Resource, namespace, name string) string {
	if !r.Namespaced {
		return r.EtcdPrefix() + name
	}
	return r.EtcdPrefix() + namespace + "/" + name
}

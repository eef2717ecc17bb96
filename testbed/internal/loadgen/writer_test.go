package loadgen

import (
	"testing"

	"watchtrace/testbed/internal/k8sobj"
)

// TestObjectJSON pins the writer's value: unchanged for etcd writes (no
// resourceVersion), and with metadata.resourceVersion for a stale update.
func TestObjectJSON(t *testing.T) {
	cm, _ := k8sobj.Lookup("configmaps")
	for rv, want := range map[int64]string{
		0: `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"wl-0001","namespace":"ns-0","labels":{"app":"watch-load","parity":"1"}},"data":{"counter":"3"}}`,
		7: `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"wl-0001","namespace":"ns-0","resourceVersion":"7","labels":{"app":"watch-load","parity":"1"}},"data":{"counter":"3"}}`,
	} {
		if got := string(objectJSON(cm, "ns-0", "wl-0001", 3, 0, rv)); got != want {
			t.Errorf("rv %d:\n got %s\nwant %s", rv, got, want)
		}
	}
	if got := len(objectJSON(cm, "ns-0", "wl-0001", 3, 1000, 0)); got < 990 || got > 1000 {
		t.Errorf("padded to %d bytes, want about 1000", got)
	}
}

func TestCollectionPath(t *testing.T) {
	cm, _ := k8sobj.Lookup("configmaps")
	lease, _ := k8sobj.Lookup("leases.coordination.k8s.io")
	if p := collectionPath(cm, "ns"); p != "/api/v1/namespaces/ns/configmaps" {
		t.Error(p)
	}
	if p := collectionPath(lease, "ns"); p != "/apis/coordination.k8s.io/v1/namespaces/ns/leases" {
		t.Error(p)
	}
}

package integration

import (
	"sort"
	"testing"
	"time"

	"watchtrace/testbed/internal/groundtruth"
)

// TestSlowResourceDispatch checks the slow-dispatch fault knob: only the
// chosen resource's events wait -slow-delay between arriving from etcd
// (t_read) and being handed to watchers (t), and its watchers see the delay.
func TestSlowResourceDispatch(t *testing.T) {
	const delay = 50 * time.Millisecond
	b := startBed(t, false, "-slow-resource", "configmaps", "-slow-delay", delay.String())
	_, _, code := b.runLoad("watch-load", 60*time.Second, "-conns", "1", "-watches-per-conn", "2",
		"-resources", "configmaps,secrets", "-namespaces", "ns-0", "-write-rate", "10", "-duration", "3s")
	if code != 0 {
		t.Fatalf("watch-load exit %d", code)
	}
	gt := b.stopAPI()
	lag := map[string][]time.Duration{}
	for _, r := range gt {
		if r.Kind == groundtruth.KindEtcdEvent {
			lag[r.Resource] = append(lag[r.Resource], time.Duration(r.T-r.TRead))
		}
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	if len(lag["configmaps"]) == 0 || len(lag["secrets"]) == 0 {
		t.Fatalf("events per resource: %d configmaps, %d secrets", len(lag["configmaps"]), len(lag["secrets"]))
	}
	slow, fast := median(lag["configmaps"]), median(lag["secrets"])
	t.Logf("median etcd read -> dispatch: configmaps %v (slowed by %v), secrets %v", slow, delay, fast)
	if slow < delay || fast > delay/2 {
		t.Errorf("slow-resource knob not visible: configmaps %v, secrets %v", slow, fast)
	}
}

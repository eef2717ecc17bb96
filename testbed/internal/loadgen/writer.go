package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/jsonl"
	"watchtrace/testbed/internal/k8sobj"
)

// WriterConfig configures the etcd writer.
type WriterConfig struct {
	Client      *etcdgrpc.Client
	Resources   []k8sobj.Resource
	Namespaces  []string
	Keys        int     // objects per resource and namespace
	Rate        float64 // operations per second
	Duration    time.Duration
	DeleteRatio float64 // probability that an op on an existing key deletes it
	ObjectSize  int     // pad values to about this many bytes (0: no padding)
	Workers     int     // concurrent etcd clients' worth of in-flight ops
	Seed        uint64
	Log         *jsonl.Writer
}

type keySlot struct {
	res    k8sobj.Resource
	ns     string
	name   string
	exists bool
}

type writer struct {
	cfg   WriterConfig
	mu    sync.Mutex
	sum   WriterSummary
	start time.Time
}

type opRecord struct {
	Kind    string `json:"kind"` // "op"
	Op      string `json:"op"`   // create | update | delete
	TBefore int64  `json:"t_before"`
	TAfter  int64  `json:"t_after"`
	Key     string `json:"key"`
	Rev     int64  `json:"rev,omitempty"`
	Deleted int64  `json:"deleted,omitempty"`
	Bytes   int    `json:"bytes,omitempty"`
	Error   string `json:"error,omitempty"`
}

// RunWriter puts, updates and deletes objects at cfg.Rate for cfg.Duration.
// Op i is scheduled at start + i/rate; worker w owns the keys with index
// congruent to w, so per-key operations stay ordered and each worker knows
// whether its keys exist.
func RunWriter(ctx context.Context, cfg WriterConfig) *WriterSummary {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Keys <= 0 {
		cfg.Keys = 50
	}
	w := &writer{cfg: cfg, start: time.Now()}
	w.sum.Planned = int64(cfg.Rate * cfg.Duration.Seconds())
	w.sum.PerScope = map[string]int64{}
	w.sum.MaxRev = map[string]int64{}
	w.sum.StartedAt = w.start.UnixNano()

	var slots []*keySlot
	for _, r := range cfg.Resources {
		for _, ns := range cfg.Namespaces {
			for k := 0; k < cfg.Keys; k++ {
				slots = append(slots, &keySlot{res: r, ns: ns, name: fmt.Sprintf("wl-%04d", k)})
			}
		}
	}
	var wg sync.WaitGroup
	var lastLag time.Duration
	var lagMu sync.Mutex
	for wi := 0; wi < cfg.Workers; wi++ {
		var mine []*keySlot
		for i := wi; i < len(slots); i += cfg.Workers {
			mine = append(mine, slots[i])
		}
		if len(mine) == 0 {
			continue
		}
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(wi)))
		wg.Go(func() {
			for op := int64(wi); op < w.sum.Planned; op += int64(cfg.Workers) {
				due := w.start.Add(time.Duration(float64(op) / cfg.Rate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					sleepCtx(ctx, d)
				}
				if ctx.Err() != nil {
					return
				}
				lag := time.Since(due)
				w.do(ctx, mine[rng.IntN(len(mine))], op, rng)
				lagMu.Lock()
				lastLag = max(lastLag, lag)
				lagMu.Unlock()
			}
		})
	}
	wg.Wait()
	w.sum.FinishedAt = time.Now().UnixNano()
	w.sum.Lag = lastLag.String()
	w.sum.Committed = w.sum.Puts + w.sum.Deletes
	return &w.sum
}

func scope(res k8sobj.Resource, ns string) string { return res.ID() + "/" + ns }

func (w *writer) do(ctx context.Context, slot *keySlot, counter int64, rng *rand.Rand) {
	key := k8sobj.Key(slot.res, slot.ns, slot.name)
	rec := opRecord{Kind: "op", Key: key}
	var rev, deleted int64
	var err error
	rec.TBefore = time.Now().UnixNano()
	if slot.exists && rng.Float64() < w.cfg.DeleteRatio {
		rec.Op = "delete"
		var h etcdgrpc.ResponseHeader
		h, deleted, err = w.cfg.Client.Delete(ctx, []byte(key))
		rev = h.Revision
	} else {
		rec.Op = "update"
		if !slot.exists {
			rec.Op = "create"
		}
		value := objectJSON(slot.res, slot.ns, slot.name, counter, w.cfg.ObjectSize)
		rec.Bytes = len(value)
		var h etcdgrpc.ResponseHeader
		h, err = w.cfg.Client.Put(ctx, []byte(key), value)
		rev = h.Revision
	}
	rec.TAfter = time.Now().UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sum.Ops++
	if err != nil {
		w.sum.Errors++
		rec.Error = err.Error()
		w.cfg.Log.Write(rec)
		return
	}
	rec.Rev, rec.Deleted = rev, deleted
	committed := true
	switch rec.Op {
	case "delete":
		if deleted > 0 {
			w.sum.Deletes++
		} else {
			w.sum.NoopDeletes++
			committed = false
		}
		slot.exists = false
	case "create":
		w.sum.Puts++
		w.sum.Creates++
		slot.exists = true
	default:
		w.sum.Puts++
		w.sum.Updates++
	}
	if committed {
		sc := scope(slot.res, slot.ns)
		w.sum.PerScope[sc]++
		w.sum.MaxRev[sc] = max(w.sum.MaxRev[sc], rev)
		if w.sum.FirstRev == 0 || rev < w.sum.FirstRev {
			w.sum.FirstRev = rev
		}
		w.sum.LastRev = max(w.sum.LastRev, rev)
	}
	w.cfg.Log.Write(rec)
}

// objectJSON renders the stored value: a ConfigMap-shaped object (kind and
// apiVersion of the resource) with a counter, padded to about size bytes.
func objectJSON(res k8sobj.Resource, ns, name string, counter int64, size int) []byte {
	type meta struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	}
	obj := struct {
		Kind       string            `json:"kind"`
		APIVersion string            `json:"apiVersion"`
		Metadata   meta              `json:"metadata"`
		Data       map[string]string `json:"data"`
	}{
		Kind: res.Kind, APIVersion: res.APIVersion(),
		Metadata: meta{Name: name, Namespace: ns, Labels: map[string]string{"app": "watch-load", "parity": strconv.FormatInt(counter%2, 10)}},
		Data:     map[string]string{"counter": strconv.FormatInt(counter, 10)},
	}
	b, _ := json.Marshal(obj)
	if pad := size - len(b) - len(`,"padding":""`); pad > 0 {
		obj.Data["padding"] = strings.Repeat("x", pad)
		b, _ = json.Marshal(obj)
	}
	return b
}

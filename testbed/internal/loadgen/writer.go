package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/jsonl"
	"watchtrace/testbed/internal/k8sobj"
)

// Write paths (WriterConfig.Via).
const (
	ViaEtcd      = "etcd"      // Put and DeleteRange straight to etcd
	ViaAPIServer = "apiserver" // POST, PUT and DELETE to the fake apiserver
)

// DefaultWriterUserAgent is the writer's User-Agent with -write-via apiserver.
const DefaultWriterUserAgent = "watch-load-writer/v1.0.0 (linux/amd64) testbed"

// WriterConfig configures the writer.
type WriterConfig struct {
	// Via is ViaEtcd (default) or ViaAPIServer.
	Via    string
	Client *etcdgrpc.Client // ViaEtcd
	// ViaAPIServer: the server (Run fills these from Config), the HTTP/2
	// (or, with HTTP1, HTTP/1.1) connection's User-Agent, and the
	// probability that an update sends a stale metadata.resourceVersion
	// (answered 409 Conflict).
	BaseURL       string
	TLS           *tls.Config
	HTTP1         bool
	UserAgent     string
	ConflictRatio float64

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
	// rev is the object's last revision as the writer's own calls
	// reported it, prevRev the one before (0: none since its creation).
	rev, prevRev int64
}

type writer struct {
	cfg   WriterConfig
	mu    sync.Mutex
	sum   WriterSummary
	start time.Time
	api   *connection // ViaAPIServer
}

// opResult is what one operation got back.
type opResult struct {
	rev      int64 // revision it committed at (the deletion revision for a delete)
	deleted  int64 // delete: keys removed (0 or 1)
	status   int   // HTTP status (ViaAPIServer)
	conflict bool  // a stale-resourceVersion update refused with 409, as intended
	err      error
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
	// -write-via apiserver: the HTTP status; for an update sent with a
	// stale metadata.resourceVersion (-conflict-ratio), that version and
	// conflict=true once the server refused it with 409.
	Status   int    `json:"status,omitempty"`
	StaleRV  int64  `json:"stale_rv,omitempty"`
	Conflict bool   `json:"conflict,omitempty"`
	Error    string `json:"error,omitempty"`
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
	if cfg.Via == "" {
		cfg.Via = ViaEtcd
	}
	w := &writer{cfg: cfg}
	w.sum.Via = cfg.Via
	if cfg.Via == ViaAPIServer {
		if cfg.UserAgent == "" {
			cfg.UserAgent = DefaultWriterUserAgent
		}
		w.cfg = cfg
		w.api = newConnection(-1, cfg.BaseURL, cfg.UserAgent, cfg.TLS, cfg.HTTP1)
		defer w.api.close()
		w.sum.UserAgent = cfg.UserAgent
		// One request alone first, so the workers' first requests share
		// the connection it opens instead of racing to dial their own.
		w.warmUp(ctx)
	}
	w.start = time.Now()
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
	if w.api != nil {
		w.sum.Dials, w.sum.LocalAddrs = w.api.dials.Load(), w.api.addrs()
	}
	w.sum.Committed = w.sum.Puts + w.sum.Deletes
	return &w.sum
}

func scope(res k8sobj.Resource, ns string) string { return res.ID() + "/" + ns }

func (w *writer) do(ctx context.Context, slot *keySlot, counter int64, rng *rand.Rand) {
	key := k8sobj.Key(slot.res, slot.ns, slot.name)
	rec := opRecord{Kind: "op", Key: key}
	var res opResult
	rec.TBefore = time.Now().UnixNano()
	if slot.exists && rng.Float64() < w.cfg.DeleteRatio {
		rec.Op = "delete"
		res = w.delete(ctx, slot, key)
	} else {
		rec.Op = "update"
		if !slot.exists {
			rec.Op = "create"
		}
		// Only draw when asked, so that a seed gives the same operations
		// with and without the option.
		if rec.Op == "update" && w.cfg.ConflictRatio > 0 && rng.Float64() < w.cfg.ConflictRatio {
			rec.StaleRV = slot.prevRev
			if rec.StaleRV == 0 {
				rec.StaleRV = max(1, slot.rev-1)
			}
		}
		value := objectJSON(slot.res, slot.ns, slot.name, counter, w.cfg.ObjectSize, rec.StaleRV)
		rec.Bytes = len(value)
		res = w.put(ctx, slot, key, value, rec.Op == "create", rec.StaleRV)
	}
	rec.TAfter = time.Now().UnixNano()
	rec.Status, rec.Conflict = res.status, res.conflict
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sum.Ops++
	if res.err != nil {
		w.sum.Errors++
		rec.Error = res.err.Error()
		w.cfg.Log.Write(rec)
		return
	}
	if res.conflict {
		w.sum.Conflicts++
		w.cfg.Log.Write(rec)
		return
	}
	rec.Rev, rec.Deleted = res.rev, res.deleted
	committed := true
	switch rec.Op {
	case "delete":
		if res.deleted > 0 {
			w.sum.Deletes++
		} else {
			w.sum.NoopDeletes++
			committed = false
		}
		slot.exists = false
		slot.rev, slot.prevRev = 0, 0
	case "create":
		w.sum.Puts++
		w.sum.Creates++
		slot.exists = true
		slot.rev, slot.prevRev = res.rev, 0
	default:
		w.sum.Puts++
		w.sum.Updates++
		slot.rev, slot.prevRev = res.rev, slot.rev
	}
	if committed {
		sc := scope(slot.res, slot.ns)
		w.sum.PerScope[sc]++
		w.sum.MaxRev[sc] = max(w.sum.MaxRev[sc], res.rev)
		if w.sum.FirstRev == 0 || res.rev < w.sum.FirstRev {
			w.sum.FirstRev = res.rev
		}
		w.sum.LastRev = max(w.sum.LastRev, res.rev)
	}
	w.cfg.Log.Write(rec)
}

// put creates or updates one object: a Put to etcd, or a POST (create) or
// PUT (update) to the apiserver.
func (w *writer) put(ctx context.Context, slot *keySlot, key string, value []byte, create bool, staleRV int64) opResult {
	if w.api == nil {
		h, err := w.cfg.Client.Put(ctx, []byte(key), value)
		return opResult{rev: h.Revision, err: err}
	}
	if create {
		return w.request(ctx, http.MethodPost, collectionPath(slot.res, slot.ns), value, http.StatusCreated, false)
	}
	return w.request(ctx, http.MethodPut, collectionPath(slot.res, slot.ns)+"/"+slot.name, value, http.StatusOK, staleRV > 0)
}

// delete removes one object: a DeleteRange in etcd or a DELETE to the
// apiserver (which answers the deleted object at its deletion revision).
func (w *writer) delete(ctx context.Context, slot *keySlot, key string) opResult {
	if w.api == nil {
		h, deleted, err := w.cfg.Client.Delete(ctx, []byte(key))
		return opResult{rev: h.Revision, deleted: deleted, err: err}
	}
	res := w.request(ctx, http.MethodDelete, collectionPath(slot.res, slot.ns)+"/"+slot.name, nil, http.StatusOK, false)
	if res.err == nil {
		res.deleted = 1
	}
	return res
}

// apiRequestTimeout bounds one write request.
const apiRequestTimeout = 30 * time.Second

// request sends one write to the apiserver and reads the resourceVersion
// of the object it answers. wantConflict: the body carries a stale
// resourceVersion, so 409 Conflict is the expected answer.
func (w *writer) request(ctx context.Context, method, path string, body []byte, want int, wantConflict bool) opResult {
	ctx, cancel := context.WithTimeout(ctx, apiRequestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.cfg.BaseURL+path, rd)
	if err != nil {
		return opResult{err: err}
	}
	w.setHeaders(req)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.api.client.Do(req)
	if err != nil {
		return opResult{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	res := opResult{status: resp.StatusCode}
	if err != nil {
		res.err = fmt.Errorf("%s %s: reading the response: %w", method, path, err)
		return res
	}
	var out struct {
		Kind     string `json:"kind"`
		Message  string `json:"message"`
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	jerr := json.Unmarshal(raw, &out)
	switch {
	case wantConflict && resp.StatusCode == http.StatusConflict:
		res.conflict = true
	case wantConflict:
		res.err = fmt.Errorf("%s %s with a stale resourceVersion: HTTP %d, want 409", method, path, resp.StatusCode)
	case resp.StatusCode != want:
		res.err = fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, out.Message)
	case jerr != nil:
		res.err = fmt.Errorf("%s %s: response: %w", method, path, jerr)
	default:
		if res.rev, err = strconv.ParseInt(out.Metadata.ResourceVersion, 10, 64); err != nil || res.rev <= 0 {
			res.err = fmt.Errorf("%s %s: response resourceVersion %q", method, path, out.Metadata.ResourceVersion)
		}
	}
	return res
}

func (w *writer) setHeaders(req *http.Request) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", w.cfg.UserAgent)
	req.Header.Set("Authorization", "Bearer watchtrace-testbed-token")
}

// warmUp makes the writer connection's first request, GET /version (what
// client-go's discovery asks first), alone.
func (w *writer) warmUp(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, apiRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.BaseURL+"/version", nil)
	if err != nil {
		return
	}
	w.setHeaders(req)
	if resp, err := w.api.client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// collectionPath is the URL path of a namespaced collection.
func collectionPath(r k8sobj.Resource, ns string) string {
	p := "/api/" + r.Version
	if r.Group != "" {
		p = "/apis/" + r.Group + "/" + r.Version
	}
	return p + "/namespaces/" + ns + "/" + r.Name
}

// objectJSON renders the stored value: a ConfigMap-shaped object (kind and
// apiVersion of the resource) with a counter, padded to about size bytes.
// rv > 0 sets metadata.resourceVersion (an update conditional on it).
func objectJSON(res k8sobj.Resource, ns, name string, counter int64, size int, rv int64) []byte {
	type meta struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		ResourceVersion string            `json:"resourceVersion,omitempty"`
		Labels          map[string]string `json:"labels"`
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
	if rv > 0 {
		obj.Metadata.ResourceVersion = strconv.FormatInt(rv, 10)
	}
	b, _ := json.Marshal(obj)
	if pad := size - len(b) - len(`,"padding":""`); pad > 0 {
		obj.Data["padding"] = strings.Repeat("x", pad)
		b, _ = json.Marshal(obj)
	}
	return b
}

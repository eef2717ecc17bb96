package apiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/k8sobj"
)

// Writes follow kube-apiserver's storage (k8s.io/apiserver/pkg/storage/
// etcd3/store.go) over the server's etcd client, one unary KV/Txn per
// attempt:
//
//	create:  Txn{mod_revision(key) == 0; put(key, value); else range(key)}
//	update:  Txn{mod_revision(key) == rev; put(key, value); else range(key)}
//	delete:  Txn{mod_revision(key) == rev; delete_range(key); else range(key)}
//
// The new resourceVersion is the Txn response header's revision. An update,
// patch or delete without a client-given resourceVersion reads the current
// state (from the watch cache, as the cacher hands it to storage, or by a
// Range when the cache lacks the key) and, when the compare fails, retries
// with the state the failure range returned (GuaranteedUpdate), up to
// maxWriteAttempts Txns.

// maxWriteAttempts bounds the Txns of one update, patch or delete.
const maxWriteAttempts = 5

// maxBodyBytes is kube-apiserver's request body limit (3 MiB).
const maxBodyBytes = 3 << 20

// etcdTimeout bounds the etcd calls of one request.
const etcdTimeout = 30 * time.Second

// writeReq is one mutating request in progress.
type writeReq struct {
	s    *Server
	res  k8sobj.Resource
	ns   string
	name string
	key  string
	rec  *groundtruth.Record

	// Outcome.
	code   int
	obj    *k8sobj.Object // response object (resourceVersion set)
	status *k8sobj.Status // error response
}

func (wr *writeReq) fail(st k8sobj.Status) {
	wr.code, wr.status, wr.obj = int(st.Code), &st, nil
}

func (wr *writeReq) failCode(code int, msg string) {
	wr.fail(k8sobj.Status{Message: msg, Reason: reasons[code], Code: int32(code)})
}

func (wr *writeReq) ok(code int, obj *k8sobj.Object, rev int64) {
	c := *obj
	c.Kind, c.APIVersion, c.Meta.Namespace = wr.res.Kind, wr.res.APIVersion(), wr.ns
	wr.code, wr.obj = code, c.WithRV(rev)
	wr.rec.Revision = rev
}

// serveWrite handles POST (create), PUT (update), PATCH (patch) and DELETE
// (delete) and logs one api_write record.
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request, f framing.Format, rt route, tRequest int64) {
	rec := &groundtruth.Record{
		Kind: groundtruth.KindAPIWrite, TRequest: tRequest, Method: r.Method, Client: r.RemoteAddr,
		Proto: r.Proto, TLS: tlsFlag(r), Path: requestPath(r), UserAgent: userAgent(r),
		Resource: rt.res.ID(), Namespace: rt.namespace, Name: rt.name,
	}
	wr := &writeReq{s: s, res: rt.res, ns: rt.namespace, name: rt.name, rec: rec}
	switch r.Method {
	case http.MethodPost:
		rec.Verb = groundtruth.VerbCreate
	case http.MethodPut:
		rec.Verb = groundtruth.VerbUpdate
	case http.MethodPatch:
		rec.Verb = groundtruth.VerbPatch
	case http.MethodDelete:
		rec.Verb = groundtruth.VerbDelete
	}
	ctx, cancel := context.WithTimeout(r.Context(), etcdTimeout)
	defer cancel()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		wr.failCode(http.StatusRequestEntityTooLarge, "the request is too large")
	case err != nil:
		wr.failCode(http.StatusBadRequest, "reading the request body: "+err.Error())
	case s.cfg.Etcd == nil || rt.legacyWatch || (rt.res.Namespaced && rt.namespace == "") ||
		(r.Method == http.MethodPost) != (rt.name == ""):
		// POST on collections, the others on objects; namespaced
		// resources only under namespaces/{ns}/.
		wr.failCode(http.StatusMethodNotAllowed, "the server does not allow this method on the requested resource")
	case rt.namespace != "" && !validLabel(rt.namespace):
		wr.fail(k8sobj.Status{Message: fmt.Sprintf("namespaces %q not found", rt.namespace), Reason: "NotFound",
			Code: http.StatusNotFound, DetailsName: rt.namespace, DetailsKind: "namespaces"})
	case rt.name == "." || rt.name == ".." || strings.ContainsAny(rt.name, "%"):
		wr.failCode(http.StatusBadRequest, fmt.Sprintf("invalid resource name %q: may not be '.' or '..' or contain '/' or '%%'", rt.name))
	default:
		switch r.Method {
		case http.MethodPost:
			wr.create(ctx, r, body)
		case http.MethodPut:
			wr.update(ctx, r, body)
		case http.MethodPatch:
			wr.patch(ctx, r, body)
		case http.MethodDelete:
			wr.delete(ctx, body)
		}
	}

	if wr.code == 0 {
		wr.failCode(http.StatusInternalServerError, "the write produced no response")
	}
	var out []byte
	if wr.status != nil {
		rec.Reason, rec.Error = wr.status.Reason, wr.status.Message
		out = statusBody(f, *wr.status)
	} else {
		out = (&framing.Object{Resource: wr.res, Obj: wr.obj}).Encoded(f)
		if f == framing.JSON {
			out = append(out[:len(out):len(out)], '\n')
		}
	}
	h := w.Header()
	h.Set("Content-Type", f.ContentType())
	h.Set("Content-Length", strconv.Itoa(len(out)))
	rec.Status = wr.code
	rec.TResponded = groundtruth.Now()
	w.WriteHeader(wr.code)
	n, err := w.Write(out)
	rec.Bytes = int64(n)
	if err != nil && rec.Error == "" {
		rec.Error = err.Error()
	}
	s.cfg.Log.Log(rec)
}

// txn runs one Txn with the compare mod_revision(key) == rev, success op,
// and range(key) on failure, counting it in the record; the times of the
// successful one are the record's t_etcd_sent and t_committed.
func (wr *writeReq) txn(ctx context.Context, rev int64, success etcdgrpc.Op) (*etcdgrpc.TxnResponse, error) {
	key := []byte(wr.key)
	resp, err := wr.s.cfg.Etcd.Txn(ctx, etcdgrpc.TxnRequest{
		Compare: []etcdgrpc.Compare{etcdgrpc.ModRevisionEquals(key, rev)},
		Success: []etcdgrpc.Op{success},
		Failure: []etcdgrpc.Op{etcdgrpc.OpGet(key)},
	})
	wr.rec.EtcdCalls++
	if err != nil {
		return nil, err
	}
	if resp.Succeeded {
		wr.rec.TEtcdSent, wr.rec.TCommitted = resp.SentAt.UnixNano(), resp.ReadAt.UnixNano()
	} else {
		wr.rec.EtcdConflicts++
	}
	return resp, nil
}

// failureKV returns the key-value a failed Txn's range returned (nil: the
// key does not exist).
func failureKV(resp *etcdgrpc.TxnResponse) *etcdgrpc.KeyValue {
	for _, op := range resp.Responses {
		if op.Range != nil && len(op.Range.KVs) > 0 {
			return &op.Range.KVs[0]
		}
	}
	return nil
}

// current returns the object's current state and mod_revision: from the
// watch cache when it holds the key, else from an etcd Range.
func (wr *writeReq) current(ctx context.Context) (*k8sobj.Object, int64, bool, error) {
	if c := wr.s.caches[wr.res.ID()]; c != nil {
		if obj, rev, ok := c.Get(wr.key); ok {
			return obj, rev, true, nil
		}
	}
	return wr.read(ctx)
}

// read gets the object from etcd (a Range of its key).
func (wr *writeReq) read(ctx context.Context) (*k8sobj.Object, int64, bool, error) {
	wr.rec.EtcdReads++
	rr, err := wr.s.cfg.Etcd.Range(ctx, []byte(wr.key), nil)
	if err != nil {
		return nil, 0, false, err
	}
	if len(rr.KVs) == 0 {
		return nil, 0, false, nil
	}
	obj, err := k8sobj.Parse(rr.KVs[0].Value)
	if err != nil {
		return nil, 0, false, fmt.Errorf("stored value of %s: %w", wr.key, err)
	}
	return obj, rr.KVs[0].ModRevision, true, nil
}

func (wr *writeReq) etcdError(err error) {
	wr.failCode(http.StatusInternalServerError, err.Error())
}

// create: POST .../{resource} with the object; its name from
// metadata.name (or metadata.generateName plus five random characters).
func (wr *writeReq) create(ctx context.Context, r *http.Request, body []byte) {
	obj, ok := wr.decode(r, body, false)
	if !ok {
		return
	}
	if obj.Meta.Name == "" && obj.Meta.GenerateName != "" {
		obj.Meta.Name = obj.Meta.GenerateName + randomSuffix()
	}
	if obj.Meta.Name == "" {
		wr.fail(wr.invalid("", "metadata.name: Required value: name or generateName is required"))
		return
	}
	if !validName(obj.Meta.Name) {
		wr.fail(wr.invalid(obj.Meta.Name, fmt.Sprintf("metadata.name: Invalid value: %q: %s", obj.Meta.Name, nameRule)))
		return
	}
	wr.name, wr.rec.Name = obj.Meta.Name, obj.Meta.Name
	wr.key = k8sobj.Key(wr.res, wr.ns, wr.name)
	wr.rec.Key = wr.key
	resp, err := wr.txn(ctx, 0, etcdgrpc.OpPutKV([]byte(wr.key), wr.storage(obj)))
	if err != nil {
		wr.etcdError(err)
		return
	}
	if !resp.Succeeded {
		wr.fail(k8sobj.AlreadyExists(wr.res, wr.name))
		return
	}
	wr.ok(http.StatusCreated, obj, resp.Header.Revision)
}

// update: PUT .../{resource}/{name} with the whole object. With
// metadata.resourceVersion the Txn compares it (one attempt, 409 Conflict
// when it is not the stored one); without, it is an unconditional update
// retried on conflicts.
func (wr *writeReq) update(ctx context.Context, r *http.Request, body []byte) {
	obj, ok := wr.decode(r, body, true)
	if !ok {
		return
	}
	if rv := obj.Meta.ResourceVersion; rv != "" {
		n, err := strconv.ParseInt(rv, 10, 64)
		if err != nil || n <= 0 {
			wr.fail(wr.invalid(wr.name, fmt.Sprintf("metadata.resourceVersion: Invalid value: %q: must be a positive integer", rv)))
			return
		}
		wr.conditional(ctx, n, etcdgrpc.OpPutKV([]byte(wr.key), wr.storage(obj)), obj, http.StatusOK)
		return
	}
	cur, rev, found, err := wr.current(ctx)
	if err != nil {
		wr.etcdError(err)
		return
	}
	if !found {
		wr.fail(k8sobj.NotFound(wr.res, wr.name))
		return
	}
	value := wr.storage(obj)
	wr.guaranteed(ctx, cur, rev, func(*k8sobj.Object) (*k8sobj.Object, []byte, *k8sobj.Status) { return obj, value, nil })
}

// patch: PATCH .../{resource}/{name} with a JSON merge patch (RFC 7386),
// applied to the current state and retried on conflicts. A patch setting
// metadata.resourceVersion makes it conditional on that version.
func (wr *writeReq) patch(ctx context.Context, r *http.Request, body []byte) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/merge-patch+json" && mt != "application/strategic-merge-patch+json" {
		wr.failCode(http.StatusUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got %q)", mt))
		return
	}
	var p any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		wr.failCode(http.StatusBadRequest, "error decoding patch: "+err.Error())
		return
	}
	if _, isMap := p.(map[string]any); !isMap {
		wr.failCode(http.StatusBadRequest, "error decoding patch: a merge patch must be a JSON object")
		return
	}
	wr.key = k8sobj.Key(wr.res, wr.ns, wr.name)
	wr.rec.Key = wr.key
	cur, rev, found, err := wr.current(ctx)
	if err != nil {
		wr.etcdError(err)
		return
	}
	if !found {
		wr.fail(k8sobj.NotFound(wr.res, wr.name))
		return
	}
	apply := func(cur *k8sobj.Object) (*k8sobj.Object, []byte, *k8sobj.Status) {
		c := *cur
		c.Meta.ResourceVersion = ""
		var doc any
		d := json.NewDecoder(bytes.NewReader(c.AppendJSON(nil)))
		d.UseNumber()
		if err := d.Decode(&doc); err != nil {
			st := k8sobj.Status{Message: err.Error(), Reason: reasons[500], Code: 500}
			return nil, nil, &st
		}
		patched, _ := json.Marshal(mergePatch(doc, p))
		obj, err := k8sobj.Parse(patched)
		if err != nil {
			st := wr.invalid(wr.name, "patched object: "+err.Error())
			return nil, nil, &st
		}
		if obj.Meta.Name != wr.name || (obj.Meta.Namespace != "" && obj.Meta.Namespace != wr.ns) {
			st := wr.invalid(wr.name, "metadata.name, metadata.namespace: Invalid value: field is immutable")
			return nil, nil, &st
		}
		return obj, nil, nil
	}
	if pm := p.(map[string]any)["metadata"]; pm != nil {
		if m, isMap := pm.(map[string]any); isMap {
			if rv, isStr := m["resourceVersion"].(string); isStr && rv != "" {
				n, err := strconv.ParseInt(rv, 10, 64)
				if err != nil || n <= 0 {
					wr.fail(wr.invalid(wr.name, fmt.Sprintf("metadata.resourceVersion: Invalid value: %q: must be a positive integer", rv)))
					return
				}
				obj, _, st := apply(cur)
				if st != nil {
					wr.fail(*st)
					return
				}
				wr.conditional(ctx, n, etcdgrpc.OpPutKV([]byte(wr.key), wr.storage(obj)), obj, http.StatusOK)
				return
			}
		}
	}
	wr.guaranteed(ctx, cur, rev, apply)
}

// delete: DELETE .../{resource}/{name}, optionally with DeleteOptions
// whose preconditions.resourceVersion makes it conditional. The response
// is the deleted object stamped with the deletion revision.
func (wr *writeReq) delete(ctx context.Context, body []byte) {
	wr.key = k8sobj.Key(wr.res, wr.ns, wr.name)
	wr.rec.Key = wr.key
	var opts struct {
		Preconditions *struct {
			ResourceVersion *string `json:"resourceVersion"`
		} `json:"preconditions"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &opts); err != nil {
			wr.failCode(http.StatusBadRequest, "error decoding DeleteOptions: "+err.Error())
			return
		}
	}
	cur, rev, found, err := wr.current(ctx)
	if err != nil {
		wr.etcdError(err)
		return
	}
	if !found {
		wr.fail(k8sobj.NotFound(wr.res, wr.name))
		return
	}
	del := etcdgrpc.OpDelete([]byte(wr.key))
	if pc := opts.Preconditions; pc != nil && pc.ResourceVersion != nil && *pc.ResourceVersion != "" {
		n, err := strconv.ParseInt(*pc.ResourceVersion, 10, 64)
		if err != nil || n <= 0 {
			wr.failCode(http.StatusBadRequest, fmt.Sprintf("invalid precondition resourceVersion %q", *pc.ResourceVersion))
			return
		}
		wr.conditional(ctx, n, del, cur, http.StatusOK)
		return
	}
	for attempt := 1; ; attempt++ {
		resp, err := wr.txn(ctx, rev, del)
		if err != nil {
			wr.etcdError(err)
			return
		}
		if resp.Succeeded {
			wr.ok(http.StatusOK, cur, resp.Header.Revision)
			return
		}
		var again bool
		if cur, rev, again = wr.retryFrom(resp, attempt); !again {
			return
		}
	}
}

// retryFrom takes a Txn whose compare failed at attempt: the stored object
// and its revision to try again from, or false once it has answered (404:
// the key is gone; 409: the attempts are used up; 500: unreadable).
func (wr *writeReq) retryFrom(resp *etcdgrpc.TxnResponse, attempt int) (*k8sobj.Object, int64, bool) {
	kv := failureKV(resp)
	if kv == nil {
		wr.fail(k8sobj.NotFound(wr.res, wr.name))
		return nil, 0, false
	}
	if attempt == maxWriteAttempts {
		wr.fail(k8sobj.Conflict(wr.res, wr.name))
		return nil, 0, false
	}
	cur, err := k8sobj.Parse(kv.Value)
	if err != nil {
		wr.etcdError(fmt.Errorf("stored value of %s: %w", wr.key, err))
		return nil, 0, false
	}
	return cur, kv.ModRevision, true
}

// conditional runs one Txn comparing the client-given resourceVersion: no
// retry; a failed compare is 409 Conflict (404 if the object is gone).
func (wr *writeReq) conditional(ctx context.Context, rv int64, op etcdgrpc.Op, obj *k8sobj.Object, code int) {
	resp, err := wr.txn(ctx, rv, op)
	if err != nil {
		wr.etcdError(err)
		return
	}
	switch {
	case resp.Succeeded:
		wr.ok(code, obj, resp.Header.Revision)
	case failureKV(resp) == nil:
		wr.fail(k8sobj.NotFound(wr.res, wr.name))
	default:
		wr.fail(k8sobj.Conflict(wr.res, wr.name))
	}
}

// guaranteed is GuaranteedUpdate: build the new object from the current
// one, put it if the key still has revision rev, else start again from the
// state the failed Txn's range returned. An update that changes nothing
// sends no Txn (after confirming a cached state with a Range) and answers
// the current object.
func (wr *writeReq) guaranteed(ctx context.Context, cur *k8sobj.Object, rev int64,
	tryUpdate func(cur *k8sobj.Object) (*k8sobj.Object, []byte, *k8sobj.Status)) {
	fromCache := wr.rec.EtcdReads == 0
	for attempt := 1; ; attempt++ {
		obj, value, st := tryUpdate(cur)
		if st != nil {
			wr.fail(*st)
			return
		}
		if value == nil {
			value = wr.storage(obj)
		}
		if bytes.Equal(value, wr.storage(cur)) {
			if !fromCache {
				wr.ok(http.StatusOK, cur, rev)
				return
			}
			var found bool
			var err error
			if cur, rev, found, err = wr.read(ctx); err != nil {
				wr.etcdError(err)
				return
			} else if !found {
				wr.fail(k8sobj.NotFound(wr.res, wr.name))
				return
			}
			fromCache = false
			attempt--
			continue
		}
		resp, err := wr.txn(ctx, rev, etcdgrpc.OpPutKV([]byte(wr.key), value))
		if err != nil {
			wr.etcdError(err)
			return
		}
		if resp.Succeeded {
			wr.ok(http.StatusOK, obj, resp.Header.Revision)
			return
		}
		var again bool
		if cur, rev, again = wr.retryFrom(resp, attempt); !again {
			return
		}
		fromCache = false
	}
}

// decode parses a JSON request object and checks it against the URL.
// forObject: PUT, whose URL names the object.
func (wr *writeReq) decode(r *http.Request, body []byte, forObject bool) (*k8sobj.Object, bool) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "" {
		wr.failCode(http.StatusUnsupportedMediaType, fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json (got %q)", mt))
		return nil, false
	}
	obj, err := k8sobj.Parse(body)
	if err != nil {
		wr.failCode(http.StatusBadRequest, "error decoding the request body: "+err.Error())
		return nil, false
	}
	if (obj.Kind != "" && obj.Kind != wr.res.Kind) || (obj.APIVersion != "" && obj.APIVersion != wr.res.APIVersion()) {
		wr.failCode(http.StatusBadRequest, fmt.Sprintf("the API version in the data (%s) and kind (%s) do not match the expected %s %s",
			obj.APIVersion, obj.Kind, wr.res.APIVersion(), wr.res.Kind))
		return nil, false
	}
	if obj.Meta.Namespace != "" && obj.Meta.Namespace != wr.ns {
		wr.failCode(http.StatusBadRequest, "the namespace of the provided object does not match the namespace sent on the request")
		return nil, false
	}
	if forObject {
		if obj.Meta.Name == "" {
			obj.Meta.Name = wr.name
		}
		if obj.Meta.Name != wr.name {
			wr.failCode(http.StatusBadRequest, fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", obj.Meta.Name, wr.name))
			return nil, false
		}
		wr.key = k8sobj.Key(wr.res, wr.ns, wr.name)
		wr.rec.Key = wr.key
	}
	return obj, true
}

// storage renders obj as stored in etcd: JSON with the resource's kind and
// apiVersion, the URL's namespace and no resourceVersion (the revision is
// etcd's), i.e. the value shape watch-load's etcd writer puts, which the
// watch cache parses.
func (wr *writeReq) storage(obj *k8sobj.Object) []byte {
	c := *obj
	c.Kind, c.APIVersion = wr.res.Kind, wr.res.APIVersion()
	c.Meta.Namespace = wr.ns
	c.Meta.ResourceVersion = ""
	return c.AppendJSON(nil)
}

// invalid is a 422 Invalid for this object (errors.NewInvalid).
func (wr *writeReq) invalid(name, cause string) k8sobj.Status {
	st := k8sobj.Status{
		Message: fmt.Sprintf("%s %q is invalid: %s", wr.res.Kind, name, cause), Reason: "Invalid",
		Code: http.StatusUnprocessableEntity, DetailsName: name, DetailsGroup: wr.res.Group, DetailsKind: wr.res.Kind,
	}
	return st
}

// mergePatch applies an RFC 7386 JSON merge patch.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
		} else {
			tm[k] = mergePatch(tm[k], v)
		}
	}
	return tm
}

const nameRule = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"

var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func validName(n string) bool { return len(n) <= 253 && dns1123Subdomain.MatchString(n) }

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validLabel checks a namespace name (an RFC 1123 label).
func validLabel(n string) bool { return len(n) <= 63 && dns1123Label.MatchString(n) }

// randomSuffix is what generateName appends: five characters from
// apimachinery's alphabet without vowels and confusable digits.
func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var b [5]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

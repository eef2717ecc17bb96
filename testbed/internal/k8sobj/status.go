package k8sobj

import (
	"encoding/json"
	"fmt"

	"watchtrace/testbed/internal/proto"
)

// Status is the subset of metav1.Status used for ERROR watch events and
// error responses.
type Status struct {
	Message           string
	Reason            string
	Code              int32
	RetryAfterSeconds int32  // > 0 adds details
	CauseType         string // optional single cause in details
	CauseMessage      string
	// Details naming the object, as errors.NewNotFound, NewAlreadyExists
	// and NewConflict give them: name, API group, and the resource in
	// Kind ("configmaps": kube-apiserver puts the resource there).
	DetailsName  string
	DetailsGroup string
	DetailsKind  string
}

// NotFound is kube-apiserver's 404 for a missing object
// (errors.NewNotFound).
func NotFound(r Resource, name string) Status {
	return objectStatus(r, name, 404, "NotFound", fmt.Sprintf("%s %q not found", r.ID(), name))
}

// AlreadyExists is the 409 for a create of an existing object
// (errors.NewAlreadyExists).
func AlreadyExists(r Resource, name string) Status {
	return objectStatus(r, name, 409, "AlreadyExists", fmt.Sprintf("%s %q already exists", r.ID(), name))
}

// Conflict is the 409 for an update or delete whose resourceVersion is not
// the stored one (errors.NewConflict with the optimistic-lock message).
func Conflict(r Resource, name string) Status {
	return objectStatus(r, name, 409, "Conflict", fmt.Sprintf("Operation cannot be fulfilled on %s %q: the object has been modified; please apply your changes to the latest version and try again", r.ID(), name))
}

func objectStatus(r Resource, name string, code int32, reason, msg string) Status {
	return Status{Message: msg, Reason: reason, Code: code, DetailsName: name, DetailsGroup: r.Group, DetailsKind: r.Name}
}

// Expired is the 410 kube-apiserver's watch cache returns for a
// resourceVersion older than its history.
func Expired(msg string) Status { return Status{Message: msg, Reason: "Expired", Code: 410} }

type statusDetailsJSON struct {
	Name              string            `json:"name,omitempty"`
	Group             string            `json:"group,omitempty"`
	Kind              string            `json:"kind,omitempty"`
	Causes            []statusCauseJSON `json:"causes,omitempty"`
	RetryAfterSeconds int32             `json:"retryAfterSeconds,omitempty"`
}

type statusCauseJSON struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

type statusJSON struct {
	Kind       string             `json:"kind"`
	APIVersion string             `json:"apiVersion"`
	Metadata   struct{}           `json:"metadata"`
	Status     string             `json:"status"`
	Message    string             `json:"message,omitempty"`
	Reason     string             `json:"reason,omitempty"`
	Details    *statusDetailsJSON `json:"details,omitempty"`
	Code       int32              `json:"code"`
}

func (s Status) details() *statusDetailsJSON {
	if s.RetryAfterSeconds == 0 && s.CauseType == "" && s.DetailsName == "" && s.DetailsKind == "" {
		return nil
	}
	d := &statusDetailsJSON{Name: s.DetailsName, Group: s.DetailsGroup, Kind: s.DetailsKind, RetryAfterSeconds: s.RetryAfterSeconds}
	if s.CauseType != "" {
		d.Causes = []statusCauseJSON{{Reason: s.CauseType, Message: s.CauseMessage}}
	}
	return d
}

// AppendJSON appends {"kind":"Status","apiVersion":"v1","metadata":{},...}.
func (s Status) AppendJSON(b []byte) []byte {
	out, _ := json.Marshal(statusJSON{
		Kind: "Status", APIVersion: "v1", Status: "Failure",
		Message: s.Message, Reason: s.Reason, Details: s.details(), Code: s.Code,
	})
	return append(b, out...)
}

// AppendProto appends metav1.Status{metadata=1 ListMeta, status=2,
// message=3, reason=4, details=5, code=6}.
func (s Status) AppendProto(b []byte) []byte {
	b = proto.AppendMessage(b, 1, appendListMeta(nil, ""))
	b = proto.AppendString(b, 2, "Failure")
	b = proto.AppendString(b, 3, s.Message)
	b = proto.AppendString(b, 4, s.Reason)
	if d := s.details(); d != nil {
		// StatusDetails{name=1, group=2, kind=3, causes=4
		// StatusCause{type=1, message=2, field=3}, retryAfterSeconds=5, uid=6}
		var db []byte
		db = proto.AppendString(db, 1, d.Name)
		db = proto.AppendString(db, 2, d.Group)
		db = proto.AppendString(db, 3, d.Kind)
		for _, c := range d.Causes {
			cb := proto.AppendString(nil, 1, c.Reason)
			cb = proto.AppendString(cb, 2, c.Message)
			cb = proto.AppendString(cb, 3, "")
			db = proto.AppendMessage(db, 4, cb)
		}
		db = proto.AppendUint(db, 5, uint64(int64(d.RetryAfterSeconds)))
		db = proto.AppendString(db, 6, "")
		b = proto.AppendMessage(b, 5, db)
	}
	return proto.AppendUint(b, 6, uint64(int64(s.Code)))
}

// appendListMeta encodes metav1.ListMeta{selfLink=1, resourceVersion=2,
// continue=3}.
func appendListMeta(b []byte, rv string) []byte {
	b = proto.AppendString(b, 1, "")
	b = proto.AppendString(b, 2, rv)
	return proto.AppendString(b, 3, "")
}

// Package groundtruth writes and reads the fake apiserver's ground-truth log:
// one JSON object per line describing everything the server did (etcd events
// received, watch streams opened and closed, every watch event written, every
// LIST), with wall-clock nanosecond timestamps. The tracer's output is scored
// against it; docs/testbed.md documents every field.
package groundtruth

// Record kinds.
const (
	KindServerStart   = "server_start"
	KindServerStop    = "server_stop"
	KindEtcdRange     = "etcd_range"
	KindEtcdWatch     = "etcd_watch"
	KindEtcdEvent     = "etcd_event"
	KindEtcdProgress  = "etcd_progress"
	KindWatchOpen     = "watch_open"
	KindWrite         = "write"
	KindWatchClose    = "watch_close"
	KindTerminate     = "watcher_terminated"
	KindList          = "list"
	KindRequestError  = "request_error"
	KindEtcdWatchFail = "etcd_watch_error"
	KindAPIWrite      = "api_write"
)

// Verbs of api_write records.
const (
	VerbCreate = "create"
	VerbUpdate = "update"
	VerbPatch  = "patch"
	VerbDelete = "delete"
)

// Close reasons of watch streams.
const (
	ReasonTimeout    = "timeout"          // timeoutSeconds (or the default) elapsed
	ReasonClientGone = "client_gone"      // request context canceled (RST_STREAM, connection closed)
	ReasonShutdown   = "shutdown"         // server stopping
	ReasonTerminated = "terminated"       // watch cache dropped an unresponsive watcher
	ReasonWriteError = "write_error"      // Write or Flush returned an error
	ReasonErrorEvent = "error_event"      // an ERROR event (410/504) was the whole stream
	ReasonCacheGone  = "cache_stopped"    // the resource's cache stopped (etcd watch failed)
	ReasonBadRequest = "bad_request"      // never opened; see request_error
	ReasonNotFound   = "unknown_resource" // never opened; see request_error
	ReasonInvalid    = "invalid"          // never opened: 422, e.g. sendInitialEvents without resourceVersionMatch=NotOlderThan
)

// Record is the union of all record kinds; fields irrelevant to a kind are
// omitted. Times are Unix nanoseconds from the server's wall clock.
type Record struct {
	Kind string `json:"kind"`

	// Timestamps.
	T        int64 `json:"t,omitempty"`         // when the record's fact happened
	TRequest int64 `json:"t_request,omitempty"` // watch_open/list: the handler first saw the request
	TRead    int64 `json:"t_read,omitempty"`    // etcd_event: gRPC message fully read from the etcd stream
	TBefore  int64 `json:"t_before,omitempty"`  // write/list: just before the first Write call
	TAfter   int64 `json:"t_after,omitempty"`   // write/list: just after the last Write call returned
	TFlush   int64 `json:"t_flush,omitempty"`   // write: Flush returned (only when flushed)
	// api_write: just before the successful etcd Txn was sent, when its
	// response message was read, and just before the HTTP response.
	TEtcdSent  int64 `json:"t_etcd_sent,omitempty"`
	TCommitted int64 `json:"t_committed,omitempty"`
	TResponded int64 `json:"t_responded,omitempty"`

	// Request identity.
	Stream      uint64 `json:"stream,omitempty"` // unique per watch stream (1, 2, ...)
	Client      string `json:"client,omitempty"` // remote ip:port
	Proto       string `json:"proto,omitempty"`  // "HTTP/2.0" or "HTTP/1.1"
	TLS         *bool  `json:"tls,omitempty"`
	Path        string `json:"path,omitempty"` // URL path and query as requested
	UserAgent   string `json:"user_agent,omitempty"`
	ContentType string `json:"content_type,omitempty"` // response Content-Type
	// ContentEncoding is the response Content-Encoding ("gzip"), if any.
	ContentEncoding string `json:"content_encoding,omitempty"`

	// api_write: the HTTP method and the Kubernetes verb
	// (create|update|patch|delete).
	Method string `json:"method,omitempty"`
	Verb   string `json:"verb,omitempty"`

	// Watch parameters.
	Resource       string `json:"resource,omitempty"`
	Namespace      string `json:"namespace,omitempty"`
	LabelSelector  string `json:"label_selector,omitempty"`
	RVParam        string `json:"rv_param,omitempty"` // resourceVersion query value as given
	StartRV        int64  `json:"start_rv,omitempty"` // events with RV > start_rv follow the initial ones
	Bookmarks      bool   `json:"bookmarks,omitempty"`
	TimeoutSeconds int64  `json:"timeout_seconds,omitempty"`
	InitialEvents  int    `json:"initial_events,omitempty"`
	// Watch-list (KEP-3157) parameters as given: sendInitialEvents=true,
	// resourceVersionMatch.
	SendInitialEvents bool   `json:"send_initial_events,omitempty"`
	RVMatch           string `json:"rv_match,omitempty"`

	// Event fields (write, etcd_event).
	EventType string `json:"event_type,omitempty"`
	Name      string `json:"name,omitempty"`
	RV        string `json:"rv,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"` // framed bytes written (incl. 4-byte header or newline), before any gzip
	// WireBytes (gzip streams only, so present even when 0): write: the
	// compressed bytes this event's Write and flush passed to the
	// ResponseWriter; watch_close: the stream's total, gzip trailer included.
	WireBytes    *int64 `json:"wire_bytes,omitempty"`
	DecodedBytes int64  `json:"decoded_bytes,omitempty"` // list: body size before gzip (= bytes without gzip)
	Seq          int64  `json:"seq,omitempty"`           // write: 1-based index of the event in its stream
	Initial      bool   `json:"initial,omitempty"`
	Flushed      bool   `json:"flushed,omitempty"`
	Queued       int    `json:"queued,omitempty"` // events waiting in the watcher's channel after this one
	// InitialEventsEnd marks the write of a watch-list's BOOKMARK annotated
	// k8s.io/initial-events-end; InitialSyncNs is its t_after minus the
	// watch_open's t_request: how long the initial sync took.
	InitialEventsEnd bool  `json:"initial_events_end,omitempty"`
	InitialSyncNs    int64 `json:"initial_sync_ns,omitempty"`

	// etcd fields.
	Key      string `json:"key,omitempty"`
	Revision int64  `json:"revision,omitempty"`
	Type     string `json:"type,omitempty"` // PUT | DELETE
	WatchID  int64  `json:"watch_id,omitempty"`
	MsgBytes int    `json:"msg_bytes,omitempty"` // framed gRPC message carrying the event
	Count    int64  `json:"count,omitempty"`
	// api_write: Txn calls made for the request, how many of them had a
	// failed compare, and Range calls made to read the current object.
	EtcdCalls     int `json:"etcd_calls,omitempty"`
	EtcdConflicts int `json:"etcd_conflicts,omitempty"`
	EtcdReads     int `json:"etcd_reads,omitempty"`

	// Outcome.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	Status int    `json:"status,omitempty"` // HTTP status (list, request_error)
	Events int64  `json:"events,omitempty"` // watch_close: events written
	Items  int    `json:"items,omitempty"`  // list: items returned

	// server_start.
	Pid       int    `json:"pid,omitempty"`
	HTTPSAddr string `json:"https_addr,omitempty"`
	H2CAddr   string `json:"h2c_addr,omitempty"`
	Config    string `json:"config,omitempty"` // flag settings, for reproducibility
}

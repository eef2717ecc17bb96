package loadgen

// Summary is watch-load's result, printed as JSON at the end of a run.
type Summary struct {
	StartedAt   int64               `json:"started_at"`  // Unix ns, watches established / load start (t0)
	FinishedAt  int64               `json:"finished_at"` // Unix ns
	Connections []ConnectionSummary `json:"connections"`
	Streams     []StreamSummary     `json:"streams"`
	Writer      *WriterSummary      `json:"writer,omitempty"`
	Totals      Totals              `json:"totals"`
	Problems    []string            `json:"problems"`    // anything that makes the run invalid
	Interrupted bool                `json:"interrupted"` // stopped by a signal before the planned end
}

// Totals aggregates all streams.
type Totals struct {
	Events       int64 `json:"events"`    // ADDED/MODIFIED/DELETED received
	Bookmarks    int64 `json:"bookmarks"` // BOOKMARK received
	ErrorEvents  int64 `json:"error_events"`
	Bytes        int64 `json:"bytes"` // framed watch bytes received
	RVViolations int64 `json:"rv_violations"`
	Duplicates   int64 `json:"duplicates"`
	Rewatches    int64 `json:"rewatches"`
	Relists      int64 `json:"relists"`
	// PeriodicLists are the -relist-interval LISTs completed.
	PeriodicLists int64 `json:"periodic_lists,omitempty"`
}

// ConnectionSummary describes one HTTP/2 connection (one http.Transport).
type ConnectionSummary struct {
	Index      int      `json:"index"`
	UserAgent  string   `json:"user_agent"`
	Dials      int64    `json:"dials"`       // TCP connections opened; 1 unless the server closed one
	LocalAddrs []string `json:"local_addrs"` // client ip:port of each dial (the ground truth's "client")
	Events     int64    `json:"events"`
	Bytes      int64    `json:"bytes"`
	Stalled    *Window  `json:"stalled,omitempty"` // fault mode 2 applied to this connection
	// -relist-interval: LISTs completed, failed, and their body bytes on
	// the wire and inflated (each LIST is also a "list" log record).
	PeriodicLists       int64 `json:"periodic_lists,omitempty"`
	PeriodicListErrors  int64 `json:"periodic_list_errors,omitempty"`
	PeriodicListWire    int64 `json:"periodic_list_wire_bytes,omitempty"`
	PeriodicListDecoded int64 `json:"periodic_list_decoded_bytes,omitempty"`
}

// Window is a fault window in Unix ns.
type Window struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// StreamSummary describes one logical watch (a reflector): a LIST and
// successive WATCH requests, each a separate HTTP/2 stream.
type StreamSummary struct {
	Index        int              `json:"index"` // global stream index
	Conn         int              `json:"conn"`
	Resource     string           `json:"resource"`
	Namespace    string           `json:"namespace,omitempty"` // empty: all namespaces
	Format       string           `json:"format"`
	Events       int64            `json:"events"`
	Bookmarks    int64            `json:"bookmarks"`
	ErrorEvents  int64            `json:"error_events"`
	Bytes        int64            `json:"bytes"`
	FirstRV      int64            `json:"first_rv"` // RV the first watch started from (list RV)
	LastRV       int64            `json:"last_rv"`  // highest RV received (events and bookmarks)
	RVViolations int64            `json:"rv_violations"`
	Duplicates   int64            `json:"duplicates"`
	Rewatches    int64            `json:"rewatches"`
	Relists      int64            `json:"relists"`
	Stalled      *Window          `json:"stalled,omitempty"` // fault mode 1 applied to this stream
	Requests     []RequestSummary `json:"requests"`
	Errors       []string         `json:"errors,omitempty"`
}

// RequestSummary is one HTTP request of a stream; (LocalAddr, Path) matches
// the ground truth's (client, path).
type RequestSummary struct {
	Verb      string `json:"verb"` // LIST | WATCH
	Path      string `json:"path"`
	LocalAddr string `json:"local_addr"`
	Proto     string `json:"proto"`
	Status    int    `json:"status"`
	Events    int64  `json:"events"` // all watch events incl. bookmarks and errors
	Bytes     int64  `json:"bytes"`  // framed bytes (watch) or body bytes (list), inflated
	// Content-Type and Content-Encoding received; WireBytes is the body as
	// received (compressed with gzip; 0 when Go's transport inflated it).
	ContentType     string `json:"content_type,omitempty"`
	ContentEncoding string `json:"content_encoding,omitempty"`
	WireBytes       int64  `json:"wire_bytes,omitempty"`
	Items           int    `json:"items,omitempty"` // list: objects
	// Watch-list: the request had sendInitialEvents=true; InitialEvents
	// changes came before the initial-events-end bookmark, which arrived at
	// InitialEventsEndAt (Unix ns, 0 if it never did).
	SendInitialEvents  bool  `json:"send_initial_events,omitempty"`
	InitialEvents      int64 `json:"initial_events,omitempty"`
	InitialEventsEndAt int64 `json:"initial_events_end_at,omitempty"`
	// Changes and ChangeBytes count only ADDED/MODIFIED/DELETED events:
	// unlike bookmarks, none can be in flight when the client stops after
	// catching up, so they must match the ground truth exactly.
	Changes     int64  `json:"changes"`
	ChangeBytes int64  `json:"change_bytes"`
	Start       int64  `json:"start"`
	End         int64  `json:"end"`
	EndReason   string `json:"end_reason"` // eof | canceled | error_event | error: ...
}

// WriterSummary describes the writer's work.
type WriterSummary struct {
	// Via is "etcd" or "apiserver" (-write-via).
	Via         string `json:"via,omitempty"`
	Planned     int64  `json:"planned"` // rate x duration
	Ops         int64  `json:"ops"`     // attempted
	Puts        int64  `json:"puts"`
	Creates     int64  `json:"creates"`
	Updates     int64  `json:"updates"`
	Deletes     int64  `json:"deletes"`      // deletes that removed a key (each is one event)
	NoopDeletes int64  `json:"noop_deletes"` // deletes of absent keys (no event)
	Errors      int64  `json:"errors"`
	// Conflicts are updates sent with a stale resourceVersion
	// (-conflict-ratio) and refused with 409, as intended; they commit
	// nothing and are not errors.
	Conflicts int64 `json:"conflicts,omitempty"`
	// -write-via apiserver: the writer connection's User-Agent, TCP
	// connections opened and their local addresses (the ground truth's
	// api_write "client").
	UserAgent  string   `json:"user_agent,omitempty"`
	Dials      int64    `json:"dials,omitempty"`
	LocalAddrs []string `json:"local_addrs,omitempty"`
	// Committed is the number of etcd revisions created: Puts + Deletes.
	Committed int64 `json:"committed"`
	FirstRev  int64 `json:"first_rev"`
	LastRev   int64 `json:"last_rev"`
	// PerScope counts committed events per "resource/namespace".
	PerScope map[string]int64 `json:"per_scope"`
	// MaxRev is the last revision per "resource/namespace".
	MaxRev     map[string]int64 `json:"max_rev"`
	StartedAt  int64            `json:"started_at"`
	FinishedAt int64            `json:"finished_at"`
	Lag        string           `json:"lag"` // how far behind schedule the last op ran
}

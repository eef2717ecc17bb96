package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"watchtrace/testbed/internal/framing"
)

// List purposes in the receive log.
const (
	listReflector = "reflector" // the LIST before a watch (listwatch mode)
	listPeriodic  = "periodic"  // -relist-interval
)

// listRecord is one LIST in the receive log.
type listRecord struct {
	Kind            string `json:"kind"` // "list"
	T               int64  `json:"t"`    // Unix ns, body read
	Purpose         string `json:"purpose"`
	Conn            int    `json:"conn"`
	Stream          int    `json:"stream"`
	Path            string `json:"path"`
	LocalAddr       string `json:"local_addr,omitempty"`
	Status          int    `json:"status,omitempty"`
	ContentType     string `json:"content_type,omitempty"`
	ContentEncoding string `json:"content_encoding,omitempty"`
	WireBytes       int64  `json:"wire_bytes"`    // body bytes received (compressed when gzip; 0 when Go's transport inflated it)
	DecodedBytes    int64  `json:"decoded_bytes"` // body bytes after inflating
	Items           int    `json:"items"`
	RV              string `json:"rv,omitempty"`
	DurationNs      int64  `json:"duration_ns"`
	Error           string `json:"error,omitempty"`
}

// list does the reflector's LIST (resourceVersion=0, limit=500) and returns
// the list RV.
func (s *stream) list(ctx context.Context) (string, error) {
	rs, rv, err := s.doList(ctx, listReflector)
	s.mu.Lock()
	s.sum.Requests = append(s.sum.Requests, rs)
	s.mu.Unlock()
	return rv, err
}

// doList makes one LIST of the stream's collection in its format (and with
// its gzip setting) and logs it.
func (s *stream) doList(ctx context.Context, purpose string) (RequestSummary, string, error) {
	q := url.Values{"resourceVersion": {"0"}, "limit": {"500"}}
	if s.selector != "" {
		q.Set("labelSelector", s.selector)
	}
	var local string
	rs := RequestSummary{Verb: "LIST", Start: time.Now().UnixNano()}
	rec := listRecord{Kind: "list", Purpose: purpose, Conn: s.conn.index, Stream: s.index}
	rv, err := s.listOnce(ctx, q, &local, &rs)
	rs.End, rs.LocalAddr = time.Now().UnixNano(), local
	rec.T, rec.Path, rec.LocalAddr, rec.Status = rs.End, rs.Path, local, rs.Status
	rec.ContentType, rec.ContentEncoding = rs.ContentType, rs.ContentEncoding
	rec.WireBytes, rec.DecodedBytes, rec.Items, rec.RV = rs.WireBytes, rs.Bytes, rs.Items, rv
	rec.DurationNs = rs.End - rs.Start
	if err != nil {
		rec.Error = err.Error()
		switch {
		case ctx.Err() != nil:
			rs.EndReason = "canceled"
		case rs.Status != 0 && rs.Status != http.StatusOK:
			rs.EndReason = "status"
		default:
			rs.EndReason = "error: " + err.Error()
		}
	} else {
		rs.EndReason = "eof"
	}
	s.log.Write(rec)
	return rs, rv, err
}

func (s *stream) listOnce(ctx context.Context, q url.Values, local *string, rs *RequestSummary) (string, error) {
	req, err := s.newRequest(ctx, q, local)
	if err != nil {
		return "", err
	}
	rs.Path = req.URL.RequestURI()
	resp, err := s.conn.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	rs.Status, rs.Proto = resp.StatusCode, resp.Proto
	rs.ContentType = resp.Header.Get("Content-Type")
	b := openBody(resp)
	rs.ContentEncoding = b.encoding
	data, err := io.ReadAll(io.LimitReader(b, 256<<20))
	rs.Bytes, rs.WireBytes = int64(len(data)), b.wireBytes()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("list: HTTP %s", resp.Status)
	}
	if rs.ContentType != s.format.ContentType() {
		return "", fmt.Errorf("list: Content-Type %q, want %q", rs.ContentType, s.format.ContentType())
	}
	rv, items, err := framing.DecodeList(s.format, data)
	rs.Items = items
	return rv, err
}

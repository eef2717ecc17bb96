package apiserver

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
)

// Watch-list compression modes (-watchlist-gzip).
const (
	// WatchListGzipStream: the whole response is one gzip member; after
	// each event that is flushed, a sync flush (gzip.Writer.Flush) puts it
	// on the wire; the trailer follows the last event.
	WatchListGzipStream = "stream"
	// WatchListGzipPerFlush: each flush ends a gzip member (Close) and the
	// next write starts another, as kube-apiserver v1.37.0's
	// perFlushGzipWriter does; a client must read concatenated members.
	WatchListGzipPerFlush = "per-flush"
	// WatchListGzipOff never compresses watch responses.
	WatchListGzipOff = "off"
)

// acceptsGzip reports whether the request's Accept-Encoding lists gzip
// (parameters ignored, as in kube-apiserver's negotiateContentEncoding).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			enc, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(enc), "gzip") {
				return true
			}
		}
	}
	return false
}

// countingWriter sits between a gzip writer and the ResponseWriter: what it
// counts are the bytes on the wire.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// gzipStream compresses a watch response. Write compresses; flush makes
// everything written so far decodable by the client (a sync flush, or the
// end of a member in per-flush mode); close ends the response's gzip data.
type gzipStream struct {
	cw       *countingWriter
	gz       *gzip.Writer
	perFlush bool
	ended    bool // the current member is closed; the next Write starts one
}

func newGzipStream(w io.Writer, level int, mode string) (*gzipStream, error) {
	cw := &countingWriter{w: w}
	gz, err := gzip.NewWriterLevel(cw, level)
	if err != nil {
		return nil, err
	}
	return &gzipStream{cw: cw, gz: gz, perFlush: mode == WatchListGzipPerFlush}, nil
}

func (g *gzipStream) Write(p []byte) (int, error) {
	if g.ended {
		g.gz.Reset(g.cw)
		g.ended = false
	}
	return g.gz.Write(p)
}

func (g *gzipStream) flush() error {
	if g.perFlush {
		g.ended = true
		return g.gz.Close()
	}
	return g.gz.Flush()
}

func (g *gzipStream) close() error {
	if g.ended {
		return nil
	}
	g.ended = true
	return g.gz.Close()
}

// wire is the compressed byte count so far.
func (g *gzipStream) wire() int64 { return g.cw.n }

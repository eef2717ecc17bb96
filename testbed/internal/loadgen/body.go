package loadgen

import (
	"compress/gzip"
	"io"
	"net/http"
)

// countingReader counts the bytes read from a response body: with gzip,
// the compressed bytes that came over the wire.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// gunzipReader inflates a gzip body. The gzip header is read on the first
// Read, not at once, so that opening a watch does not wait for its first
// event. gzip.Reader reads concatenated members, so a stream compressed a
// member per flush (kube-apiserver v1.37.0) decodes too.
type gunzipReader struct {
	src io.Reader
	zr  *gzip.Reader
}

func (g *gunzipReader) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.src)
		if err != nil {
			return 0, err
		}
		g.zr = zr
	}
	return g.zr.Read(p)
}

// body is a response body as the client decodes it.
type body struct {
	io.Reader
	wire     *countingReader
	encoding string // Content-Encoding as received ("gzip" or "")
	// transport: Go's transport asked for gzip itself and inflated the
	// body, so the wire size is unknown (client-go's default behaviour).
	transport bool
}

// openBody wraps resp.Body: it counts wire bytes and inflates a gzip body
// the client asked for explicitly.
func openBody(resp *http.Response) *body {
	b := &body{wire: &countingReader{r: resp.Body}, encoding: resp.Header.Get("Content-Encoding"), transport: resp.Uncompressed}
	b.Reader = b.wire
	if b.encoding == "gzip" {
		b.Reader = &gunzipReader{src: b.wire}
	}
	if b.transport {
		b.encoding = "gzip"
	}
	return b
}

// wireBytes is the compressed size read so far, or 0 when the transport
// inflated the body out of sight.
func (b *body) wireBytes() int64 {
	if b.transport {
		return 0
	}
	return b.wire.n
}

package etcdgrpc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// WatchStream is one bidirectional Watch/Watch call carrying one watch.
type WatchStream struct {
	cancel context.CancelFunc
	pw     *io.PipeWriter
	resp   *http.Response
	body   *bufio.Reader
}

// Received is a WatchResponse with the time its last byte was read from the
// stream, so the ground truth can separate etcd delivery from dispatch.
type Received struct {
	*WatchResponse
	ReadAt time.Time
	Size   int // framed size: 5-byte gRPC prefix + message
}

// Watch opens a Watch stream and sends one create request. The request body
// is an io.Pipe kept open for the stream's lifetime: closing it would
// half-close the gRPC stream.
func (c *Client) Watch(ctx context.Context, create WatchCreate) (*WatchStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	req, err := c.newRequest(ctx, "/etcdserverpb.Watch/Watch", pr)
	if err != nil {
		cancel()
		return nil, err
	}
	// etcd (grpc-go) sends response headers only with its first message,
	// which answers the create request; so the request must be written
	// while RoundTrip waits. The write ends with an error if RoundTrip
	// fails and the transport closes the pipe.
	first := frameMessage(EncodeWatchCreate(create))
	go func() {
		if _, err := pw.Write(first); err != nil {
			pw.CloseWithError(err)
		}
	}()
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		pw.Close()
		return nil, fmt.Errorf("watch: %w", err)
	}
	if err := checkHTTP(resp); err != nil {
		resp.Body.Close()
		cancel()
		pw.Close()
		return nil, fmt.Errorf("watch: %w", err)
	}
	return &WatchStream{cancel: cancel, pw: pw, resp: resp, body: bufio.NewReaderSize(resp.Body, 64<<10)}, nil
}

// Recv returns the next WatchResponse. At the end of the stream it returns
// the gRPC status as an error (io.EOF if the status was OK).
func (s *WatchStream) Recv() (*Received, error) {
	msg, err := readMessage(s.body)
	if err == io.EOF {
		if serr := statusFrom(s.resp); serr != nil {
			return nil, serr
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	at := time.Now()
	wr, err := DecodeWatchResponse(msg)
	if err != nil {
		return nil, err
	}
	return &Received{WatchResponse: wr, ReadAt: at, Size: 5 + len(msg)}, nil
}

// Close cancels the stream (RST_STREAM) and releases it.
func (s *WatchStream) Close() {
	s.cancel()
	s.pw.Close()
	s.resp.Body.Close()
}

package etcdgrpc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"
)

// unary performs one unary RPC: one request message, one response message.
func (c *Client) unary(ctx context.Context, method string, req []byte) ([]byte, error) {
	msg, _, err := c.unaryTimed(ctx, method, req)
	return msg, err
}

// callTimes are when a unary call was handed to the transport and when its
// response message had been read.
type callTimes struct{ sent, read time.Time }

func (c *Client) unaryTimed(ctx context.Context, method string, req []byte) ([]byte, callTimes, error) {
	var tm callTimes
	hreq, err := c.newRequest(ctx, method, bytes.NewReader(frameMessage(req)))
	if err != nil {
		return nil, tm, err
	}
	tm.sent = time.Now()
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, tm, fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	if err := checkHTTP(resp); err != nil {
		return nil, tm, fmt.Errorf("%s: %w", method, err)
	}
	msg, rerr := readMessage(resp.Body)
	tm.read = time.Now()
	// Trailers are only populated once the body has been read to EOF.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, tm, fmt.Errorf("%s: %w", method, err)
	}
	if err := statusFrom(resp); err != nil {
		return nil, tm, fmt.Errorf("%s: %w", method, err)
	}
	if rerr != nil {
		return nil, tm, fmt.Errorf("%s: %w", method, rerr)
	}
	return msg, tm, nil
}

// Range runs KV/Range over [key, rangeEnd).
func (c *Client) Range(ctx context.Context, key, rangeEnd []byte) (*RangeResponse, error) {
	msg, err := c.unary(ctx, "/etcdserverpb.KV/Range", EncodeRangeRequest(key, rangeEnd))
	if err != nil {
		return nil, err
	}
	return DecodeRangeResponse(msg)
}

// Put runs KV/Put and returns the response header (its revision is the
// revision the put was committed at).
func (c *Client) Put(ctx context.Context, key, value []byte) (ResponseHeader, error) {
	msg, err := c.unary(ctx, "/etcdserverpb.KV/Put", EncodePutRequest(key, value))
	if err != nil {
		return ResponseHeader{}, err
	}
	return DecodePutResponse(msg)
}

// Delete runs KV/DeleteRange on a single key and returns the header and the
// number of keys deleted (0 means no event was generated).
func (c *Client) Delete(ctx context.Context, key []byte) (ResponseHeader, int64, error) {
	msg, err := c.unary(ctx, "/etcdserverpb.KV/DeleteRange", EncodeDeleteRangeRequest(key))
	if err != nil {
		return ResponseHeader{}, 0, err
	}
	return DecodeDeleteRangeResponse(msg)
}

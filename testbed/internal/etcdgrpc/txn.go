package etcdgrpc

import (
	"context"
	"fmt"
	"time"

	"watchtrace/testbed/internal/proto"
)

// Txn messages, field numbers from etcd's api/etcdserverpb/rpc.proto:
//
//	TxnRequest{compare=1 repeated Compare, success=2 repeated RequestOp,
//	           failure=3 repeated RequestOp}
//	Compare{result=1 CompareResult, target=2 CompareTarget, key=3,
//	        oneof target_union {version=4, create_revision=5,
//	        mod_revision=6, value=7, lease=8}, range_end=64}
//	RequestOp{oneof request {request_range=1, request_put=2,
//	          request_delete_range=3, request_txn=4}}
//	TxnResponse{header=1, succeeded=2, responses=3 repeated ResponseOp}
//	ResponseOp{oneof response {response_range=1, response_put=2,
//	           response_delete_range=3, response_txn=4}}
//
// A oneof member is on the wire whenever it is set, even at its zero
// value, as gogo-generated marshalers write it: the create compare
// mod_revision == 0 is the two bytes 0x30 0x00.

// CompareResult is etcdserverpb.Compare.CompareResult.
type CompareResult int

// Compare results (EQUAL is the proto3 zero value).
const (
	CompareEqual    CompareResult = 0
	CompareGreater  CompareResult = 1
	CompareLess     CompareResult = 2
	CompareNotEqual CompareResult = 3
)

// CompareTarget is etcdserverpb.Compare.CompareTarget.
type CompareTarget int

// Compare targets (VERSION is the proto3 zero value).
const (
	TargetVersion CompareTarget = 0
	TargetCreate  CompareTarget = 1
	TargetMod     CompareTarget = 2
	TargetValue   CompareTarget = 3
)

// Compare is one etcdserverpb.Compare. Only the integer targets are
// supported (VERSION, CREATE, MOD with Revision; VALUE with Value).
type Compare struct {
	Result   CompareResult
	Target   CompareTarget
	Key      []byte
	Revision int64  // version, create_revision or mod_revision, by Target
	Value    []byte // TargetValue
}

// ModRevisionEquals is clientv3.Compare(clientv3.ModRevision(key), "=", rev),
// the compare kube-apiserver's storage puts in every write: rev 0 means
// "the key does not exist".
func ModRevisionEquals(key []byte, rev int64) Compare {
	return Compare{Result: CompareEqual, Target: TargetMod, Key: key, Revision: rev}
}

// OpType says which member of RequestOp's oneof is set.
type OpType int

// Request operations.
const (
	OpRange OpType = iota + 1
	OpPut
	OpDeleteRange
)

// Op is one etcdserverpb.RequestOp.
type Op struct {
	Type     OpType
	Key      []byte
	RangeEnd []byte // OpRange, OpDeleteRange: empty for a single key
	Value    []byte // OpPut
}

// OpGet is clientv3.OpGet(key): a Range of one key.
func OpGet(key []byte) Op { return Op{Type: OpRange, Key: key} }

// OpPutKV is clientv3.OpPut(key, value).
func OpPutKV(key, value []byte) Op { return Op{Type: OpPut, Key: key, Value: value} }

// OpDelete is clientv3.OpDelete(key): a DeleteRange of one key.
func OpDelete(key []byte) Op { return Op{Type: OpDeleteRange, Key: key} }

// TxnRequest is etcdserverpb.TxnRequest.
type TxnRequest struct {
	Compare []Compare
	Success []Op
	Failure []Op
}

func appendCompare(b []byte, c Compare) []byte {
	var m []byte
	m = proto.AppendUintOpt(m, 1, uint64(c.Result))
	m = proto.AppendUintOpt(m, 2, uint64(c.Target))
	m = proto.AppendBytesOpt(m, 3, c.Key)
	switch c.Target {
	case TargetVersion:
		m = proto.AppendUint(m, 4, uint64(c.Revision))
	case TargetCreate:
		m = proto.AppendUint(m, 5, uint64(c.Revision))
	case TargetMod:
		m = proto.AppendUint(m, 6, uint64(c.Revision))
	case TargetValue:
		m = proto.AppendBytes(m, 7, c.Value)
	}
	return proto.AppendMessage(b, 1, m)
}

func appendOp(b []byte, num int, op Op) []byte {
	var inner []byte
	var member int
	switch op.Type {
	case OpRange:
		member, inner = 1, EncodeRangeRequest(op.Key, op.RangeEnd)
	case OpPut:
		member, inner = 2, EncodePutRequest(op.Key, op.Value)
	case OpDeleteRange:
		member = 3
		inner = proto.AppendBytesOpt(nil, 1, op.Key)
		inner = proto.AppendBytesOpt(inner, 2, op.RangeEnd)
	default:
		panic(fmt.Sprintf("etcdgrpc: unknown op type %d", op.Type))
	}
	return proto.AppendMessage(b, num, proto.AppendMessage(nil, member, inner))
}

// EncodeTxnRequest encodes a TxnRequest: compares, then success, then
// failure operations, each in order.
func EncodeTxnRequest(t TxnRequest) []byte {
	var b []byte
	for _, c := range t.Compare {
		b = appendCompare(b, c)
	}
	for _, op := range t.Success {
		b = appendOp(b, 2, op)
	}
	for _, op := range t.Failure {
		b = appendOp(b, 3, op)
	}
	return b
}

// ResponseOp is one etcdserverpb.ResponseOp; exactly one member is set.
type ResponseOp struct {
	Range  *RangeResponse
	Put    *ResponseHeader // PutResponse{header=1}
	Delete *DeleteResult   // DeleteRangeResponse{header=1, deleted=2}
}

// DeleteResult is a DeleteRangeResponse.
type DeleteResult struct {
	Header  ResponseHeader
	Deleted int64
}

// TxnResponse is etcdserverpb.TxnResponse, plus when the call was sent and
// its response message read.
type TxnResponse struct {
	Header    ResponseHeader // 1: Revision is the store's revision after the txn
	Succeeded bool           // 2: the compares held; Success ops ran
	Responses []ResponseOp   // 3: one per op that ran

	// SentAt is just before the request went to the HTTP/2 transport;
	// ReadAt is when the response message had been read (before the
	// trailers).
	SentAt, ReadAt time.Time
}

// DecodeTxnResponse decodes a TxnResponse.
func DecodeTxnResponse(msg []byte) (*TxnResponse, error) {
	t := &TxnResponse{}
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		var err error
		switch f.Num {
		case 1:
			t.Header, err = decodeHeader(f.Bytes)
		case 2:
			t.Succeeded = f.Uint != 0
		case 3:
			var op ResponseOp
			op, err = decodeResponseOp(f.Bytes)
			t.Responses = append(t.Responses, op)
		}
		if err != nil {
			return nil, fmt.Errorf("TxnResponse: %w", err)
		}
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("TxnResponse: %w", d.Err())
	}
	return t, nil
}

func decodeResponseOp(msg []byte) (ResponseOp, error) {
	var op ResponseOp
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		var err error
		switch f.Num {
		case 1:
			op.Range, err = DecodeRangeResponse(f.Bytes)
		case 2:
			var h ResponseHeader
			h, err = DecodePutResponse(f.Bytes)
			op.Put = &h
		case 3:
			var r DeleteResult
			r.Header, r.Deleted, err = DecodeDeleteRangeResponse(f.Bytes)
			op.Delete = &r
		}
		if err != nil {
			return op, err
		}
	}
	return op, d.Err()
}

// Txn runs KV/Txn, a unary call on its own HTTP/2 stream of the client's
// connection: HEADERS and one DATA message out, then response HEADERS,
// the TxnResponse and trailers with grpc-status.
func (c *Client) Txn(ctx context.Context, t TxnRequest) (*TxnResponse, error) {
	msg, tm, err := c.unaryTimed(ctx, "/etcdserverpb.KV/Txn", EncodeTxnRequest(t))
	if err != nil {
		return nil, err
	}
	r, err := DecodeTxnResponse(msg)
	if err != nil {
		return nil, err
	}
	r.SentAt, r.ReadAt = tm.sent, tm.read
	return r, nil
}

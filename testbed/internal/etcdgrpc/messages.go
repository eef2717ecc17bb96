package etcdgrpc

import (
	"fmt"

	"watchtrace/testbed/internal/proto"
)

// Field numbers below are from etcd's api/etcdserverpb/rpc.proto and
// api/mvccpb/kv.proto (proto3: zero values are omitted on the wire).

// ResponseHeader is etcdserverpb.ResponseHeader.
type ResponseHeader struct {
	ClusterID uint64 // 1
	MemberID  uint64 // 2
	Revision  int64  // 3
	RaftTerm  uint64 // 4
}

// KeyValue is mvccpb.KeyValue. Key and Value alias the message buffer.
type KeyValue struct {
	Key            []byte // 1
	CreateRevision int64  // 2
	ModRevision    int64  // 3
	Version        int64  // 4
	Value          []byte // 5
	Lease          int64  // 6
}

// EventType is mvccpb.Event.EventType.
type EventType int

// Event types; PUT is the proto3 zero value, so an absent field 1 means PUT.
const (
	EventPut    EventType = 0
	EventDelete EventType = 1
)

func (t EventType) String() string {
	if t == EventDelete {
		return "DELETE"
	}
	return "PUT"
}

// Event is mvccpb.Event.
type Event struct {
	Type   EventType // 1
	KV     KeyValue  // 2
	PrevKV *KeyValue // 3
}

// RangeResponse is etcdserverpb.RangeResponse.
type RangeResponse struct {
	Header ResponseHeader // 1
	KVs    []KeyValue     // 2
	More   bool           // 3
	Count  int64          // 4
}

// WatchResponse is etcdserverpb.WatchResponse.
type WatchResponse struct {
	Header          ResponseHeader // 1
	WatchID         int64          // 2
	Created         bool           // 3
	Canceled        bool           // 4
	CompactRevision int64          // 5
	CancelReason    string         // 6
	Fragment        bool           // 7
	Events          []Event        // 11
}

// IsProgressNotify mirrors clientv3's check: no events and not a
// create/cancel/compaction notice, only a header revision.
func (w *WatchResponse) IsProgressNotify() bool {
	return len(w.Events) == 0 && !w.Created && !w.Canceled && w.CompactRevision == 0 && w.Header.Revision != 0
}

// PrefixEnd returns the range_end covering every key with the given prefix:
// the prefix with its last byte incremented (bytes 0xff are dropped first).
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // whole keyspace
}

// EncodeRangeRequest encodes RangeRequest{key=1, range_end=2}.
func EncodeRangeRequest(key, rangeEnd []byte) []byte {
	b := proto.AppendBytesOpt(nil, 1, key)
	return proto.AppendBytesOpt(b, 2, rangeEnd)
}

// EncodePutRequest encodes PutRequest{key=1, value=2}.
func EncodePutRequest(key, value []byte) []byte {
	b := proto.AppendBytesOpt(nil, 1, key)
	return proto.AppendBytesOpt(b, 2, value)
}

// EncodeDeleteRangeRequest encodes DeleteRangeRequest{key=1}.
func EncodeDeleteRangeRequest(key []byte) []byte {
	return proto.AppendBytesOpt(nil, 1, key)
}

// WatchCreate is etcdserverpb.WatchCreateRequest (the fields we use).
type WatchCreate struct {
	Key            []byte // 1
	RangeEnd       []byte // 2
	StartRevision  int64  // 3
	ProgressNotify bool   // 4
	PrevKV         bool   // 6
}

// EncodeWatchCreate encodes WatchRequest{create_request=1: WatchCreateRequest}.
func EncodeWatchCreate(c WatchCreate) []byte {
	var b []byte
	b = proto.AppendBytesOpt(b, 1, c.Key)
	b = proto.AppendBytesOpt(b, 2, c.RangeEnd)
	b = proto.AppendUintOpt(b, 3, uint64(c.StartRevision))
	b = proto.AppendBool(b, 4, c.ProgressNotify)
	b = proto.AppendBool(b, 6, c.PrevKV)
	return proto.AppendMessage(nil, 1, b)
}

func decodeHeader(msg []byte) (ResponseHeader, error) {
	var h ResponseHeader
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		switch f.Num {
		case 1:
			h.ClusterID = f.Uint
		case 2:
			h.MemberID = f.Uint
		case 3:
			h.Revision = f.Int64()
		case 4:
			h.RaftTerm = f.Uint
		}
	}
	return h, d.Err()
}

func decodeKeyValue(msg []byte) (KeyValue, error) {
	var kv KeyValue
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		switch f.Num {
		case 1:
			kv.Key = f.Bytes
		case 2:
			kv.CreateRevision = f.Int64()
		case 3:
			kv.ModRevision = f.Int64()
		case 4:
			kv.Version = f.Int64()
		case 5:
			kv.Value = f.Bytes
		case 6:
			kv.Lease = f.Int64()
		}
	}
	return kv, d.Err()
}

func decodeEvent(msg []byte) (Event, error) {
	var ev Event
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		switch f.Num {
		case 1:
			ev.Type = EventType(f.Uint)
		case 2:
			kv, err := decodeKeyValue(f.Bytes)
			if err != nil {
				return ev, err
			}
			ev.KV = kv
		case 3:
			kv, err := decodeKeyValue(f.Bytes)
			if err != nil {
				return ev, err
			}
			ev.PrevKV = &kv
		}
	}
	return ev, d.Err()
}

// DecodeRangeResponse decodes a RangeResponse.
func DecodeRangeResponse(msg []byte) (*RangeResponse, error) {
	r := &RangeResponse{}
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		var err error
		switch f.Num {
		case 1:
			r.Header, err = decodeHeader(f.Bytes)
		case 2:
			var kv KeyValue
			kv, err = decodeKeyValue(f.Bytes)
			r.KVs = append(r.KVs, kv)
		case 3:
			r.More = f.Uint != 0
		case 4:
			r.Count = f.Int64()
		}
		if err != nil {
			return nil, fmt.Errorf("RangeResponse: %w", err)
		}
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("RangeResponse: %w", d.Err())
	}
	return r, nil
}

// DecodePutResponse decodes PutResponse{header=1} and returns the header.
func DecodePutResponse(msg []byte) (ResponseHeader, error) {
	var h ResponseHeader
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		if f.Num == 1 {
			var err error
			if h, err = decodeHeader(f.Bytes); err != nil {
				return h, fmt.Errorf("PutResponse: %w", err)
			}
		}
	}
	return h, d.Err()
}

// DecodeDeleteRangeResponse decodes DeleteRangeResponse{header=1, deleted=2}.
func DecodeDeleteRangeResponse(msg []byte) (ResponseHeader, int64, error) {
	var h ResponseHeader
	var deleted int64
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		switch f.Num {
		case 1:
			var err error
			if h, err = decodeHeader(f.Bytes); err != nil {
				return h, 0, fmt.Errorf("DeleteRangeResponse: %w", err)
			}
		case 2:
			deleted = f.Int64()
		}
	}
	return h, deleted, d.Err()
}

// DecodeWatchResponse decodes a WatchResponse.
func DecodeWatchResponse(msg []byte) (*WatchResponse, error) {
	w := &WatchResponse{}
	d := proto.NewDecoder(msg)
	var f proto.Field
	for d.Next(&f) {
		var err error
		switch f.Num {
		case 1:
			w.Header, err = decodeHeader(f.Bytes)
		case 2:
			w.WatchID = f.Int64()
		case 3:
			w.Created = f.Uint != 0
		case 4:
			w.Canceled = f.Uint != 0
		case 5:
			w.CompactRevision = f.Int64()
		case 6:
			w.CancelReason = f.String()
		case 7:
			w.Fragment = f.Uint != 0
		case 11:
			var ev Event
			ev, err = decodeEvent(f.Bytes)
			w.Events = append(w.Events, ev)
		}
		if err != nil {
			return nil, fmt.Errorf("WatchResponse: %w", err)
		}
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("WatchResponse: %w", d.Err())
	}
	return w, nil
}

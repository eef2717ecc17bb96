package etcdgrpc

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodeCreateTxnGolden checks a create, as kube-apiserver's storage
// sends it (OptimisticPut with expected revision 0), byte for byte:
// Txn{compare: mod_revision(key) == 0; success: put(key, value); failure:
// range(key)}. The bytes were worked out by hand from rpc.proto.
func TestEncodeCreateTxnGolden(t *testing.T) {
	create := func(key, value string) []byte {
		return EncodeTxnRequest(TxnRequest{
			Compare: []Compare{ModRevisionEquals([]byte(key), 0)},
			Success: []Op{OpPutKV([]byte(key), []byte(value))},
			Failure: []Op{OpGet([]byte(key))},
		})
	}
	short := unhex(t,
		"0a07", "1002", "1a016b", "3000", // compare{target=MOD, key="k", mod_revision=0}
		"1208", "1206", "0a016b", "120176", // success{request_put{key, value="v"}}
		"1a05", "0a03", "0a016b", // failure{request_range{key}}
	)
	if got := create("k", "v"); !bytes.Equal(got, short) {
		t.Errorf("create(k, v)\n got % x\nwant % x", got, short)
	}

	key := "/registry/configmaps/ns-0/wl-0001" // 33 bytes
	value := `{"kind":"ConfigMap"}`            // 20 bytes
	k, v := hex.EncodeToString([]byte(key)), hex.EncodeToString([]byte(value))
	want := unhex(t,
		"0a27", "1002", "1a21"+k, "3000", // 39-byte Compare
		"123b", "1239", "0a21"+k, "1214"+v, // RequestOp (59) { PutRequest (57) }
		"1a25", "0a23", "0a21"+k, // RequestOp (37) { RangeRequest (35) }
	)
	if got := create(key, value); !bytes.Equal(got, want) {
		t.Errorf("create(%s)\n got % x\nwant % x", key, got, want)
	}
}

// TestEncodeUpdateDeleteTxn checks the update and delete shapes: compare
// mod_revision == 300 (varint ac 02), delete_range on success.
func TestEncodeUpdateDeleteTxn(t *testing.T) {
	got := EncodeTxnRequest(TxnRequest{
		Compare: []Compare{ModRevisionEquals([]byte("k"), 300)},
		Success: []Op{OpDelete([]byte("k"))},
		Failure: []Op{OpGet([]byte("k"))},
	})
	want := unhex(t, "0a08", "1002", "1a016b", "30ac02", "1205", "1a03", "0a016b", "1a05", "0a03", "0a016b")
	if !bytes.Equal(got, want) {
		t.Errorf("delete txn\n got % x\nwant % x", got, want)
	}
}

func TestDecodeTxnResponse(t *testing.T) {
	ok, err := DecodeTxnResponse(unhex(t,
		"0a02182a",                 // header{revision=42}
		"1001",                     // succeeded
		"1a06", "1204", "0a02182a", // responses[{response_put{header{revision=42}}}]
	))
	if err != nil || !ok.Succeeded || ok.Header.Revision != 42 || len(ok.Responses) != 1 || ok.Responses[0].Put == nil || ok.Responses[0].Put.Revision != 42 {
		t.Fatalf("succeeded txn: %+v %v", ok, err)
	}
	failed, err := DecodeTxnResponse(unhex(t,
		"0a02182b",                                                 // header{revision=43}; succeeded absent (false)
		"1a0e", "0a0c", "1208", "0a016b", "1807", "2a0176", "2001", // responses[{response_range{kvs[{key=k, mod_revision=7, value=v}], count=1}}]
	))
	if err != nil || failed.Succeeded || failed.Header.Revision != 43 || len(failed.Responses) != 1 {
		t.Fatalf("failed txn: %+v %v", failed, err)
	}
	rr := failed.Responses[0].Range
	if rr == nil || rr.Count != 1 || len(rr.KVs) != 1 || string(rr.KVs[0].Key) != "k" || rr.KVs[0].ModRevision != 7 || string(rr.KVs[0].Value) != "v" {
		t.Fatalf("failure range: %+v", rr)
	}
	del, err := DecodeTxnResponse(unhex(t, "0a02182c", "1001", "1a08", "1a06", "0a02182c", "1001"))
	if err != nil || !del.Succeeded || del.Responses[0].Delete == nil || del.Responses[0].Delete.Deleted != 1 || del.Responses[0].Delete.Header.Revision != 44 {
		t.Fatalf("delete txn: %+v %v", del, err)
	}
}

package framing

import (
	"bytes"
	"encoding/json"
	"fmt"

	"watchtrace/testbed/internal/k8sobj"
	"watchtrace/testbed/internal/proto"
)

// DecodeList returns a LIST response's metadata.resourceVersion and item
// count, for clients that list before watching (client-go's reflector).
func DecodeList(f Format, body []byte) (rv string, items int, err error) {
	if f == CBOR {
		return decodeListCBOR(body)
	}
	if f == JSON {
		var l struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(body, &l); err != nil {
			return "", 0, fmt.Errorf("list: %w", err)
		}
		return l.Metadata.ResourceVersion, len(l.Items), nil
	}
	if !bytes.HasPrefix(body, k8sobj.ProtoMagic) {
		return "", 0, fmt.Errorf("list: missing k8s\\x00 prefix")
	}
	var raw []byte
	if err := fields(body[4:], func(f *proto.Field) { // runtime.Unknown
		if f.Num == 2 {
			raw = f.Bytes
		}
	}); err != nil {
		return "", 0, fmt.Errorf("list Unknown: %w", err)
	}
	err = fields(raw, func(f *proto.Field) { // <Kind>List{metadata=1, items=2}
		switch f.Num {
		case 1:
			_ = fields(f.Bytes, func(g *proto.Field) { // ListMeta.resourceVersion=2
				if g.Num == 2 {
					rv = g.String()
				}
			})
		case 2:
			items++
		}
	})
	return rv, items, err
}

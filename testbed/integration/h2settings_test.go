package integration

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// h2ServerSettings is what the server announced on one connection: its
// SETTINGS values by name and its connection-level WINDOW_UPDATE.
type h2ServerSettings struct {
	values     map[string]uint64 // e.g. "max_concurrent_streams" -> 100
	connWindow uint64            // 65535 + stream-0 WINDOW_UPDATE increments
}

// parseTsharkSettings collects, per client port, the server's non-ACK
// SETTINGS and stream-0 WINDOW_UPDATE frames from tshark -T json output.
func parseTsharkSettings(out []byte, serverPort string) (map[string]*h2ServerSettings, error) {
	var packets []struct {
		Source struct {
			Layers map[string]json.RawMessage `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &packets); err != nil {
		return nil, fmt.Errorf("tshark json: %w", err)
	}
	conns := map[string]*h2ServerSettings{}
	for _, p := range packets {
		var tcp struct {
			Src string `json:"tcp.srcport"`
			Dst string `json:"tcp.dstport"`
		}
		if err := json.Unmarshal(p.Source.Layers["tcp"], &tcp); err != nil {
			return nil, err
		}
		if tcp.Src != serverPort {
			continue
		}
		for _, layer := range oneOrMany(p.Source.Layers["http2"]) {
			var l struct {
				Stream json.RawMessage `json:"http2.stream"`
			}
			if err := json.Unmarshal(layer, &l); err != nil {
				return nil, err
			}
			for _, fr := range oneOrMany(l.Stream) {
				var f struct {
					Type      string          `json:"http2.type"`
					ID        string          `json:"http2.streamid"`
					Flags     string          `json:"http2.flags"`
					Settings  json.RawMessage `json:"http2.settings"`
					Increment string          `json:"http2.window_update.window_size_increment"`
				}
				if err := json.Unmarshal(fr, &f); err != nil {
					return nil, err
				}
				c := conns[tcp.Dst]
				if c == nil {
					c = &h2ServerSettings{values: map[string]uint64{}, connWindow: 65535}
					conns[tcp.Dst] = c
				}
				switch {
				case f.Type == "4" && f.Flags == "0x00": // SETTINGS, not ACK
					for _, s := range oneOrMany(f.Settings) {
						var kv map[string]string
						if err := json.Unmarshal(s, &kv); err != nil {
							return nil, err
						}
						for k, v := range kv {
							name, ok := strings.CutPrefix(k, "http2.settings.")
							if !ok || name == "id" {
								continue
							}
							n, err := strconv.ParseUint(v, 10, 64)
							if err != nil {
								return nil, fmt.Errorf("SETTINGS %s=%q: %w", name, v, err)
							}
							c.values[name] = n
						}
					}
				case f.Type == "8" && f.ID == "0": // connection WINDOW_UPDATE
					n, err := strconv.ParseUint(f.Increment, 10, 64)
					if err != nil {
						return nil, fmt.Errorf("WINDOW_UPDATE %q: %w", f.Increment, err)
					}
					c.connWindow += n
				}
			}
		}
	}
	return conns, nil
}

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"watchtrace/testbed/internal/etcdgrpc"
	"watchtrace/testbed/internal/framing"
	"watchtrace/testbed/internal/groundtruth"
	"watchtrace/testbed/internal/harness"
	"watchtrace/testbed/internal/verify"
)

// runTool runs an external tool with a deadline, in its own process group
// so a hung tool and its children are killed by pid.
func runTool(t *testing.T, timeout time.Duration, name string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	requireTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.SysProcAttr = procGroup()
	cmd.Cancel = func() error { return killGroup(cmd) }
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

func configMapJSON(ns, name string, i int) []byte {
	return fmt.Appendf(nil, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":%q,"namespace":%q,"labels":{"test":"tools"}},"data":{"i":"%d"}}`, name, ns, i)
}

func etcdClient(t *testing.T, b *bed) *etcdgrpc.Client {
	t.Helper()
	c, err := b.etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func put(t *testing.T, c *etcdgrpc.Client, key string, value []byte) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := c.Put(ctx, []byte(key), value)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return h.Revision
}

// streamWrites returns a stream's write records in order.
func streamWrites(gt []groundtruth.Record, stream uint64) []groundtruth.Record {
	var out []groundtruth.Record
	for _, r := range gt {
		if r.Kind == groundtruth.KindWrite && r.Stream == stream {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// TestKubectlWatch checks that kubectl 1.32 (an independent client-go
// decoder, over HTTPS + h2 with the generated kubeconfig) prints exactly the
// events the ground truth says were sent on its stream.
func TestKubectlWatch(t *testing.T) {
	requireTool(t, "/usr/bin/kubectl")
	b := startBed(t, false)
	c := etcdClient(t, b)
	for i := range 3 {
		put(t, c, fmt.Sprintf("/registry/configmaps/default/pre-%d", i), configMapJSON("default", fmt.Sprintf("pre-%d", i), i))
	}
	put(t, c, "/registry/configmaps/other/not-default", configMapJSON("other", "not-default", 0))

	const path = "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=3"
	type result struct {
		out, errOut []byte
		err         error
	}
	done := make(chan result, 1)
	go func() {
		o, e, err := runTool(t, 30*time.Second, "/usr/bin/kubectl", "--kubeconfig", b.api.State.Kubeconfig, "get", "--raw", path)
		done <- result{o, e, err}
	}()
	// Write only once kubectl's watch is registered, so every live event
	// falls inside its 3 s window.
	if !waitForLog(b.api.State.GroundTruthLog, []string{`"kind":"watch_open"`, `"user_agent":"kubectl/`}, 15*time.Second) {
		t.Fatal("kubectl's watch never opened")
	}
	for i := range 10 {
		key := fmt.Sprintf("/registry/configmaps/default/live-%d", i%4)
		put(t, c, key, configMapJSON("default", fmt.Sprintf("live-%d", i%4), i))
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if _, _, err := c.Delete(ctx, []byte("/registry/configmaps/default/pre-0")); err != nil {
		t.Fatal(err)
	}
	cancel()
	put(t, c, "/registry/configmaps/other/not-default", configMapJSON("other", "not-default", 1))
	res := <-done
	if res.err != nil {
		t.Fatalf("kubectl: %v; stderr: %s", res.err, res.errOut)
	}
	gt := b.stopAPI()

	var open *groundtruth.Record
	for i := range gt {
		if gt[i].Kind == groundtruth.KindWatchOpen && strings.HasPrefix(gt[i].UserAgent, "kubectl/") {
			open = &gt[i]
		}
	}
	if open == nil {
		t.Fatal("no kubectl watch in the ground truth")
	}
	if !samePathAndQuery(open.Path, path) || open.Proto != "HTTP/2.0" || open.TLS == nil || !*open.TLS {
		t.Errorf("kubectl watch: path %q proto %s tls %v", open.Path, open.Proto, *open.TLS)
	}

	writes := streamWrites(gt, open.Stream)
	lines := bytes.SplitAfter(res.out, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	var live, initial int
	for i, w := range writes {
		if i >= len(lines) {
			t.Fatalf("kubectl printed %d events, the server wrote %d", len(lines), len(writes))
		}
		ev, err := framing.DecodeJSONEvent(lines[i])
		if err != nil {
			t.Fatalf("kubectl line %d: %v", i, err)
		}
		if ev.Type != w.EventType || ev.RV != w.RV || ev.Name != w.Name || int64(len(lines[i])) != w.Bytes {
			t.Errorf("event %d: kubectl %s %s/%s rv %s (%d bytes); ground truth %s %s rv %s (%d bytes)",
				i, ev.Type, ev.Namespace, ev.Name, ev.RV, len(lines[i]), w.EventType, w.Name, w.RV, w.Bytes)
		}
		if w.Initial {
			initial++
		} else if w.EventType != "BOOKMARK" {
			live++
		}
	}
	if len(lines) != len(writes) {
		t.Errorf("kubectl printed %d events, the server wrote %d", len(lines), len(writes))
	}
	if c := closeOf(gt, open.Stream); c == nil || c.Reason != groundtruth.ReasonTimeout {
		t.Errorf("kubectl's watch did not end by timeoutSeconds: %+v", c)
	}
	t.Logf("kubectl printed %d events (%d initial, %d live), all matching the ground truth by type, name, RV and bytes", len(lines), initial, live)
	if initial != 3 || live != 11 {
		t.Errorf("want 3 initial and 11 live events for default, got %d and %d", initial, live)
	}
}

// samePathAndQuery compares request URIs ignoring query parameter order
// (kubectl sorts them).
func samePathAndQuery(a, b string) bool {
	ua, err1 := url.ParseRequestURI(a)
	ub, err2 := url.ParseRequestURI(b)
	return err1 == nil && err2 == nil && ua.Path == ub.Path && ua.Query().Encode() == ub.Query().Encode()
}

// waitForLog polls a JSON-lines file for a line containing all needles.
func waitForLog(path string, needles []string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				line := sc.Text()
				all := true
				for _, n := range needles {
					all = all && strings.Contains(line, n)
				}
				if all {
					f.Close()
					return true
				}
			}
			f.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// TestEtcdctlWatch checks with etcdctl (etcd's own client) that the writer's
// puts and deletes are in etcd at the revisions the writer and the ground
// truth report.
func TestEtcdctlWatch(t *testing.T) {
	requireTool(t, "/usr/bin/etcdctl")
	b := startBed(t, false)
	_, logPath, code := b.runLoad("watch-load", 60*time.Second, "-conns", "1", "-watches-per-conn", "2",
		"-resources", "configmaps,secrets", "-namespaces", "ns-0", "-write-rate", "50", "-duration", "2s")
	if code != 0 {
		t.Fatalf("watch-load exit %d", code)
	}
	gt := b.stopAPI()
	// --rev 1 replays history, so there is no race with etcdctl's start;
	// etcdctl watch never exits by itself, so it runs under a deadline.
	out, errOut, err := runTool(t, 3*time.Second, "/usr/bin/etcdctl", "--endpoints", b.etcd.Endpoint,
		"watch", "--prefix", "/registry/", "--rev", "1", "-w", "json")
	if err == nil || len(out) == 0 {
		t.Fatalf("etcdctl watch: err %v, %d bytes; stderr: %s", err, len(out), errOut)
	}
	type kv struct {
		Key         string `json:"key"`
		ModRevision int64  `json:"mod_revision"`
	}
	seen := map[int64]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var resp struct {
			Events []struct {
				Type int `json:"type"`
				KV   kv  `json:"kv"`
			}
		}
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("etcdctl output: %v", err)
		}
		for _, e := range resp.Events {
			key, _ := base64.StdEncoding.DecodeString(e.KV.Key)
			typ := "PUT"
			if e.Type == 1 {
				typ = "DELETE"
			}
			seen[e.KV.ModRevision] = typ + " " + string(key)
		}
	}
	ops, err := verify.ReadOps(logPath)
	if err != nil {
		t.Fatal(err)
	}
	committed := 0
	for _, op := range ops {
		if op.Error != "" || (op.Op == "delete" && op.Deleted == 0) {
			continue
		}
		committed++
		want := "PUT " + op.Key
		if op.Op == "delete" {
			want = "DELETE " + op.Key
		}
		if seen[op.Rev] != want {
			t.Errorf("writer %s %s at revision %d; etcdctl saw %q", op.Op, op.Key, op.Rev, seen[op.Rev])
		}
	}
	gtEvents := 0
	for _, r := range gt {
		if r.Kind == groundtruth.KindEtcdEvent {
			gtEvents++
			if want := r.Type + " " + r.Key; seen[r.Revision] != want {
				t.Errorf("ground truth %s at %d; etcdctl saw %q", want, r.Revision, seen[r.Revision])
			}
		}
	}
	t.Logf("etcdctl saw %d events; writer committed %d; ground truth has %d etcd_event lines", len(seen), committed, gtEvents)
	if committed != 100 || len(seen) != committed || gtEvents != committed {
		t.Errorf("want 100 commits seen identically by etcdctl (%d), writer (%d) and ground truth (%d)", len(seen), committed, gtEvents)
	}
}

// TestH2load checks that nghttp2's h2load (an independent HTTP/2 client)
// can LIST over the h2c port and over HTTPS, where ALPN must pick h2.
func TestH2load(t *testing.T) {
	requireTool(t, "/usr/bin/h2load")
	b := startBed(t, false)
	c := etcdClient(t, b)
	for i := range 5 {
		put(t, c, fmt.Sprintf("/registry/configmaps/default/h2-%d", i), configMapJSON("default", fmt.Sprintf("h2-%d", i), i))
	}
	const path = "/api/v1/namespaces/default/configmaps"
	for _, base := range []string{"http://" + b.api.State.H2CAddr, "https://" + b.api.State.HTTPSAddr} {
		out, errOut, err := runTool(t, 60*time.Second, "/usr/bin/h2load", "-n", "100", "-c", "2", base+path)
		if err != nil {
			t.Fatalf("h2load %s: %v\n%s\n%s", base, err, out, errOut)
		}
		text := string(out)
		t.Logf("h2load %s: %s", base, regexp.MustCompile(`(?m)^requests:.*$`).FindString(text))
		if !strings.Contains(text, "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, 0 errored, 0 timeout") ||
			!strings.Contains(text, "status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx") {
			t.Fatalf("h2load %s reported failures:\n%s", base, text)
		}
		// h2load does not verify certificates; ALPN is what matters here.
		if strings.HasPrefix(base, "https") && !strings.Contains(text, "Application protocol: h2") {
			t.Errorf("h2load over TLS did not negotiate h2:\n%s", text)
		}
	}
	gt := b.stopAPI()
	lists := map[bool]int{}
	var size int64
	for _, r := range gt {
		if r.Kind == groundtruth.KindList && strings.HasPrefix(r.UserAgent, "h2load") {
			lists[r.TLS != nil && *r.TLS]++
			if r.Items != 5 || r.Proto != "HTTP/2.0" || (size != 0 && r.Bytes != size) {
				t.Errorf("h2load LIST: %d items, %s, %d bytes", r.Items, r.Proto, r.Bytes)
			}
			size = r.Bytes
		}
	}
	if lists[false] != 100 || lists[true] != 100 {
		t.Errorf("ground truth has %d h2c and %d TLS h2load LISTs, want 100 each", lists[false], lists[true])
	}
}

// TestTsharkH2CFraming captures a short h2c watch run with tshark and checks
// that the DATA bytes Wireshark's HTTP/2 dissector sees on each watch stream
// decode to exactly the events (types, RVs, sizes, order) the ground truth
// says were written, and that the byte totals match.
func TestTsharkH2CFraming(t *testing.T) {
	requireTool(t, "/usr/bin/tshark")
	b := startBed(t, false)
	_, port, _ := strings.Cut(b.api.State.H2CAddr, ":")
	pcap := filepath.Join(b.dir, "h2c.pcap")
	capture, err := harness.Start("tshark", filepath.Join(b.dir, "logs"), "/usr/bin/tshark",
		"-i", "lo", "-f", "tcp port "+port, "-w", pcap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { capture.Stop(10 * time.Second) })
	if !waitForText(capture.StderrPath, "Capturing on", 20*time.Second) {
		t.Fatalf("tshark did not start capturing: %s", capture.Tail(2000))
	}
	time.Sleep(time.Second) // dumpcap reports before its first packet is guaranteed
	sum, _, code := b.runLoad("watch-load", 60*time.Second, "-h2c", "-conns", "1", "-watches-per-conn", "4",
		"-resources", "configmaps,secrets", "-namespaces", "ns-0,*", "-write-rate", "40", "-duration", "3s",
		"-timeout-seconds", "2", "-format", "mixed", "-object-size", "20000")
	if code != 0 {
		t.Fatalf("watch-load exit %d: %v", code, sum.Problems)
	}
	time.Sleep(500 * time.Millisecond)
	if err := capture.Stop(10 * time.Second); err != nil {
		t.Fatalf("tshark: %v", err)
	}
	gt := b.stopAPI()

	out, errOut, err := runTool(t, 120*time.Second, "/usr/bin/tshark", "-r", pcap, "-d", "tcp.port=="+port+",http2",
		"-T", "json", "--no-duplicate-keys")
	if err != nil {
		t.Fatalf("tshark -r: %v: %s", err, errOut)
	}
	h2, err := parseTsharkHTTP2(out, port)
	if err != nil {
		t.Fatal(err)
	}
	// The server announces kube-apiserver's HTTP/2 settings: 100 streams,
	// 256 KiB frames and stream windows, a 100 x 256 KiB connection window.
	settings, err := parseTsharkSettings(out, port)
	if err != nil {
		t.Fatal(err)
	}
	if len(settings) == 0 {
		t.Error("no server SETTINGS in the capture")
	}
	for clientPort, s := range settings {
		t.Logf("connection from port %s: server SETTINGS %v, connection window %d", clientPort, s.values, s.connWindow)
		v := s.values
		if v["max_concurrent_streams"] != 100 || v["max_frame_size"] != 256<<10 || v["initial_window_size"] != 256<<10 || s.connWindow != 100*256<<10 {
			t.Errorf("connection from port %s: server SETTINGS %v, connection window %d", clientPort, v, s.connWindow)
		}
	}
	checked := 0
	for i := range gt {
		open := &gt[i]
		if open.Kind != groundtruth.KindWatchOpen {
			continue
		}
		_, clientPort, _ := strings.Cut(open.Client, ":")
		st := h2.find(clientPort, open.Path)
		if st == nil {
			t.Errorf("stream %d (%s %s): not found in the capture", open.Stream, open.Client, open.Path)
			continue
		}
		writes := streamWrites(gt, open.Stream)
		var total int64
		for _, w := range writes {
			total += w.Bytes
		}
		format := framing.JSON
		if open.ContentType == framing.MediaProtobufWatch {
			format = framing.Protobuf
		}
		rd := framing.NewReader(bytes.NewReader(st.data), format)
		for j, w := range writes {
			ev, err := rd.Next()
			if err != nil {
				t.Errorf("stream %d: tshark bytes decode to only %d of %d events: %v", open.Stream, j, len(writes), err)
				break
			}
			if ev.Type != w.EventType || ev.RV != w.RV || int64(ev.Bytes) != w.Bytes {
				t.Errorf("stream %d event %d: tshark %s rv %s %d bytes; ground truth %s rv %s %d bytes",
					open.Stream, j, ev.Type, ev.RV, ev.Bytes, w.EventType, w.RV, w.Bytes)
			}
		}
		if int64(len(st.data)) != total {
			t.Errorf("stream %d: tshark saw %d DATA bytes in %d frames, ground truth wrote %d",
				open.Stream, len(st.data), st.frames, total)
		}
		// watch-load cancels its watches at the end (client_gone): the
		// client resets the stream; a server-side end is END_STREAM.
		closeRec := closeOf(gt, open.Stream)
		if closeRec == nil {
			t.Errorf("stream %d never closed", open.Stream)
		} else if closeRec.Reason == groundtruth.ReasonClientGone && !st.reset {
			t.Errorf("stream %d: closed by the client but no RST_STREAM captured", open.Stream)
		} else if closeRec.Reason != groundtruth.ReasonClientGone && (!st.ended || !st.reassembled) {
			t.Errorf("stream %d: ended by the server (%s): END_STREAM %v, tshark body reassembly %v", open.Stream, closeRec.Reason, st.ended, st.reassembled)
		}
		t.Logf("stream %d (%s, h2 stream %d, %s): %d events, %d bytes in %d DATA frames: identical",
			open.Stream, format, st.id, endOf(closeRec), len(writes), total, st.frames)
		checked++
	}
	// Each of the 4 watches times out after 2 s (END_STREAM from the
	// server) and is re-established from its last RV (later reset by the
	// client when watch-load stops): at least 8 streams.
	if checked < 8 {
		t.Errorf("checked %d watch streams, want at least 8", checked)
	}
}

func endOf(r *groundtruth.Record) string {
	if r == nil {
		return "open"
	}
	if r.Reason == groundtruth.ReasonClientGone {
		return "RST_STREAM by client"
	}
	return "END_STREAM after " + r.Reason
}

func closeOf(gt []groundtruth.Record, stream uint64) *groundtruth.Record {
	for i := range gt {
		if gt[i].Kind == groundtruth.KindWatchClose && gt[i].Stream == stream {
			return &gt[i]
		}
	}
	return nil
}

func waitForText(path, text string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), text) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// h2Stream is one HTTP/2 stream as reassembled from tshark's output.
type h2Stream struct {
	id     int
	path   string
	data   []byte // server-to-client DATA payloads, in order
	frames int
	ended  bool // END_STREAM from the server
	reset  bool // RST_STREAM in either direction
	// reassembled: tshark's body reassembly (at END_STREAM) agreed with
	// the concatenated frames.
	reassembled bool
}

type h2Capture map[string]*h2Stream // "<client port>/<stream id>"

func (c h2Capture) find(clientPort, path string) *h2Stream {
	for k, s := range c {
		if strings.HasPrefix(k, clientPort+"/") && s.path == path {
			return s
		}
	}
	return nil
}

// parseTsharkHTTP2 walks tshark -T json output. Fields that repeat become
// arrays only when they do, so every level may be an object or a list.
func parseTsharkHTTP2(out []byte, serverPort string) (h2Capture, error) {
	var packets []struct {
		Source struct {
			Layers map[string]json.RawMessage `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &packets); err != nil {
		return nil, fmt.Errorf("tshark json: %w", err)
	}
	c := h2Capture{}
	for _, p := range packets {
		var tcp struct {
			Src string `json:"tcp.srcport"`
			Dst string `json:"tcp.dstport"`
		}
		if err := json.Unmarshal(p.Source.Layers["tcp"], &tcp); err != nil {
			return nil, err
		}
		toClient := tcp.Src == serverPort
		clientPort := tcp.Src
		if toClient {
			clientPort = tcp.Dst
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
					Type   string `json:"http2.type"`
					ID     string `json:"http2.streamid"`
					Length string `json:"http2.length"`
					Flags  string `json:"http2.flags"`
					Data   string `json:"http2.data.data"`
					// Present on the frame where tshark reassembled the body.
					Fragments json.RawMessage `json:"http2.body.fragments"`
					Header    json.RawMessage `json:"http2.header"`
				}
				if err := json.Unmarshal(fr, &f); err != nil {
					return nil, err
				}
				if f.Type == "" {
					continue // connection preface
				}
				id, _ := strconv.Atoi(f.ID)
				key := clientPort + "/" + f.ID
				s := c[key]
				if s == nil {
					s = &h2Stream{id: id}
					c[key] = s
				}
				switch {
				case f.Type == "1" && !toClient: // request HEADERS
					for _, h := range oneOrMany(f.Header) {
						var hv struct {
							Name  string `json:"http2.header.name"`
							Value string `json:"http2.header.value"`
						}
						if json.Unmarshal(h, &hv) == nil && hv.Name == ":path" {
							s.path = hv.Value
						}
					}
				case f.Type == "3": // RST_STREAM
					s.reset = true
				case f.Type == "0" && toClient: // DATA
					n, _ := strconv.Atoi(f.Length)
					payload, err := hexColon(f.Data)
					if err != nil {
						return nil, err
					}
					if f.Fragments != nil {
						// On END_STREAM tshark reports its own reassembly of the
						// whole body in this frame's data field: it must extend
						// what the individual frames carried.
						if !bytes.HasPrefix(payload, s.data) {
							return nil, fmt.Errorf("stream %s: tshark's reassembled body differs from its DATA frames", key)
						}
						s.reassembled = true
						payload = payload[len(s.data):]
					}
					if len(payload) != n {
						return nil, fmt.Errorf("stream %s: DATA length %d but %d payload bytes", key, n, len(payload))
					}
					s.data = append(s.data, payload...)
					s.frames++
					flags, _ := strconv.ParseUint(strings.TrimPrefix(f.Flags, "0x"), 16, 8)
					s.ended = s.ended || flags&1 != 0
				}
			}
		}
	}
	return c, nil
}

func oneOrMany(raw json.RawMessage) []json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	if raw[0] == '[' {
		var many []json.RawMessage
		if json.Unmarshal(raw, &many) == nil {
			return many
		}
		return nil
	}
	return []json.RawMessage{raw}
}

// hexColon decodes tshark's "6b:38:73:00" byte notation.
func hexColon(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ":")
	out := make([]byte, len(parts))
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("tshark data %q: %w", p, err)
		}
		out[i] = byte(v)
	}
	return out, nil
}
